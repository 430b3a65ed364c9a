"""Reading results: AsyncResult, GroupResult, timeouts and a missing result backend."""

from __future__ import annotations

import builtins
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

import tq.errors
from tq import App, GroupResult, Task, states
from tq.errors import ImproperlyConfigured
from tq.execution import Outcome

AppFactory = Callable[..., App]
RunNext = Callable[..., Outcome]


@pytest.fixture
def double(app: App) -> Task[Any, Any]:
    @app.task(name="results.double")
    def double(x: int) -> int:
        return x * 2

    return double


def test_an_unknown_id_is_pending(app: App) -> None:
    result = app.AsyncResult("never-sent")
    assert result.state == result.status == states.PENDING
    assert result.result is None and result.traceback is None and result.date_done is None
    assert not result.ready() and not result.successful() and not result.failed()


def test_get_with_timeout_raises_tq_timeout_error_which_is_a_builtin_timeout_error(
    app: App, double: Task[Any, Any]
) -> None:
    result = double.delay(1)
    started = time.monotonic()
    with pytest.raises(tq.errors.TimeoutError) as caught:
        result.get(timeout=0.1)
    assert time.monotonic() - started < 2
    assert isinstance(caught.value, builtins.TimeoutError)
    assert result.id in str(caught.value)


def test_get_waits_for_a_result_stored_later(
    app: App, double: Task[Any, Any], run_next: RunNext
) -> None:
    result = double.delay(21)
    timer = threading.Timer(0.1, run_next, args=(app,))
    timer.start()
    try:
        assert result.get(timeout=5) == 42
    finally:
        timer.join()


def test_state_status_and_result_describe_a_success(
    app: App, double: Task[Any, Any], run_next: RunNext
) -> None:
    result = double.delay(4)
    run_next(app)
    assert result.state == result.status == states.SUCCESS
    assert result.result == result.info == 8
    assert result.ready() and result.successful()
    assert result.traceback is None
    assert result.date_done is not None


def test_forget_removes_the_stored_result(
    app: App, double: Task[Any, Any], run_next: RunNext
) -> None:
    result = double.delay(4)
    run_next(app)
    assert result.get(timeout=1) == 8
    result.forget()
    assert result.state == states.PENDING
    assert app.AsyncResult(result.id).state == states.PENDING


def test_results_compare_by_id(app: App) -> None:
    assert app.AsyncResult("a") == app.AsyncResult("a")
    assert app.AsyncResult("a") == "a"
    assert len({app.AsyncResult("a"), app.AsyncResult("a")}) == 1


def test_group_result_saves_restores_and_collects_in_order(
    app: App, double: Task[Any, Any], run_next: RunNext
) -> None:
    results = [double.delay(n) for n in (1, 2, 3)]
    group = app.GroupResult(str(uuid.uuid4()), results)
    group.save()
    assert group.completed_count() == 0 and not group.ready()
    run_next(app)
    assert group.completed_count() == 1
    run_next(app)
    run_next(app)

    restored = app.restore_group(group.id or "")
    assert isinstance(restored, GroupResult)
    assert [r.id for r in restored] == [r.id for r in results]
    assert restored.get(timeout=1) == [2, 4, 6]
    assert restored.completed_count() == 3
    assert restored.ready() and restored.successful() and not restored.failed()


def test_restoring_an_unknown_group_gives_none(app: App) -> None:
    assert app.restore_group("no-such-group") is None


def test_group_get_reraises_a_member_failure_unless_propagate_is_false(
    app: App, double: Task[Any, Any], run_next: RunNext
) -> None:
    @app.task(name="results.fail")
    def fail() -> None:
        raise LookupError("missing")

    group = app.GroupResult("g-fail", [double.delay(1), fail.delay()])
    run_next(app)
    run_next(app)
    assert group.failed()
    with pytest.raises(LookupError):
        group.get(timeout=1)
    values = group.get(timeout=1, propagate=False)
    assert values[0] == 2 and isinstance(values[1], LookupError)


def test_group_get_times_out(app: App, double: Task[Any, Any]) -> None:
    group = app.GroupResult("g-slow", [double.delay(1)])
    with pytest.raises(tq.errors.TimeoutError):
        group.get(timeout=0.05)


def test_forgetting_a_group_removes_its_members_and_itself(
    app: App, double: Task[Any, Any], run_next: RunNext
) -> None:
    group = app.GroupResult("g-forget", [double.delay(1)])
    group.save()
    run_next(app)
    group.forget()
    assert app.restore_group("g-forget") is None
    assert group.results[0].state == states.PENDING


def test_saving_a_group_without_an_id_is_an_error(app: App) -> None:
    with pytest.raises(ValueError, match="needs an id"):
        app.GroupResult(None, []).save()


def test_reading_results_without_a_result_backend_names_the_setting(
    make_app: AppFactory,
) -> None:
    app = make_app(broker="redis://localhost:6379/0", backend=None)
    assert app.result_backend_url is None
    result = app.AsyncResult("some-id")
    with pytest.raises(ImproperlyConfigured, match="result_backend"):
        result.get(timeout=0.1)
    with pytest.raises(ImproperlyConfigured, match="result_backend"):
        _ = result.state


def test_an_embedded_broker_keeps_results_beside_its_messages(make_app: AppFactory) -> None:
    app = make_app(broker="memory://results-beside", backend=None)
    assert app.result_backend_url == "memory://results-beside"
