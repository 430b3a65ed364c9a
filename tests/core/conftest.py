"""Shared fixtures for the core tests: apps on private in-process brokers."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tq import App
from tq.execution import Outcome, execute
from tq.message import Message
from tq.protocol import parse_message
from tq.request import Request

AppFactory = Callable[..., App]


@pytest.fixture
def make_app(monkeypatch: pytest.MonkeyPatch) -> Iterator[AppFactory]:
    """Build apps whose memory broker and backend no other test shares."""
    for variable in (
        "TQ_DISABLE_PLUGIN_AUTOLOAD",
        "TQ_CONFIG_MODULE",
        "TQ_BROKER_URL",
        "TQ_RESULT_BACKEND",
        "TQ_APP",
    ):
        monkeypatch.delenv(variable, raising=False)
    apps: list[App] = []

    def factory(**settings: Any) -> App:
        url = f"memory://{uuid.uuid4().hex}"
        settings.setdefault("broker", url)
        settings.setdefault("backend", url)
        app = App("t", **settings)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.close()


@pytest.fixture
def app(make_app: AppFactory) -> App:
    return make_app()


def _fetch_message(app: App, queue: str = "tq", timeout: float = 0.0) -> Message | None:
    """The next message waiting on ``queue``, acknowledged, or ``None``."""
    deliveries = app.transport.fetch([queue], 1, timeout)
    if not deliveries:
        return None
    app.transport.ack(deliveries[0])
    return deliveries[0].message


def _receive(app: App, queue: str = "tq", timeout: float = 0.0) -> Request:
    """Fetch the next message and read it as a worker does."""
    message = _fetch_message(app, queue, timeout)
    assert message is not None, f"no message on queue {queue!r}"
    return parse_message(message, app.codecs, frozenset(app.conf["accept_content"]))


def _run_next(app: App, queue: str = "tq") -> Outcome:
    """Fetch, decode and execute the next message, like one step of a worker."""
    request = _receive(app, queue)
    return execute(app.tasks[request.task], request)


@pytest.fixture
def fetch_message() -> Callable[..., Message | None]:
    """``fetch_message(app, queue="tq", timeout=0.0)``: the next raw message or ``None``."""
    return _fetch_message


@pytest.fixture
def receive() -> Callable[..., Request]:
    """``receive(app, queue="tq", timeout=0.0)``: the next message read as a worker reads it."""
    return _receive


@pytest.fixture
def run_next() -> Callable[..., Outcome]:
    """``run_next(app, queue="tq")``: fetch, decode and execute the next message."""
    return _run_next
