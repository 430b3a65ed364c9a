"""Running a worker as a daemon: file name expansion, pidfile, detaching, restarting,
stack dumps.

``--logfile`` and ``--pidfile`` expand Celery's ``%`` codes with the node name:
``%n`` its name part, ``%h`` its full host name, ``%d`` the host's domain, ``%i`` the
pool process index (0 in the worker's main process) and ``%I`` the same with a dash
(empty in the main process). A log file named with ``%i`` or ``%I`` is one file per
process: each prefork child reopens it with its own index (:func:`use_process_log_files`).
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
from typing import NoReturn

logger = logging.getLogger("tq.worker")

#: Files a detached worker uses unless told otherwise (Celery's names, in the cwd).
DETACHED_LOGFILE = "%n%I.log"
DETACHED_PIDFILE = "%n.pid"

#: The option a worker adds to its command line when SIGHUP re-executes it: the process
#: is already detached, and the pidfile it finds names itself.
RESTARTED_OPTION = "--restarted"


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


def absolute_path(template: str, nodename: str, index: int = 0) -> str:
    """:func:`expand_path`, made absolute: a detached worker (or one that changes
    directory, or restarts) finds the same file."""
    return os.path.abspath(expand_path(template, nodename, index))


class ProcessLogFile(logging.FileHandler):
    """The worker's ``--logfile``: one file per pool process when the name holds ``%i``/``%I``.

    Args:
        template: the file name as given, ``%`` codes not expanded.
        nodename: the worker's node name, for ``%n %h %d``.
    """

    def __init__(self, template: str, nodename: str) -> None:
        self.template = template
        self.nodename = nodename
        super().__init__(absolute_path(template, nodename))

    def use_index(self, index: int) -> None:
        """Log to this process's own file from now on (a no-op unless the name has ``%i``)."""
        path = absolute_path(self.template, self.nodename, index)
        if path == self.baseFilename:
            return  # one file shared by every process, opened for appending
        self.acquire()
        try:
            if self.stream is not None:
                self.stream.close()  # this process's copy of the worker's descriptor
            self.baseFilename = path
            self.stream = self._open()
        finally:
            self.release()


def use_process_log_files(index: int) -> None:
    """In pool process ``index`` (1, 2, ...): reopen ``%i``/``%I`` log files for it.

    A pool plugin calls this in each new child process; handlers other than
    :class:`ProcessLogFile` (a ``tq_setup_logging`` hook's own) are left alone.
    """
    for handler in logging.getLogger().handlers:
        if isinstance(handler, ProcessLogFile):
            handler.use_index(index)


class Pidfile:
    """A file holding the worker's pid while it runs; a live owner makes it refuse."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def acquire(self) -> None:
        """Write this process's pid; raise ``FileExistsError`` when a live process has it.

        A file naming this very process is taken over: the worker restarted itself
        (SIGHUP) with the same pid.
        """
        owner = self._owner()
        if owner is not None and owner != os.getpid() and _alive(owner):
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


def reexec() -> NoReturn:
    """Replace this process by a new run of its command line, keeping the pid (SIGHUP).

    The new run finds itself already detached and its pidfile naming itself: the
    :data:`RESTARTED_OPTION` says so. Files and sockets are not inherited (Python opens
    them close-on-exec), so the caller stops the worker first.
    """
    argv = list(sys.orig_argv)
    if RESTARTED_OPTION not in argv:
        argv.append(RESTARTED_OPTION)
    logger.warning("Restarting: executing %s", " ".join(argv))
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)


def dump_stacks(signum: int, frame: FrameType | None) -> None:
    """SIGUSR1 handler: log the stack of every thread."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    parts = []
    for ident, stack in sys._current_frames().items():
        parts.append(f"Thread {names.get(ident, '?')} ({ident}):\n")
        parts += traceback.format_stack(stack)
    logger.warning("SIGUSR1: stacks of %d threads:\n%s", len(names), "".join(parts))
