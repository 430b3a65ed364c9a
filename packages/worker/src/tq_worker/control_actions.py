"""Built-in control commands: requests that change a worker (``tq control NAME``).

Commands that need what a pool may lack (resizing, killing a running task, rate and
time limits) use it when the worker has it and otherwise answer ``{"error": ...}``
naming the pool, never failing the worker.
"""

from __future__ import annotations

import signal as signals
from typing import TYPE_CHECKING, Any

from tq.transport import Queue
from tq_worker.control import nok, ok

if TYPE_CHECKING:
    from tq_worker.control import ControlState


def revoke(
    state: ControlState,
    task_id: str | list[str],
    terminate: bool = False,
    signal: str | int | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Never run these ids; with ``terminate``, also stop them if running and the pool can.

    A task already running on the ``threads`` or ``solo`` pool cannot be stopped: it
    finishes and keeps its result. Reserved and future deliveries are discarded as
    ``REVOKED``.
    """
    ids = [task_id] if isinstance(task_id, str) else [str(i) for i in task_id]
    state.consumer.revoked.add(ids)
    if not terminate:
        return ok(f"tasks {', '.join(ids)} flagged as revoked")
    running = {r.id or "" for r in list(state.consumer.active.values())} & set(ids)
    terminate_job = getattr(state.worker.pool, "terminate_job", None)
    if terminate_job is None:
        if not running:
            return ok(f"tasks {', '.join(ids)} flagged as revoked")
        pool = type(state.worker.pool).__name__
        return ok(
            f"tasks {', '.join(ids)} flagged as revoked; running tasks "
            f"{', '.join(sorted(running))} cannot be terminated by pool {pool} and will finish"
        )
    signum = _signal_number(signal)
    for task in sorted(running):
        terminate_job(task, signum)  # the pool's hook (prefork can kill its child)
    return ok(f"tasks {', '.join(ids)} flagged as revoked; terminated {len(running)} running")


def _signal_number(signal: str | int | None) -> int:
    if signal is None:
        return int(signals.SIGTERM)
    if isinstance(signal, int):
        return signal
    name = signal.upper()
    return int(getattr(signals, name if name.startswith("SIG") else f"SIG{name}"))


def add_consumer(state: ControlState, queue: str, **kwargs: Any) -> dict[str, Any]:
    """Consume from ``queue`` too, from the next fetch on."""
    consumer = state.consumer
    if queue in consumer.queues:
        return ok(f"already consuming from {queue!r}")
    state.app.transport.declare(Queue(queue))
    # The consumer thread reads the attribute once per fetch: a new list swaps atomically.
    consumer.queues = [*consumer.queues, queue]
    state.worker.queues = list(consumer.queues)
    return ok(f"add consumer {queue}")


def cancel_consumer(state: ControlState, queue: str, **kwargs: Any) -> dict[str, Any]:
    """Stop consuming from ``queue``; a worker keeps at least one queue."""
    consumer = state.consumer
    if queue not in consumer.queues:
        return nok(f"not consuming from {queue!r}")
    if len(consumer.queues) == 1:
        return nok(f"{queue!r} is the only queue; a worker keeps at least one")
    consumer.queues = [name for name in consumer.queues if name != queue]
    state.worker.queues = list(consumer.queues)
    return ok(f"no longer consuming from {queue}")


def _resize(state: ControlState, concurrency: int) -> dict[str, Any]:
    pool = state.worker.pool
    try:
        pool.resize(concurrency)
    except (NotImplementedError, AttributeError):
        return nok(f"resizing is not supported by pool {type(pool).__name__}")
    return ok(f"pool will run {concurrency} tasks at once")


def pool_grow(state: ControlState, n: int = 1, **kwargs: Any) -> dict[str, Any]:
    return _resize(state, state.worker.pool.concurrency + int(n))


def pool_shrink(state: ControlState, n: int = 1, **kwargs: Any) -> dict[str, Any]:
    return _resize(state, max(1, state.worker.pool.concurrency - int(n)))


def autoscale(state: ControlState, max: int, min: int, **kwargs: Any) -> dict[str, Any]:
    """Set the autoscaler's bounds, when the worker has one."""
    autoscaler = getattr(state.worker, "autoscaler", None)
    update = getattr(autoscaler, "update", None)
    if update is None:
        return nok(f"autoscale is not supported by pool {type(state.worker.pool).__name__}")
    update(int(max), int(min))
    return ok(f"autoscale now max={max} min={min}")


def _worker_method(state: ControlState, name: str, *args: Any) -> dict[str, Any]:
    method = getattr(state.worker, name, None) or getattr(state.worker.pool, name, None)
    if method is None:
        return nok(f"{name} is not supported by pool {type(state.worker.pool).__name__}")
    method(*args)
    return ok(f"{name} applied")


def rate_limit(
    state: ControlState, task_name: str, rate_limit: str | int | None, **kwargs: Any
) -> dict[str, Any]:
    """Change a task's rate limit, when the worker enforces rate limits."""
    if task_name not in state.app.tasks:
        return nok(f"unknown task {task_name!r}")
    return _worker_method(state, "set_rate_limit", task_name, rate_limit)


def time_limit(
    state: ControlState,
    task_name: str,
    soft: float | None = None,
    hard: float | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Change a task's time limits, when the worker enforces them."""
    if task_name not in state.app.tasks:
        return nok(f"unknown task {task_name!r}")
    return _worker_method(state, "set_time_limit", task_name, soft, hard)


def shutdown(state: ControlState, **kwargs: Any) -> dict[str, Any]:
    """Warm shutdown: running tasks finish."""
    state.worker.request_shutdown(warm=True)
    return ok("shutdown signal sent")


def _events_step(state: ControlState) -> Any:
    return state.step("events")


def enable_events(state: ControlState, **kwargs: Any) -> dict[str, Any]:
    step = _events_step(state)
    if step is None:
        return nok("events are not installed")
    step.enable_task_events()
    return ok("task events enabled")


def disable_events(state: ControlState, **kwargs: Any) -> dict[str, Any]:
    step = _events_step(state)
    if step is None:
        return nok("events are not installed")
    step.disable_task_events()
    return ok("task events disabled")


def heartbeat(state: ControlState, **kwargs: Any) -> dict[str, Any]:
    step = _events_step(state)
    if step is not None:
        step.send_heartbeat()
    return ok("heartbeat sent")
