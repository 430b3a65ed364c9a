"""Time limits: which apply to a job, and how thread pools enforce them.

A job's limits come from, first to last: the message's ``timelimit`` header (which
``apply_async(time_limit=...)`` and the task's own ``time_limit``/``soft_time_limit``
fill in when sending), the task's own attributes, then the worker's defaults
(``--time-limit``/``--soft-time-limit``, else ``task_time_limit``/``task_soft_time_limit``).

Threads cannot be killed, so :class:`ThreadLimits` raises the limit's exception inside
the running thread with ``PyThreadState_SetAsyncExc``: :class:`~tq.errors.SoftTimeLimitExceeded`
at the soft limit, :class:`~tq.errors.TimeLimitExceeded` at the hard one. CPython
delivers such an exception only between bytecodes, so a task blocked in one long C call
(``time.sleep``, a socket read without timeout) sees it when that call returns, and a
task that catches the hard limit's exception keeps running.
"""

from __future__ import annotations

import ctypes
import heapq
import itertools
import threading
import time
from typing import TYPE_CHECKING, Final, final

from tq.errors import SoftTimeLimitExceeded, TimeLimitExceeded

if TYPE_CHECKING:
    from tq_worker.pools.base import Job, PoolOptions

Limits = tuple[float | None, float | None]
"""``(hard, soft)`` in seconds; ``None`` is no limit."""

_IDLE_WAIT: Final = 3600.0


def limits_for(job: Job, options: PoolOptions) -> Limits:
    """The ``(hard, soft)`` limits for ``job``: message header, task, then worker default."""
    header_hard, header_soft = job.request.timelimit
    hard = _first(header_hard, job.task.time_limit, options.time_limit)
    soft = _first(header_soft, job.task.soft_time_limit, options.soft_time_limit)
    return hard, soft


def _first(*values: float | None) -> float | None:
    for value in values:
        if value:
            return float(value)
    return None


@final
class ThreadLimits:
    """One watchdog thread raising limit exceptions in the threads running tasks."""

    def __init__(self) -> None:
        self._deadlines: list[tuple[float, int, int, type[BaseException]]] = []
        self._armed: dict[int, int] = {}  # token -> thread ident
        self._tokens = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def arm(self, limits: Limits) -> int | None:
        """Start the clock for the calling thread; returns a token for :meth:`disarm`."""
        hard, soft = limits
        if hard is None and soft is None:
            return None
        token = next(self._tokens)
        now = time.monotonic()
        with self._cond:
            self._armed[token] = threading.get_ident()
            if soft is not None:
                self._push(now + soft, token, 1, SoftTimeLimitExceeded)
            if hard is not None:
                self._push(now + hard, token, 0, TimeLimitExceeded)
            self._ensure_thread()
            self._cond.notify()
        return token

    def disarm(self, token: int | None) -> None:
        """Stop the clock; a limit exception not yet raised is cancelled."""
        if token is None:
            return
        with self._cond:
            ident = self._armed.pop(token, None)
            if ident is not None:
                _async_raise(ident, None)

    def _push(self, when: float, token: int, rank: int, exc_type: type[BaseException]) -> None:
        heapq.heappush(self._deadlines, (when, token, rank, exc_type))

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="tq-timelimits", daemon=True)
            self._thread.start()

    def _watch(self) -> None:
        with self._cond:
            while True:
                if not self._deadlines:
                    self._cond.wait(_IDLE_WAIT)
                    continue
                deadline, token, _, exc_type = self._deadlines[0]
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._deadlines)
                ident = self._armed.get(token)
                if ident is not None:
                    _async_raise(ident, exc_type)


def _async_raise(ident: int, exc_type: type[BaseException] | None) -> None:
    # Passing NULL (None) clears an exception set but not yet raised.
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(ident), ctypes.py_object(exc_type) if exc_type else None
    )
