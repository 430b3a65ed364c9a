"""Running tasks as a worker does: stored states, retries, control flow, callbacks, hooks."""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Generator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from tq import App, Ignore, Reject, Task, hookimpl, states
from tq.errors import MaxRetriesExceededError, RemoteError, Retry
from tq.execution import Outcome, execute
from tq.message import Message
from tq.protocol import as_datetime, parse_message
from tq.request import Request

AppFactory = Callable[..., App]
Fetch = Callable[..., Message | None]
Receive = Callable[..., Request]
RunNext = Callable[..., Outcome]


class PaymentDeclined(Exception):
    """An exception class importable by the client, as a shared tasks module would be."""


@pytest.fixture
def add(app: App) -> Task[Any, Any]:
    @app.task(name="exec.add")
    def add(x: int, y: int) -> int:
        return x + y

    return add


# -- stored states ---------------------------------------------------------------------


def test_success_is_stored_with_celerys_result_meta(
    app: App, add: Task[Any, Any], run_next: RunNext
) -> None:
    result = add.delay(2, 3)
    outcome = run_next(app)
    assert (outcome.state, outcome.value) == (states.SUCCESS, 5)
    meta = app.results.get_meta(result.id)
    assert {"status", "result", "traceback", "children", "date_done", "task_id"} <= set(meta)
    assert meta["status"] == states.SUCCESS and meta["result"] == 5
    assert meta["task_id"] == result.id and meta["traceback"] is None
    assert result.get(timeout=1) == 5
    assert result.successful() and result.ready() and not result.failed()
    date_done = result.date_done
    assert date_done is not None and date_done <= datetime.now(timezone.utc)


def test_results_are_stored_under_tq_keys_or_celery_keys_with_compat(
    make_app: AppFactory, run_next: RunNext
) -> None:
    for compat, prefix in ((False, "tq-task-meta-"), (True, "celery-task-meta-")):
        app = make_app(celery_compat=compat)
        app.task(name="exec.one")(lambda: 1)
        result = app.send_task("exec.one")
        run_next(app, app.default_queue.name)
        assert app.backend is not None
        assert app.backend.get(prefix + result.id) is not None


def test_result_extended_stores_name_args_and_kwargs(
    make_app: AppFactory, run_next: RunNext
) -> None:
    app = make_app(result_extended=True)
    app.task(name="exec.echo")(lambda x, y=0: x)
    result = app.send_task("exec.echo", [1], {"y": 2})
    run_next(app)
    meta = app.results.get_meta(result.id)
    assert (meta["name"], meta["args"], meta["kwargs"]) == ("exec.echo", [1], {"y": 2})
    assert meta["queue"] == "tq"


def test_failure_is_stored_and_get_reraises_the_same_exception(app: App, run_next: RunNext) -> None:
    @app.task(name="exec.pay")
    def pay(amount: int) -> None:
        raise PaymentDeclined(f"declined: {amount}")

    result = pay.delay(30)
    outcome = run_next(app)
    assert outcome.state == states.FAILURE
    meta = app.results.get_meta(result.id)
    assert meta["result"] == {
        "exc_type": "PaymentDeclined",
        "exc_message": ["declined: 30"],
        "exc_module": __name__,
    }
    assert "Traceback" in meta["traceback"]
    with pytest.raises(PaymentDeclined, match="declined: 30"):
        result.get(timeout=1)
    assert result.failed() and result.state == states.FAILURE
    assert isinstance(result.result, PaymentDeclined)
    assert "PaymentDeclined" in (result.traceback or "")


def test_get_with_propagate_false_returns_the_exception(app: App, run_next: RunNext) -> None:
    @app.task(name="exec.boom")
    def boom() -> None:
        raise ValueError("boom")

    result = boom.delay()
    run_next(app)
    value = result.get(timeout=1, propagate=False)
    assert isinstance(value, ValueError) and value.args == ("boom",)


def test_an_exception_class_that_cannot_be_imported_comes_back_as_remote_error(
    app: App, run_next: RunNext
) -> None:
    class LocalOnly(Exception):
        pass

    @app.task(name="exec.local")
    def local() -> None:
        raise LocalOnly("only here")

    result = local.delay()
    run_next(app)
    with pytest.raises(RemoteError) as caught:
        result.get(timeout=1)
    assert "LocalOnly" in caught.value.exc_type
    assert caught.value.message == "only here"


