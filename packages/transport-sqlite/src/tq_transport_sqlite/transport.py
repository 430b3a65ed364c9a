"""A durable broker in one SQLite file, shared by the processes of one machine.

Every message is a row of ``tq_messages``. A row is *visible* when ``visible_at`` has
passed: ``visible_at`` is 0 for a message ready now, the ``not_before`` time of a
delayed one, and the lease deadline of a leased one (whose ``lease_tag`` names the
fetch that holds it). An expired lease therefore needs no sweeper: the row is simply
visible again, and the next fetch counts one more delivery.

Fetching leases rows inside ``BEGIN IMMEDIATE``, which takes SQLite's single write
lock, so two consumers (threads or processes) can never lease the same row. WAL mode
lets readers run during that write, and SQLite's journal makes a consumer killed
mid-transaction harmless: its transaction is rolled back when the file is next opened.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any, ClassVar, Final, final

from tq.embedded import file_path, wakeup_for
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

DEFAULT_FILENAME: Final = "tq.sqlite3"
DEFAULT_POLLING_INTERVAL: Final = 0.05
DEFAULT_BUSY_TIMEOUT: Final = 30.0

# An idle fetch polls after 1 ms, then doubles the pause up to ``polling_interval``: a
# consumer that just missed a message from another process finds it quickly, and an
# idle one costs a few queries a second.
_FIRST_PAUSE: Final = 0.001

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS tq_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    visible_at REAL NOT NULL DEFAULT 0,
    lease_tag TEXT,
    delivery_count INTEGER NOT NULL DEFAULT 0,
    envelope TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tq_messages_fetch ON tq_messages (queue, priority DESC, id);
CREATE TABLE IF NOT EXISTS tq_fanout (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    exchange TEXT NOT NULL,
    created REAL NOT NULL,
    envelope TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tq_fanout_exchange ON tq_fanout (exchange, id);
"""

# Broadcast rows are kept this long for subscribers that poll, then deleted: a
# subscriber that does not poll for longer misses them (fanout is at most once).
DEFAULT_FANOUT_TTL: Final = 60.0
# Subscribers (every worker's mailbox, every event monitor) poll; a tenth of a second
# keeps remote control snappy without a busy file.
DEFAULT_FANOUT_POLLING_INTERVAL: Final = 0.1

_SELECT_VISIBLE: Final = (
    "SELECT id, delivery_count, envelope FROM tq_messages"
    " WHERE queue = ? AND visible_at <= ? ORDER BY priority DESC, id LIMIT ?"
)
_INSERT: Final = (
    "INSERT INTO tq_messages (queue, priority, visible_at, envelope) VALUES (?, ?, ?, ?)"
)
_WAITING: Final = "queue = ? AND (lease_tag IS NULL OR visible_at <= ?)"


def database_path(url: str) -> str:
    """The absolute file path a ``sqlite://`` URL names (``tq.sqlite3`` by default)."""
    return file_path(url, DEFAULT_FILENAME)


