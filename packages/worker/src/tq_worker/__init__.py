"""The tq worker: consumes task messages, runs them in a pool, settles them with the broker."""

from tq_worker.worker import Worker

__all__ = ["Worker"]
