"""The SQLite broker passes the transport contract and survives what a file must survive."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tq.errors import ImproperlyConfigured, TransportError
from tq.message import Message
from tq.transport import Queue
from tq_testing.contracts import TransportContract, TransportFactory, transport_factory
from tq_transport_sqlite.transport import SQLiteTransport, database_path


class TestSQLiteTransport(TransportContract):
    @pytest.fixture
    def transport(self, tmp_path: Path) -> Iterator[TransportFactory]:
        with transport_factory(SQLiteTransport, f"sqlite:///{tmp_path}/broker.db") as make:
            yield make


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/broker.db"


def _message(body: str) -> Message:
    return Message(body.encode(), "application/json")


def _run_consumer(url: str, code: str) -> subprocess.Popen[str]:
    """Start a Python process that opens the broker as ``transport`` and runs ``code``."""
    script = "from tq_transport_sqlite.transport import SQLiteTransport\n" + textwrap.dedent(code)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "TQ_URL": url}
    return subprocess.Popen(
        [sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True
    )


def test_messages_survive_closing_and_reopening_the_file(url: str) -> None:
    first = SQLiteTransport(url)
    first.publish(_message("durable"), Queue("q"))
    first.close()
    second = SQLiteTransport(url)
    [delivery] = second.fetch(["q"], 1, timeout=1)
    assert delivery.message.body == b"durable"
    second.close()


def test_bare_url_uses_tq_sqlite3_in_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    transport = SQLiteTransport("sqlite://")
    assert transport.path == str(tmp_path / "tq.sqlite3")
    assert (tmp_path / "tq.sqlite3").exists()
    transport.close()


def test_urls_name_relative_and_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert database_path("sqlite:///data/b.db") == str(tmp_path / "data" / "b.db")
    assert database_path("sqlite:////srv/b.db") == "/srv/b.db"
    assert database_path("sqlite:///") == str(tmp_path / "tq.sqlite3")


@pytest.mark.parametrize("bad", ["sqlite://host/b.db", "sqlite:///:memory:"])
def test_urls_that_cannot_name_a_shared_file_are_rejected(bad: str) -> None:
    with pytest.raises(ImproperlyConfigured):
        database_path(bad)


def test_database_uses_write_ahead_logging(url: str) -> None:
    transport = SQLiteTransport(url)
    with sqlite3.connect(transport.path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    transport.close()


def test_unopenable_file_raises_transport_error(tmp_path: Path) -> None:
    with pytest.raises(TransportError) as caught:
        SQLiteTransport(f"sqlite:///{tmp_path}/missing-dir/b.db")
    assert isinstance(caught.value.__cause__, sqlite3.Error)


def test_sigkilled_consumers_leased_message_comes_back_after_visibility_timeout(
    url: str,
) -> None:
    producer = SQLiteTransport(url)
    producer.publish(_message("task"), Queue("q"))
    consumer = _run_consumer(
        url,
        """
        import os, time
        transport = SQLiteTransport(os.environ["TQ_URL"], {"visibility_timeout": 0.5})
        transport.fetch(["q"], 1, timeout=5)
        print("leased", flush=True)
        time.sleep(60)
        """,
    )
    assert consumer.stdout is not None
    assert consumer.stdout.readline().strip() == "leased"
    consumer.send_signal(signal.SIGKILL)
    consumer.wait()
    assert producer.fetch(["q"], 1, timeout=0) == []
    [delivery] = producer.fetch(["q"], 1, timeout=3)
    assert delivery.message.body == b"task"
    assert delivery.delivery_count == 2
    producer.close()


def test_consumer_sigkilled_while_fetching_loses_and_duplicates_nothing(url: str) -> None:
    producer = SQLiteTransport(url, {"visibility_timeout": 0.3})
    expected = sorted(f"m{i}" for i in range(200))
    producer.publish_many([(_message(body), Queue("q"), None) for body in expected])
    consumer = _run_consumer(
        url,
        """
        import os
        transport = SQLiteTransport(os.environ["TQ_URL"], {"visibility_timeout": 0.3})
        print("started", flush=True)
        while True:
            for delivery in transport.fetch(["q"], 7, timeout=1):
                transport.release(delivery)
        """,
    )
    assert consumer.stdout is not None
    assert consumer.stdout.readline().strip() == "started"
    time.sleep(0.3)  # let it lease and release many batches before it dies
    consumer.send_signal(signal.SIGKILL)
    consumer.wait()
    received: list[str] = []
    while deliveries := producer.fetch(["q"], 50, timeout=1):
        for delivery in deliveries:
            producer.ack(delivery)
        received.extend(delivery.message.body.decode() for delivery in deliveries)
    assert sorted(received) == expected
    with sqlite3.connect(producer.path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    producer.close()


def test_transport_works_again_after_close_in_the_same_thread(url: str) -> None:
    transport = SQLiteTransport(url)
    transport.close()
    transport.publish(_message("after close"), Queue("q"))
    assert transport.size("q") == 1
    transport.close()
