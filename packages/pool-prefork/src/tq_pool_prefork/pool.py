"""The prefork pool's parent side: children, job dispatch, limits and replacement.

One supervisor thread owns every child. It waits on the children's pipes, the fork
server's socket (which reports exited children) and a wake-up pipe; it hands a job only
to an idle child (Celery's ``-O fair``), kills a child whose task passed its hard time
limit, and replaces any child that exited. Children are forked by the
:mod:`~tq_pool_prefork.forkserver`, never by this multi-threaded process. The parent
keeps each job's delivery and settles it from what the child reports: the outcome it
stored, or, when the child died, ``TimeLimitExceeded``, ``WorkerLostError`` or a
redelivery (``task_reject_on_worker_lost``). A job revoked while it waited for a child
is settled as ``REVOKED`` and never sent.

Each child has an index from 1 to the pool's size (Celery's ``%i``), which a
replacement takes over from the child it replaces; ``--logfile`` names holding ``%i``
or ``%I`` give each index its own file.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import itertools
import logging
import os
import signal
import threading
import time
from multiprocessing import Pipe
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any, Final, final

from tq import states
from tq.errors import BackendError, TaskRevokedError, TimeLimitExceeded, WorkerLostError
from tq.execution import Outcome
from tq_pool_prefork.child import ChildJob, ChildResult, child_main
from tq_pool_prefork.forkserver import ForkServer, wait_for_exits
from tq_pool_prefork.stopsignals import StopRequests
from tq_worker.pools.base import Job, Pool, PoolOptions
from tq_worker.timelimits import limits_for

if TYPE_CHECKING:
    from tq.app import App

logger = logging.getLogger("tq.worker.pool")

_MAX_WAIT: Final = 0.5
_JOIN_TIMEOUT: Final = 10.0


class _Text(str):
    """A value reported by a child, already rendered: logs show it as is."""

    __slots__ = ()

    def __repr__(self) -> str:
        return str(self)


@final
class _Child:
    """A child process, its pipe, and the job it runs (if any)."""

    __slots__ = (
        "conn",
        "deadline",
        "eof",
        "index",
        "job",
        "job_id",
        "pid",
        "retiring",
        "terminated",
        "timed_out",
    )

    def __init__(self, pid: int, conn: Connection, index: int) -> None:
        self.pid = pid
        self.conn = conn
        self.index = index  # 1..concurrency: %i in log file names
        self.job: Job | None = None
        self.job_id = -1
        self.deadline: float | None = None
        self.timed_out: float | None = None
        self.eof = False  # its pipe closed: it exited, and the fork server will say how
        self.retiring = False  # asked to exit once idle (the pool shrank)
        self.terminated: int | None = None  # the signal remote control killed it with


@final
class PreforkPool(Pool):
    """``concurrency`` child processes, each running one task at a time."""

    hard_kill = True

    def __init__(self, app: App, concurrency: int, options: PoolOptions | None = None) -> None:
        super().__init__(app, concurrency, options)
        self._server = ForkServer()
        self._stops = StopRequests()  # before the fork server: every child shares it
        self._children: list[_Child] = []
        self._pending: collections.deque[Job] = collections.deque()
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe()
        self._job_ids = 0
        self._closing = False
        self._abandoned = False
        self._supervisor: threading.Thread | None = None
        self._stopped = threading.Event()
        self.pids_started = 0  # children started over the pool's life, for info()

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        # The fork server first, while this process may still be single-threaded.
        self._server.start(functools.partial(child_main, self.app, self.options, self._stops))
        for _ in range(self.concurrency):
            self._children.append(self._spawn())
        self._supervisor = threading.Thread(target=self._supervise, name="tq-prefork", daemon=True)
        self._supervisor.start()

    def submit(self, job: Job) -> None:
        with self._lock:
            if self._closing:
                job.discard()
                return
            self._pending.append(job)
        self._wake()

    def resize(self, concurrency: int) -> None:
        """Start or retire children until ``concurrency`` run; busy ones finish first."""
        if concurrency < 1:
            raise ValueError(f"a pool runs at least one task at once, not {concurrency}")
        with self._lock:
            self.concurrency = concurrency
        self._wake()

    def stop(self, wait: bool) -> None:
        """Hand back queued jobs; warm: let running tasks finish; cold: kill children."""
        with self._lock:
            already, self._closing = self._closing, True
            pending, self._pending = list(self._pending), collections.deque()
            if not wait:
                self._abandoned = True
        for job in pending:
            job.discard()
        if not wait:
            for child in list(self._children):
                _kill(child.pid)
        self._wake()
        if already and wait and self._supervisor is not None:
            self._stopped.wait()
            return
        if self._supervisor is not None and self._supervisor.is_alive():
            self._supervisor.join(None if wait else _JOIN_TIMEOUT)

    def info(self) -> dict[str, Any]:
        info = super().info()
        info["processes"] = [child.pid for child in self._children if not child.retiring]
        info["max-tasks-per-child"] = self.options.max_tasks_per_child
        return info

    # -- children --------------------------------------------------------------------

    def _spawn(self) -> _Child:
        parent_conn, child_conn = Pipe(duplex=True)
        self.pids_started += 1
        index = self._free_index()
        pid = self._server.spawn(child_conn, index, self.pids_started)
        child_conn.close()
        logger.debug("prefork: started child %s (index %s)", pid, index)
        return _Child(pid, parent_conn, index)

    def _free_index(self) -> int:
        # A retiring child runs no other task: its replacement takes its index at once.
        taken = {child.index for child in self._children if not child.retiring and not child.eof}
        return next(index for index in itertools.count(1) if index not in taken)

    def _wake(self) -> None:
        os.write(self._wake_w, b"x")

    # -- the supervisor thread --------------------------------------------------------

    def _supervise(self) -> None:
        try:
            while not self._finished():
                self._step()
            self._retire_all()
        finally:
            self._server.close()
            self._stopped.set()

    def _finished(self) -> bool:
        with self._lock:
            if not self._closing:
                return False
            return self._abandoned or all(child.job is None for child in self._children)

    def _step(self) -> None:
        waitables: list[Any] = [self._wake_r, self._server]
        waitables += [child.conn for child in self._children if not child.eof]
        ready = set(wait(waitables, self._timeout()))
        if self._wake_r in ready:
            os.read(self._wake_r, 4096)
        for child in list(self._children):
            if child.conn in ready:
                self._read_result(child)
        for pid, exitcode in self._server.exits():
            self._reap(pid, exitcode)
        self._enforce_deadlines()
        self._shrink()
        self._fill()
        self._dispatch()

    def _timeout(self) -> float:
        deadlines = [c.deadline for c in self._children if c.deadline is not None]
        if not deadlines:
            return _MAX_WAIT
        return max(0.0, min(_MAX_WAIT, min(deadlines) - time.monotonic()))

    def _read_result(self, child: _Child) -> None:
        try:
            result: ChildResult = child.conn.recv()
        except (EOFError, OSError):
            child.eof = True  # it died; _reap settles its job once the server reports it
            return
        child.retiring = child.retiring or result.exiting
        job = child.job
        if job is None or result.job_id != child.job_id:
            return
        child.job, child.deadline = None, None
        job.finish(_outcome(result))

    def _reap(self, pid: int, exitcode: int) -> None:
        child = next((c for c in self._children if c.pid == pid), None)
        if child is None:
            return
        # The exit may be reported before this loop saw the result the child sent first.
        while child.job is not None and not child.eof and child.conn.poll():
            self._read_result(child)
        self._children.remove(child)
        self._stops.discard(pid)
        child.conn.close()
        job, timed_out = child.job, child.timed_out
        if job is not None and not self._abandoned:
            if child.terminated is not None:
                exc = TaskRevokedError(f"terminated by signal {child.terminated}")
                self._revoked(job, exc, terminated=True)
            elif timed_out is not None:
                self._fail(job, TimeLimitExceeded(f"hard time limit ({timed_out}s) exceeded"))
            else:
                self._worker_lost(job, exitcode)
        logger.debug("prefork: child %s exited (%s)", pid, exitcode)

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for child in self._children:
            if child.deadline is not None and child.deadline <= now and child.job is not None:
                hard, _ = limits_for(child.job, self.options)
                logger.error(
                    "Hard time limit (%ss) exceeded for %s[%s]: killing child %s",
                    hard,
                    child.job.request.name,
                    child.job.request.id,
                    child.pid,
                )
                child.timed_out, child.deadline = hard, None
                _kill(child.pid)

    def _shrink(self) -> None:
        serving = [child for child in self._children if not child.retiring and not child.eof]
        with self._lock:
            extra = len(serving) - self.concurrency
        for child in serving:
            if extra <= 0:
                return
            if child.job is None:
                child.retiring = True
                _send(child, None)
                extra -= 1

    def _fill(self) -> None:
        with self._lock:
            if self._closing:
                return
            serving = sum(1 for child in self._children if not child.retiring)
            missing = self.concurrency - serving
        for _ in range(missing):
            self._children.append(self._spawn())

    def _dispatch(self) -> None:
        for child in self._children:
            if child.job is not None or child.retiring or child.eof:
                continue
            job = self._next_job()
            if job is None:
                return
            self._start_job(child, job)

    def _next_job(self) -> Job | None:
        """The next job to send to a child; revoked ones are settled on the way."""
        while True:
            with self._lock:
                if not self._pending or self._closing:
                    return None
                job = self._pending.popleft()
            if job.request.id not in self.options.revoked:
                return job
            logger.info("Discarding revoked task %s[%s]", job.request.name, job.request.id)
            self._revoked(job, TaskRevokedError("revoked"), terminated=False)

    def _start_job(self, child: _Child, job: Job) -> None:
        hard, soft = limits_for(job, self.options)
        self._job_ids += 1
        child.job, child.job_id, child.timed_out = job, self._job_ids, None
        child.deadline = time.monotonic() + hard if hard else None
        job.begin()
        if not _send(child, ChildJob(child.job_id, job.task.name, job.request, soft)):
            _kill(child.pid)  # broken pipe: the child is gone; _reap settles the job

    def _retire_all(self) -> None:
        for child in self._children:
            _send(child, None)
        pids = {child.pid for child in self._children}
        exited = {pid for pid, _ in wait_for_exits(self._server, pids, _JOIN_TIMEOUT)}
        for pid in pids - exited:
            _kill(pid)
        wait_for_exits(self._server, pids - exited, _JOIN_TIMEOUT)

    def terminate_job(self, task_id: str, signum: int) -> bool:
        """Kill the child running ``task_id`` with ``signum`` (``revoke --terminate``).

        The task ends REVOKED, and a new child takes the dead one's place.
        """
        for child in list(self._children):
            job = child.job
            if job is not None and job.request.id == task_id:
                logger.warning(
                    "Terminating %s[%s] (child %s) with signal %s",
                    job.request.name,
                    task_id,
                    child.pid,
                    signum,
                )
                child.terminated = signum
                self._stops.add(child.pid)  # children ignore SIGTERM/SIGINT from others
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signum)
                return True
        return False

    # -- outcomes of children that died ---------------------------------------------

    def _revoked(self, job: Job, exc: TaskRevokedError, terminated: bool) -> None:
        request = job.request
        if self.app.results.enabled and not request.ignore_result:
            try:
                self.app.results.store(request.id or "", states.REVOKED, exc, request=request)
            except BackendError as error:
                logger.error("Cannot store REVOKED for %s: %s", request.id, error)
        self.app.plugins.hook.tq_task_revoked(
            app=self.app, request=request, expired=False, terminated=terminated
        )
        job.finish(Outcome(states.REVOKED, exc))

    def _worker_lost(self, job: Job, exitcode: int | None) -> None:
        how = _describe_exit(exitcode)
        if job.task.option("reject_on_worker_lost") and job.task.option("acks_late"):
            logger.error("Task %s[%s]: %s; redelivering it", job.request.name, job.request.id, how)
            job.finish(Outcome(states.REJECTED, WorkerLostError(how), requeue=True))
            return
        self._fail(job, WorkerLostError(how))

    def _fail(self, job: Job, exc: Exception) -> None:
        request = job.request
        if self.app.results.enabled and not (
            request.ignore_result or job.task.option("ignore_result")
        ):
            try:
                self.app.results.store(request.id or "", states.FAILURE, exc, request=request)
            except BackendError as error:
                logger.error("Cannot store FAILURE for %s: %s", request.id, error)
                job.finish(None)
                return
        job.finish(Outcome(states.FAILURE, exc))


def _outcome(result: ChildResult) -> Outcome | None:
    if not result.stored:
        return None
    return Outcome(
        result.state, _Text(result.value), result.traceback, result.runtime, result.requeue
    )


def _send(child: _Child, message: ChildJob | None) -> bool:
    try:
        child.conn.send(message)
    except (OSError, ValueError):
        return False
    return True


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it died on its own meanwhile
        os.kill(pid, signal.SIGKILL)


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        return f"Worker exited prematurely: signal {-exitcode} ({name})"
    return f"Worker exited prematurely: exitcode {exitcode}"
