"""The contract every transport plugin passes: the semantics of :mod:`tq.transport`.

Subclass :class:`TransportContract` and provide a ``transport`` fixture returning a
:class:`TransportFactory`: a callable ``(**options) -> Transport``. Every call within
one test must return a transport on the *same* broker (so a test can pair a consumer
with a short ``visibility_timeout`` and a producer), and that broker must be empty when
the test starts. :func:`transport_factory` builds such a factory from a class and URL
and closes what it made.

Tests that need a capability the transport does not declare are skipped.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import pytest

from tq.message import Message
from tq.transport import (
    DEAD_LETTER_REASON_HEADER,
    ORIGINAL_QUEUE_HEADER,
    Delivery,
    Queue,
    Transport,
)

TransportClass = Callable[[str, Mapping[str, Any]], Transport]

# Long enough for a loaded CI machine, short enough to keep the suite quick.
SHORT_LEASE = 0.3


class TransportFactory(Protocol):
    """Makes transports on one broker; keyword arguments become transport options."""

    def __call__(self, **options: Any) -> Transport: ...


@contextmanager
def transport_factory(cls: TransportClass, url: str) -> Iterator[TransportFactory]:
    """A factory of ``cls(url, options)`` transports, closed when the block ends."""
    made: list[Transport] = []

    def make(**options: Any) -> Transport:
        transport = cls(url, options)
        made.append(transport)
        return transport

    try:
        yield make
    finally:
        for transport in made:
            transport.close()


def message(body: str, priority: int | None = None, **headers: Any) -> Message:
    """A small JSON message whose body identifies it."""
    properties: dict[str, Any] = {"correlation_id": body}
    if priority is not None:
        properties["priority"] = priority
    return Message(body.encode(), "application/json", "utf-8", dict(headers), properties)


def bodies(deliveries: Sequence[Delivery]) -> list[str]:
    return [delivery.message.body.decode() for delivery in deliveries]


def drain(
    transport: Transport, queues: Sequence[str], limit: int = 10, work: float = 0.0
) -> list[str]:
    """Fetch and ack until a fetch comes back empty; return the bodies in order.

    ``work`` seconds of sleep per batch stand for running the tasks, which gives
    competing consumers a chance to fetch, as they would have in a real worker.
    """
    received: list[str] = []
    while deliveries := transport.fetch(queues, limit, timeout=0.2):
        time.sleep(work)
        for delivery in deliveries:
            transport.ack(delivery)
        received.extend(bodies(deliveries))
    return received


def _consume_in_process(
    cls: TransportClass,
    url: str,
    options: Mapping[str, Any],
    start: Any,
    results: Any,
) -> None:
    """Body of a consumer process: wait for its peer, drain, report the bodies it got."""
    transport = cls(url, options)
    start.wait()
    results.put(drain(transport, ["contract"], limit=5, work=0.002))
    transport.close()


def _require(transport: Transport, capability: str) -> None:
    if not getattr(transport.capabilities, capability):
        pytest.skip(f"{type(transport).__name__} does not declare {capability}")


class TransportContract:
    """Behaviour every :class:`tq.transport.Transport` must show."""

    def test_published_message_is_fetched_intact(self, transport: TransportFactory) -> None:
        broker = transport()
        sent = Message(
            b"\x00\xffbinary",
            "application/x-custom",
            "binary",
            {"task": "add", "nested": {"retries": [1, 2]}},
            {"correlation_id": "abc", "reply_to": "replies"},
        )
        broker.publish(sent, Queue("contract"))
        [delivery] = broker.fetch(["contract"], 1, timeout=1)
        got = delivery.message
        assert (got.body, got.content_type, got.content_encoding) == (
            b"\x00\xffbinary",
            "application/x-custom",
            "binary",
        )
        assert got.headers == {"task": "add", "nested": {"retries": [1, 2]}}
        assert got.properties["correlation_id"] == "abc"
        assert got.properties["reply_to"] == "replies"
        assert delivery.queue == "contract"
        assert delivery.delivery_count == 1
        assert not delivery.redelivered

    def test_messages_of_equal_priority_come_in_publish_order(
        self, transport: TransportFactory
    ) -> None:
        broker = transport()
        for index in range(5):
            broker.publish(message(f"m{index}"), Queue("contract"))
        assert drain(broker, ["contract"], limit=2) == ["m0", "m1", "m2", "m3", "m4"]

    def test_higher_priority_is_served_first(self, transport: TransportFactory) -> None:
        broker = transport()
        _require(broker, "priorities")
        for body, priority in [("low", 0), ("mid1", 5), ("high", 9), ("mid2", 5), ("none", None)]:
            broker.publish(message(body, priority), Queue("contract"))
        assert drain(broker, ["contract"]) == ["high", "mid1", "mid2", "low", "none"]

    def test_earlier_queues_in_the_list_are_served_first(self, transport: TransportFactory) -> None:
        broker = transport()
        broker.publish(message("b1"), Queue("b"))
        broker.publish(message("a1"), Queue("a"))
        broker.publish(message("b2"), Queue("b"))
        assert bodies(broker.fetch(["a", "b"], 10, timeout=1)) == ["a1", "b1", "b2"]

    def test_fetch_returns_at_most_limit_messages(self, transport: TransportFactory) -> None:
        broker = transport()
        broker.publish_many([(message(f"m{i}"), Queue("contract"), None) for i in range(5)])
        assert len(broker.fetch(["contract"], 3, timeout=1)) == 3
        assert len(broker.fetch(["contract"], 10, timeout=1)) == 2

    def test_fetch_from_empty_queue_returns_nothing_after_the_timeout(
        self, transport: TransportFactory
    ) -> None:
        broker = transport()
        started = time.monotonic()
        assert broker.fetch(["contract"], 1, timeout=0.3) == []
        assert 0.25 <= time.monotonic() - started < 1.5

    def test_waiting_fetch_returns_soon_after_a_publish(self, transport: TransportFactory) -> None:
        consumer, producer = transport(), transport()
        timer = threading.Timer(0.2, producer.publish, (message("late"), Queue("contract")))
        started = time.monotonic()
        timer.start()
        try:
            assert bodies(consumer.fetch(["contract"], 1, timeout=5)) == ["late"]
        finally:
            timer.join()
        assert time.monotonic() - started < 1.5

    def test_acked_message_is_gone(self, transport: TransportFactory) -> None:
        broker = transport()
        broker.publish(message("once"), Queue("contract"))
        [delivery] = broker.fetch(["contract"], 1, timeout=1)
        broker.ack(delivery)
        assert broker.size("contract") == 0
        assert broker.fetch(["contract"], 1, timeout=0.05) == []

    def test_ack_many_settles_every_delivery_and_spares_the_others(
        self, transport: TransportFactory
    ) -> None:
        broker = transport()
        for body in ("a", "b", "c"):
            broker.publish(message(body), Queue("contract"))
        deliveries = broker.fetch(["contract"], 3, timeout=1)
        assert len(deliveries) == 3
        broker.ack_many(deliveries[:2])
        broker.ack_many([])
        broker.release(deliveries[2])
        assert bodies(broker.fetch(["contract"], 3, timeout=1)) == bodies(deliveries[2:])
        assert broker.fetch(["contract"], 1, timeout=0.05) == []

    def test_released_message_comes_back_without_counting_a_delivery(
        self, transport: TransportFactory
    ) -> None:
        broker = transport()
        broker.publish(message("m"), Queue("contract"))
        [first] = broker.fetch(["contract"], 1, timeout=1)
        broker.release(first)
        [again] = broker.fetch(["contract"], 1, timeout=1)
        assert bodies([again]) == ["m"]
        assert again.delivery_count == 1

    def test_requeued_message_comes_back_with_its_delivery_counted(
        self, transport: TransportFactory
    ) -> None:
        broker = transport()
        broker.publish(message("m"), Queue("contract"))
        [first] = broker.fetch(["contract"], 1, timeout=1)
        broker.requeue(first)
        [again] = broker.fetch(["contract"], 1, timeout=1)
        assert bodies([again]) == ["m"]
        assert again.delivery_count == 2
        assert again.redelivered

    def test_requeue_with_not_before_delays_the_message(self, transport: TransportFactory) -> None:
        broker = transport()
        _require(broker, "delayed_delivery")
        broker.publish(message("m"), Queue("contract"))
        [first] = broker.fetch(["contract"], 1, timeout=1)
        broker.requeue(first, not_before=time.time() + 0.3)
        assert broker.fetch(["contract"], 1, timeout=0) == []
        assert bodies(broker.fetch(["contract"], 1, timeout=2)) == ["m"]

    def test_lease_expiry_redelivers_message(self, transport: TransportFactory) -> None:
        broker = transport(visibility_timeout=SHORT_LEASE)
        _require(broker, "leases")
        broker.publish(message("m"), Queue("contract"))
        assert len(broker.fetch(["contract"], 1, timeout=1)) == 1
        assert broker.fetch(["contract"], 1, timeout=0) == []
        time.sleep(SHORT_LEASE + 0.1)
        [again] = broker.fetch(["contract"], 1, timeout=2)
        assert bodies([again]) == ["m"]
        assert again.delivery_count == 2

    def test_extended_lease_outlives_the_visibility_timeout(
        self, transport: TransportFactory
    ) -> None:
        broker = transport(visibility_timeout=SHORT_LEASE)
        _require(broker, "leases")
        broker.publish(message("m"), Queue("contract"))
        [delivery] = broker.fetch(["contract"], 1, timeout=1)
        for _ in range(4):
            time.sleep(SHORT_LEASE / 2)
            broker.extend([delivery], SHORT_LEASE)
        assert broker.fetch(["contract"], 1, timeout=0) == []
        broker.ack(delivery)
        assert broker.size("contract") == 0

    def test_delayed_message_is_invisible_until_due(self, transport: TransportFactory) -> None:
        broker = transport()
        _require(broker, "delayed_delivery")
        due = time.time() + 0.3
        broker.publish(message("later"), Queue("contract"), not_before=due)
        broker.publish(message("now"), Queue("contract"))
        assert bodies(broker.fetch(["contract"], 10, timeout=0)) == ["now"]
        assert broker.size("contract") == 1
        assert bodies(broker.fetch(["contract"], 10, timeout=2)) == ["later"]
        assert time.time() >= due - 0.01

    def test_purge_counts_delayed_messages_and_leaves_leased_ones(
        self, transport: TransportFactory
    ) -> None:
        broker = transport()
        broker.publish_many([(message(f"m{i}"), Queue("contract"), None) for i in range(3)])
        if broker.capabilities.delayed_delivery:
            broker.publish(message("later"), Queue("contract"), not_before=time.time() + 60)
        expected = 3 if broker.capabilities.delayed_delivery else 2
        [leased] = broker.fetch(["contract"], 1, timeout=1)
        assert broker.purge("contract") == expected
        assert broker.size("contract") == 0
        broker.ack(leased)
        assert broker.fetch(["contract"], 1, timeout=0.05) == []

    def test_size_counts_waiting_and_delayed_but_not_leased(
        self, transport: TransportFactory
    ) -> None:
        broker = transport()
        broker.publish_many([(message(f"m{i}"), Queue("contract"), None) for i in range(3)])
        broker.fetch(["contract"], 1, timeout=1)
        assert broker.size("contract") == 2
        if broker.capabilities.delayed_delivery:
            broker.publish(message("later"), Queue("contract"), not_before=time.time() + 60)
            assert broker.size("contract") == 3
        assert broker.size("other") == 0

    def test_dead_letter_moves_message_with_reason(self, transport: TransportFactory) -> None:
        broker = transport()
        broker.publish(message("bad", task="add"), Queue("contract"))
        [delivery] = broker.fetch(["contract"], 1, timeout=1)
        broker.dead_letter(delivery, Queue("contract.dead"), "undecodable")
        assert broker.size("contract") == 0
        [dead] = broker.fetch(["contract.dead"], 1, timeout=1)
        assert bodies([dead]) == ["bad"]
        assert dead.message.headers[DEAD_LETTER_REASON_HEADER] == "undecodable"
        assert dead.message.headers[ORIGINAL_QUEUE_HEADER] == "contract"
        assert dead.message.headers["task"] == "add"
        assert broker.fetch(["contract"], 1, timeout=0.05) == []

    def test_publish_many_stores_every_message(self, transport: TransportFactory) -> None:
        broker = transport()
        broker.publish_many(
            [(message(f"a{i}"), Queue("a"), None) for i in range(3)]
            + [(message(f"b{i}"), Queue("b"), None) for i in range(2)]
        )
        assert (broker.size("a"), broker.size("b")) == (3, 2)
        assert drain(broker, ["a", "b"]) == ["a0", "a1", "a2", "b0", "b1"]

    def test_concurrent_fetches_never_share_a_message(self, transport: TransportFactory) -> None:
        producer = transport()
        expected = [f"m{i}" for i in range(500)]
        producer.publish_many([(message(body), Queue("contract"), None) for body in expected])
        # Two transports, each shared by two threads: both kinds of sharing are legal.
        consumers = [transport(), transport()]
        received: list[str] = []

        def consume(consumer: Transport) -> None:
            # list.extend is atomic under the GIL, so threads can share ``received``.
            received.extend(drain(consumer, ["contract"], work=0.001))

        threads = [threading.Thread(target=consume, args=(consumers[i % 2],)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(received) == sorted(expected)

    def test_two_processes_never_get_the_same_message(self, transport: TransportFactory) -> None:
        producer = transport()
        _require(producer, "shared_between_processes")
        expected = [f"m{i}" for i in range(300)]
        producer.publish_many([(message(body), Queue("contract"), None) for body in expected])
        context = multiprocessing.get_context("spawn")
        # The barrier makes both consumers start together, so they really compete.
        start, results = context.Barrier(2, timeout=60), context.Queue()
        processes = [
            context.Process(
                target=_consume_in_process,
                args=(type(producer), producer.url, dict(producer.options), start, results),
            )
            for _ in range(2)
        ]
        for process in processes:
            process.start()
        received = [results.get(timeout=60) for _ in processes]
        for process in processes:
            process.join(timeout=10)
        assert sorted(received[0] + received[1]) == sorted(expected)

    # -- fanout (capabilities.fanout) --------------------------------------------------

    def test_broadcast_reaches_every_subscription(self, transport: TransportFactory) -> None:
        broker = transport()
        _require(broker, "fanout")
        first, second = (
            transport().subscribe("contract.fanout"),
            broker.subscribe("contract.fanout"),
        )
        broker.broadcast("contract.fanout", message("hello"))
        for subscription in (first, second):
            [received] = subscription.get(timeout=5)
            assert received.body == b"hello"
            subscription.close()

    def test_subscription_sees_only_what_was_broadcast_after_it_opened(
        self, transport: TransportFactory
    ) -> None:
        broker = transport()
        _require(broker, "fanout")
        broker.broadcast("contract.fanout", message("before"))
        subscription = broker.subscribe("contract.fanout")
        broker.broadcast("contract.fanout", message("after"))
        assert [m.body for m in subscription.get(timeout=5)] == [b"after"]
        subscription.close()

    def test_each_broadcast_is_received_once_in_order(self, transport: TransportFactory) -> None:
        broker = transport()
        _require(broker, "fanout")
        subscription = broker.subscribe("contract.fanout")
        for body in ("a", "b", "c"):
            broker.broadcast("contract.fanout", message(body))
        received: list[bytes] = []
        while len(received) < 3:
            batch = subscription.get(timeout=5)
            assert batch, f"only {received} arrived"
            received += [m.body for m in batch]
        assert received == [b"a", b"b", b"c"]
        assert subscription.get(timeout=0.05) == []
        subscription.close()

    def test_exchanges_are_separate(self, transport: TransportFactory) -> None:
        broker = transport()
        _require(broker, "fanout")
        subscription = broker.subscribe("contract.one")
        broker.broadcast("contract.two", message("elsewhere"))
        broker.broadcast("contract.one", message("here"))
        assert [m.body for m in subscription.get(timeout=5)] == [b"here"]
        subscription.close()

    def test_closed_subscription_receives_nothing(self, transport: TransportFactory) -> None:
        broker = transport()
        _require(broker, "fanout")
        subscription = broker.subscribe("contract.fanout")
        subscription.close()
        broker.broadcast("contract.fanout", message("late"))
        assert subscription.get(timeout=0.05) == []

    def test_broadcast_does_not_touch_queues(self, transport: TransportFactory) -> None:
        broker = transport()
        _require(broker, "fanout")
        broker.broadcast("contract", message("fanout only"))
        assert broker.size("contract") == 0
