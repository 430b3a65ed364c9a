"""Queues in Redis with kombu's key layout, leases, delayed delivery and atomic batch fetch.

Publishing is kombu's: ``LPUSH`` of the JSON envelope on the queue's list for the
message's priority. Everything else that moves a message is one Lua script
(:mod:`tq_transport_redis.scripts`), so no message is ever only in a client's memory:

* ``fetch`` restores expired leases, moves due delayed messages to their lists, then
  pops up to ``limit`` messages and records a lease for each, in one call. A worker
  killed at any point loses nothing; its leases expire and their messages come back.
* the worker renews leases with ``extend`` while tasks run, so the visibility timeout
  only decides how soon a dead worker's messages return.
* ``release``, ``requeue`` and ``dead_letter`` move a leased message in one step and do
  nothing if the lease had already expired (the message is then queued again anyway).

Redis has no blocking pop that can also record a lease, so an idle ``fetch`` polls,
first after 1 ms and then less often, up to ``polling_interval``; between polls it
listens for the announcement a tq publisher makes when a message finds its list empty
(:mod:`tq_transport_redis.wake`), so an idle worker starts a new task at once.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, Final

import redis

from tq.errors import TransportError
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
from tq_transport_redis import scripts
from tq_transport_redis.connection import connect, database, explain
from tq_transport_redis.fanout import RedisSubscription
from tq_transport_redis.keys import (
    EXACT_PRIORITY_STEPS,
    KOMBU_PRIORITY_STEPS,
    KeyLayout,
    kombu_priority,
    tq_priority,
)
from tq_transport_redis.wake import WakeListener

DEFAULT_POLLING_INTERVAL: Final = 0.05
_FIRST_PAUSE: Final = 0.001
# Expired leases restored per fetch: bounds the script's run time after a mass failure.
_RESTORE_BATCH: Final = 100


@contextmanager
def redis_errors(what: str) -> Iterator[None]:
    """Turn redis-py's errors into :class:`TransportError`, keeping the cause."""
    try:
        yield
    except redis.RedisError as exc:
        raise TransportError(f"Redis broker: cannot {what}: {explain(exc)}") from exc


