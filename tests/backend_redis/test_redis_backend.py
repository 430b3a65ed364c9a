"""The Redis result backend passes the backend contract and stores results as Celery does."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
import redis

from tests.transport_redis.redis_services import RedisServer
from tq import App
from tq.backend import ResultBackend
from tq.errors import BackendError
from tq_backend_redis.backend import RedisBackend
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
    store.wait_for_change("tq-task-meta-x", 30)  # returns at once, not after 30 s
    assert store.get("tq-task-meta-x") == b"done"


def test_waiting_on_a_key_that_exists_blocks_until_it_is_written_again(
    store: RedisBackend,
) -> None:
    store.set("tq-task-meta-y", b"STARTED")
    store.wait_for_change("tq-task-meta-y", 0)  # first call: subscribe and re-check
    timer = threading.Timer(0.2, store.set, ("tq-task-meta-y", b"SUCCESS"))
    timer.start()
    store.wait_for_change("tq-task-meta-y", 30)
    timer.join()
    assert store.get("tq-task-meta-y") == b"SUCCESS"


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
