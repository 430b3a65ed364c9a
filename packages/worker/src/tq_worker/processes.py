"""``tq worker --processes N``: N complete workers under one supervising process.

Each child process is a whole worker: its own broker connection, consumer, prefetch
window, pool (solo or threads) and node name. N processes therefore fetch, run and
acknowledge on N cores with nothing relayed through a parent, which is what short tasks
need (decision §14); ``-P prefork`` keeps one consumer that hands each task to a child.

The supervisor only

- forks the children (before it starts any thread) and replaces one that dies;
- passes signals on: SIGTERM or SIGINT stop every child warm, a second one or SIGQUIT
  cold; SIGHUP restarts (children stop warm, then the supervisor re-executes itself)
  when :meth:`ProcessGroup.run` was asked for restarts, else stops warm; SIGUSR1 makes
  every child log its stacks;
- holds the pidfile (its caller does).

A child that exits with status 0 on its own, which remote control's ``shutdown`` does,
is not replaced, and the supervisor exits once none is left. Children run in their own
process group, so a terminal's Ctrl-C reaches the supervisor alone (which passes it on
once), and each child watches a pipe from the supervisor: when the supervisor dies,
however it died, its children stop warm instead of running on unsupervised.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Final, final

if TYPE_CHECKING:
    from tq_worker.worker import Worker

logger = logging.getLogger("tq.worker")

#: How often the supervisor looks for exited children.
_POLL: Final = 0.1
#: A child that dies sooner than this after it started is replaced only after a pause,
#: so a worker that cannot start (a broken app, a wrong URL) does not fork in a loop.
_QUICK_DEATH: Final = 5.0
_RESPAWN_PAUSE: Final = 2.0


def child_nodename(template: str, index: int) -> str:
    """The node name of process ``index`` (1, 2, ...) from the worker's ``-n`` template.

    ``%i`` and ``%I`` are the index (``%I`` with a leading dash), as in log file names;
    without either, ``-<index>`` follows the name part: ``tq@%h`` gives ``tq-1@%h``,
    ``tq-2@%h``, so each process answers remote control under its own name.
    """
    if "%i" in template or "%I" in template:
        return template.replace("%I", f"-{index}").replace("%i", str(index))
    name, at, host = template.partition("@")
    return f"{name}-{index}{at}{host}"


@final
class ProcessGroup:
    """Supervises ``count`` child processes, each running ``run_child(index, lifeline)``.

    ``run_child`` runs a worker to its end in the child; ``lifeline`` is the read end of
    the pipe it gives to :func:`stop_when_orphaned`. The child exits 0 when ``run_child``
    returns, 1 when it raised.
    """

    def __init__(self, count: int, run_child: Callable[[int, int], None]) -> None:
        self.count = count
        self._run_child = run_child
        self._children: dict[int, tuple[int, float]] = {}  # pid -> (index, started)
        self._respawn: dict[int, float] = {}  # index -> when it may start again
        self._stopping = False
        self._restart = False
        self._lifeline_r, self._lifeline_w = os.pipe()

    @property
    def pids(self) -> list[int]:
        """The pids of the running children."""
        return list(self._children)

    def run(self, restart_on_sighup: bool = False) -> bool:
        """Start the children and supervise them until none is left.

        Returns:
            Whether SIGHUP asked for a restart: every child has stopped warm, and the
            caller starts the group again (``tq worker`` re-executes its process).
        """
        self._install_signal_handlers(restart_on_sighup)
        for index in range(1, self.count + 1):
            if not self._stopping:  # a signal between two forks: start no more
                self._spawn(index)
        while self._children or (self._respawn and not self._stopping):
            self._reap()
            now = time.monotonic()
            for index, when in list(self._respawn.items()):
                if self._stopping:
                    self._respawn.clear()
                elif when <= now:
                    del self._respawn[index]
                    self._spawn(index)
            time.sleep(_POLL)
        return self._restart

    # -- children --------------------------------------------------------------------

    def _spawn(self, index: int) -> None:
        pid = os.fork()
        if pid:
            self._children[pid] = (index, time.monotonic())
            logger.debug("worker process %d started (pid %d)", index, pid)
            return
        status = 1
        try:
            os.setpgid(0, 0)
            os.close(self._lifeline_w)
            multiprocessing.current_process().name = f"WorkerProcess-{index}"  # in log lines
            for signum in _handled_signals():
                signal.signal(signum, signal.SIG_DFL)
            self._run_child(index, self._lifeline_r)
            status = 0
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            logger.exception("worker process %d failed", index)
        finally:
            logging.shutdown()
            os._exit(status)

    def _reap(self) -> None:
        while self._children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self._children.clear()
                return
            if not pid:
                return
            index, started = self._children.pop(pid, (0, 0.0))
            if not index:
                continue
            code = os.waitstatus_to_exitcode(status)
            if self._stopping:
                logger.debug("worker process %d (pid %d) stopped: %s", index, pid, code)
            elif code == 0:
                logger.warning(
                    "worker process %d (pid %d) shut down (remote control): not replaced",
                    index,
                    pid,
                )
            else:
                how = f"signal {-code}" if code < 0 else f"status {code}"
                quick = time.monotonic() - started < _QUICK_DEATH
                logger.error(
                    "worker process %d (pid %d) exited with %s: replacing it%s",
                    index,
                    pid,
                    how,
                    f" in {_RESPAWN_PAUSE:g} s" if quick else "",
                )
                self._respawn[index] = time.monotonic() + (_RESPAWN_PAUSE if quick else 0.0)

    def _signal_children(self, signum: int) -> None:
        for pid in self._children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    # -- signals ---------------------------------------------------------------------

    def _install_signal_handlers(self, restart_on_sighup: bool) -> None:
        def stop(signum: int, frame: FrameType | None) -> None:
            if self._stopping:
                logger.warning("worker: Cold shutdown of %d process(es)", len(self._children))
                self._signal_children(signal.SIGQUIT)
                return
            self._stopping = True
            logger.warning("worker: Warm shutdown of %d process(es)", len(self._children))
            self._signal_children(signal.SIGTERM)

        def cold(signum: int, frame: FrameType | None) -> None:
            self._stopping = True
            self._signal_children(signal.SIGQUIT)

        def restart(signum: int, frame: FrameType | None) -> None:
            if self._stopping:
                logger.warning("worker: SIGHUP ignored: the worker is already stopping")
                return
            logger.warning("Restarting worker processes (SIGHUP)")
            self._restart = True
            stop(signum, frame)

        def relay(signum: int, frame: FrameType | None) -> None:
            self._signal_children(signum)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGQUIT, cold)
        signal.signal(signal.SIGHUP, restart if restart_on_sighup else stop)
        signal.signal(signal.SIGUSR1, relay)


def _handled_signals() -> tuple[signal.Signals, ...]:
    return (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGUSR1)


def stop_when_orphaned(worker: Worker, lifeline: int) -> None:
    """In a child: stop ``worker`` warm once the supervisor's end of ``lifeline`` closes.

    The supervisor never writes to the pipe; the read returns only when every copy of
    its write end is gone, that is when the supervisor has exited.
    """

    def watch() -> None:
        while os.read(lifeline, 1):
            pass
        if not worker.stopping:
            logger.warning("worker: the supervising process is gone: stopping")
            worker.request_shutdown(warm=True)

    threading.Thread(target=watch, name="tq-lifeline", daemon=True).start()
