"""The Redis result backend passes the backend contract and stores results as Celery does."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.transport_redis.redis_services import RedisServer
from tq import App
from tq.backend import ResultBackend
from tq.errors import BackendError
from tq_backend_redis.backend import RedisBackend, _Watch
from tq_testing.contracts import BackendContract


class TestRedisBackend(BackendContract):
    @pytest.fixture
    def backend(self, redis_url: str, key_prefix: str) -> Iterator[ResultBackend]:
        store = RedisBackend(redis_url, {"global_keyprefix": key_prefix})
        yield store
        store.close()


@pytest.fixture
def store(redis_url: str, key_prefix: str) -> Iterator[RedisBackend]:
    backend = RedisBackend(redis_url, {"global_keyprefix": key_prefix})
    yield backend
    backend.close()


def test_set_publishes_the_value_on_the_keys_channel(
    store: RedisBackend, key_prefix: str, redis_url: str
) -> None:
    listener = redis.Redis.from_url(redis_url).pubsub(ignore_subscribe_messages=True)
    listener.subscribe(f"{key_prefix}celery-task-meta-1")
    listener.get_message(timeout=1)
    store.set("celery-task-meta-1", b'{"status": "SUCCESS"}', expires=60)
    reply = None
    while reply is None:
        reply = listener.get_message(timeout=5)
    assert reply["data"] == b'{"status": "SUCCESS"}'
    listener.close()


def test_expiry_is_set_with_the_value(store: RedisBackend, key_prefix: str, redis_url: str) -> None:
    store.set("k", b"v", expires=86400)
    ttl = redis.Redis.from_url(redis_url).pttl(f"{key_prefix}k")
    assert 0 < ttl <= 86400 * 1000


def test_a_write_before_the_subscription_is_not_missed(store: RedisBackend) -> None:
    # Written after the caller last read it but before wait_for_change subscribed.
    store.set("tq-task-meta-x", b"done")
    # Returns at once with the value read once subscribed, not after 30 s.
    assert store.wait_for_change("tq-task-meta-x", 30) == b"done"


def test_waiting_on_a_key_that_exists_blocks_until_it_is_written_again(
    store: RedisBackend,
) -> None:
    store.set("tq-task-meta-y", b"STARTED")
    # First call: subscribe and re-read.
    assert store.wait_for_change("tq-task-meta-y", 0) == b"STARTED"
    timer = threading.Timer(0.2, store.set, ("tq-task-meta-y", b"SUCCESS"))
    timer.start()
    assert store.wait_for_change("tq-task-meta-y", 30) == b"SUCCESS"
    timer.join()


def test_a_write_after_get_and_watch_reaches_the_next_wait_with_its_value(
    store: RedisBackend,
) -> None:
    assert store.get_and_watch("tq-task-meta-z") is None  # returns subscribed
    store.set("tq-task-meta-z", b"SUCCESS")
    assert store.wait_for_change("tq-task-meta-z", 30) == b"SUCCESS"


def test_waiting_without_a_write_returns_none_after_the_timeout(store: RedisBackend) -> None:
    started = time.monotonic()
    assert store.wait_for_change("tq-task-meta-quiet", 0.2) is None
    assert store.wait_for_change("tq-task-meta-quiet", 0.2) is None  # already subscribed
    assert 0.35 < time.monotonic() - started < 2


def test_a_value_written_to_the_key_followed_before_is_not_taken_for_the_next(
    store: RedisBackend,
) -> None:
    store.set("tq-task-meta-a", b"a's record")
    # Found at once: the subscription to a is left unconfirmed, its replies unread.
    assert store.get_and_watch("tq-task-meta-a") == b"a's record"
    store.set("tq-task-meta-a", b"a's record again")  # published to the subscription on a
    assert store.get_and_watch("tq-task-meta-b") is None
    assert store.wait_for_change("tq-task-meta-b", 0.2) is None


def _results_app(redis_url: str, key_prefix: str) -> App:
    return App(
        "redis_results",
        broker_url="memory://",
        result_backend=redis_url,
        result_backend_transport_options={"global_keyprefix": key_prefix},
    )


def _redis_backend(app: App) -> RedisBackend:
    backend = app.results.backend
    assert isinstance(backend, RedisBackend)
    return backend


def test_a_result_stored_before_the_subscription_took_effect_is_found(
    redis_url: str, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _results_app(redis_url, key_prefix)
    record = app.results.encode(app.results.build_meta("late", "SUCCESS", 7, None, None))
    client = _redis_backend(app).client
    writer = redis.Redis.from_url(redis_url)
    read = client.get

    def read_then_store(name: str) -> Any:
        # get() sends its SUBSCRIBE alongside its first GET, and Redis may run the GET
        # first. Played here: the GET finds nothing, then the result is stored with no
        # message to the subscription, as when published before it took effect.
        value = read(name)
        if value is None and not writer.exists(name):
            writer.set(name, record)
        return value

    monkeypatch.setattr(client, "get", read_then_store)
    started = time.monotonic()
    assert app.AsyncResult("late").get(timeout=10, interval=30) == 7
    # Missed, it would be found only by the read made when the timeout comes.
    assert time.monotonic() - started < 5
    writer.close()
    app.close()


def test_get_takes_the_record_from_the_notification_without_reading_it_again(
    redis_url: str, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _results_app(redis_url, key_prefix)
    record = app.results.encode(app.results.build_meta("told", "SUCCESS", 9, None, None))
    publisher = redis.Redis.from_url(redis_url)
    confirm = _Watch.confirm

    def confirm_then_publish(watch: _Watch) -> None:
        confirm(watch)
        # Published but never stored: only the message can tell get() the result.
        assert watch.channel is not None
        publisher.publish(watch.channel, record)

    monkeypatch.setattr(_Watch, "confirm", confirm_then_publish)
    assert app.AsyncResult("told").get(timeout=5, interval=30) == 9
    publisher.close()
    app.close()


def test_group_results_are_collected_as_each_is_stored(redis_url: str, key_prefix: str) -> None:
    app = _results_app(redis_url, key_prefix)
    app.results.store("first", "SUCCESS", 1)  # stored before get() is called
    for delay, (task_id, value) in enumerate([("third", 3), ("second", 2)], start=1):
        threading.Timer(0.1 * delay, app.results.store, (task_id, "SUCCESS", value)).start()
    ids = ["first", "second", "third"]
    group = app.GroupResult("g", [app.AsyncResult(task_id) for task_id in ids])
    started = time.monotonic()
    assert group.get(timeout=10, interval=30) == [1, 2, 3]
    assert time.monotonic() - started < 5  # each found when stored, not at the timeout
    app.close()


def test_asyncresult_get_returns_the_stored_result_through_the_core(
    redis_url: str, key_prefix: str
) -> None:
    app = App(
        "redis_results",
        broker_url="memory://",
        result_backend=redis_url,
        result_backend_transport_options={"global_keyprefix": key_prefix},
        celery_compat=True,
    )
    result = app.AsyncResult("abc")
    threading.Timer(0.2, app.results.store, ("abc", "SUCCESS", 4)).start()
    assert result.get(timeout=30) == 4
    raw = redis.Redis.from_url(redis_url).get(f"{key_prefix}celery-task-meta-abc")
    assert raw is not None and json.loads(raw)["status"] == "SUCCESS"
    app.results.forget("abc")
    assert app.AsyncResult("abc").state == "PENDING"
    app.close()


def test_groups_are_saved_and_restored(redis_url: str, key_prefix: str) -> None:
    app = App(
        "redis_groups",
        broker_url="memory://",
        result_backend=redis_url,
        result_backend_transport_options={"global_keyprefix": key_prefix},
    )
    group = app.GroupResult("g1", [app.AsyncResult("a"), app.AsyncResult("b")])
    group.save()
    restored = app.restore_group("g1")
    assert restored is not None
    assert [r.id for r in restored.results] == ["a", "b"]
    app.close()


def test_redis_errors_are_backend_errors_and_the_backend_recovers(
    private_redis: RedisServer,
) -> None:
    backend = RedisBackend(private_redis.url, {"socket_connect_timeout": 0.5})
    backend.set("k", b"v")
    private_redis.stop()
    with pytest.raises(BackendError) as caught:
        backend.set("k", b"w")
    assert isinstance(caught.value.__cause__, redis.RedisError)
    with pytest.raises(BackendError):
        backend.wait_for_change("k", 0.1)
    private_redis.start()
    backend.set("k", b"x")
    assert backend.get("k") == b"x"
    backend.close()


def test_chord_parts_count_each_index_once(store: RedisBackend) -> None:
    assert store.chord_part("chord-g", 0, b"a", expires=60) == 1
    assert store.chord_part("chord-g", 2, b"c", expires=60) == 2
    assert store.chord_part("chord-g", 0, b"a again", expires=60) == 2  # redelivered
    assert store.chord_parts("chord-g", 3) == [b"a again", None, b"c"]


def test_a_finished_group_is_joined_without_subscribing_to_its_members(
    redis_url: str, key_prefix: str
) -> None:
    app = _results_app(redis_url, key_prefix)
    for n in range(3):
        app.results.store(f"done-{n}", "SUCCESS", n)
    group = app.GroupResult("g", [app.AsyncResult(f"done-{n}") for n in range(3)])
    assert group.get(timeout=5) == [0, 1, 2]
    subscribed = redis.Redis.from_url(redis_url).pubsub_channels(f"{key_prefix}*")
    assert subscribed == []
    app.close()
