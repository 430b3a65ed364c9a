"""The interface every result backend plugin implements.

A result backend is a key-value store for encoded result records: the core
(:mod:`tq.resultstore`) builds the records (Celery's result meta), chooses the keys,
serializes and waits, so a plugin only stores bytes. The model is Celery's
``KeyValueStoreBackend``.

Every method must be safe to call from several threads at once.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, final


@final
@dataclass(frozen=True, slots=True)
class BackendCapabilities:
    """What a backend can do.

    ``native_wait``: :meth:`ResultBackend.wait_for_change` blocks until the key is
    written (pub/sub or a condition), rather than sleeping an interval.
    ``atomic_incr``: :meth:`ResultBackend.incr` is atomic across processes, so chords
    can count completions in the backend.
    """

    native_wait: bool = False
    atomic_incr: bool = True
    shared_between_processes: bool = True
    persistent: bool = True


class ResultBackend(ABC):
    """Base class of result backend plugins.

    Args:
        url: the ``result_backend`` URL whose scheme picked this backend.
        options: ``result_backend_transport_options``.
    """

    capabilities: ClassVar[BackendCapabilities] = BackendCapabilities()

    def __init__(self, url: str, options: Mapping[str, Any] | None = None) -> None:
        self.url = url
        self.options: Mapping[str, Any] = dict(options or {})

    @abstractmethod
    def get(self, key: str) -> bytes | None:
        """The value stored at ``key``, or ``None`` if absent or expired."""

    def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        """Values for many keys, ``None`` where absent; override to use one round trip."""
        return [self.get(key) for key in keys]

    @abstractmethod
    def set(self, key: str, value: bytes, expires: float | None = None) -> None:
        """Store ``value`` at ``key``, removed after ``expires`` seconds if given."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; absent keys are not an error."""

    @abstractmethod
    def incr(self, key: str, amount: int = 1, expires: float | None = None) -> int:
        """Add ``amount`` to the integer at ``key`` (0 if absent) and return the new value."""

    def chord_part(self, key: str, index: int, value: bytes, expires: float | None = None) -> int:
        """Record ``value`` as part ``index`` of the chord counted at ``key``; return a count.

        Recording the same ``index`` again (a redelivered header task) replaces its
        value. The count returned must never be lower than the number of distinct parts
        recorded; it may be higher, because the core reads every part
        (:meth:`chord_parts`) before firing a chord. Override to count each index once,
        atomically (a Redis hash, a table row), which keeps that read to one per chord.

        The default works on every backend: the part is stored under its own key, then
        the key ``{key}.n`` is incremented, so a redelivery is counted again (never less).
        """
        self.set(f"{key}.{index}", value, expires)
        return self.incr(f"{key}.n", 1, expires)

    def chord_parts(self, key: str, size: int) -> list[bytes | None]:
        """The values of parts ``0 .. size-1`` recorded at ``key``, ``None`` where missing."""
        return self.mget([f"{key}.{index}" for index in range(size)])

    def get_and_watch(self, key: str) -> bytes | None:
        """The value at ``key``, like :meth:`get`, read as the start of a wait for it.

        A backend with ``capabilities.native_wait`` may start watching ``key`` here, so
        that the :meth:`wait_for_change` calls that follow return on any write made after
        this read. The default is :meth:`get`.
        """
        return self.get(key)

    def wait_for_change(self, key: str, timeout: float) -> bytes | None:
        """Return when ``key`` may have been written, or after ``timeout`` seconds.

        The default sleeps for ``timeout``: the caller polls with a short interval.
        Backends with ``capabilities.native_wait`` return as soon as ``key`` is set.

        Returns:
            A value ``key`` held since the caller began waiting for it, when the backend
            has one at hand (a notification carrying the value written, or a read made
            once subscribed): the caller takes it for ``key``'s record and spares a
            read. ``None`` otherwise, and the caller reads ``key`` itself.
        """
        time.sleep(timeout)
        return None

    def cleanup(self) -> int:
        """Remove expired entries now; return how many. Stores that expire by themselves return 0."""
        return 0

    def close(self) -> None:  # noqa: B027 - nothing to release by default
        """Release connections and files; the backend is not used afterwards."""
