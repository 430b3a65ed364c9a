"""The ``solo`` pool: each task runs in the consumer's thread, one at a time."""

from __future__ import annotations

from typing import final

from tq_worker.pools.base import Job, Pool


@final
class SoloPool(Pool):
    """Runs each job as soon as it is submitted, in the submitting thread."""

    def submit(self, job: Job) -> None:
        job.run()

    def stop(self, wait: bool) -> None:
        pass
