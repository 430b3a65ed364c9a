"""Sending tasks: protocol 2 messages, ETA, expiry, routing, codecs and eager mode."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from tq import App, EagerResult, Queue, Task, hookimpl, states
from tq.errors import ContentDisallowed, ImproperlyConfigured, TransportError
from tq.execution import execute
from tq.message import Message
from tq.protocol import as_datetime, parse_message
from tq.request import Request

AppFactory = Callable[..., App]
Fetch = Callable[..., Message | None]
Receive = Callable[..., Request]

CELERY_HEADERS = {
    "lang",
    "task",
    "id",
    "shadow",
    "eta",
    "expires",
    "group",
    "group_index",
    "retries",
    "timelimit",
    "root_id",
    "parent_id",
    "argsrepr",
    "kwargsrepr",
    "origin",
    "ignore_result",
}


@pytest.fixture
def add(app: App) -> Task[Any, Any]:
    @app.task(name="calls.add")
    def add(x: int, y: int = 0) -> int:
        return x + y

    return add


def test_delay_publishes_a_protocol_2_message_with_celerys_headers(
    app: App, add: Task[Any, Any], fetch_message: Fetch
) -> None:
    result = add.delay(2, y=3)
    message = fetch_message(app)
    assert message is not None
    assert set(message.headers) >= CELERY_HEADERS
    headers = message.headers
    assert headers["lang"] == "py"
    assert headers["task"] == "calls.add"
    assert headers["id"] == result.id
    assert headers["root_id"] == result.id
    assert headers["parent_id"] is None
    assert headers["retries"] == 0
    assert headers["eta"] is None and headers["expires"] is None
    assert headers["timelimit"] == [None, None]
    assert headers["argsrepr"] == "(2,)"
    assert headers["kwargsrepr"] == "{'y': 3}"
    assert headers["origin"].startswith("gen")
    assert headers["ignore_result"] is False
    assert message.properties["correlation_id"] == result.id
    assert message.content_type == "application/json"
    assert json.loads(message.body) == [
        [2],
        {"y": 3},
        {"callbacks": None, "errbacks": None, "chain": None, "chord": None},
    ]


def test_apply_async_options_reach_the_headers(
    app: App, add: Task[Any, Any], fetch_message: Fetch
) -> None:
    add.apply_async(
        (1, 1),
        task_id="my-id",
        time_limit=30,
        soft_time_limit=20,
        headers={"x-trace": "abc"},
        shadow="add-shadow",
        ignore_result=True,
        argsrepr="(secret)",
        group_id="g1",
        group_index=4,
    )
    message = fetch_message(app)
    assert message is not None
    headers = message.headers
    assert headers["id"] == "my-id" and message.properties["correlation_id"] == "my-id"
    assert headers["timelimit"] == [30, 20]
    assert headers["x-trace"] == "abc"
    assert headers["shadow"] == "add-shadow"
    assert headers["ignore_result"] is True
    assert headers["argsrepr"] == "(secret)"
    assert (headers["group"], headers["group_index"]) == ("g1", 4)


def test_countdown_sets_eta_and_keeps_the_message_invisible_until_due(
    app: App, add: Task[Any, Any], fetch_message: Fetch
) -> None:
    before = datetime.now(timezone.utc)
    add.apply_async((1,), countdown=0.3)
    assert fetch_message(app) is None
    assert app.transport.size("tq") == 1  # delayed messages wait in the broker
    message = fetch_message(app, timeout=3)
    assert message is not None
    assert datetime.now(timezone.utc) - before >= timedelta(seconds=0.3)
    eta = as_datetime(message.headers["eta"])
    assert eta is not None and before + timedelta(seconds=0.2) < eta


def test_eta_datetime_is_sent_as_iso_8601(
    app: App, add: Task[Any, Any], fetch_message: Fetch
) -> None:
    eta = datetime.now(timezone.utc) + timedelta(hours=1)
    add.apply_async((1,), eta=eta)
    assert fetch_message(app) is None
    assert app.transport.size("tq") == 1
    app.transport.purge("tq")
    add.apply_async((1,), eta=datetime.now(timezone.utc) - timedelta(seconds=1))
    message = fetch_message(app)
    assert message is not None
    assert datetime.fromisoformat(message.headers["eta"]).tzinfo is not None


def test_eta_and_countdown_together_are_an_error(app: App, add: Task[Any, Any]) -> None:
    with pytest.raises(ImproperlyConfigured, match="eta or countdown"):
        add.apply_async((1,), countdown=1, eta=datetime.now(timezone.utc))


def test_expires_accepts_seconds_and_datetimes(
    app: App, add: Task[Any, Any], fetch_message: Fetch
) -> None:
    add.apply_async((1,), expires=60)
    message = fetch_message(app)
    assert message is not None
    expires = as_datetime(message.headers["expires"])
    assert expires is not None
    assert timedelta(seconds=50) < expires - datetime.now(timezone.utc) <= timedelta(seconds=60)

    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    add.apply_async((1,), expires=when)
    message = fetch_message(app)
    assert message is not None
    assert as_datetime(message.headers["expires"]) == when


def test_task_expires_option_is_the_default(app: App, fetch_message: Fetch) -> None:
    @app.task(name="calls.expiring", expires=30)
    def expiring() -> None:
        pass

    expiring.delay()
    message = fetch_message(app)
    assert message is not None and message.headers["expires"] is not None


def test_higher_priority_messages_are_delivered_first(
    app: App, add: Task[Any, Any], fetch_message: Fetch
) -> None:
    add.apply_async((1,), priority=1)
    add.apply_async((9,), priority=9)
    message = fetch_message(app)
    assert message is not None
    assert message.properties["priority"] == 9
    assert json.loads(message.body)[0] == [9]


def test_queue_option_sends_to_that_queue(
    app: App, add: Task[Any, Any], fetch_message: Fetch
) -> None:
    add.apply_async((1,), queue="fast")
    assert fetch_message(app) is None
    message = fetch_message(app, "fast")
    assert message is not None
    assert message.properties["delivery_info"]["routing_key"] == "fast"


def test_task_queue_option_routes_every_call(app: App, fetch_message: Fetch) -> None:
    @app.task(name="calls.slow", queue="slow")
    def slow() -> None:
        pass

    slow.delay()
    assert fetch_message(app, "slow") is not None


def _queue_of(app: App, name: str, fetch_message: Fetch, queues: Sequence[str]) -> str:
    app.send_task(name)
    for queue in queues:
        if fetch_message(app, queue) is not None:
            return queue
    raise AssertionError(f"{name} went to none of {queues}")


def test_task_routes_dict_matches_exact_names_globs_and_regexes(
    make_app: AppFactory, fetch_message: Fetch
) -> None:
    app = make_app(
        task_routes={
            "feeds.import": {"queue": "exact"},
            "feeds.*": "globbed",
            re.compile(r"^video\.(encode|decode)$"): {"queue": "media"},
        }
    )
    queues = ("exact", "globbed", "media", "tq")
    assert _queue_of(app, "feeds.import", fetch_message, queues) == "exact"
    assert _queue_of(app, "feeds.parse", fetch_message, queues) == "globbed"
    assert _queue_of(app, "video.encode", fetch_message, queues) == "media"
    assert _queue_of(app, "video.upload", fetch_message, queues) == "tq"


def test_task_routes_accepts_router_functions_and_lists_of_routers(
    make_app: AppFactory, fetch_message: Fetch
) -> None:
    def by_argument(
        name: str, args: Sequence[Any], kwargs: Mapping[str, Any], options: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        if kwargs.get("urgent"):
            return {"queue": "urgent", "priority": 8}
        return None

    app = make_app(task_routes=[by_argument, {"*": "fallback"}])
    app.send_task("any.task", kwargs={"urgent": True})
    message = fetch_message(app, "urgent")
    assert message is not None and message.properties["priority"] == 8
    assert _queue_of(app, "any.task", fetch_message, ("urgent", "fallback")) == "fallback"

    single = make_app(task_routes=lambda name, args, kwargs, options: "solo")
    assert _queue_of(single, "x", fetch_message, ("solo",)) == "solo"


def test_an_explicit_queue_wins_over_routes(make_app: AppFactory, fetch_message: Fetch) -> None:
    app = make_app(task_routes={"*": "routed"})
    app.send_task("a.task", queue="chosen")
    assert fetch_message(app, "chosen") is not None


def test_task_queues_declare_queues_with_routing_keys(
    make_app: AppFactory, fetch_message: Fetch
) -> None:
    app = make_app(
        task_queues=[Queue("images", routing_key="media.images")], task_create_missing_queues=False
    )
    app.send_task("img.resize", routing_key="media.images")
    assert fetch_message(app, "images") is not None
    app.send_task("img.resize", queue="images")
    assert fetch_message(app, "images") is not None


def test_undeclared_queue_is_an_error_without_create_missing_queues(
    make_app: AppFactory,
) -> None:
    app = make_app(task_create_missing_queues=False)
    with pytest.raises(ImproperlyConfigured, match="'nowhere' is not declared"):
        app.send_task("a.task", queue="nowhere")


def test_default_queue_is_tq_and_celery_with_celery_compat(
    make_app: AppFactory, fetch_message: Fetch
) -> None:
    assert make_app().default_queue.name == "tq"
    app = make_app(celery_compat=True)
    assert app.default_queue.name == "celery"
    app.send_task("a.task")
    assert fetch_message(app, "celery") is not None
    assert make_app(celery_compat=True, task_default_queue="mine").default_queue.name == "mine"


def test_pickle_serializer_is_sent_but_refused_unless_accepted(
    app: App, add: Task[Any, Any], fetch_message: Fetch
) -> None:
    add.apply_async((datetime(2020, 1, 1),), serializer="pickle")
    message = fetch_message(app)
    assert message is not None
    assert message.content_type == "application/x-python-serialize"
    with pytest.raises(ContentDisallowed, match="accept_content"):
        parse_message(message, app.codecs, frozenset({"json"}))
    request = parse_message(message, app.codecs, frozenset({"json", "pickle"}))
    assert request.args == (datetime(2020, 1, 1),)


@pytest.mark.parametrize("compression", ["zlib", "gzip", "bz2", "lzma"])
def test_compressed_messages_round_trip(
    app: App, add: Task[Any, Any], fetch_message: Fetch, compression: str
) -> None:
    add.apply_async(("x" * 1000,), {"y": "y"}, compression=compression)
    message = fetch_message(app)
    assert message is not None
    assert message.headers["compression"] == app.codecs.compressor(compression).content_type
    assert len(message.body) < 1000
    request = parse_message(message, app.codecs, frozenset({"json"}))
    assert request.args == ("x" * 1000,)
    assert request.kwargs == {"y": "y"}


def test_task_compression_setting_applies_to_every_message(
    make_app: AppFactory, fetch_message: Fetch
) -> None:
    app = make_app(task_compression="zlib")
    app.send_task("a.task", ("payload",))
    message = fetch_message(app)
    assert message is not None and message.headers["compression"] == "application/x-gzip"


def test_values_json_cannot_carry_name_the_fix(app: App, add: Task[Any, Any]) -> None:
    with pytest.raises(ImproperlyConfigured, match="JSON-compatible"):
        add.delay(object())


def test_link_and_link_error_travel_in_the_embed(
    app: App, add: Task[Any, Any], receive: Receive
) -> None:
    add.apply_async((1,), link=add.s(10), link_error=[add.si(0), add.s(1)])
    request = receive(app)
    assert request.callbacks == [add.s(10).to_dict()]
    assert request.errbacks == [add.si(0).to_dict(), add.s(1).to_dict()]


def test_send_task_sends_a_task_this_process_does_not_know(app: App, receive: Receive) -> None:
    result = app.send_task("elsewhere.resize", [640, 480], {"fmt": "png"})
    request = receive(app)
    assert request.task == "elsewhere.resize"
    assert request.id == result.id
    assert request.args == (640, 480) and request.kwargs == {"fmt": "png"}
    assert result.state == states.PENDING


def test_tasks_sent_from_a_running_task_record_parent_and_root(
    app: App, add: Task[Any, Any], receive: Receive
) -> None:
    @app.task(name="calls.spawn")
    def spawn() -> str:
        return add.delay(1).id

    parent = app.send_task("calls.spawn")
    outcome = execute(spawn, receive(app))
    child = receive(app)
    assert child.id == outcome.value
    assert child.parent_id == parent.id
    assert child.root_id == parent.id


def test_always_eager_runs_delay_here_and_returns_an_eager_result(
    make_app: AppFactory,
) -> None:
    app = make_app(task_always_eager=True)

    @app.task(name="eager.add")
    def add(x: int, y: int) -> int:
        return x + y

    result = add.delay(2, 2)
    assert isinstance(result, EagerResult)
    assert result.get() == 4
    assert result.successful() and result.state == states.SUCCESS
    assert app.transport.size("tq") == 0


def test_apply_returns_failures_unless_eager_propagates(make_app: AppFactory) -> None:
    app = make_app()

    @app.task(name="eager.fail")
    def fail() -> None:
        raise ValueError("bad input")

    result = fail.apply()
    assert result.failed() and isinstance(result.result, ValueError)
    with pytest.raises(ValueError, match="bad input"):
        result.get()
    assert isinstance(result.get(propagate=False), ValueError)
    assert "Traceback" in (result.traceback or "")

    with pytest.raises(ValueError, match="bad input"):
        fail.apply(throw=True)

    propagating = make_app(task_eager_propagates=True)

    @propagating.task(name="eager.fail")
    def fail_loudly() -> None:
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        fail_loudly.apply()
    assert fail_loudly.apply(throw=False).failed()


def test_eager_results_are_not_stored_unless_asked(make_app: AppFactory) -> None:
    app = make_app()
    task = app.task(name="eager.store")(lambda: 5)
    result = task.apply()
    assert app.AsyncResult(result.id).state == states.PENDING
    storing = make_app(task_store_eager_result=True)
    task = storing.task(name="eager.store")(lambda: 5)
    result = task.apply()
    assert storing.AsyncResult(result.id).get(timeout=1) == 5


def test_publish_hooks_see_the_message_and_may_change_headers(
    app: App, add: Task[Any, Any], fetch_message: Fetch
) -> None:
    published: list[str] = []

    class Stamp:
        @hookimpl
        def tq_before_publish(self, app: App, message: Message, queue: Queue) -> None:
            message.headers["x-stamped"] = queue.name

        @hookimpl
        def tq_after_publish(self, app: App, message: Message, queue: Queue) -> None:
            published.append(message.headers["id"])

    app.register_plugin(Stamp())
    result = add.delay(1)
    message = fetch_message(app)
    assert message is not None and message.headers["x-stamped"] == "tq"
    assert published == [result.id]


def test_messages_survive_the_broker_envelope(app: App, add: Task[Any, Any]) -> None:
    add.delay(1)
    deliveries = app.transport.fetch(["tq"], 1, 0)
    envelope = deliveries[0].message.to_envelope()
    assert set(envelope) == {"body", "content-encoding", "content-type", "headers", "properties"}
    assert envelope["properties"]["body_encoding"] == "base64"


def test_unknown_apply_async_option_is_a_type_error_in_eager_mode_too(
    make_app: AppFactory,
) -> None:
    app = make_app(task_always_eager=True)
    task = app.task(name="eager.opts")(lambda x: x)
    with pytest.raises(TypeError, match="countdwn"):
        task.apply_async((1,), countdwn=5)


def _flaky_publish(app: App, failures: int) -> list[int]:
    """Make the app's broker refuse the next ``failures`` publishes, as a broker that is
    briefly unreachable does (the memory broker cannot be made unreachable for real)."""
    real = app.transport.publish
    attempts: list[int] = []

    def publish(message: Message, queue: Queue, not_before: float | None = None) -> None:
        attempts.append(len(attempts) + 1)
        if len(attempts) <= failures:
            raise TransportError("broker unreachable")
        real(message, queue, not_before)

    app.transport.publish = publish  # type: ignore[method-assign]
    return attempts


def test_publish_retries_per_the_policy_until_the_broker_takes_the_message(
    app: App, add: Task[Any, Any], fetch_message: Fetch
) -> None:
    attempts = _flaky_publish(app, failures=2)
    result = add.apply_async((1, 2), retry_policy={"max_retries": 3, "interval_start": 0})
    assert attempts == [1, 2, 3]
    message = fetch_message(app)
    assert message is not None and message.headers["id"] == result.id
    assert fetch_message(app) is None  # sent once


def test_publish_gives_up_after_the_last_retry_and_says_why(
    app: App, add: Task[Any, Any], fetch_message: Fetch
) -> None:
    attempts = _flaky_publish(app, failures=5)
    with pytest.raises(TransportError, match="unreachable"):
        add.apply_async((1, 2), retry_policy={"max_retries": 2, "interval_start": 0})
    assert attempts == [1, 2, 3]
    with pytest.raises(TransportError):
        add.apply_async((1, 2), retry=False)
    assert attempts == [1, 2, 3, 4]
    assert fetch_message(app) is None
