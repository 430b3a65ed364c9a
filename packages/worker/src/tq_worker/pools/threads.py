"""The ``threads`` pool: tasks run in a fixed set of threads."""

from __future__ import annotations

import logging
import queue
import threading
from typing import TYPE_CHECKING, final

from tq_worker.pools.base import Job, Pool

if TYPE_CHECKING:
    from tq.app import App

logger = logging.getLogger("tq.worker.pool")


@final
class ThreadPool(Pool):
    """``concurrency`` threads take jobs from one queue."""

    def __init__(self, app: App, concurrency: int) -> None:
        super().__init__(app, concurrency)
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._stopping = False

    def start(self) -> None:
        for index in range(self.concurrency):
            thread = threading.Thread(target=self._work, name=f"tq-pool-{index + 1}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def submit(self, job: Job) -> None:
        if self._stopping:
            job.discard()
            return
        self._jobs.put(job)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if self._stopping:
                job.discard()
                continue
            job.run()

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
        for _ in self._threads:
            self._jobs.put(None)
        if wait:
            for thread in self._threads:
                thread.join()
        self._threads.clear()
