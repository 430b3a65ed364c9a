"""The interface of execution pools."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from tq.app import App


class Job(Protocol):
    """One reserved task, as the consumer hands it to a pool."""

    def run(self) -> None:
        """Execute the task and settle its message; never raises."""

    def discard(self) -> None:
        """Give the message back unstarted (the pool is stopping)."""


class Pool(ABC):
    """Runs jobs with up to ``concurrency`` at once.

    Args:
        app: the worker's app.
        concurrency: how many jobs may run at the same time.
    """

    def __init__(self, app: App, concurrency: int) -> None:
        self.app = app
        self.concurrency = concurrency

    def start(self) -> None:  # noqa: B027 - pools without resources need no start
        """Start threads or processes."""

    @abstractmethod
    def submit(self, job: Job) -> None:
        """Run ``job`` when a slot is free. May run it before returning (``solo``)."""

    @abstractmethod
    def stop(self, wait: bool) -> None:
        """Discard jobs not started yet; with ``wait``, return once running jobs finished."""

    def info(self) -> dict[str, Any]:
        """What ``inspect stats`` shows about the pool."""
        return {"implementation": type(self).__name__, "max-concurrency": self.concurrency}
