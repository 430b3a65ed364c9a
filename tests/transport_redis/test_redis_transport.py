"""The Redis broker passes the transport contract, keeps kombu's layout and survives outages."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from tests.transport_redis.redis_services import RedisServer
from tq.errors import ImproperlyConfigured, TransportError
from tq.message import Message
from tq.transport import Queue
from tq_testing.contracts import TransportContract, TransportFactory, transport_factory
from tq_transport_redis.keys import KOMBU_PRIORITY_STEPS
from tq_transport_redis.transport import RedisTransport


class TestRedisTransport(TransportContract):
    @pytest.fixture
    def transport(self, redis_url: str, key_prefix: str) -> Iterator[TransportFactory]:
        def make(url: str, options: object) -> RedisTransport:
            return RedisTransport(url, {"global_keyprefix": key_prefix, **dict(options)})  # type: ignore[call-overload]

        with transport_factory(make, redis_url) as factory:
            yield factory


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def _transport(url: str, prefix: str, **options: object) -> RedisTransport:
    return RedisTransport(url, {"global_keyprefix": prefix, **options})


def _message(body: str, priority: int = 0, **headers: object) -> Message:
    return Message(
        body.encode(), "application/json", "utf-8", dict(headers), {"priority": priority}
    )


def test_messages_are_kombu_envelopes_on_the_queue_list(
    redis_url: str, key_prefix: str, raw: redis.Redis
) -> None:
    broker = _transport(redis_url, key_prefix, celery_compat=True)
    broker.publish(_message("[[2, 2], {}, {}]", priority=9, task="proj.add"), Queue("celery"))
    [stored] = raw.lrange(f"{key_prefix}celery", 0, -1)
    envelope = json.loads(stored)
    assert set(envelope) == {"body", "content-encoding", "content-type", "headers", "properties"}
    assert envelope["properties"]["body_encoding"] == "base64"
    assert envelope["properties"]["delivery_tag"]
    assert envelope["headers"]["task"] == "proj.add"
    broker.close()


def test_celery_compat_maps_priority_to_kombus_lower_first_buckets(
    redis_url: str, key_prefix: str, raw: redis.Redis
) -> None:
    broker = _transport(redis_url, key_prefix, celery_compat=True)
    assert broker.keys.steps == KOMBU_PRIORITY_STEPS
    broker.publish(_message("urgent", priority=9), Queue("celery"))
    broker.publish(_message("default", priority=0), Queue("celery"))
    # tq's 9 (most urgent) is kombu's 0, the plain list Celery serves first.
    [urgent] = raw.lrange(f"{key_prefix}celery", 0, -1)
    [default] = raw.lrange(f"{key_prefix}celery\x06\x169", 0, -1)
    assert json.loads(urgent)["properties"]["priority"] == 0
    assert json.loads(default)["properties"]["priority"] == 9
    first, second = broker.fetch(["celery"], 2, timeout=1)
    assert (first.message.body, first.message.priority) == (b"urgent", 9)
    assert (second.message.body, second.message.priority) == (b"default", 0)
    broker.close()


def test_a_celery_clients_priority_keeps_celerys_meaning(
    redis_url: str, key_prefix: str, raw: redis.Redis
) -> None:
    broker = _transport(redis_url, key_prefix, celery_compat=True)
    low = _message("celery-low").to_envelope()
    low["properties"]["priority"] = 9  # Celery on Redis: 9 is served last
    high = _message("celery-high").to_envelope()
    high["properties"]["priority"] = 0
    raw.lpush(f"{key_prefix}celery\x06\x169", json.dumps(low))
    raw.lpush(f"{key_prefix}celery", json.dumps(high))
    deliveries = broker.fetch(["celery"], 2, timeout=1)
    assert [d.message.body for d in deliveries] == [b"celery-high", b"celery-low"]
    broker.close()


def test_celery_compat_sends_eta_tasks_as_plain_messages(redis_url: str, key_prefix: str) -> None:
    broker = _transport(redis_url, key_prefix, celery_compat=True)
    later = time.time() + 60
    broker.publish(_message("eta", eta="2099-01-01T00:00:00+00:00"), Queue("celery"), later)
    [delivery] = broker.fetch(["celery"], 1, timeout=1)
    # The worker defers it itself, into Redis, not memory.
    broker.requeue(delivery, not_before=later)
    assert broker.fetch(["celery"], 1, timeout=0) == []
    assert broker.size("celery") == 1
    broker.close()


def test_declare_records_kombus_binding(redis_url: str, key_prefix: str, raw: redis.Redis) -> None:
    broker = _transport(redis_url, key_prefix, celery_compat=True)
    broker.declare(Queue("celery", exchange="celery", routing_key="celery"))
    assert raw.smembers(f"{key_prefix}_kombu.binding.celery") == {b"celery\x06\x16\x06\x16celery"}
    broker.close()


def test_fanout_reaches_every_subscriber_on_kombus_channel(
    redis_url: str, key_prefix: str, raw: redis.Redis
) -> None:
    broker = _transport(redis_url, key_prefix)
    first, second = broker.subscribe("tq.pidbox"), broker.subscribe("tq.pidbox")
    other = broker.subscribe("tqev")
    broker.broadcast("tq.pidbox", _message("ping"))
    assert [m.body for m in first.get(timeout=2)] == [b"ping"]
    assert [m.body for m in second.get(timeout=2)] == [b"ping"]
    assert other.get(timeout=0.1) == []
    # A Celery-side publisher uses kombu's channel name, with the routing key appended.
    raw.publish(f"{key_prefix}/15.tqev/task.succeeded", _message("event").dumps())
    assert [m.body for m in other.get(timeout=2)] == [b"event"]
    for subscription in (first, second, other):
        subscription.close()
    broker.close()


def test_a_lease_lost_to_expiry_is_not_settled_by_its_old_holder(
    redis_url: str, key_prefix: str
) -> None:
    broker = _transport(redis_url, key_prefix, visibility_timeout=0.2)
    broker.publish(_message("m"), Queue("q"))
    [stale] = broker.fetch(["q"], 1, timeout=1)
    time.sleep(0.3)
    [fresh] = broker.fetch(["q"], 1, timeout=1)
    broker.release(stale)  # too late: does nothing
    broker.ack(stale)
    assert broker.fetch(["q"], 1, timeout=0) == []
    assert fresh.delivery_count == 2
    broker.ack(fresh)
    broker.close()


def test_delivery_count_survives_requeue_to_the_list(redis_url: str, key_prefix: str) -> None:
    broker = _transport(redis_url, key_prefix)
    broker.publish(_message("m"), Queue("q"))
    for expected in (1, 2, 3):
        [delivery] = broker.fetch(["q"], 1, timeout=1)
        assert delivery.delivery_count == expected
        broker.requeue(delivery, not_before=time.time() if expected == 2 else None)
    broker.close()


def test_unsupported_url_and_sentinel_without_master_are_configuration_errors() -> None:
    with pytest.raises(ImproperlyConfigured, match="master_name"):
        RedisTransport("sentinel://127.0.0.1:26379/0", {})
    with pytest.raises(ImproperlyConfigured):
        RedisTransport("http://127.0.0.1", {})


def test_rediss_verifies_certificates_by_default() -> None:
    broker = RedisTransport("rediss://127.0.0.1:6390/0", {})
    kwargs = broker.client.connection_pool.connection_kwargs
    assert kwargs.get("ssl_cert_reqs", "required") == "required"
    broker.close()


def test_redis_errors_surface_as_transport_errors(private_redis: RedisServer) -> None:
    broker = RedisTransport(private_redis.url, {"socket_connect_timeout": 0.5})
    private_redis.stop()
    with pytest.raises(TransportError) as caught:
        broker.publish(_message("m"), Queue("q"))
    assert isinstance(caught.value.__cause__, redis.RedisError)
    with pytest.raises(TransportError):
        broker.fetch(["q"], 1, timeout=0)
    broker.close()


def test_transport_works_again_after_the_server_restarts(private_redis: RedisServer) -> None:
    broker = RedisTransport(private_redis.url, {"socket_connect_timeout": 0.5})
    broker.publish(_message("before"), Queue("q"))
    assert [d.message.body for d in broker.fetch(["q"], 1, timeout=1)] == [b"before"]
    private_redis.stop()
    with pytest.raises(TransportError):
        broker.fetch(["q"], 1, timeout=0)
    private_redis.start()
    # The restarted server has no scripts and no data; both publish and fetch recover.
    broker.publish(_message("after"), Queue("q"))
    assert [d.message.body for d in broker.fetch(["q"], 1, timeout=1)] == [b"after"]
    broker.close()


def test_subscription_keeps_receiving_from_several_threads(redis_url: str, key_prefix: str) -> None:
    broker = _transport(redis_url, key_prefix)
    subscription = broker.subscribe("ex")
    got: list[bytes] = []

    def listen() -> None:
        while len(got) < 20:
            got.extend(m.body for m in subscription.get(timeout=0.2))

    listener = threading.Thread(target=listen)
    listener.start()
    for i in range(20):
        broker.broadcast("ex", _message(f"m{i}"))
    listener.join(timeout=10)
    assert got == [f"m{i}".encode() for i in range(20)]
    subscription.close()
    broker.close()


def test_idle_fetch_is_woken_by_a_publish_instead_of_waiting_for_its_next_poll(
    redis_url: str, key_prefix: str
) -> None:
    # Polls back off from 1 ms towards polling_interval (5 s here): three seconds into
    # an idle fetch the next poll is about a second away. The publisher's wake-up
    # announcement must make the fetch return at once instead.
    consumer = _transport(redis_url, key_prefix, polling_interval=5)
    producer = _transport(redis_url, key_prefix)
    fetched: list[tuple[float, list[str]]] = []

    def fetch() -> None:
        deliveries = consumer.fetch(["wake"], 1, timeout=10)
        fetched.append((time.monotonic(), [d.message.body.decode() for d in deliveries]))

    thread = threading.Thread(target=fetch)
    thread.start()
    time.sleep(3.0)
    published = time.monotonic()
    producer.publish(_message("hello"), Queue("wake"))
    thread.join(timeout=15)
    [(returned, bodies)] = fetched
    assert bodies == ["hello"]
    assert returned - published < 0.5
    consumer.close()
    producer.close()


def test_message_pushed_without_an_announcement_is_still_found_by_polling(
    redis_url: str, key_prefix: str, raw: redis.Redis
) -> None:
    # Celery's clients LPUSH and announce nothing: polling finds their messages.
    consumer = _transport(redis_url, key_prefix, polling_interval=0.2)
    consumer.fetch(["quiet"], 1, timeout=0.3)  # subscribed and idle
    raw.lpush(f"{key_prefix}quiet", json.dumps(_plain_envelope("from celery")))
    [delivery] = consumer.fetch(["quiet"], 1, timeout=5)
    assert delivery.message.body == b"from celery"
    consumer.close()


def _plain_envelope(body: str) -> dict[str, object]:
    message = _message(body)
    envelope = message.to_envelope()
    envelope["properties"]["priority"] = 0
    return envelope
