"""Declares the Redis result backend; redis-py is imported only when it is used."""

from __future__ import annotations

from tq.components import Component
from tq.hookspecs import hookimpl


@hookimpl
def tq_result_backends() -> list[Component]:
    """The Redis result backend, chosen by ``redis://``, ``rediss://`` and ``sentinel://``."""
    return [
        Component(
            kind="backend",
            name="redis",
            factory="tq_backend_redis.backend:RedisBackend",
            schemes=("redis", "rediss", "sentinel"),
            doc="Results in Redis, published when stored so waiting clients never poll.",
        )
    ]
