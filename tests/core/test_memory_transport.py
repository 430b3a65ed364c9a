"""The ``memory://`` transport passes the transport contract and keeps brokers apart."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tq.message import Message
from tq.transport import Queue
from tq.transports.memory import MemoryTransport, reset_memory_brokers
from tq_testing.contracts import TransportContract, TransportFactory, transport_factory


class TestMemoryTransport(TransportContract):
    @pytest.fixture
    def transport(self) -> Iterator[TransportFactory]:
        with transport_factory(MemoryTransport, f"memory://{uuid.uuid4().hex}") as make:
            yield make


def _message(body: str) -> Message:
    return Message(body.encode(), "application/json")


def test_transports_for_the_same_url_share_queues() -> None:
    MemoryTransport("memory://shared-test").publish(_message("hi"), Queue("q"))
    [delivery] = MemoryTransport("memory://shared-test").fetch(["q"], 1, timeout=1)
    assert delivery.message.body == b"hi"


def test_different_urls_are_separate_brokers() -> None:
    MemoryTransport("memory://one-test").publish(_message("hi"), Queue("q"))
    assert MemoryTransport("memory://two-test").size("q") == 0


def test_reset_forgets_every_broker() -> None:
    MemoryTransport("memory://reset-test").publish(_message("hi"), Queue("q"))
    reset_memory_brokers()
    assert MemoryTransport("memory://reset-test").size("q") == 0


def test_settling_a_lease_that_expired_and_was_handed_out_again_is_ignored() -> None:
    transport = MemoryTransport(f"memory://{uuid.uuid4().hex}", {"visibility_timeout": 0.05})
    transport.publish(_message("m"), Queue("q"))
    [stale] = transport.fetch(["q"], 1, timeout=1)
    [current] = transport.fetch(["q"], 1, timeout=1)
    transport.ack(stale)
    transport.extend([current], 60)
    assert transport.fetch(["q"], 1, timeout=0.1) == []
    transport.release(current)
    assert transport.size("q") == 1


def test_capabilities_describe_an_in_process_broker() -> None:
    capabilities = MemoryTransport.capabilities
    assert capabilities.delayed_delivery and capabilities.priorities and capabilities.leases
    assert not capabilities.shared_between_processes
    assert not capabilities.persistent
