"""Execution pools. ``solo`` and ``threads`` live here; others are plugins."""

from tq_worker.pools.base import Job, Pool

__all__ = ["Job", "Pool"]
