"""Declares the Redis transport; redis-py is imported only when the transport is used."""

from __future__ import annotations

from tq.components import Component
from tq.hookspecs import hookimpl


@hookimpl
def tq_transports() -> list[Component]:
    """The Redis broker, chosen by ``redis://``, ``rediss://`` and ``sentinel://`` URLs."""
    return [
        Component(
            kind="transport",
            name="redis",
            factory="tq_transport_redis.transport:RedisTransport",
            schemes=("redis", "rediss", "sentinel"),
            doc="Redis queues with atomic batch fetch, leases, delayed delivery and fanout; "
            "kombu's key layout, so Celery can share them (celery_compat).",
        )
    ]
