"""The ``solo`` pool: each task runs in the consumer's thread, one at a time."""

from __future__ import annotations

from typing import TYPE_CHECKING, final

from tq_worker.pools.base import Job, Pool, PoolOptions
from tq_worker.pools.threads import run_with_limits
from tq_worker.timelimits import ThreadLimits

if TYPE_CHECKING:
    from tq.app import App


@final
class SoloPool(Pool):
    """Runs each job as soon as it is submitted, in the submitting thread."""

    def __init__(self, app: App, concurrency: int, options: PoolOptions | None = None) -> None:
        super().__init__(app, concurrency, options)
        self._limits = ThreadLimits()

    def submit(self, job: Job) -> None:
        run_with_limits(job, self._limits, self.options)

    def stop(self, wait: bool) -> None:
        pass
