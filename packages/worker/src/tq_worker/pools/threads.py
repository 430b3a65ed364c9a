"""The ``threads`` pool: tasks run in a set of threads.

Threads cannot be killed: time limits raise exceptions inside the task's thread (see
:mod:`tq_worker.timelimits`), and a task that ignores them keeps its thread.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import TYPE_CHECKING, final

from tq.errors import SoftTimeLimitExceeded, TimeLimitExceeded
from tq_worker.pools.base import Job, Pool, PoolOptions
from tq_worker.timelimits import ThreadLimits, limits_for

if TYPE_CHECKING:
    from tq.app import App

logger = logging.getLogger("tq.worker.pool")


@final
class ThreadPool(Pool):
    """``concurrency`` threads take jobs from one queue."""

    def __init__(self, app: App, concurrency: int, options: PoolOptions | None = None) -> None:
        super().__init__(app, concurrency, options)
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._limits = ThreadLimits()
        self._stopping = False
        self._started = 0

    def start(self) -> None:
        self._add_threads(self.concurrency)

    def _add_threads(self, count: int) -> None:
        for _ in range(count):
            self._started += 1
            thread = threading.Thread(
                target=self._work, name=f"tq-pool-{self._started}", daemon=True
            )
            self._threads.append(thread)  # before start: a resize may retire it at once
            thread.start()

    def resize(self, concurrency: int) -> None:
        """Add threads at once, or retire some once they finish the jobs queued before."""
        if concurrency < 1:
            raise ValueError(f"a pool runs at least one task at once, not {concurrency}")
        change, self.concurrency = concurrency - self.concurrency, concurrency
        if change > 0:
            self._add_threads(change)
        for _ in range(-change):
            self._jobs.put(None)

    def submit(self, job: Job) -> None:
        if self._stopping:
            job.discard()
            return
        self._jobs.put(job)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                self._threads.remove(threading.current_thread())
                return
            if self._stopping:
                job.discard()
                continue
            run_with_limits(job, self._limits, self.options)

    def stop(self, wait: bool) -> None:
        self._stopping = True
        # Jobs still queued were never started: hand them back now, not after the
        # visibility timeout.
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job.discard()
        threads = list(self._threads)
        for _ in threads:
            self._jobs.put(None)
        if wait:
            for thread in threads:
                thread.join()


def run_with_limits(job: Job, limits: ThreadLimits, options: PoolOptions) -> None:
    """Run ``job`` in this thread with its time limits armed."""
    token = limits.arm(limits_for(job, options))
    try:
        job.run()
    except (SoftTimeLimitExceeded, TimeLimitExceeded):
        # A limit that fired after the task body returned lands here, not in the task.
        logger.exception("Time limit reached while settling %s", job.request.id)
    finally:
        limits.disarm(token)
