"""Bootsteps: the parts a worker starts in dependency order and stops in reverse.

Plugins add steps with the ``tq_bootsteps`` hook; ``meta={"requires": (...)}`` names
steps that must start first. A step is a class taking the :class:`~tq_worker.Worker`.
The ``pool`` step always starts first: the prefork pool forks its fork server there and
must do so before any other step starts a thread (see :mod:`tq_pool_prefork.forkserver`).
"""

from __future__ import annotations

import graphlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

from tq.components import Component
from tq.errors import PluginError

if TYPE_CHECKING:
    from tq_worker.worker import Worker


#: The step every other step starts after.
FIRST = "pool"


class Bootstep:
    """Base class of worker bootsteps."""

    name: ClassVar[str] = ""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def start(self) -> None:
        """Start the part; must not block."""

    def stop(self, warm: bool) -> None:
        """Stop the part; a warm stop lets running work finish."""


class PoolStep(Bootstep):
    """Starts and stops the execution pool."""

    name = "pool"

    def start(self) -> None:
        self.worker.pool.start()

    def stop(self, warm: bool) -> None:
        self.worker.pool.stop(wait=warm)


class ConsumerStep(Bootstep):
    """Starts the consumer thread; stopping it settles every message it reserved."""

    name = "consumer"

    def start(self) -> None:
        self.worker.consumer.start()

    def stop(self, warm: bool) -> None:
        self.worker.consumer.stop(warm=warm)


def order(components: Mapping[str, Component]) -> list[Component]:
    """Components sorted so that every step comes after the steps it requires."""
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for name, component in components.items():
        requires = tuple(component.meta.get("requires", ()))
        if name != FIRST and FIRST in components:
            requires += (FIRST,)
        missing = [r for r in requires if r not in components]
        if missing:
            raise PluginError(f"bootstep {name!r} requires unknown steps: {', '.join(missing)}")
        sorter.add(name, *requires)
    try:
        names = list(sorter.static_order())
    except graphlib.CycleError as exc:
        raise PluginError(f"bootsteps require each other in a cycle: {exc.args[1]}") from exc
    return [components[name] for name in names]
