"""The ``memory://`` result backend: an in-process key-value store for tests.

Every :class:`MemoryBackend` created for the same URL in a process shares one store
(``memory://other`` is a separate one), so an app and a worker running in threads see
the same results. Waiting is native: :meth:`MemoryBackend.wait_for_change` wakes as
soon as the key is written.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, final

from tq.backend import BackendCapabilities, ResultBackend
from tq.errors import BackendError


@dataclass(slots=True)
class _Item:
    value: bytes
    expires_at: float | None  # time.monotonic() deadline

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now


@final
class _Store:
    """The shared state of one ``memory://`` URL; methods expect ``cond`` held."""

    def __init__(self) -> None:
        self.cond = threading.Condition(threading.Lock())
        self.items: dict[str, _Item] = {}
        # Bumped on every write to a key, so a waiter can tell its key was written
        # even when the new value equals the old one.
        self.versions: dict[str, int] = {}

    def get(self, key: str) -> bytes | None:
        item = self.items.get(key)
        if item is None or item.expired(time.monotonic()):
            return None
        return item.value

    def put(self, key: str, value: bytes, expires: float | None) -> None:
        expires_at = time.monotonic() + expires if expires is not None else None
        self.items[key] = _Item(value, expires_at)
        self.touch(key)

    def touch(self, key: str) -> None:
        self.versions[key] = self.versions.get(key, 0) + 1
        self.cond.notify_all()


_stores: dict[str, _Store] = {}
_stores_lock = threading.Lock()


def _store_for(url: str) -> _Store:
    key = url.partition("://")[2].strip("/")
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = _Store()
        return store


def reset_memory_backends() -> None:
    """Forget every ``memory://`` result store in this process (test fixtures call this)."""
    with _stores_lock:
        _stores.clear()


class MemoryBackend(ResultBackend):
    """A thread-safe in-process result backend with expiry and native waiting.

    Args:
        url: ``memory://`` or ``memory://<name>`` for a separate store.
        options: not used.
    """

    capabilities: ClassVar[BackendCapabilities] = BackendCapabilities(
        native_wait=True,
        atomic_incr=True,
        shared_between_processes=False,
        persistent=False,
    )

    def __init__(self, url: str = "memory://", options: Mapping[str, Any] | None = None) -> None:
        super().__init__(url, options)
        self._store = _store_for(url)

    def get(self, key: str) -> bytes | None:
        """The value at ``key``, or ``None`` if absent or expired."""
        with self._store.cond:
            return self._store.get(key)

    def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        """Values for ``keys`` read under one lock, so they are consistent."""
        with self._store.cond:
            return [self._store.get(key) for key in keys]

    def set(self, key: str, value: bytes, expires: float | None = None) -> None:
        """Store ``value`` at ``key`` and wake waiters on it."""
        with self._store.cond:
            self._store.put(key, bytes(value), expires)

    def delete(self, key: str) -> None:
        """Remove ``key`` if present."""
        store = self._store
        with store.cond:
            if store.items.pop(key, None) is not None:
                store.touch(key)

    def incr(self, key: str, amount: int = 1, expires: float | None = None) -> int:
        """Add ``amount`` to the integer at ``key``; a new ``expires`` replaces the old one."""
        store = self._store
        with store.cond:
            now = time.monotonic()
            item = store.items.get(key)
            live = item if item is not None and not item.expired(now) else None
            try:
                value = int(live.value if live is not None else b"0") + amount
            except ValueError as exc:
                raise BackendError(f"cannot increment {key!r}: it is not an integer") from exc
            # Without a new ``expires`` the counter keeps its expiry, as Redis INCRBY does.
            expires_at = live.expires_at if live is not None else None
            if expires is not None:
                expires_at = now + expires
            store.items[key] = _Item(str(value).encode("ascii"), expires_at)
            store.touch(key)
            return value

    def chord_part(self, key: str, index: int, value: bytes, expires: float | None = None) -> int:
        """Record part ``index`` under one lock; a part recorded again is not counted twice."""
        store = self._store
        with store.cond:
            part = f"{key}.{index}"
            new = store.get(part) is None
            store.put(part, bytes(value), expires)
            count = int(store.get(f"{key}.n") or b"0") + int(new)
            store.put(f"{key}.n", str(count).encode("ascii"), expires)
            return count

    def wait_for_change(self, key: str, timeout: float) -> None:
        """Block until ``key`` is written or deleted, or ``timeout`` seconds pass."""
        store = self._store
        deadline = time.monotonic() + max(0.0, timeout)
        with store.cond:
            seen = store.versions.get(key, 0)
            while store.versions.get(key, 0) == seen:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                store.cond.wait(remaining)

    def cleanup(self) -> int:
        """Drop expired keys now; return how many were dropped."""
        store = self._store
        with store.cond:
            now = time.monotonic()
            expired = [key for key, item in store.items.items() if item.expired(now)]
            for key in expired:
                del store.items[key]
            return len(expired)
