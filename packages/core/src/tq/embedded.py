"""Helpers for stores kept in local files, shared by the SQLite transport and backend.

They live in the core because plugins depend on ``tq-core`` alone: two plugins that
need the same stdlib-only helper share it from here rather than each keeping a copy.
"""

from __future__ import annotations

import os
import threading
from typing import final

from tq.errors import ImproperlyConfigured


def file_path(url: str, default_filename: str) -> str:
    """The absolute file path a ``scheme://`` URL for a local file names.

    ``scheme://`` is ``default_filename`` in the current directory, ``scheme:///rel.db``
    is relative to it and ``scheme:////abs.db`` is absolute. Query strings are ignored:
    options come from the transport or backend options.
    """
    scheme, _, rest = url.partition("://")
    rest = rest.partition("?")[0]
    if rest and not rest.startswith("/"):
        raise ImproperlyConfigured(
            f"URL {url!r} names a host; write {scheme}:///relative.db or {scheme}:////abs.db"
        )
    path = rest[1:] or default_filename
    if path == ":memory:":
        raise ImproperlyConfigured(
            f"{scheme}:///:memory: cannot be shared between connections; use memory:// instead"
        )
    return os.path.abspath(path)


@final
class Wakeup:
    """Wakes waiters in this process when this process writes to a file they watch.

    Writes from other processes are found by polling; ``generation`` lets a waiter
    notice a write that happened between its read and its wait.
    """

    def __init__(self) -> None:
        self.cond = threading.Condition(threading.Lock())
        self.generation = 0

    def notify(self) -> None:
        with self.cond:
            self.generation += 1
            self.cond.notify_all()

    def wait(self, seen: int, timeout: float) -> None:
        with self.cond:
            if self.generation == seen:
                self.cond.wait(timeout)


_wakeups: dict[str, Wakeup] = {}
_wakeups_lock = threading.Lock()


def wakeup_for(key: str) -> Wakeup:
    """The process-wide :class:`Wakeup` for ``key`` (a store kind and a file path)."""
    with _wakeups_lock:
        wakeup = _wakeups.get(key)
        if wakeup is None:
            wakeup = _wakeups[key] = Wakeup()
        return wakeup
