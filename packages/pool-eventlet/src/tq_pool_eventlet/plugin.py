"""tq-pool-eventlet's plugin: declares the ``eventlet`` pool. eventlet itself is imported only
when a worker uses the pool (its patch function runs before the app is imported)."""

from __future__ import annotations

from tq.components import Component
from tq.hookspecs import hookimpl


@hookimpl
def tq_pools() -> list[Component]:
    return [
        Component(
            "pool",
            "eventlet",
            "tq_pool_eventlet.pool:EventletPool",
            doc="runs tasks in eventlet green threads (I/O-bound work)",
            meta={"patch": "tq_pool_eventlet.patch:patch", "default_concurrency": 1000},
        )
    ]
