"""tq-pool-prefork's plugin: declares the ``prefork`` pool. billiard is imported only
when a worker uses the pool."""

from __future__ import annotations

from tq.components import Component
from tq.hookspecs import hookimpl


@hookimpl
def tq_pools() -> list[Component]:
    return [
        Component(
            "pool",
            "prefork",
            "tq_pool_prefork.pool:PreforkPool",
            doc="runs tasks in child processes, one per core by default",
        )
    ]
