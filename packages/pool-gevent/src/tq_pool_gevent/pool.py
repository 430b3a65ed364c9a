"""The gevent pool: each job runs in its own greenlet, at most ``concurrency`` at once.

Time limits use :class:`gevent.Timeout`: the soft limit raises
:class:`~tq.errors.SoftTimeLimitExceeded` in the greenlet, the hard limit
:class:`~tq.errors.TimeLimitExceeded`, which the task's result records as its failure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, final

import gevent  # type: ignore[import-untyped, import-not-found, unused-ignore]
from gevent.pool import Pool as GreenletPool  # type: ignore[import-untyped, import-not-found, unused-ignore]

from tq.errors import SoftTimeLimitExceeded, TimeLimitExceeded
from tq_worker.pools.base import Job, Pool, PoolOptions
from tq_worker.timelimits import limits_for

if TYPE_CHECKING:
    from tq.app import App


@final
class GeventPool(Pool):
    """Runs each job in a greenlet of a bounded :class:`gevent.pool.Pool`."""

    hard_kill = True

    def __init__(self, app: App, concurrency: int, options: PoolOptions | None = None) -> None:
        super().__init__(app, concurrency, options)
        self._greenlets = GreenletPool(concurrency)
        self._stopping = False

    def submit(self, job: Job) -> None:
        if self._stopping:
            job.discard()
            return
        self._greenlets.spawn(self._run, job)

    def _run(self, job: Job) -> None:
        hard, soft = limits_for(job, self.options)
        soft_timer = gevent.Timeout(soft, SoftTimeLimitExceeded("soft time limit exceeded"))
        hard_timer = gevent.Timeout(hard, TimeLimitExceeded(f"hard time limit ({hard}s) exceeded"))
        soft_timer.start()
        hard_timer.start()
        try:
            job.run()
        except (SoftTimeLimitExceeded, TimeLimitExceeded):
            pass  # fired while the message was settled, after the task returned
        finally:
            soft_timer.close()
            hard_timer.close()

    def stop(self, wait: bool) -> None:
        self._stopping = True
        if wait:
            self._greenlets.join()
        else:
            self._greenlets.kill(block=False)
