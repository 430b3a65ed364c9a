"""Every built-in pool passes the pool contract from tq-testing, in real worker processes."""

from __future__ import annotations

import pytest

from tq_testing.contracts import PoolContract

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


class TestSoloPool(PoolContract):
    pool = "solo"
    concurrency = 1


class TestThreadsPool(PoolContract):
    pool = "threads"


class TestPreforkPool(PoolContract):
    pool = "prefork"


class TestGeventPool(PoolContract):
    pool = "gevent"
    concurrency = 8


class TestEventletPool(PoolContract):
    pool = "eventlet"
    concurrency = 8
