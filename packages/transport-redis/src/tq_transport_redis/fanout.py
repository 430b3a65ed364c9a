"""Fanout subscriptions on Redis pub/sub, on kombu's channel names."""

from __future__ import annotations

import threading
import time
from typing import Any, final

import redis
from redis.client import PubSub

from tq.errors import TransportError
from tq.message import Message
from tq.transport import Subscription
from tq_transport_redis.connection import await_confirmations, explain


@final
class RedisSubscription(Subscription):
    """Messages published on channels matching ``patterns`` since this was created.

    Pub/sub keeps nothing: a subscriber receives what is published while it listens,
    which is what fanout promises. redis-py subscribes again after a reconnect.
    """

    def __init__(self, client: redis.Redis, patterns: list[str]) -> None:
        self._lock = threading.Lock()
        self._pubsub: PubSub = client.pubsub(ignore_subscribe_messages=False)  # type: ignore[no-untyped-call]
        try:
            self._pubsub.psubscribe(*patterns)
            await_confirmations(self._pubsub, "psubscribe", len(patterns))
        except redis.RedisError as exc:
            self._pubsub.close()
            raise TransportError(f"Redis broker: cannot subscribe: {explain(exc)}") from exc

    def get(self, timeout: float) -> list[Message]:
        """Messages received since the last call, waiting up to ``timeout`` for the first."""
        deadline = time.monotonic() + max(0.0, timeout)
        received: list[Message] = []
        with self._lock:
            try:
                while True:
                    remaining = deadline - time.monotonic() if not received else 0.0
                    reply = self._pubsub.get_message(timeout=max(0.0, remaining))
                    if reply is None:
                        if received or time.monotonic() >= deadline:
                            return received
                        continue
                    self._collect(reply, received)
            except redis.RedisError as exc:
                raise TransportError(
                    f"Redis broker: cannot receive broadcasts: {explain(exc)}"
                ) from exc

    @staticmethod
    def _collect(reply: dict[str, Any], received: list[Message]) -> None:
        if reply["type"] in ("pmessage", "message"):
            received.append(Message.loads(reply["data"]))

    def close(self) -> None:
        with self._lock:
            self._pubsub.close()
