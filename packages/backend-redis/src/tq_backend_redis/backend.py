"""Result records in Redis, published when stored so that waiting clients need not poll.

Celery's Redis backend is the model: a record is written with ``SET`` (with ``PX`` when
it expires) and ``PUBLISH``-ed on a channel named like its key, both in one
``MULTI``/``EXEC`` pipeline. A client waiting for a result subscribes to that channel.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, cast, final

import redis
from redis.client import PubSub

from tq.backend import BackendCapabilities, ResultBackend
from tq.errors import BackendError
from tq_transport_redis.connection import await_confirmations, connect, explain


@contextmanager
def redis_errors(what: str) -> Iterator[None]:
    """Turn redis-py's errors into :class:`BackendError`, keeping the cause."""
    try:
        yield
    except redis.RedisError as exc:
        raise BackendError(f"Redis result backend: cannot {what}: {explain(exc)}") from exc


@final
class _Watch:
    """One thread's subscription to the channel of the key it waits for.

    The subscription stays open between calls for the same key, so a write that happens
    while the caller reads the key is still waiting on the socket at its next call.
    """

    def __init__(self, client: redis.Redis) -> None:
        self.pubsub: PubSub = client.pubsub(ignore_subscribe_messages=False)  # type: ignore[no-untyped-call]
        self.channel: str | None = None

    def follow(self, channel: str) -> None:
        """Subscribe to ``channel`` (only) and return once Redis confirmed it."""
        if self.channel is not None:
            self.pubsub.unsubscribe(self.channel)  # type: ignore[no-untyped-call]
        self.channel = None
        self.pubsub.subscribe(channel)
        await_confirmations(self.pubsub, "subscribe", 1)
        self.channel = channel

    def wait(self, timeout: float) -> None:
        """Return after a message on the channel arrives, or after ``timeout`` seconds."""
        deadline = time.monotonic() + max(0.0, timeout)
        while (remaining := deadline - time.monotonic()) > 0:
            reply = self.pubsub.get_message(timeout=remaining)
            if reply is not None and reply["type"] == "message":
                return

    def close(self) -> None:
        self.pubsub.close()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisBackend(ResultBackend):
    """Results in Redis; ``wait_for_change`` blocks on pub/sub.

    Args:
        url: ``redis://``, ``rediss://`` (TLS) or ``sentinel://`` (with ``master_name``).
        options: ``result_backend_transport_options``: ``global_keyprefix`` and the
            connection options (``max_connections``, ``socket_timeout``, TLS options).
    """

    capabilities: ClassVar[BackendCapabilities] = BackendCapabilities(
        native_wait=True,
        atomic_incr=True,
        shared_between_processes=True,
        persistent=True,
    )

    def __init__(self, url: str = "redis://", options: Mapping[str, Any] | None = None) -> None:
        super().__init__(url, options)
        self.prefix = str(self.options.get("global_keyprefix", ""))
        self.client = connect(url, self.options)
        self._local = threading.local()
        self._watches: list[_Watch] = []
        self._watches_lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with redis_errors(f"read {key}"):
            value = self.client.get(self.prefix + key)
        return cast("bytes | None", value)

    def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        with redis_errors(f"read {len(keys)} results"):
            values = self.client.mget([self.prefix + key for key in keys])
        return cast("list[bytes | None]", values)

    def set(self, key: str, value: bytes, expires: float | None = None) -> None:
        """``SET`` (expiring after ``expires`` seconds) and ``PUBLISH`` in one transaction."""
        name = self.prefix + key
        pipe = self.client.pipeline(transaction=True)
        pipe.set(name, value, px=_milliseconds(expires))
        pipe.publish(name, value)
        with redis_errors(f"store {key}"):
            pipe.execute()

    def delete(self, key: str) -> None:
        with redis_errors(f"delete {key}"):
            self.client.delete(self.prefix + key)

    def incr(self, key: str, amount: int = 1, expires: float | None = None) -> int:
        """``INCRBY``, and (re)set the expiry in the same transaction."""
        name = self.prefix + key
        pipe = self.client.pipeline(transaction=True)
        pipe.incrby(name, amount)
        if expires is not None:
            pipe.pexpire(name, _milliseconds(expires) or 1)
        with redis_errors(f"increment {key}"):
            return int(pipe.execute()[0])

    def chord_part(self, key: str, index: int, value: bytes, expires: float | None = None) -> int:
        """``HSET`` part ``index`` in the hash at ``key`` and count the parts, atomically.

        A redelivered header task overwrites its own field, so each part counts once.
        """
        name = self.prefix + key
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(name, str(index), value)
        pipe.hlen(name)
        if expires is not None:
            pipe.pexpire(name, _milliseconds(expires) or 1)
        with redis_errors(f"record part {index} of chord {key}"):
            return int(pipe.execute()[1])

    def chord_parts(self, key: str, size: int) -> list[bytes | None]:
        """Parts ``0 .. size-1`` of the chord at ``key`` in one ``HMGET``."""
        if size <= 0:
            return []
        with redis_errors(f"read the parts of chord {key}"):
            values = self.client.hmget(self.prefix + key, [str(i) for i in range(size)])
        return cast("list[bytes | None]", values)

    def wait_for_change(self, key: str, timeout: float) -> None:
        """Block on the key's channel until it is written, or for ``timeout`` seconds."""
        channel = self.prefix + key
        watch = self._watch()
        try:
            if watch.channel != channel:
                watch.follow(channel)
                # Subscribed first, then read: a write between the caller's read and
                # the subscription is seen here rather than missed.
                if self.client.exists(channel):
                    return
            watch.wait(timeout)
        except redis.RedisError as exc:
            self._forget_watch(watch)
            raise BackendError(
                f"Redis result backend: cannot wait for {key}: {explain(exc)}"
            ) from exc

    def _watch(self) -> _Watch:
        watch: _Watch | None = getattr(self._local, "watch", None)
        if watch is None:
            watch = self._local.watch = _Watch(self.client)
            with self._watches_lock:
                self._watches.append(watch)
        return watch

    def _forget_watch(self, watch: _Watch) -> None:
        self._local.watch = None
        with self._watches_lock:
            if watch in self._watches:
                self._watches.remove(watch)
        watch.close()

    def close(self) -> None:
        """Close every subscription and pooled connection."""
        with self._watches_lock:
            watches, self._watches = self._watches, []
        for watch in watches:
            watch.close()
        self._local = threading.local()
        self.client.close()
        self.client.connection_pool.disconnect()


def _milliseconds(seconds: float | None) -> int | None:
    return None if seconds is None else max(1, int(seconds * 1000))
