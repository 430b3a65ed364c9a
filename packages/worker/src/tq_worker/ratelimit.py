"""Rate limits per task type (``rate_limit='10/s'``), enforced by each worker.

A job of a rate-limited task type waits here, still reserved (its lease renewed), until
its task type's bucket allows it, then goes to the pool. Waiting jobs do not count
against the prefetch limit (up to :data:`MAX_HELD`), so the consumer keeps fetching and
other task types run at full speed. Messages are not requeued with ``not_before``
instead: every requeue counts as a delivery and would push a busy task type towards
``task_max_deliveries`` and the dead-letter queue.

The bucket holds one token (Celery's default): ``'5/s'`` runs a job every 0.2 s.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, final

from tq.errors import ImproperlyConfigured

if TYPE_CHECKING:
    from tq_worker.pools.base import Job
    from tq_worker.worker import Worker

from tq_worker.bootsteps import Bootstep

MAX_HELD: Final = 1000
"""Waiting jobs beyond this count against the prefetch limit again (bounds memory)."""

_UNITS: Final = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_rate(rate: str | float | int) -> float:
    """Tasks per second for ``'10/s'``, ``'100/m'``, ``'1000/h'`` or a number (per second)."""
    if isinstance(rate, int | float):
        return float(rate)
    count, _, unit = rate.partition("/")
    try:
        return float(count) / _UNITS[unit.strip() or "s"]
    except (ValueError, KeyError):
        raise ImproperlyConfigured(
            f"invalid rate limit {rate!r}: expected 'N/s', 'N/m' or 'N/h'"
        ) from None


@final
class RateLimits:
    """Per task type schedules; one thread releases held jobs when they are due."""

    def __init__(self, worker: Worker, submit: Callable[[Job], None]) -> None:
        self._default = worker.app.conf["task_default_rate_limit"]
        self._submit = submit
        self._next: dict[str, float] = {}  # task name -> when its next job may start
        self._held: list[tuple[float, int, Job]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False

    @property
    def held(self) -> int:
        """Jobs waiting for their rate limit, as counted against prefetch."""
        return min(len(self._held), MAX_HELD)

    def submit(self, job: Job) -> None:
        """Pass ``job`` to the pool now, or hold it until its task type may run again."""
        rate = job.task.rate_limit or self._default
        if not rate:
            self._submit(job)
            return
        with self._cond:
            if self._stopping:
                job.discard()
                return
            due = self._reserve_slot(job.task.name, parse_rate(rate))
            if due <= time.monotonic():
                self._submit(job)
                return
            heapq.heappush(self._held, (due, next(self._seq), job))
            self._ensure_thread()
            self._cond.notify()

    def _reserve_slot(self, name: str, per_second: float) -> float:
        now = time.monotonic()
        due = max(now, self._next.get(name, now))
        self._next[name] = due + 1.0 / per_second
        return due

    def stop(self) -> None:
        """Give back every held job (never started) to the broker."""
        with self._cond:
            self._stopping = True
            held, self._held = self._held, []
            self._cond.notify()
        for _, _, job in held:
            job.discard()

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._release, name="tq-ratelimits", daemon=True)
            self._thread.start()

    def _release(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and (
                    not self._held or self._held[0][0] > time.monotonic()
                ):
                    timeout = self._held[0][0] - time.monotonic() if self._held else None
                    self._cond.wait(timeout)
                if self._stopping:
                    return
                _, _, job = heapq.heappop(self._held)
            self._submit(job)


class RateLimitStep(Bootstep):
    """Gives back jobs still waiting for their rate limit when the worker stops."""

    name = "ratelimits"

    def stop(self, warm: bool) -> None:
        self.worker.rate_limits.stop()