class SQLiteTransport(Transport):
    """Durable queues in a SQLite file, safe for many threads and local processes.

    Args:
        url: ``sqlite://``, ``sqlite:///relative/path.db`` or ``sqlite:////abs/path.db``.
        options: ``visibility_timeout`` (seconds, default 120), ``polling_interval``
            (longest pause between polls of an idle queue, default 0.05 s) and
            ``busy_timeout`` (seconds to wait for another writer, default 30);
            for fanout, ``fanout_ttl`` (seconds a broadcast is kept, default 60) and
            ``fanout_polling_interval`` (longest pause of an idle subscriber, 0.1 s).
    """

    capabilities: ClassVar[Capabilities] = Capabilities(
        delayed_delivery=True,
        priorities=True,
        leases=True,
        fanout=True,
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
        self.fanout_ttl = float(self.options.get("fanout_ttl", DEFAULT_FANOUT_TTL))
        self.fanout_polling_interval = float(
            self.options.get("fanout_polling_interval", DEFAULT_FANOUT_POLLING_INTERVAL)
        )
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._wakeup = wakeup_for(f"sqlite-transport:{self.path}")
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
            # Autocommit mode: transactions are begun explicitly, IMMEDIATE where they write.
            connection = sqlite3.connect(
                self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
            connection.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            raise TransportError(f"cannot open SQLite broker {self.path}: {exc}") from exc
        with self._connections_lock:
            self._connections.append(connection)
        return connection

    def _create_schema(self) -> None:
        connection = self._connection()
        try:
            # WAL is a property of the file; switching needs a moment alone with it, so
            # only the first opener of a new file does it.
            if connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                connection.execute("PRAGMA journal_mode=WAL")
            connection.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise TransportError(f"cannot set up SQLite broker {self.path}: {exc}") from exc

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
            raise TransportError(f"SQLite broker {self.path} failed: {exc}") from exc
        except BaseException:
            _rollback(connection)
            raise

    def _query(self, sql: str, parameters: Sequence[Any]) -> list[Any]:
        try:
            return self._connection().execute(sql, parameters).fetchall()
        except sqlite3.Error as exc:
            raise TransportError(f"SQLite broker {self.path} failed: {exc}") from exc

    # -- producing -------------------------------------------------------------------

    def publish(self, message: Message, queue: Queue, not_before: float | None = None) -> None:
        """Insert ``message`` on ``queue``; invisible until ``not_before`` if given."""
        self.publish_many([(message, queue, not_before)])

    def publish_many(self, items: Sequence[tuple[Message, Queue, float | None]]) -> None:
        """Insert every message in one transaction (one fsync at most)."""
        rows = [
            (queue.name, message.priority, not_before or 0.0, message.dumps())
            for message, queue, not_before in items
        ]
        with self._transaction() as connection:
            connection.executemany(_INSERT, rows)
        self._wakeup.notify()

    # -- consuming -------------------------------------------------------------------

    def fetch(self, queues: Sequence[str], limit: int, timeout: float) -> list[Delivery]:
        """Lease up to ``limit`` (at least one) visible messages, polling up to ``timeout``."""
        deadline = time.monotonic() + max(0.0, timeout)
        pause = _FIRST_PAUSE
        while True:
            seen = self._wakeup.generation
            deliveries = self._lease(queues, max(1, limit))
            remaining = deadline - time.monotonic()
            if deliveries or remaining <= 0:
                return deliveries
            self._wakeup.wait(seen, min(pause, remaining))
            pause = min(pause * 2, self.polling_interval)

    def _lease(self, queues: Sequence[str], limit: int) -> list[Delivery]:
        now = time.time()
        # Idle consumers poll often; a plain read keeps them off the write lock.
        if not any(self._query(_SELECT_VISIBLE, (name, now, 1)) for name in queues):
            return []
        tag = uuid.uuid4().hex
        deliveries: list[Delivery] = []
        with self._transaction() as connection:
            for name in queues:
                rows = connection.execute(_SELECT_VISIBLE, (name, now, limit - len(deliveries)))
                deliveries.extend(_delivery(row, name, tag) for row in rows.fetchall())
                if len(deliveries) >= limit:
                    break
            connection.executemany(
                "UPDATE tq_messages SET lease_tag = ?, visible_at = ?,"
                " delivery_count = delivery_count + 1 WHERE id = ?",
                [(tag, now + self.visibility_timeout, _row_id(d)) for d in deliveries],
            )
        return deliveries

    def ack(self, delivery: Delivery) -> None:
        """Delete the message; a lease that was lost to another consumer is left alone."""
        self._settle("DELETE FROM tq_messages", (), delivery)

    def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        """Delete every message in one transaction."""
        rows = [_split_tag(delivery) for delivery in deliveries]
        with self._transaction() as connection:
            connection.executemany("DELETE FROM tq_messages WHERE id = ? AND lease_tag = ?", rows)

    def requeue(self, delivery: Delivery, not_before: float | None = None) -> None:
        """Make the message visible again (after ``not_before``); this delivery counts."""
        self._settle(
            "UPDATE tq_messages SET lease_tag = NULL, visible_at = ?",
            (not_before or 0.0,),
            delivery,
        )
        self._wakeup.notify()

    def release(self, delivery: Delivery) -> None:
        """Make the message visible again as if this delivery never happened."""
        self._settle(
            "UPDATE tq_messages SET lease_tag = NULL, visible_at = 0,"
            " delivery_count = delivery_count - 1",
            (),
            delivery,
        )
        self._wakeup.notify()

    def dead_letter(self, delivery: Delivery, queue: Queue, reason: str) -> None:
        """Move the row to ``queue`` in one statement, so it is never lost nor duplicated."""
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
        self._settle(
            "UPDATE tq_messages SET queue = ?, envelope = ?, lease_tag = NULL, visible_at = 0,"
            " delivery_count = 0",
            (queue.name, moved.dumps()),
            delivery,
        )
        self._wakeup.notify()

    def _settle(self, statement: str, parameters: tuple[Any, ...], delivery: Delivery) -> None:
        with self._transaction() as connection:
            connection.execute(
                f"{statement} WHERE id = ? AND lease_tag = ?", (*parameters, *_split_tag(delivery))
            )

    def extend(self, deliveries: Sequence[Delivery], seconds: float) -> None:
        """Push the lease deadline of each delivery still held to ``seconds`` from now."""
        until = time.time() + seconds
        rows = [(until, *_split_tag(delivery)) for delivery in deliveries]
        with self._transaction() as connection:
            connection.executemany(
                "UPDATE tq_messages SET visible_at = ? WHERE id = ? AND lease_tag = ?", rows
            )

    # -- fanout ----------------------------------------------------------------------

    def broadcast(self, exchange: str, message: Message) -> None:
        """Append ``message`` to the exchange's log, dropping rows past ``fanout_ttl``."""
        now = time.time()
        with self._transaction() as connection:
            connection.execute(
                "INSERT INTO tq_fanout (exchange, created, envelope) VALUES (?, ?, ?)",
                (exchange, now, message.dumps()),
            )
            connection.execute("DELETE FROM tq_fanout WHERE created < ?", (now - self.fanout_ttl,))
        self._wakeup.notify()

    def subscribe(self, exchange: str) -> Subscription:
        """Read the exchange's log from its current end onwards."""
        [(last,)] = self._query(
            "SELECT COALESCE(MAX(id), 0) FROM tq_fanout WHERE exchange = ?", (exchange,)
        )
        return _SQLiteSubscription(self, exchange, int(last))

    def read_fanout(self, exchange: str, after: int) -> list[tuple[int, str]]:
        """Rows of ``exchange`` broadcast after row ``after``, oldest first."""
        rows = self._query(
            "SELECT id, envelope FROM tq_fanout WHERE exchange = ? AND id > ? ORDER BY id",
            (exchange, after),
        )
        return [(int(row_id), str(envelope)) for row_id, envelope in rows]

    def wait_for_wakeup(self, seen: int, timeout: float) -> None:
        """Sleep up to ``timeout`` unless this process wrote since ``seen``."""
        self._wakeup.wait(seen, timeout)

    @property
    def wakeup_generation(self) -> int:
        return self._wakeup.generation

    # -- management ------------------------------------------------------------------

    def purge(self, queue: str) -> int:
        """Delete the waiting and delayed messages of ``queue``; leased ones stay."""
        with self._transaction() as connection:
            cursor = connection.execute(
                f"DELETE FROM tq_messages WHERE {_WAITING}", (queue, time.time())
            )
            return cursor.rowcount

    def size(self, queue: str) -> int:
        """Waiting plus delayed messages on ``queue``, leased ones excluded."""
        [(count,)] = self._query(
            f"SELECT COUNT(*) FROM tq_messages WHERE {_WAITING}", (queue, time.time())
        )
        return int(count)

    def close(self) -> None:
        """Close every connection this transport opened, in any thread."""
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()
        self._local = threading.local()


@final
class _SQLiteSubscription(Subscription):
    """A cursor on one exchange's log: row ids only grow, since SQLite serialises writes."""

    def __init__(self, transport: SQLiteTransport, exchange: str, after: int) -> None:
        self._transport = transport
        self._exchange = exchange
        self._after = after
        self._closed = False

    def get(self, timeout: float) -> list[Message]:
        """New broadcasts, polling (1 ms doubling to ``polling_interval``) up to ``timeout``."""
        transport = self._transport
        deadline = time.monotonic() + max(0.0, timeout)
        pause = _FIRST_PAUSE
        while not self._closed:
            seen = transport.wakeup_generation
            rows = transport.read_fanout(self._exchange, self._after)
            remaining = deadline - time.monotonic()
            if rows:
                self._after = rows[-1][0]
                return [Message.loads(envelope) for _, envelope in rows]
            if remaining <= 0:
                break
            transport.wait_for_wakeup(seen, min(pause, remaining))
            pause = min(pause * 2, transport.fanout_polling_interval)
        return []

    def close(self) -> None:
        self._closed = True


def _delivery(row: tuple[int, int, str], queue: str, lease_tag: str) -> Delivery:
    row_id, delivery_count, envelope = row
    return Delivery(Message.loads(envelope), queue, f"{row_id}:{lease_tag}", delivery_count + 1)


def _split_tag(delivery: Delivery) -> tuple[int, str]:
    row_id, _, lease_tag = delivery.tag.partition(":")
    return int(row_id), lease_tag


def _row_id(delivery: Delivery) -> int:
    return _split_tag(delivery)[0]


def _rollback(connection: sqlite3.Connection) -> None:
    # A failed COMMIT leaves the transaction open; the next BEGIN would fail on it.
    if connection.in_transaction:
        with suppress(sqlite3.Error):
            connection.rollback()
