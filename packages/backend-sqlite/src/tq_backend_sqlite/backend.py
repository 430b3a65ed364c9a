"""A result backend in one SQLite file, shared by the processes of one machine.

Results are rows of ``tq_results`` (key, value, expires_at). By default the file is the
broker's ``tq.sqlite3``, so an unconfigured app keeps everything in one place. Expired
rows are invisible at once and deleted by :meth:`SQLiteBackend.cleanup`.

SQLite cannot notify other processes, so :meth:`SQLiteBackend.wait_for_change` polls
the key with a short, growing pause; writes made in this process wake it at once.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any, ClassVar, Final

from tq.backend import BackendCapabilities, ResultBackend
from tq.embedded import file_path, wakeup_for
from tq.errors import BackendError

DEFAULT_FILENAME: Final = "tq.sqlite3"
DEFAULT_POLLING_INTERVAL: Final = 0.05
DEFAULT_BUSY_TIMEOUT: Final = 30.0

# A waiting client checks after 1 ms, then doubles the pause up to polling_interval.
_FIRST_PAUSE: Final = 0.001
# SQLite limits the number of ``?`` in one statement; mget asks in chunks below it.
_MGET_CHUNK: Final = 500

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS tq_results (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    expires_at REAL
);
CREATE INDEX IF NOT EXISTS tq_results_expiry ON tq_results (expires_at)
    WHERE expires_at IS NOT NULL;
"""
_LIVE: Final = "(expires_at IS NULL OR expires_at > ?)"
_UPSERT: Final = (
    "INSERT INTO tq_results (key, value, expires_at) VALUES (?, ?, ?)"
    " ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at"
)


def database_path(url: str) -> str:
    """The absolute file path a ``sqlite://`` URL names (``tq.sqlite3`` by default)."""
    return file_path(url, DEFAULT_FILENAME)


