"""Wake-ups for idle workers, so a message published to an empty queue is fetched at once.

Redis has no blocking pop that also records a lease, so an idle worker polls. Between
polls it listens on its queues' wake channels (:meth:`KeyLayout.wake_channel`), where a
tq publisher announces a message that found its list empty; the next poll then happens
as soon as the announcement arrives instead of after the pause. Announcements are a
shortcut, never the only way a message is found: messages published by Celery, moved
from the delayed set or put back by an expired lease are still found by polling, and
if the subscription fails the worker just sleeps between polls as before.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from typing import final

import redis
from redis.client import PubSub

from tq_transport_redis.connection import await_confirmations, explain

logger = logging.getLogger("tq.transport.redis")

# How long a worker waits for Redis to confirm its subscription before falling back.
_CONFIRM_TIMEOUT = 2.0


@final
class WakeListener:
    """One worker's subscription to the wake channels of the queues it fetches from.

    Used by one fetching thread only. The subscription stays open while the worker
    lives, so an announcement made while the worker was busy is still waiting on the
    socket, and only costs one extra poll.
    """

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._pubsub: PubSub | None = None
        self._channels: tuple[str, ...] = ()

    def wait(self, channels: Sequence[str], timeout: float) -> None:
        """Return after an announcement on ``channels``, or after ``timeout`` seconds.

        Returns at once after (re)subscribing, because a message published before the
        subscription took effect was not announced to this worker: the caller polls.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        try:
            if self._pubsub is None or self._channels != tuple(channels):
                self._subscribe(tuple(channels))
                return
            pubsub = self._pubsub
            while (remaining := deadline - time.monotonic()) > 0:
                reply = pubsub.get_message(timeout=remaining)
                if reply is not None and reply["type"] == "message":
                    while pubsub.get_message(timeout=0.0) is not None:
                        pass  # several announcements: one poll serves them all
                    return
        except (redis.RedisError, OSError, ValueError) as exc:  # ValueError: closed socket
            reason = explain(exc) if isinstance(exc, redis.RedisError) else str(exc)
            logger.debug("Wake-up subscription lost (%s); polling instead.", reason)
            self.close()
            time.sleep(max(0.0, deadline - time.monotonic()))

    def _subscribe(self, channels: tuple[str, ...]) -> None:
        self.close()
        pubsub: PubSub = self._client.pubsub(ignore_subscribe_messages=False)  # type: ignore[no-untyped-call]
        self._pubsub = pubsub
        pubsub.subscribe(*channels)
        await_confirmations(pubsub, "subscribe", len(channels), _CONFIRM_TIMEOUT)
        self._channels = channels

    def close(self) -> None:
        """Unsubscribe; the next :meth:`wait` subscribes again."""
        pubsub, self._pubsub, self._channels = self._pubsub, None, ()
        if pubsub is not None:
            with contextlib.suppress(redis.RedisError):
                pubsub.close()
