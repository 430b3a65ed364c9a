"""What runs in a prefork child process: receive a job, execute it, report the outcome.

A child inherits the app by fork (from the fork server, see
:mod:`tq_pool_prefork.forkserver`). It ignores SIGINT and SIGTERM unless the worker sent
them (:mod:`tq_pool_prefork.stopsignals`), switches ``%i`` log files to its own index,
forgets the parent's broker and backend connections (a forked connection must not be
shared), runs ``tq_process_init``, then
serves jobs until the parent sends ``None``, the parent goes away, or it reaches
``max_tasks_per_child`` / ``max_memory_per_child``. Results are stored by the child;
the parent only settles the message from the :class:`ChildResult` it gets back.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import resource
import signal
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any, Final

from tq.errors import BackendError, SoftTimeLimitExceeded
from tq.execution import execute
from tq_pool_prefork.stopsignals import StopRequests, ignore_unless_requested
from tq_worker.daemon import use_process_log_files

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from tq.app import App
    from tq.request import Request
    from tq_worker.pools.base import PoolOptions

logger = logging.getLogger("tq.worker.pool")

# How often a child waiting for work checks that its parent is still alive.
_PARENT_CHECK_INTERVAL: Final = 1.0


@dataclass(frozen=True, slots=True)
class ChildJob:
    """What the parent sends: only picklable data, never the delivery."""

    job_id: int
    task_name: str
    request: Request
    soft_time_limit: float | None


@dataclass(frozen=True, slots=True)
class ChildResult:
    """What the child sends back once the task ended.

    ``stored`` is false when the outcome could not be recorded (backend down, internal
    error): the parent then puts the message back in the queue. ``exiting`` says the
    child exits after this task (``max_tasks_per_child``, ``max_memory_per_child``), so
    the parent sends it no other job.
    """

    job_id: int
    pid: int
    state: str = ""
    value: str = ""
    traceback: str | None = None
    runtime: float = 0.0
    requeue: bool = False
    stored: bool = True
    exiting: bool = False


def child_main(
    app: App,
    options: PoolOptions,
    stops: StopRequests,
    conn: Connection,
    parent_pid: int,
    index: int,
) -> None:
    """The child process's entry point, called by the fork server after it forked.

    ``index`` is the child's place in the pool, 1 to its size (``%i`` in file names).
    """
    _reset_signals(stops)
    use_process_log_files(index)
    _forget_connections(app)
    app.plugins.hook.tq_process_init(app=app)
    try:
        _serve(app, conn, options, parent_pid)
    finally:
        app.plugins.hook.tq_process_shutdown(app=app)


def _serve(app: App, conn: Connection, options: PoolOptions, parent_pid: int) -> None:
    done = 0
    while True:
        job = _receive(conn, parent_pid)
        if job is None:
            return
        result = _run(app, job)
        done += 1
        exiting = _should_retire(done, options)
        conn.send(dataclasses.replace(result, exiting=exiting))
        if exiting:
            return


def _receive(conn: Connection, parent_pid: int) -> ChildJob | None:
    while not conn.poll(_PARENT_CHECK_INTERVAL):
        if os.getppid() != parent_pid:
            return None  # orphaned: the worker died without stopping us
    try:
        job: ChildJob | None = conn.recv()
    except (EOFError, OSError):
        return None
    return job


def _run(app: App, job: ChildJob) -> ChildResult:
    task = app.tasks[job.task_name]
    pid = os.getpid()
    if job.soft_time_limit:
        signal.setitimer(signal.ITIMER_REAL, job.soft_time_limit)
    try:
        outcome = execute(task, job.request)
    except BackendError as exc:
        logger.error("Task %s[%s]: cannot store the result: %s", job.task_name, job.request.id, exc)
        return ChildResult(job.job_id, pid, stored=False)
    except BaseException:
        logger.exception("Task %s[%s]: internal error", job.task_name, job.request.id)
        return ChildResult(job.job_id, pid, stored=False)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return ChildResult(
        job.job_id,
        pid,
        outcome.state,
        repr(outcome.value),
        outcome.traceback,
        outcome.runtime,
        outcome.requeue,
    )


def _should_retire(done: int, options: PoolOptions) -> bool:
    if options.max_tasks_per_child and done >= options.max_tasks_per_child:
        return True
    if options.max_memory_per_child:
        # ru_maxrss is in KiB on Linux, the unit of --max-memory-per-child.
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss > options.max_memory_per_child
    return False


def _raise_soft_limit(signum: int, frame: FrameType | None) -> None:
    raise SoftTimeLimitExceeded("soft time limit exceeded")


def _reset_signals(stops: StopRequests) -> None:
    # The fork server's dispositions were inherited; the parent alone decides when
    # children stop. Ctrl-C in a terminal, or SIGTERM to the process group, reaches
    # every process at once: the worker's warm shutdown waits for our task.
    ignore_unless_requested(stops)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)
    signal.signal(signal.SIGALRM, _raise_soft_limit)


def _forget_connections(app: Any) -> None:
    # Connections opened by the parent must not be used from two processes.
    app.after_fork()
