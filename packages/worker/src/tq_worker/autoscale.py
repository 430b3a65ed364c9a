"""Autoscaling: grow the pool under load, shrink it when idle (``--autoscale=MAX,MIN``).

Two parts. The *rules* decide a pool size from the demand (messages the worker holds:
running, waiting for a slot, or held by a rate limit); they are a component of kind
``autoscaler``, chosen by the ``worker_autoscaler`` setting, so a plugin can replace
them. The :class:`AutoscaleStep` bootstep asks the rules once a second and calls
:meth:`Pool.resize <tq_worker.pools.base.Pool.resize>`.

The default rules are Celery's: grow at once to the demand (up to MAX); shrink to the
demand (not below MIN) once the worker has had spare processes for
``worker_autoscale_keepalive`` seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Final, Protocol, final

from tq_worker.bootsteps import Bootstep

if TYPE_CHECKING:
    from tq_worker.worker import Worker

logger = logging.getLogger("tq.worker.autoscale")

_INTERVAL: Final = 1.0


class AutoscaleRules(Protocol):
    """What an ``autoscaler`` component's factory returns, called ``(max, min, keepalive)``."""

    @property
    def max_concurrency(self) -> int:
        """The most tasks the pool may run at once."""

    @property
    def min_concurrency(self) -> int:
        """The fewest tasks the pool runs at once, even when idle."""

    def update(self, max_concurrency: int, min_concurrency: int) -> None:
        """New bounds (the ``autoscale`` remote-control command)."""

    def target(self, size: int, demand: int, now: float) -> int:
        """The pool size wanted now, given its ``size`` and the ``demand``.

        ``now`` is :func:`time.monotonic`; the result must lie within the bounds.
        """


@final
class DefaultRules:
    """Celery's rules: grow at once, shrink after ``keepalive`` seconds of spare room."""

    __slots__ = ("_spare_since", "keepalive", "max_concurrency", "min_concurrency")

    def __init__(self, max_concurrency: int, min_concurrency: int, keepalive: float) -> None:
        self.max_concurrency = max_concurrency
        self.min_concurrency = min_concurrency
        self.keepalive = keepalive
        self._spare_since: float | None = None
        self.update(max_concurrency, min_concurrency)

    def update(self, max_concurrency: int, min_concurrency: int) -> None:
        if not 1 <= min_concurrency <= max_concurrency:
            raise ValueError(
                f"autoscale needs 1 <= MIN <= MAX, not max={max_concurrency} min={min_concurrency}"
            )
        self.max_concurrency, self.min_concurrency = max_concurrency, min_concurrency

    def target(self, size: int, demand: int, now: float) -> int:
        wanted = max(self.min_concurrency, min(self.max_concurrency, demand))
        if wanted >= size:
            self._spare_since = None
            return wanted
        if self._spare_since is None:
            self._spare_since = now
        if now - self._spare_since < self.keepalive:
            return size
        self._spare_since = None
        return wanted


class AutoscaleStep(Bootstep):
    """Resizes the pool from the worker's rules; does nothing without ``--autoscale``."""

    name = "autoscaler"

    def __init__(self, worker: Worker) -> None:
        super().__init__(worker)
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.worker.autoscaler is None:
            return
        self._thread = threading.Thread(target=self._run, name="tq-autoscaler", daemon=True)
        self._thread.start()

    def stop(self, warm: bool) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._done.wait(_INTERVAL):
            try:
                self.scale()
            except Exception:
                logger.exception("autoscale: resizing the pool failed")

    def scale(self) -> None:
        """Resize the pool once, if the rules want another size."""
        rules, pool = self.worker.autoscaler, self.worker.pool
        if rules is None:
            return
        size = pool.concurrency
        demand = len(self.worker.consumer.reserved)
        wanted = rules.target(size, demand, time.monotonic())
        if wanted != size:
            how = "growing" if wanted > size else "shrinking"
            logger.info(
                "autoscale: %s the pool from %d to %d (demand %d)", how, size, wanted, demand
            )
            pool.resize(wanted)
