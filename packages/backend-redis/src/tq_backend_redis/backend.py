"""Result records in Redis, published when stored so that waiting clients need not poll.

Celery's Redis backend is the model: a record is written with ``SET`` (with ``PX`` when
it expires) and ``PUBLISH``-ed on a channel named like its key, both at once (Celery
uses ``MULTI``/``EXEC``; tq one script, which is as atomic and cheaper to call). A client waiting for a result subscribes to that channel,
and takes the record from the message rather than reading the key again.

The client's first read and its subscription travel together: the ``SUBSCRIBE`` is sent,
not awaited, before the ``GET``. A result found is the answer at once; otherwise the
key is read once more after Redis confirmed the subscription, since the first ``GET``
may have run before it. Waiting for a task not yet done thus costs two round trips
before the notification, and reading a stored result one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, Final, cast, final

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


# KEYS: the result's key, which is also its channel. ARGV: the record, its lifetime in
# milliseconds (0: none).
_STORE: Final = """
if ARGV[2] ~= '0' then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('PUBLISH', KEYS[1], ARGV[1])
"""


@final
class _Watch:
    """One thread's subscription to the channel of the key it waits for.

    The subscription stays open between calls for the same key, so a write that happens
    while the caller reads the key is still waiting on the socket at its next call.
    A subscription is sent without waiting for Redis to confirm it; ``confirmed`` says
    whether its confirmation was read.
    """

    def __init__(self, client: redis.Redis) -> None:
        self.pubsub: PubSub = client.pubsub(ignore_subscribe_messages=False)  # type: ignore[no-untyped-call]
        self.channel: str | None = None
        self.confirmed = False

    def follow(self, channel: str) -> None:
        """Subscribe to ``channel`` (only), without waiting for Redis to confirm it."""
        if self.channel is not None:
            if not self.confirmed:
                # One confirmation outstanding at most: reading many stored results
                # would otherwise pile replies up until Redis drops the connection.
                # It has most likely arrived: the read sent after it was answered.
                self.confirm()
            self.pubsub.unsubscribe(self.channel)  # type: ignore[no-untyped-call]
        self.channel, self.confirmed = None, False
        self.pubsub.subscribe(channel)
        self.channel = channel

    def confirm(self) -> None:
        """Return once Redis confirmed the subscription to ``channel``.

        Every write published from then on reaches it. Replies and messages still queued
        ahead of the confirmation, from channels followed before, are dropped.
        """
        await_confirmations(self.pubsub, "subscribe", 1)
        self.confirmed = True

    def wait(self, timeout: float) -> bytes | None:
        """The data of the next message on the channel, or ``None`` after ``timeout`` seconds."""
        deadline = time.monotonic() + max(0.0, timeout)
        while (remaining := deadline - time.monotonic()) > 0:
            reply = self.pubsub.get_message(timeout=remaining)
            # The data is taken for the followed key's record, so a message still
            # queued from a channel followed before must not pass for it.
            if (
                reply is not None
                and reply["type"] == "message"
                and _text(reply["channel"]) == self.channel
            ):
                return cast("bytes", reply["data"])
        return None

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
        self._store = self.client.register_script(_STORE)
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
        """``SET`` (expiring after ``expires`` seconds) and ``PUBLISH`` in one script call.

        A script is atomic as ``MULTI``/``EXEC`` is, and is one command with one reply
        instead of four: every task with a result stores one, so this is the worker's
        most frequent call after the fetch.
        """
        name = self.prefix + key
        with redis_errors(f"store {key}"):
            self._store(keys=[name], args=[value, _milliseconds(expires) or 0])

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

    def get_and_watch(self, key: str) -> bytes | None:
        """``GET``, with the subscription to the key's channel sent alongside.

        A value found is returned at once. Otherwise the key is read again once Redis
        confirmed the subscription, because the first ``GET`` may have run before it;
        then any later write reaches :meth:`wait_for_change` without a read of its own.
        """
        channel = self.prefix + key
        watch = self._watch()
        try:
            if watch.channel != channel:
                watch.follow(channel)
            found = cast("bytes | None", self.client.get(channel))
            if found is None and not watch.confirmed:
                found = self._read_subscribed(watch, channel)
            return found
        except redis.RedisError as exc:
            self._forget_watch(watch)
            raise BackendError(f"Redis result backend: cannot read {key}: {explain(exc)}") from exc

    def wait_for_change(self, key: str, timeout: float) -> bytes | None:
        """Block on the key's channel until it is written, or for ``timeout`` seconds.

        Returns:
            The value written (published with it by :meth:`set`), the value read when
            the subscription to the key was confirmed, or ``None`` after ``timeout``.
        """
        channel = self.prefix + key
        watch = self._watch()
        try:
            if watch.channel != channel:
                watch.follow(channel)
            if not watch.confirmed:
                found = self._read_subscribed(watch, channel)
                if found is not None:
                    return found
            return watch.wait(timeout)
        except redis.RedisError as exc:
            self._forget_watch(watch)
            raise BackendError(
                f"Redis result backend: cannot wait for {key}: {explain(exc)}"
            ) from exc

    def _read_subscribed(self, watch: _Watch, channel: str) -> bytes | None:
        # Subscribed first, then read: a write between the caller's last read and the
        # subscription is seen here rather than missed.
        watch.confirm()
        return cast("bytes | None", self.client.get(channel))

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
