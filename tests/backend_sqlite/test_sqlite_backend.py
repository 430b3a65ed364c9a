"""The SQLite result backend passes the backend contract and shares its file safely."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tq.errors import BackendError
from tq_backend_sqlite.backend import SQLiteBackend
from tq_testing.contracts import BackendContract


class TestSQLiteBackend(BackendContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[SQLiteBackend]:
        backend = SQLiteBackend(f"sqlite:///{tmp_path}/results.db")
        yield backend
        backend.close()


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/results.db"


def _count_in_process(url: str, key: str, times: int) -> None:
    backend = SQLiteBackend(url)
    for _ in range(times):
        backend.incr(key)
    backend.close()


def test_results_survive_closing_and_reopening_the_file(url: str) -> None:
    first = SQLiteBackend(url)
    first.set("tq-task-meta-1", b'{"status": "SUCCESS"}')
    first.close()
    second = SQLiteBackend(url)
    assert second.get("tq-task-meta-1") == b'{"status": "SUCCESS"}'
    second.close()


def test_default_url_shares_tq_sqlite3_with_the_broker_in_its_own_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    backend = SQLiteBackend("sqlite://")
    backend.set("k", b"v")
    assert backend.path == str(tmp_path / "tq.sqlite3")
    with sqlite3.connect(backend.path) as connection:
        assert connection.execute("SELECT key FROM tq_results").fetchall() == [("k",)]
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    backend.close()


def test_cleanup_deletes_expired_rows_and_counts_them(url: str) -> None:
    backend = SQLiteBackend(url)
    backend.set("a", b"1", expires=0.01)
    backend.set("b", b"2", expires=0.01)
    backend.set("c", b"3")
    time.sleep(0.05)
    assert backend.cleanup() == 2
    assert backend.cleanup() == 0
    assert backend.get("c") == b"3"
    backend.close()


def test_incr_of_a_non_integer_value_is_a_backend_error(url: str) -> None:
    backend = SQLiteBackend(url)
    backend.set("k", b"not a number")
    with pytest.raises(BackendError):
        backend.incr("k")
    assert backend.get("k") == b"not a number"
    backend.close()


def test_incr_from_several_processes_adds_up_exactly(url: str) -> None:
    SQLiteBackend(url).close()
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_count_in_process, args=(url, "chord", 100)) for _ in range(2)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
    backend = SQLiteBackend(url)
    assert backend.get("chord") == b"200"
    backend.close()


def test_wait_notices_a_write_from_outside_this_process_at_the_next_poll(url: str) -> None:
    waiter = SQLiteBackend(url)
    # A separate raw connection writes as another process would: no in-process wake-up.
    raw = sqlite3.connect(waiter.path, isolation_level=None, check_same_thread=False)
    insert = "INSERT INTO tq_results VALUES ('k', x'01', NULL)"
    timer = threading.Timer(0.2, raw.execute, (insert,))
    started = time.monotonic()
    timer.start()
    waiter.wait_for_change("k", 5)
    timer.join()
    assert time.monotonic() - started < 1.0
    assert waiter.get("k") == b"\x01"
    raw.close()
    waiter.close()


def test_unopenable_file_raises_backend_error(tmp_path: Path) -> None:
    with pytest.raises(BackendError) as caught:
        SQLiteBackend(f"sqlite:///{tmp_path}/missing-dir/results.db")
    assert isinstance(caught.value.__cause__, sqlite3.Error)
