"""The eventlet pool: each job runs in a green thread, at most ``concurrency`` at once.

Time limits use :class:`eventlet.Timeout`: the soft limit raises
:class:`~tq.errors.SoftTimeLimitExceeded` in the green thread, the hard limit
:class:`~tq.errors.TimeLimitExceeded`, which the task's result records as its failure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, final

import eventlet  # type: ignore[import-untyped, import-not-found, unused-ignore]

from tq.errors import SoftTimeLimitExceeded, TimeLimitExceeded
from tq_worker.pools.base import Job, Pool, PoolOptions
from tq_worker.timelimits import limits_for

if TYPE_CHECKING:
    from tq.app import App


@final
class EventletPool(Pool):
    """Runs each job in a green thread of a bounded :class:`eventlet.GreenPool`."""

    hard_kill = True

    def __init__(self, app: App, concurrency: int, options: PoolOptions | None = None) -> None:
        super().__init__(app, concurrency, options)
        self._green = eventlet.GreenPool(concurrency)
        self._stopping = False

    def submit(self, job: Job) -> None:
        if self._stopping:
            job.discard()
            return
        self._green.spawn_n(self._run, job)

    def _run(self, job: Job) -> None:
        hard, soft = limits_for(job, self.options)
        soft_timer = eventlet.Timeout(soft, SoftTimeLimitExceeded("soft time limit exceeded"))
        hard_timer = eventlet.Timeout(
            hard, TimeLimitExceeded(f"hard time limit ({hard}s) exceeded")
        )
        try:
            job.run()
        except (SoftTimeLimitExceeded, TimeLimitExceeded):
            pass  # fired while the message was settled, after the task returned
        finally:
            soft_timer.cancel()
            hard_timer.cancel()

    def stop(self, wait: bool) -> None:
        self._stopping = True
        if wait:
            self._green.waitall()