class SQLiteBackend(ResultBackend):
    """Results in a SQLite file, safe for many threads and local processes.

    Args:
        url: ``sqlite://``, ``sqlite:///relative/path.db`` or ``sqlite:////abs/path.db``.
        options: ``polling_interval`` (longest pause while waiting, default 0.05 s) and
            ``busy_timeout`` (seconds to wait for another writer, default 30).
    """

    capabilities: ClassVar[BackendCapabilities] = BackendCapabilities(
        native_wait=False,
        atomic_incr=True,
        shared_between_processes=True,
        persistent=True,
    )

    def __init__(self, url: str = "sqlite://", options: Mapping[str, Any] | None = None) -> None:
        super().__init__(url, options)
        self.path = database_path(url)
        self.polling_interval = float(
            self.options.get("polling_interval", DEFAULT_POLLING_INTERVAL)
        )
        self.busy_timeout = float(self.options.get("busy_timeout", DEFAULT_BUSY_TIMEOUT))
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._wakeup = wakeup_for(f"sqlite-backend:{self.path}")
        self._create_schema()

    # -- connections -----------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use (and again after a fork)."""
        pid = os.getpid()
        if getattr(self._local, "pid", None) != pid:
            self._local.connection = self._open()
            self._local.pid = pid
        connection: sqlite3.Connection = self._local.connection
        return connection

    def _open(self) -> sqlite3.Connection:
        try:
            connection = sqlite3.connect(
                self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
            connection.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            raise BackendError(f"cannot open SQLite result backend {self.path}: {exc}") from exc
        with self._connections_lock:
            self._connections.append(connection)
        return connection

    def _create_schema(self) -> None:
        connection = self._connection()
        try:
            # The broker may have switched the shared file to WAL already.
            if connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                connection.execute("PRAGMA journal_mode=WAL")
            connection.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise BackendError(f"cannot set up SQLite result backend {self.path}: {exc}") from exc

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction holding SQLite's write lock from its first statement."""
        connection = self._connection()
        try:
            connection.execute("BEGIN IMMEDIATE")
            yield connection
            connection.execute("COMMIT")
        except sqlite3.Error as exc:
            _rollback(connection)
            raise BackendError(f"SQLite result backend {self.path} failed: {exc}") from exc
        except BaseException:
            _rollback(connection)
            raise

    def _execute(self, sql: str, parameters: Sequence[Any]) -> sqlite3.Cursor:
        try:
            return self._connection().execute(sql, parameters)
        except sqlite3.Error as exc:
            raise BackendError(f"SQLite result backend {self.path} failed: {exc}") from exc

    # -- the key-value store ---------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        """The value at ``key``, or ``None`` if absent or expired."""
        row = self._execute(
            f"SELECT value FROM tq_results WHERE key = ? AND {_LIVE}", (key, time.time())
        ).fetchone()
        return bytes(row[0]) if row is not None else None

    def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        """Values for ``keys`` in order, read with one query per 500 keys."""
        found: dict[str, bytes] = {}
        now = time.time()
        for start in range(0, len(keys), _MGET_CHUNK):
            chunk = list(keys[start : start + _MGET_CHUNK])
            marks = ", ".join("?" * len(chunk))
            rows = self._execute(
                f"SELECT key, value FROM tq_results WHERE key IN ({marks}) AND {_LIVE}",
                (*chunk, now),
            )
            found.update((key, bytes(value)) for key, value in rows.fetchall())
        return [found.get(key) for key in keys]

    def set(self, key: str, value: bytes, expires: float | None = None) -> None:
        """Store ``value`` at ``key``, replacing any previous value and expiry."""
        expires_at = time.time() + expires if expires is not None else None
        self._execute(_UPSERT, (key, bytes(value), expires_at))
        self._wakeup.notify()

    def delete(self, key: str) -> None:
        """Remove ``key`` if present."""
        self._execute("DELETE FROM tq_results WHERE key = ?", (key,))
        self._wakeup.notify()

    def incr(self, key: str, amount: int = 1, expires: float | None = None) -> int:
        """Add ``amount`` to the integer at ``key`` in one transaction, across processes.

        Without ``expires`` the counter keeps the expiry it had, as Redis ``INCRBY`` does.
        """
        now = time.time()
        with self._transaction() as connection:
            row = connection.execute(
                f"SELECT value, expires_at FROM tq_results WHERE key = ? AND {_LIVE}", (key, now)
            ).fetchone()
            current, expires_at = (bytes(row[0]), row[1]) if row is not None else (b"0", None)
            try:
                value = int(current) + amount
            except ValueError as exc:
                raise BackendError(f"cannot increment {key!r}: it is not an integer") from exc
            if expires is not None:
                expires_at = now + expires
            connection.execute(_UPSERT, (key, str(value).encode("ascii"), expires_at))
        self._wakeup.notify()
        return value

    def chord_part(self, key: str, index: int, value: bytes, expires: float | None = None) -> int:
        """Record part ``index`` and count it in one transaction, each index only once."""
        now = time.time()
        expires_at = now + expires if expires is not None else None
        part, counter = f"{key}.{index}", f"{key}.n"
        with self._transaction() as connection:
            seen = connection.execute(
                f"SELECT 1 FROM tq_results WHERE key = ? AND {_LIVE}", (part, now)
            ).fetchone()
            connection.execute(_UPSERT, (part, bytes(value), expires_at))
            row = connection.execute(
                f"SELECT value FROM tq_results WHERE key = ? AND {_LIVE}", (counter, now)
            ).fetchone()
            count = int(bytes(row[0])) if row is not None else 0
            count += 0 if seen else 1
            connection.execute(_UPSERT, (counter, str(count).encode("ascii"), expires_at))
        self._wakeup.notify()
        return count

    def wait_for_change(self, key: str, timeout: float) -> None:
        """Return once the row at ``key`` differs from when the call began, or at ``timeout``.

        Writes from this process wake the wait at once; other processes' writes are
        seen at the next poll, at most ``polling_interval`` later.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        seen = self._wakeup.generation
        before = self._row(key)
        pause = _FIRST_PAUSE
        while (remaining := deadline - time.monotonic()) > 0:
            self._wakeup.wait(seen, min(pause, remaining))
            seen = self._wakeup.generation
            if self._row(key) != before:
                return
            pause = min(pause * 2, self.polling_interval)

    def _row(self, key: str) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self._execute(
            "SELECT value, expires_at FROM tq_results WHERE key = ?", (key,)
        ).fetchone()
        return row

    def cleanup(self) -> int:
        """Delete expired rows now; return how many were deleted."""
        with self._transaction() as connection:
            cursor = connection.execute(
                "DELETE FROM tq_results WHERE expires_at IS NOT NULL AND expires_at <= ?",
                (time.time(),),
            )
            return cursor.rowcount

    def close(self) -> None:
        """Close every connection this backend opened, in any thread."""
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()
        self._local = threading.local()


def _rollback(connection: sqlite3.Connection) -> None:
    # A failed COMMIT leaves the transaction open; the next BEGIN would fail on it.
    if connection.in_transaction:
        with suppress(sqlite3.Error):
            connection.rollback()
