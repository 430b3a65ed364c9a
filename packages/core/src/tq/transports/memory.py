"""The ``memory://`` transport: an in-process broker for tests and single-process apps.

Every :class:`MemoryTransport` created for the same URL in a process shares one
broker, so an app publishing in one thread and a worker consuming in another see the
same queues; ``memory://`` and ``memory://other`` are separate brokers. Nothing is
shared with other processes and nothing survives the process.

Messages are stored as their JSON envelope, like the real transports store them, so a
test that passes here does not depend on objects a real broker could not carry.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, final

from tq.message import Message
from tq.transport import (
    DEAD_LETTER_REASON_HEADER,
    ORIGINAL_QUEUE_HEADER,
    Capabilities,
    Delivery,
    Queue,
    Subscription,
    Transport,
)

# A wait never sleeps longer than this, so a clock jump cannot stall a fetch for long.
_MAX_WAIT: Final = 3600.0


@dataclass(slots=True, eq=False)
class _Entry:
    """One stored message; ``seq`` fixes its place among messages of equal priority."""

    envelope: str
    queue: str
    priority: int
    seq: int
    delivery_count: int = 0


@dataclass(slots=True, eq=False)
class _Lease:
    entry: _Entry
    until: float  # time.monotonic() deadline


@dataclass(slots=True, eq=False)
class _QueueState:
    # Heaps: ``ready`` orders by (-priority, seq); ``delayed`` by (due unix time, seq).
    ready: list[tuple[int, int, _Entry]] = field(default_factory=list)
    delayed: list[tuple[float, int, _Entry]] = field(default_factory=list)

    def waiting(self) -> int:
        return len(self.ready) + len(self.delayed)


@final
class _Broker:
    """The shared state of one ``memory://`` URL; every method expects ``cond`` held."""

    def __init__(self) -> None:
        self.cond = threading.Condition(threading.Lock())
        self.queues: dict[str, _QueueState] = {}
        self.leases: dict[str, _Lease] = {}
        # Subscriptions a caller forgot to close must not keep receiving forever.
        self.subscribers: dict[str, weakref.WeakSet[_MemorySubscription]] = {}
        self._seq = itertools.count()
        self._tags = itertools.count(1)

    def queue(self, name: str) -> _QueueState:
        state = self.queues.get(name)
        if state is None:
            state = self.queues[name] = _QueueState()
        return state

    def put(self, message: Message, queue: str, not_before: float | None) -> None:
        entry = _Entry(message.dumps(), queue, message.priority, next(self._seq))
        self.schedule(entry, not_before)

    def schedule(self, entry: _Entry, not_before: float | None) -> None:
        state = self.queue(entry.queue)
        if not_before is not None and not_before > time.time():
            heapq.heappush(state.delayed, (not_before, entry.seq, entry))
        else:
            heapq.heappush(state.ready, (-entry.priority, entry.seq, entry))

    def refresh(self) -> None:
        """Return expired leases and due delayed messages to their ready heaps."""
        now = time.monotonic()
        expired = [tag for tag, lease in self.leases.items() if lease.until <= now]
        for tag in expired:
            self.schedule(self.leases.pop(tag).entry, None)
        wall = time.time()
        for state in self.queues.values():
            while state.delayed and state.delayed[0][0] <= wall:
                _, _, entry = heapq.heappop(state.delayed)
                heapq.heappush(state.ready, (-entry.priority, entry.seq, entry))

    def lease(self, queues: Sequence[str], limit: int, seconds: float) -> list[Delivery]:
        self.refresh()
        until = time.monotonic() + seconds
        deliveries: list[Delivery] = []
        for name in queues:
            ready = self.queue(name).ready
            while ready and len(deliveries) < limit:
                _, _, entry = heapq.heappop(ready)
                deliveries.append(self._hand_out(entry, until))
        return deliveries

    def _hand_out(self, entry: _Entry, until: float) -> Delivery:
        entry.delivery_count += 1
        tag = str(next(self._tags))
        self.leases[tag] = _Lease(entry, until)
        return Delivery(Message.loads(entry.envelope), entry.queue, tag, entry.delivery_count)

    def settle(self, delivery: Delivery) -> _Entry | None:
        """End the lease of ``delivery``; ``None`` if it already expired and was re-leased."""
        lease = self.leases.pop(delivery.tag, None)
        return lease.entry if lease is not None else None

    def seconds_to_next_event(self, queues: Sequence[str]) -> float:
        """How long until a lease expires or a delayed message on ``queues`` is due."""
        now, wall = time.monotonic(), time.time()
        waits = [lease.until - now for lease in self.leases.values()]
        for name in queues:
            delayed = self.queue(name).delayed
            if delayed:
                waits.append(delayed[0][0] - wall)
        return max(0.0, min(waits, default=_MAX_WAIT))


@final
class _MemorySubscription(Subscription):
    """Messages broadcast on one exchange of a ``memory://`` broker since it opened."""

    def __init__(self, broker: _Broker, exchange: str) -> None:
        self._broker = broker
        self._exchange = exchange
        self._pending: collections.deque[str] = collections.deque()

    def deliver(self, envelope: str) -> None:
        """Called with the broker's lock held."""
        self._pending.append(envelope)

    def get(self, timeout: float) -> list[Message]:
        """Everything broadcast since the last call, waiting up to ``timeout`` for one."""
        deadline = time.monotonic() + max(0.0, timeout)
        broker = self._broker
        with broker.cond:
            while not self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                broker.cond.wait(remaining)
            envelopes = list(self._pending)
            self._pending.clear()
        return [Message.loads(envelope) for envelope in envelopes]

    def close(self) -> None:
        with self._broker.cond:
            self._broker.subscribers.get(self._exchange, weakref.WeakSet()).discard(self)
            self._pending.clear()