class RedisTransport(Transport):
    """Queues on a Redis server, shared by every client and worker that connects to it.

    Args:
        url: ``redis://[:password@]host[:port][/db]``, ``rediss://…`` (TLS) or
            ``sentinel://host:port[;sentinel://host:port…][/db]``.
        options: ``broker_transport_options``; see the package README for the list.
    """

    capabilities: ClassVar[Capabilities] = Capabilities(
        delayed_delivery=True,
        priorities=True,
        leases=True,
        fanout=True,
        shared_between_processes=True,
        persistent=True,
    )

    def __init__(self, url: str = "redis://", options: Mapping[str, Any] | None = None) -> None:
        super().__init__(url, options)
        self.celery_compat = bool(self.options.get("celery_compat", False))
        self.polling_interval = float(
            self.options.get("polling_interval", DEFAULT_POLLING_INTERVAL)
        )
        self.client = connect(url, self.options)
        default_steps = KOMBU_PRIORITY_STEPS if self.celery_compat else EXACT_PRIORITY_STEPS
        self.keys = KeyLayout(
            prefix=str(self.options.get("global_keyprefix", "")),
            steps=tuple(sorted(self.options.get("priority_steps", default_steps))),
            db=database(self.client),
        )
        self._fetch = self.client.register_script(scripts.FETCH)
        self._settle_script = self.client.register_script(scripts.SETTLE)
        self._extend = self.client.register_script(scripts.EXTEND)
        self._publish = self.client.register_script(scripts.PUBLISH)
        self._local = threading.local()  # a WakeListener per fetching thread
        self._fetch_keys: dict[tuple[str, ...], list[str]] = {}  # the fetch script's KEYS
        self._listeners: list[WakeListener] = []
        self._declared: set[str] = set()
        self._lock = threading.Lock()

    # -- producing -------------------------------------------------------------------

    def publish(self, message: Message, queue: Queue, not_before: float | None = None) -> None:
        """``LPUSH`` the envelope on the queue's list; delayed ones wait in a sorted set."""
        if not_before is not None and not self._sent_as_celery_eta(message):
            self.publish_many([(message, queue, not_before)])
            return
        key = self.keys.bucket(queue.name, kombu_priority(message.priority))
        with redis_errors("publish"):
            self._publish(
                keys=[key], args=[self._encode(message), self.keys.wake_channel(queue.name)]
            )

    def publish_many(self, items: Sequence[tuple[Message, Queue, float | None]]) -> None:
        """Store every message in one round trip (a pipeline, not a transaction)."""
        pipe = self.client.pipeline(transaction=False)
        woken: set[str] = set()
        for message, queue, not_before in items:
            raw = self._encode(message)
            key = self.keys.bucket(queue.name, kombu_priority(message.priority))
            if not_before is not None and not self._sent_as_celery_eta(message):
                pipe.zadd(self.keys.delayed(queue.name), {json.dumps([key, raw, 0]): not_before})
            else:
                pipe.lpush(key, raw)
                woken.add(queue.name)
        for name in woken:
            pipe.publish(self.keys.wake_channel(name), "")
        with redis_errors("publish"):
            pipe.execute()

    def _sent_as_celery_eta(self, message: Message) -> bool:
        # Celery sends ETA tasks as plain messages with an ``eta`` header and its workers
        # hold them; in a mixed cluster a Celery worker must be able to take them too.
        # A tq worker defers them itself, into the delayed set (requeue with not_before).
        return self.celery_compat and bool(message.headers.get("eta"))

    @staticmethod
    def _encode(message: Message) -> str:
        envelope = message.to_envelope()
        envelope["properties"]["priority"] = kombu_priority(message.priority)
        return json.dumps(envelope, separators=(",", ":"))

    # -- consuming -------------------------------------------------------------------

    def fetch(self, queues: Sequence[str], limit: int, timeout: float) -> list[Delivery]:
        """Lease up to ``limit`` messages, polling up to ``timeout`` for the first."""
        return self.ack_and_fetch((), queues, limit, timeout)

    def ack_and_fetch(
        self, acks: Sequence[Delivery], queues: Sequence[str], limit: int, timeout: float
    ) -> list[Delivery]:
        """Forget the leases of ``acks`` and lease new messages in the same script call."""
        deadline = time.monotonic() + max(0.0, timeout)
        pause = _FIRST_PAUSE
        acked = [delivery.tag for delivery in acks]
        while True:
            deliveries = self._lease(queues, max(1, limit), acked)
            acked = []
            remaining = deadline - time.monotonic()
            if deliveries or remaining <= 0:
                return deliveries
            channels = [self.keys.wake_channel(name) for name in queues]
            self._listener().wait(channels, min(pause, remaining))
            pause = min(pause * 2, self.polling_interval)

    def _lease(self, queues: Sequence[str], limit: int, acked: list[str]) -> list[Delivery]:
        queues = tuple(queues)
        keys = self._fetch_keys.get(queues)
        if keys is None:
            keys = [
                self.keys.leases,
                self.keys.lease_deadlines,
                self.keys.deliveries,
                self.keys.lease_sequence,
            ]
            for name in queues:
                keys.append(self.keys.delayed(name))
                keys.extend(self.keys.buckets(name))
            self._fetch_keys[queues] = keys
        args: list[str | float] = [
            self.visibility_timeout,
            limit,
            len(self.keys.steps),
            len(queues),
            _RESTORE_BATCH,
            *acked,
        ]
        with redis_errors("fetch"):
            entries = self._fetch(keys=keys, args=args)
        return [self._delivery(entry, queues) for entry in entries]

    def _listener(self) -> WakeListener:
        listener: WakeListener | None = getattr(self._local, "listener", None)
        if listener is None:
            listener = self._local.listener = WakeListener(self.client)
            with self._lock:
                self._listeners.append(listener)
        return listener

    @staticmethod
    def _delivery(entry: bytes, queues: Sequence[str]) -> Delivery:
        """A delivery from one entry of the fetch script's reply (``tag\\ncount\\nqueue
        index\\nmessage``)."""
        tag, count, index, raw = entry.split(b"\n", 3)
        message = Message.loads(raw)
        stored = message.properties.get("priority")
        message.properties["priority"] = tq_priority(int(stored)) if stored is not None else 0
        return Delivery(message, queues[int(index)], tag.decode(), int(count))

    def ack(self, delivery: Delivery) -> None:
        """Forget the lease: the message is gone for good."""
        self.ack_many([delivery])

    def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        """Forget every lease in one ``MULTI``/``EXEC`` round trip."""
        if not deliveries:
            return
        tags = [delivery.tag for delivery in deliveries]
        pipe = self.client.pipeline(transaction=True)
        pipe.hdel(self.keys.leases, *tags)
        pipe.zrem(self.keys.lease_deadlines, *tags)
        with redis_errors("acknowledge"):
            pipe.execute()

    def release(self, delivery: Delivery) -> None:
        """Back to the front of its list, as if it had not been delivered."""
        self._settle("release", delivery, self.keys.leases)

    def requeue(self, delivery: Delivery, not_before: float | None = None) -> None:
        """Back to the front of its list, or into the delayed set until ``not_before``."""
        due = "" if not_before is None else repr(float(not_before))
        self._settle("requeue", delivery, self.keys.delayed(delivery.queue), due)

    def dead_letter(self, delivery: Delivery, queue: Queue, reason: str) -> None:
        """Move the message to ``queue`` with the reason in its headers, in one step."""
        message = delivery.message
        headers = {**message.headers, DEAD_LETTER_REASON_HEADER: reason}
        headers.setdefault(ORIGINAL_QUEUE_HEADER, delivery.queue)
        moved = Message(
            message.body,
            message.content_type,
            message.content_encoding,
            headers,
            dict(message.properties),
        )
        target = self.keys.bucket(queue.name, kombu_priority(moved.priority))
        self._settle("dead", delivery, target, self._encode(moved))

    def _settle(self, op: str, delivery: Delivery, target: str, arg: str = "") -> None:
        keys = [self.keys.leases, self.keys.lease_deadlines, self.keys.deliveries, target]
        with redis_errors(f"{op} a message"):
            self._settle_script(keys=keys, args=[op, delivery.tag, arg])

    def extend(self, deliveries: Sequence[Delivery], seconds: float) -> None:
        """Push the deadlines of leases still held to ``seconds`` from now."""
        if not deliveries:
            return
        tags = [delivery.tag for delivery in deliveries]
        with redis_errors("renew leases"):
            self._extend(keys=[self.keys.lease_deadlines], args=[seconds, *tags])

    # -- fanout ----------------------------------------------------------------------

    def broadcast(self, exchange: str, message: Message) -> None:
        """``PUBLISH`` on kombu's channel for ``exchange`` (and the routing key, if any)."""
        info = message.properties.get("delivery_info") or {}
        channel = self.keys.fanout_channel(exchange, str(info.get("routing_key") or ""))
        with redis_errors(f"broadcast on {exchange!r}"):
            self.client.publish(channel, message.dumps())

    def subscribe(self, exchange: str) -> Subscription:
        """Receive what is broadcast on ``exchange`` from the moment this returns."""
        return RedisSubscription(self.client, self.keys.fanout_patterns(exchange))

    # -- management ------------------------------------------------------------------

    def declare(self, queue: Queue) -> None:
        """Record kombu's binding of the queue, so Celery clients can route to it."""
        exchange = queue.exchange or queue.name
        with self._lock:
            if queue.name in self._declared:
                return
        with redis_errors(f"declare {queue.name!r}"):
            self.client.sadd(
                self.keys.binding(exchange),
                self.keys.binding_member(queue.routing_key, queue.name),
            )
        with self._lock:
            self._declared.add(queue.name)

    def purge(self, queue: str) -> int:
        """Delete the waiting and delayed messages of ``queue``; leased ones stay."""
        keys = [*self.keys.buckets(queue), self.keys.delayed(queue)]
        pipe = self.client.pipeline(transaction=True)
        for key in keys[:-1]:
            pipe.llen(key)
        pipe.zcard(keys[-1])
        pipe.delete(*keys)
        with redis_errors(f"purge {queue!r}"):
            counts = pipe.execute()
        return sum(int(n) for n in counts[:-1])

    def size(self, queue: str) -> int:
        """Waiting plus delayed messages on ``queue``, leased ones excluded."""
        pipe = self.client.pipeline(transaction=False)
        for key in self.keys.buckets(queue):
            pipe.llen(key)
        pipe.zcard(self.keys.delayed(queue))
        with redis_errors(f"measure {queue!r}"):
            return sum(int(n) for n in pipe.execute())

    def close(self) -> None:
        """Disconnect every pooled connection."""
        with self._lock:
            listeners, self._listeners = self._listeners, []
        for listener in listeners:
            listener.close()
        self.client.close()
        self.client.connection_pool.disconnect()
