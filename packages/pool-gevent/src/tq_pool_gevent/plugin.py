"""tq-pool-gevent's plugin: declares the ``gevent`` pool. gevent itself is imported only
when a worker uses the pool (its patch function runs before the app is imported)."""

from __future__ import annotations

from tq.components import Component
from tq.hookspecs import hookimpl


@hookimpl
def tq_pools() -> list[Component]:
    return [
        Component(
            "pool",
            "gevent",
            "tq_pool_gevent.pool:GeventPool",
            doc="runs tasks in gevent green threads (I/O-bound work)",
            meta={"patch": "tq_pool_gevent.patch:patch", "default_concurrency": 1000},
        )
    ]