_brokers: dict[str, _Broker] = {}
_brokers_lock = threading.Lock()


def _broker_for(url: str) -> _Broker:
    # ``memory://``, ``memory:///`` and ``memory://x/`` name the same broker as their
    # path without slashes, so small spelling differences do not split a test's queues.
    key = url.partition("://")[2].strip("/")
    with _brokers_lock:
        broker = _brokers.get(key)
        if broker is None:
            broker = _brokers[key] = _Broker()
        return broker


def reset_memory_brokers() -> None:
    """Forget every ``memory://`` broker in this process (test fixtures call this).

    Transports created before the reset keep the old, now private, state.
    """
    with _brokers_lock:
        _brokers.clear()


class MemoryTransport(Transport):
    """An in-process transport with leases, priorities and delayed delivery.

    Args:
        url: ``memory://`` or ``memory://<name>`` for a separate broker.
        options: ``visibility_timeout`` (seconds) is the only option understood.
    """

    capabilities: ClassVar[Capabilities] = Capabilities(
        delayed_delivery=True,
        priorities=True,
        leases=True,
        fanout=True,
        shared_between_processes=False,
        persistent=False,
    )

    def __init__(self, url: str = "memory://", options: Mapping[str, Any] | None = None) -> None:
        super().__init__(url, options)
        self._broker = _broker_for(url)

    def publish(self, message: Message, queue: Queue, not_before: float | None = None) -> None:
        """Store ``message`` on ``queue`` and wake any waiting fetch."""
        broker = self._broker
        with broker.cond:
            broker.put(message, queue.name, not_before)
            broker.cond.notify_all()

    def publish_many(self, items: Sequence[tuple[Message, Queue, float | None]]) -> None:
        """Store many messages under one lock, so consumers see all of them at once."""
        broker = self._broker
        with broker.cond:
            for message, queue, not_before in items:
                broker.put(message, queue.name, not_before)
            broker.cond.notify_all()

    def fetch(self, queues: Sequence[str], limit: int, timeout: float) -> list[Delivery]:
        """Lease up to ``limit`` (at least one) messages, waiting up to ``timeout`` seconds."""
        limit = max(1, limit)
        deadline = time.monotonic() + max(0.0, timeout)
        broker = self._broker
        with broker.cond:
            while True:
                deliveries = broker.lease(queues, limit, self.visibility_timeout)
                remaining = deadline - time.monotonic()
                if deliveries or remaining <= 0:
                    return deliveries
                broker.cond.wait(min(remaining, broker.seconds_to_next_event(queues)))

    def ack(self, delivery: Delivery) -> None:
        """Remove the message for good; settling a lost lease does nothing."""
        with self._broker.cond:
            self._broker.settle(delivery)

    def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        """Remove every message under one lock."""
        with self._broker.cond:
            for delivery in deliveries:
                self._broker.settle(delivery)

    def requeue(self, delivery: Delivery, not_before: float | None = None) -> None:
        """Put the message back in its place in the queue; this delivery stays counted."""
        broker = self._broker
        with broker.cond:
            entry = broker.settle(delivery)
            if entry is not None:
                broker.schedule(entry, not_before)
                broker.cond.notify_all()

    def release(self, delivery: Delivery) -> None:
        """Put the message back in its place without counting this delivery."""
        broker = self._broker
        with broker.cond:
            entry = broker.settle(delivery)
            if entry is not None:
                entry.delivery_count -= 1
                broker.schedule(entry, None)
                broker.cond.notify_all()

    def dead_letter(self, delivery: Delivery, queue: Queue, reason: str) -> None:
        """Move the message to ``queue`` with the reason and its original queue in headers."""
        broker = self._broker
        with broker.cond:
            if broker.settle(delivery) is None:
                return
            message = delivery.message
            headers = {**message.headers, DEAD_LETTER_REASON_HEADER: reason}
            headers.setdefault(ORIGINAL_QUEUE_HEADER, delivery.queue)
            copy = Message(
                message.body,
                message.content_type,
                message.content_encoding,
                headers,
                dict(message.properties),
            )
            broker.put(copy, queue.name, None)
            broker.cond.notify_all()

    def extend(self, deliveries: Sequence[Delivery], seconds: float) -> None:
        """Renew the leases still held by ``deliveries`` for ``seconds`` from now."""
        broker = self._broker
        with broker.cond:
            until = time.monotonic() + seconds
            for delivery in deliveries:
                lease = broker.leases.get(delivery.tag)
                if lease is not None:
                    lease.until = until

    def broadcast(self, exchange: str, message: Message) -> None:
        """Hand ``message`` to every subscription open on ``exchange`` now."""
        broker = self._broker
        envelope = message.dumps()
        with broker.cond:
            for subscription in list(broker.subscribers.get(exchange, ())):
                subscription.deliver(envelope)
            broker.cond.notify_all()

    def subscribe(self, exchange: str) -> Subscription:
        """Receive what is broadcast on ``exchange`` from now until the subscription closes."""
        broker = self._broker
        subscription = _MemorySubscription(broker, exchange)
        with broker.cond:
            broker.subscribers.setdefault(exchange, weakref.WeakSet()).add(subscription)
        return subscription

    def purge(self, queue: str) -> int:
        """Drop the waiting and delayed messages of ``queue``; leased ones stay."""
        broker = self._broker
        with broker.cond:
            broker.refresh()
            state = broker.queue(queue)
            count = state.waiting()
            state.ready.clear()
            state.delayed.clear()
            return count

    def size(self, queue: str) -> int:
        """Waiting plus delayed messages on ``queue``, leased ones excluded."""
        broker = self._broker
        with broker.cond:
            broker.refresh()
            return broker.queue(queue).waiting()
