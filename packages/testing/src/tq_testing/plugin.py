"""The ``tq`` pytest plugin (entry point ``pytest11``): fixtures for testing code that uses tq.

Override ``tq_config`` (settings) and ``tq_worker_parameters`` in your ``conftest.py``;
``tq_app`` is an app on the in-process memory broker and backend, and ``tq_worker`` a
real worker running in a thread for the duration of a test::

    def test_add(tq_app, tq_worker):
        @tq_app.task
        def add(x, y):
            return x + y

        assert add.delay(2, 2).get(timeout=10) == 4

Tasks defined after the worker started are found: the worker looks tasks up by name
when each message arrives. Nothing from tq is imported until a fixture is used.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tq.app import App
    from tq_worker.worker import Worker


@pytest.fixture
def tq_config() -> dict[str, Any]:
    """Settings for ``tq_app``; override to change them. The default is empty."""
    return {}


@pytest.fixture
def tq_worker_parameters() -> dict[str, Any]:
    """Keyword arguments for the ``tq_worker``'s :class:`~tq_worker.Worker`."""
    return {"pool": "threads", "concurrency": 2}


@pytest.fixture
def tq_app(tq_config: dict[str, Any]) -> Iterator[App]:
    """An app on a private memory broker and backend, closed after the test."""
    from tq.app import App

    url = f"memory://tq-testing-{uuid.uuid4().hex}"
    # A short fetch timeout lets the worker fixture stop quickly after each test.
    settings = {"broker_url": url, "result_backend": url, "worker_fetch_timeout": 0.1, **tq_config}
    app = App("tq_testing", **settings)
    try:
        yield app
    finally:
        app.close()


@pytest.fixture
def tq_worker(tq_app: App, tq_worker_parameters: dict[str, Any]) -> Iterator[Worker]:
    """A worker consuming ``tq_app``'s queues in threads of this process."""
    from tq_worker.worker import Worker

    worker = Worker(tq_app, **tq_worker_parameters)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop(warm=True)
