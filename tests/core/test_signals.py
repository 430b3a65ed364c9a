"""Celery's signal names work on top of tq's hooks, for code migrating from Celery."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tq import App, signals
from tq_worker import Worker


@pytest.fixture
def connected() -> Iterator[Callable[[signals.Signal, Callable[..., Any]], None]]:
    made: list[tuple[signals.Signal, Callable[..., Any]]] = []

    def connect(signal: signals.Signal, receiver: Callable[..., Any]) -> None:
        signal.connect(receiver)
        made.append((signal, receiver))

    yield connect
    for signal, receiver in made:
        signal.disconnect(receiver)


def test_task_signals_fire_in_a_worker_with_celery_arguments(
    app: App, connected: Callable[..., None]
) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    for signal in (
        signals.task_prerun,
        signals.task_postrun,
        signals.task_success,
        signals.task_received,
    ):
        connected(signal, lambda sender, signal, **kw: seen.append((signal.name, kw)))

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    worker = Worker(app, pool="solo")
    worker.start()
    try:
        result = add.delay(2, 3)
        assert result.get(timeout=10) == 5
    finally:
        worker.stop()
    names = [name for name, _ in seen]
    assert names == ["task_received", "task_prerun", "task_success", "task_postrun"]
    prerun = seen[1][1]
    assert prerun["task_id"] == result.id and prerun["args"] == (2, 3)
    assert seen[2][1]["result"] == 5
    assert seen[3][1]["state"] == "SUCCESS" and seen[3][1]["retval"] == 5


def test_sender_filters_receivers_by_task_name(app: App, connected: Callable[..., None]) -> None:
    calls: list[str] = []

    @app.task
    def wanted() -> str:
        return "w"

    @app.task
    def other() -> str:
        return "o"

    def receiver(sender: Any, **kwargs: Any) -> None:
        calls.append(sender.name)

    signals.task_success.connect(receiver, sender=wanted.name)
    try:
        wanted.apply()
        other.apply()
    finally:
        signals.task_success.disconnect(receiver)
    assert calls == [wanted.name]


def test_failure_signal_carries_the_exception(app: App, connected: Callable[..., None]) -> None:
    failures: list[BaseException] = []
    connected(signals.task_failure, lambda sender, exception, **kw: failures.append(exception))

    @app.task
    def broken() -> None:
        raise KeyError("missing")

    broken.apply()
    assert len(failures) == 1 and isinstance(failures[0], KeyError)


def test_unused_signals_put_no_hook_on_the_hot_path(app: App) -> None:
    assert "tq_task_success" not in app.active_hooks

    def receiver(**kwargs: Any) -> None:
        pass

    signals.task_success.connect(receiver)
    assert "tq_task_success" in app.active_hooks
    signals.task_success.disconnect(receiver)
    assert "tq_task_success" not in app.active_hooks


def test_publish_signals_see_the_message(app: App, connected: Callable[..., None]) -> None:
    published: list[tuple[Any, str]] = []
    connected(
        signals.after_task_publish,
        lambda sender, routing_key, **kw: published.append((sender, routing_key)),
    )

    @app.task
    def ping() -> str:
        return "pong"

    ping.delay()
    assert published == [(ping.name, "tq")]
