"""Skipping or failing tests that need a service (Redis, RabbitMQ, ...).

A test that needs a service it cannot reach is skipped with the reason, unless the
comma-separated ``TQ_TEST_REQUIRE`` environment variable names that service (CI sets
it for every service its machine runs): then the test fails, so a broken CI machine
cannot pass by skipping.
"""

from __future__ import annotations

import os
import socket

import pytest


def required_services() -> frozenset[str]:
    """The services ``TQ_TEST_REQUIRE`` names."""
    raw = os.environ.get("TQ_TEST_REQUIRE", "")
    return frozenset(name.strip() for name in raw.split(",") if name.strip())


def reachable(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections at ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip the calling test unless ``name`` answers at ``host:port`` (fail if required)."""
    if reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if name in required_services():
        pytest.fail(f"{message}, and TQ_TEST_REQUIRE names it")
    pytest.skip(message)
