"""The ``memory://`` result backend passes the backend contract and shares stores by URL."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from tq.backends.memory import MemoryBackend, reset_memory_backends
from tq.errors import BackendError
from tq_testing.contracts import BackendContract


class TestMemoryBackend(BackendContract):
    @pytest.fixture
    def backend(self) -> Iterator[MemoryBackend]:
        backend = MemoryBackend(f"memory://{uuid.uuid4().hex}")
        yield backend
        backend.close()


def test_backends_for_the_same_url_share_values() -> None:
    MemoryBackend("memory://shared-test").set("k", b"v")
    assert MemoryBackend("memory://shared-test").get("k") == b"v"
    assert MemoryBackend("memory://other-test").get("k") is None


def test_reset_forgets_every_store() -> None:
    MemoryBackend("memory://reset-test").set("k", b"v")
    reset_memory_backends()
    assert MemoryBackend("memory://reset-test").get("k") is None


def test_cleanup_counts_the_expired_entries() -> None:
    backend = MemoryBackend(f"memory://{uuid.uuid4().hex}")
    backend.set("a", b"1", expires=0.01)
    backend.set("b", b"2", expires=0.01)
    backend.set("c", b"3")
    time.sleep(0.05)
    assert backend.cleanup() == 2


def test_incr_of_a_non_integer_value_is_a_backend_error() -> None:
    backend = MemoryBackend(f"memory://{uuid.uuid4().hex}")
    backend.set("k", b"not a number")
    with pytest.raises(BackendError):
        backend.incr("k")


def test_incr_keeps_the_expiry_the_counter_already_had() -> None:
    backend = MemoryBackend(f"memory://{uuid.uuid4().hex}")
    backend.incr("k", expires=0.1)
    backend.incr("k")
    time.sleep(0.2)
    assert backend.get("k") is None
