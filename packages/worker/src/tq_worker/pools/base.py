"""The interface of execution pools."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Container
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from tq.app import App
    from tq.execution import Outcome
    from tq.request import Request
    from tq.task import Task


class Job(Protocol):
    """One reserved task, as the consumer hands it to a pool."""

    @property
    def request(self) -> Request:
        """The decoded request (picklable: a pool may send it to another process)."""

    @property
    def task(self) -> Task[Any, Any]:
        """The registered task the request names."""

    def run(self) -> None:
        """Execute the task and settle its message; never raises."""

    def discard(self) -> None:
        """Give the message back unstarted (the pool is stopping)."""

    def begin(self) -> None:
        """Mark the job running, for pools that execute it elsewhere (a child process)."""

    def finish(self, outcome: Outcome | None) -> None:
        """Settle a job executed elsewhere; ``None`` means its result could not be stored."""


@dataclass(frozen=True, slots=True)
class PoolOptions:
    """The worker's choices a pool may honour.

    Attributes:
        time_limit: default hard time limit in seconds (a task's own limit wins).
        soft_time_limit: default soft time limit in seconds.
        max_tasks_per_child: replace a child process after this many tasks.
        max_memory_per_child: replace a child process whose resident memory passed this
            many KiB, after the task that crossed the line.
        revoked: ids of tasks never to start: the worker's revoked ids, which grow as
            revokes arrive. :meth:`Job.run` checks them itself; a pool that runs jobs
            elsewhere (:meth:`Job.begin`/:meth:`Job.finish`) checks them before starting
            a job that waited for a free slot, and settles it as ``REVOKED``.
    """

    time_limit: float | None = None
    soft_time_limit: float | None = None
    max_tasks_per_child: int | None = None
    max_memory_per_child: int | None = None
    revoked: Container[str] = frozenset()


class Pool(ABC):
    """Runs jobs with up to ``concurrency`` at once.

    Args:
        app: the worker's app.
        concurrency: how many jobs may run at the same time.
        options: limits chosen for the worker; pools ignore what they cannot honour.
    """

    #: Whether the pool can stop a task at its hard time limit even when the task
    #: does not cooperate (prefork kills the child; threads cannot).
    hard_kill: bool = False

    def __init__(self, app: App, concurrency: int, options: PoolOptions | None = None) -> None:
        self.app = app
        self.concurrency = concurrency
        self.options = options or PoolOptions()

    def start(self) -> None:  # noqa: B027 - pools without resources need no start
        """Start threads or processes."""

    @abstractmethod
    def submit(self, job: Job) -> None:
        """Run ``job`` when a slot is free. May run it before returning (``solo``)."""

    @abstractmethod
    def stop(self, wait: bool) -> None:
        """Discard jobs not started yet; with ``wait``, return once running jobs finished."""

    def resize(self, concurrency: int) -> None:
        """Run up to ``concurrency`` jobs at once from now on (``pool_grow``/``pool_shrink``).

        Raises:
            NotImplementedError: the pool has a fixed size (every built-in pool, for now).
        """
        raise NotImplementedError(f"the {type(self).__name__} cannot be resized")

    def info(self) -> dict[str, Any]:
        """What ``inspect stats`` shows about the pool."""
        return {"implementation": type(self).__name__, "max-concurrency": self.concurrency}