def test_a_stored_failure_naming_a_non_exception_callable_is_never_called(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(os, "system", lambda *args: calls.append(args))
    assert app.backend is not None
    app.backend.set(
        "tq-task-meta-evil",
        b'{"status": "FAILURE", "result": {"exc_type": "system", "exc_module": "os",'
        b' "exc_message": ["touch /tmp/pwned"]}, "traceback": null, "children": [],'
        b' "date_done": null, "task_id": "evil"}',
    )
    result = app.AsyncResult("evil")
    with pytest.raises(RemoteError, match=r"os\.system"):
        result.get(timeout=1)
    assert isinstance(result.result, RemoteError)
    assert calls == []


def test_a_stored_failure_never_imports_the_module_it_names(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = f"tq_side_effect_{uuid.uuid4().hex[:8]}"
    marker = tmp_path / "imported"
    (tmp_path / f"{module}.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nclass Boom(Exception):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert app.backend is not None
    app.backend.set(
        "tq-task-meta-sneaky",
        json.dumps(
            {
                "status": "FAILURE",
                "traceback": None,
                "children": [],
                "date_done": None,
                "task_id": "sneaky",
                "result": {"exc_type": "Boom", "exc_module": module, "exc_message": ["x"]},
            }
        ).encode(),
    )
    with pytest.raises(RemoteError):
        app.AsyncResult("sneaky").get(timeout=1)
    assert not marker.exists()


def test_a_stored_success_is_not_overwritten_by_a_later_failure(
    app: App, fetch_message: Fetch, receive: Receive
) -> None:
    attempts: list[int] = []

    @app.task(name="exec.once")
    def once() -> str:
        attempts.append(1)
        if len(attempts) > 1:
            raise RuntimeError("duplicate delivery failed")
        return "done"

    result = once.delay()
    request = receive(app)
    assert execute(once, request).state == states.SUCCESS
    assert execute(once, request).state == states.FAILURE  # a redelivered duplicate
    assert result.state == states.SUCCESS and result.get(timeout=1) == "done"


# -- retries ---------------------------------------------------------------------------


def test_retry_publishes_the_same_task_id_with_retries_plus_one(
    app: App, receive: Receive, fetch_message: Fetch
) -> None:
    @app.task(bind=True, name="exec.flaky")
    def flaky(self: Task[Any, Any], x: int) -> int:
        raise self.retry(countdown=0.2, exc=ConnectionError("down"))

    result = flaky.delay(7)
    first = receive(app)
    outcome = execute(flaky, first)
    assert outcome.state == states.RETRY and isinstance(outcome.value, Retry)
    assert result.state == states.RETRY
    assert isinstance(result.info, ConnectionError)
    assert fetch_message(app) is None  # the retry waits for its countdown
    again = receive(app, timeout=3)
    assert again.id == result.id
    assert again.retries == 1
    assert again.args == (7,)
    assert again.eta is not None
    assert again.root_id == first.root_id


def test_retry_can_change_arguments(app: App, receive: Receive) -> None:
    @app.task(bind=True, name="exec.backoff")
    def backoff(self: Task[Any, Any], delay: int) -> None:
        raise self.retry(args=(delay * 2,), countdown=0)

    backoff.delay(1)
    execute(backoff, receive(app))
    assert receive(app).args == (2,)


def test_retry_after_max_retries_reraises_the_given_exception(app: App, receive: Receive) -> None:
    @app.task(bind=True, name="exec.limited", max_retries=1)
    def limited(self: Task[Any, Any]) -> None:
        try:
            raise ConnectionError("still down")
        except ConnectionError as exc:
            raise self.retry(exc=exc, countdown=0) from exc

    result = limited.delay()
    assert execute(limited, receive(app)).state == states.RETRY
    outcome = execute(limited, receive(app))
    assert outcome.state == states.FAILURE
    assert isinstance(outcome.value, ConnectionError)
    with pytest.raises(ConnectionError, match="still down"):
        result.get(timeout=1)
    assert app.transport.size("tq") == 0


def test_retry_after_max_retries_without_exception_raises_max_retries_exceeded(
    app: App, receive: Receive
) -> None:
    @app.task(bind=True, name="exec.nomore", max_retries=0)
    def nomore(self: Task[Any, Any]) -> None:
        raise self.retry(countdown=0)

    result = nomore.delay()
    outcome = execute(nomore, receive(app))
    assert isinstance(outcome.value, MaxRetriesExceededError)
    with pytest.raises(MaxRetriesExceededError):
        result.get(timeout=1)


def test_retry_when_called_directly_raises_instead_of_sending(app: App) -> None:
    @app.task(bind=True, name="exec.direct")
    def direct(self: Task[Any, Any]) -> None:
        raise self.retry(exc=KeyError("k"))

    with pytest.raises(KeyError):
        direct()
    assert app.transport.size("tq") == 0


def test_autoretry_for_backs_off_exponentially_up_to_the_maximum(
    app: App, receive: Receive
) -> None:
    published: list[tuple[Message, float]] = []

    class Capture:
        @hookimpl
        def tq_before_publish(self, app: App, message: Message, queue: Any) -> None:
            published.append((message, time.time()))

    app.register_plugin(Capture())

    @app.task(
        name="exec.auto",
        autoretry_for=(ConnectionError,),
        retry_backoff=2,
        retry_backoff_max=5,
        retry_jitter=False,
        retry_kwargs={"max_retries": 3},
    )
    def auto() -> None:
        raise ConnectionError("refused")

    result = auto.delay()
    request = receive(app)
    countdowns = []
    for _ in range(3):
        assert execute(auto, request).state == states.RETRY
        # Read each retry's ETA instead of waiting for it, then run it as the worker would.
        message, sent = published[-1]
        eta = as_datetime(message.headers["eta"])
        assert eta is not None
        countdowns.append(round(eta.timestamp() - sent))
        request = parse_message(message, app.codecs, frozenset({"json"}))
    assert countdowns == [2, 4, 5]
    assert request.retries == 3
    assert execute(auto, request).state == states.FAILURE
    with pytest.raises(ConnectionError, match="refused"):
        result.get(timeout=1)


def test_autoretry_gives_up_after_retry_kwargs_max_retries(app: App, receive: Receive) -> None:
    @app.task(
        name="exec.giveup",
        autoretry_for=(ConnectionError,),
        retry_kwargs={"max_retries": 1, "countdown": 0},
    )
    def giveup() -> None:
        raise ConnectionError("refused")

    result = giveup.delay()
    assert execute(giveup, receive(app)).state == states.RETRY
    assert execute(giveup, receive(app)).state == states.FAILURE
    with pytest.raises(ConnectionError):
        result.get(timeout=1)


def test_dont_autoretry_for_excludes_subclasses(app: App, receive: Receive) -> None:
    @app.task(name="exec.picky", autoretry_for=(OSError,), dont_autoretry_for=(FileNotFoundError,))
    def picky() -> None:
        raise FileNotFoundError("gone")

    picky.delay()
    assert execute(picky, receive(app)).state == states.FAILURE


def test_retry_goes_back_to_the_queue_the_task_came_from(app: App, receive: Receive) -> None:
    @app.task(bind=True, name="exec.elsewhere")
    def elsewhere(self: Task[Any, Any]) -> None:
        raise self.retry(countdown=0)

    elsewhere.apply_async(queue="special")
    execute(elsewhere, receive(app, "special"))
    assert app.transport.size("special") == 1


def test_retry_keeps_link_callbacks(app: App, add: Task[Any, Any], receive: Receive) -> None:
    @app.task(bind=True, name="exec.linked_retry")
    def linked(self: Task[Any, Any]) -> None:
        raise self.retry(countdown=0)

    linked.apply_async(link=add.s(1), link_error=add.si(0, 0), group_id="g", group_index=2)
    execute(linked, receive(app))
    again = receive(app)
    assert again.callbacks == [add.s(1).to_dict()]
    assert again.errbacks == [add.si(0, 0).to_dict()]
    assert (again.group, again.group_index) == ("g", 2)


# -- options and control flow --------------------------------------------------------------


def test_ignore_result_stores_nothing(app: App, run_next: RunNext) -> None:
    @app.task(name="exec.quiet", ignore_result=True)
    def quiet() -> int:
        return 1

    result = quiet.delay()
    assert run_next(app).state == states.SUCCESS
    assert result.state == states.PENDING
    other = app.task(name="exec.loud")(lambda: 2).apply_async(ignore_result=True)
    run_next(app)
    assert other.state == states.PENDING


def test_store_errors_even_if_ignored_stores_failures(app: App, run_next: RunNext) -> None:
    @app.task(name="exec.quiet_fail", ignore_result=True, store_errors_even_if_ignored=True)
    def quiet_fail() -> None:
        raise ValueError("x")

    result = quiet_fail.delay()
    run_next(app)
    assert result.state == states.FAILURE


def test_track_started_stores_started_while_running(app: App, receive: Receive) -> None:
    seen: list[str] = []

    @app.task(bind=True, name="exec.tracked", track_started=True)
    def tracked(self: Task[Any, Any]) -> None:
        seen.append(self.app.AsyncResult(self.request.id or "").state)

    result = tracked.delay()
    execute(tracked, receive(app))
    assert seen == [states.STARTED]
    assert result.state == states.SUCCESS


def test_states_are_not_tracked_as_started_by_default(app: App, receive: Receive) -> None:
    seen: list[str] = []

    @app.task(bind=True, name="exec.untracked")
    def untracked(self: Task[Any, Any]) -> None:
        seen.append(self.app.AsyncResult(self.request.id or "").state)

    untracked.delay()
    execute(untracked, receive(app))
    assert seen == [states.PENDING]


def test_update_state_stores_a_custom_state_readable_from_the_result(
    app: App, receive: Receive
) -> None:
    progress: list[tuple[str, Any]] = []

    @app.task(bind=True, name="exec.progress")
    def report(self: Task[Any, Any]) -> str:
        self.update_state(state="PROGRESS", meta={"done": 50})
        handle = self.app.AsyncResult(self.request.id or "")
        progress.append((handle.state, handle.info))
        return "finished"

    result = report.delay()
    execute(report, receive(app))
    assert progress == [("PROGRESS", {"done": 50})]
    assert result.get(timeout=1) == "finished"


def test_ignore_ends_the_task_without_storing_a_state(app: App, run_next: RunNext) -> None:
    @app.task(name="exec.ignored")
    def ignored() -> None:
        raise Ignore()

    result = ignored.delay()
    assert run_next(app).state == states.IGNORED
    assert result.state == states.PENDING


@pytest.mark.parametrize("requeue", [True, False])
def test_reject_gives_a_rejected_outcome_with_requeue(
    app: App, run_next: RunNext, requeue: bool
) -> None:
    @app.task(name="exec.rejected")
    def rejected() -> None:
        raise Reject("no thanks", requeue=requeue)

    result = rejected.delay()
    outcome = run_next(app)
    assert (outcome.state, outcome.requeue) == (states.REJECTED, requeue)
    assert result.state == states.PENDING


def test_expected_exceptions_in_throws_are_logged_without_alarm(
    app: App, run_next: RunNext, caplog: pytest.LogCaptureFixture
) -> None:
    @app.task(name="exec.expected", throws=(KeyError,))
    def expected() -> None:
        raise KeyError("no such user")

    result = expected.delay()
    with caplog.at_level(logging.INFO, logger="tq.task"):
        assert run_next(app).state == states.FAILURE
    assert any(r.levelno == logging.INFO and "expected" in r.getMessage() for r in caplog.records)
    assert result.state == states.FAILURE


# -- callbacks -----------------------------------------------------------------------------


def test_link_callback_is_sent_with_the_parents_result(
    app: App, add: Task[Any, Any], receive: Receive
) -> None:
    parent = add.apply_async((1, 2), link=add.s(10))
    execute(add, receive(app))
    callback = receive(app)
    assert callback.task == "exec.add"
    assert callback.args == (3, 10)
    assert callback.parent_id == parent.id
    assert callback.root_id == parent.id


def test_immutable_link_ignores_the_parents_result(
    app: App, add: Task[Any, Any], receive: Receive
) -> None:
    add.apply_async((1, 2), link=add.si(5, 5))
    execute(add, receive(app))
    assert receive(app).args == (5, 5)


def test_link_error_is_sent_with_the_failed_task_id(app: App, receive: Receive) -> None:
    @app.task(name="exec.handler")
    def handler(task_id: str) -> None:
        pass

    @app.task(name="exec.breaks")
    def breaks() -> None:
        raise ValueError("broken")

    failed = breaks.apply_async(link=handler.s(), link_error=handler.s())
    execute(breaks, receive(app))
    errback = receive(app)
    assert errback.task == "exec.handler"
    assert errback.args == (failed.id,)
    assert app.transport.size("tq") == 0  # the success link was not sent


def test_eager_apply_runs_link_callbacks_in_place(app: App) -> None:
    seen: list[int] = []

    @app.task(name="exec.collect")
    def collect(value: int) -> None:
        seen.append(value)

    @app.task(name="exec.three")
    def three() -> int:
        return 3

    three.apply(link=collect.s())
    assert seen == [3]


# -- behaviour hooks ---------------------------------------------------------------------


class Recorder:
    """A plugin recording every per-task hook call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    @hookimpl
    def tq_task_prerun(self, task: Task[Any, Any], request: Request) -> None:
        self.calls.append(("prerun", request.id))

    @hookimpl
    def tq_task_postrun(
        self, task: Task[Any, Any], request: Request, state: str, retval: Any
    ) -> None:
        self.calls.append(("postrun", state))

    @hookimpl
    def tq_task_success(self, task: Task[Any, Any], request: Request, retval: Any) -> None:
        self.calls.append(("success", retval))

    @hookimpl
    def tq_task_failure(
        self, task: Task[Any, Any], request: Request, exc: BaseException, traceback: str
    ) -> None:
        self.calls.append(("failure", type(exc).__name__))

    @hookimpl
    def tq_task_retry(self, task: Task[Any, Any], request: Request, reason: BaseException) -> None:
        self.calls.append(("retry", type(reason).__name__))


def test_prerun_success_and_postrun_hooks_fire_in_order(
    app: App, add: Task[Any, Any], run_next: RunNext
) -> None:
    recorder = Recorder()
    app.register_plugin(recorder)
    result = add.delay(1, 1)
    run_next(app)
    assert recorder.calls == [("prerun", result.id), ("success", 2), ("postrun", states.SUCCESS)]


def test_failure_and_retry_hooks_fire(app: App, receive: Receive) -> None:
    recorder = Recorder()
    app.register_plugin(recorder)

    @app.task(bind=True, name="exec.hooked", max_retries=1)
    def hooked(self: Task[Any, Any]) -> None:
        raise self.retry(exc=TimeoutError("slow"), countdown=0)

    hooked.delay()
    execute(hooked, receive(app))
    execute(hooked, receive(app))
    names = [name for name, _ in recorder.calls]
    assert names == ["prerun", "retry", "postrun", "prerun", "failure", "postrun"]
    assert ("retry", "TimeoutError") in recorder.calls
    assert ("failure", "TimeoutError") in recorder.calls


class Stopwatch:
    """A plugin timing task bodies with a ``tq_task_execute`` wrapper."""

    def __init__(self) -> None:
        self.timings: list[tuple[str, Any, float]] = []

    @hookimpl(wrapper=True)
    def tq_task_execute(
        self, task: Task[Any, Any], request: Request, run: Callable[[], Any]
    ) -> Generator[None, Any, Any]:
        started = time.monotonic()
        value = yield
        self.timings.append((task.name, value, time.monotonic() - started))
        return value


class Runner:
    """A plugin that runs the body itself, as the hookspec says the core does."""

    @hookimpl
    def tq_task_execute(
        self, task: Task[Any, Any], request: Request, run: Callable[[], Any]
    ) -> Any:
        return run()


def test_an_execute_wrapper_sees_and_times_the_result(
    app: App, add: Task[Any, Any], run_next: RunNext
) -> None:
    stopwatch = Stopwatch()
    app.register_plugin(stopwatch)
    app.register_plugin(Runner())
    add.delay(2, 2)
    assert run_next(app).value == 4
    ((name, value, seconds),) = stopwatch.timings
    assert (name, value) == ("exec.add", 4)
    assert seconds >= 0


def test_an_execute_wrapper_alone_still_runs_the_task(
    app: App, add: Task[Any, Any], run_next: RunNext
) -> None:
    stopwatch = Stopwatch()
    app.register_plugin(stopwatch)
    add.delay(2, 2)
    assert run_next(app).value == 4
    assert stopwatch.timings[0][1] == 4


def test_an_execute_wrapper_sees_control_flow_exceptions_pass_through(
    app: App, run_next: RunNext
) -> None:
    app.register_plugin(Stopwatch())
    app.register_plugin(Runner())

    @app.task(name="exec.skip")
    def skip() -> None:
        raise Ignore()

    skip.delay()
    assert run_next(app).state == states.IGNORED


def test_a_plugin_registered_through_app_plugins_after_first_use_gets_its_hooks(
    app: App, add: Task[Any, Any]
) -> None:
    add.apply((1, 1))
    recorder = Recorder()
    app.plugins.register(recorder)
    add.apply((1, 1))
    assert ("success", 2) in recorder.calls
