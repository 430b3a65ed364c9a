"""Running a worker as a daemon: file name expansion, pidfile, detaching, stack dumps.

``--logfile`` and ``--pidfile`` expand Celery's ``%`` codes with the node name:
``%n`` its name part, ``%h`` its full host name, ``%d`` the host's domain, ``%i`` the
pool process index (0 in the worker's main process) and ``%I`` the same with a dash
(empty in the main process).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import traceback
from pathlib import Path
from types import FrameType

logger = logging.getLogger("tq.worker")

#: Files a detached worker uses unless told otherwise (Celery's names, in the cwd).
DETACHED_LOGFILE = "%n%I.log"
DETACHED_PIDFILE = "%n.pid"


def expand_path(template: str, nodename: str, index: int = 0) -> str:
    """``template`` with ``%n %h %d %i %I`` expanded for ``nodename``; ``%%`` is ``%``."""
    name, _, host = nodename.partition("@")
    codes = {
        "n": name,
        "h": host,
        "d": host.partition(".")[2],
        "i": str(index),
        "I": f"-{index}" if index else "",
        "%": "%",
    }
    out, chars = [], iter(template)
    for char in chars:
        if char != "%":
            out.append(char)
            continue
        code = next(chars, "")
        out.append(codes.get(code, f"%{code}"))
    return "".join(out)


class Pidfile:
    """A file holding the worker's pid while it runs; a live owner makes it refuse."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def acquire(self) -> None:
        """Write this process's pid; raise ``FileExistsError`` when a live process has it."""
        owner = self._owner()
        if owner is not None and _alive(owner):
            raise FileExistsError(f"{self.path}: worker {owner} is running (remove the file?)")
        self.path.write_text(f"{os.getpid()}\n")

    def release(self) -> None:
        """Remove the file if it still names this process."""
        if self._owner() == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def _owner(self) -> int | None:
        try:
            return int(self.path.read_text().strip() or 0) or None
        except (FileNotFoundError, ValueError):
            return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def detach(workdir: str | None = None) -> None:
    """Become a daemon: fork twice, start a new session, drop the terminal.

    The calling process exits; only the grandchild returns. Standard streams go to
    ``/dev/null``, so the caller must log to a file.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    if workdir:
        os.chdir(workdir)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def dump_stacks(signum: int, frame: FrameType | None) -> None:
    """SIGUSR1 handler: log the stack of every thread."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    parts = []
    for ident, stack in sys._current_frames().items():
        parts.append(f"Thread {names.get(ident, '?')} ({ident}):\n")
        parts += traceback.format_stack(stack)
    logger.warning("SIGUSR1: stacks of %d threads:\n%s", len(names), "".join(parts))
