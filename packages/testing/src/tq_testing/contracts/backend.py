"""The contract every result backend plugin passes: the semantics of :mod:`tq.backend`.

Subclass :class:`BackendContract` and provide a ``backend`` fixture returning a
:class:`tq.backend.ResultBackend` on a store that is empty when the test starts
(close it after the test). The suite creates no second instance, so a plugin only
needs to make one instance safe to share between threads, which the interface asks.
"""

from __future__ import annotations

import threading
import time

from tq.backend import ResultBackend

# Expiry short enough to keep the suite quick, long enough to read the value back first.
SHORT_EXPIRY = 0.2


class BackendContract:
    """Behaviour every :class:`tq.backend.ResultBackend` must show."""

    def test_absent_key_reads_as_none(self, backend: ResultBackend) -> None:
        assert backend.get("tq-missing") is None

    def test_stored_value_is_read_back(self, backend: ResultBackend) -> None:
        backend.set("tq-key", b"\x00\xff{json}")
        assert backend.get("tq-key") == b"\x00\xff{json}"

    def test_set_overwrites_the_previous_value(self, backend: ResultBackend) -> None:
        backend.set("tq-key", b"first")
        backend.set("tq-key", b"second")
        assert backend.get("tq-key") == b"second"

    def test_value_expires_after_its_lifetime(self, backend: ResultBackend) -> None:
        backend.set("tq-expiring", b"soon gone", expires=SHORT_EXPIRY)
        backend.set("tq-lasting", b"stays")
        assert backend.get("tq-expiring") == b"soon gone"
        time.sleep(SHORT_EXPIRY + 0.15)
        assert backend.get("tq-expiring") is None
        assert backend.get("tq-lasting") == b"stays"

    def test_overwrite_without_expiry_keeps_the_value(self, backend: ResultBackend) -> None:
        backend.set("tq-key", b"old", expires=SHORT_EXPIRY)
        backend.set("tq-key", b"new")
        time.sleep(SHORT_EXPIRY + 0.15)
        assert backend.get("tq-key") == b"new"

    def test_deleted_key_is_gone_and_deleting_twice_is_fine(self, backend: ResultBackend) -> None:
        backend.set("tq-key", b"value")
        backend.delete("tq-key")
        backend.delete("tq-key")
        assert backend.get("tq-key") is None

    def test_mget_returns_values_in_order_with_none_for_absent(
        self, backend: ResultBackend
    ) -> None:
        backend.set("tq-a", b"1")
        backend.set("tq-c", b"3")
        assert backend.mget(["tq-a", "tq-b", "tq-c"]) == [b"1", None, b"3"]
        assert backend.mget([]) == []

    def test_incr_starts_from_zero_and_adds(self, backend: ResultBackend) -> None:
        assert backend.incr("tq-counter") == 1
        assert backend.incr("tq-counter", 5) == 6
        assert backend.incr("tq-counter", -2) == 4
        assert int(backend.get("tq-counter") or b"") == 4

    def test_incr_with_expiry_expires_the_counter(self, backend: ResultBackend) -> None:
        backend.incr("tq-counter", 3, expires=SHORT_EXPIRY)
        time.sleep(SHORT_EXPIRY + 0.15)
        assert backend.get("tq-counter") is None
        assert backend.incr("tq-counter") == 1

    def test_concurrent_incr_from_threads_adds_up_exactly(self, backend: ResultBackend) -> None:
        results: list[int] = []

        def count() -> None:
            for _ in range(50):
                results.append(backend.incr("tq-chord"))

        threads = [threading.Thread(target=count) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # Each increment saw a distinct value, so none was lost or applied twice.
        assert sorted(results) == list(range(1, 401))
        assert int(backend.get("tq-chord") or b"") == 400

    def test_wait_for_change_returns_after_a_set_or_the_timeout(
        self, backend: ResultBackend
    ) -> None:
        native = backend.capabilities.native_wait
        timeout = 5.0 if native else 0.3
        timer = threading.Timer(0.1, backend.set, ("tq-result", b"done"))
        started = time.monotonic()
        timer.start()
        try:
            backend.wait_for_change("tq-result", timeout)
        finally:
            timer.join()
        assert time.monotonic() - started < (1.5 if native else timeout + 1.0)
        assert backend.get("tq-result") == b"done"

    def test_a_wait_begun_by_get_and_watch_ends_with_the_next_write(
        self, backend: ResultBackend
    ) -> None:
        assert backend.get_and_watch("tq-watched") is None
        native = backend.capabilities.native_wait
        timer = threading.Timer(0.1, backend.set, ("tq-watched", b"done"))
        started = time.monotonic()
        timer.start()
        try:
            seen = backend.wait_for_change("tq-watched", 5.0 if native else 0.3)
        finally:
            timer.join()
        assert seen in (None, b"done")  # a backend may hand back the value written
        if native:
            assert seen == b"done" or backend.get("tq-watched") == b"done"
            assert time.monotonic() - started < 1.5
        assert backend.get_and_watch("tq-watched") == b"done"

    def test_wait_for_change_without_a_write_returns_after_the_timeout(
        self, backend: ResultBackend
    ) -> None:
        started = time.monotonic()
        backend.wait_for_change("tq-quiet", 0.2)
        assert time.monotonic() - started < 1.2

    def test_cleanup_removes_expired_entries_only(self, backend: ResultBackend) -> None:
        backend.set("tq-expiring", b"x", expires=0.05)
        backend.set("tq-lasting", b"y")
        time.sleep(0.2)
        # Stores that expire entries by themselves report 0; the others count them.
        assert backend.cleanup() in (0, 1)
        assert backend.get("tq-expiring") is None
        assert backend.get("tq-lasting") == b"y"
