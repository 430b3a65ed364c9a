"""The pytest fixtures tq-testing gives users, used the way a user's test suite would."""

from __future__ import annotations

from typing import Any

import pytest

from tq import App
from tq_worker import Worker


def test_tq_app_runs_tasks_on_the_tq_worker(tq_app: App, tq_worker: Worker) -> None:
    @tq_app.task
    def add(x: int, y: int) -> int:
        return x + y

    assert add.delay(2, 2).get(timeout=10) == 4


def test_each_test_gets_its_own_broker(tq_app: App) -> None:
    assert tq_app.broker_url.startswith("memory://")
    assert tq_app.transport.size("tq") == 0


def test_failures_reach_the_test_as_the_task_exception(tq_app: App, tq_worker: Worker) -> None:
    @tq_app.task
    def divide(x: int, y: int) -> float:
        return x / y

    with pytest.raises(ZeroDivisionError):
        divide.delay(1, 0).get(timeout=10)


class TestOverridingTheConfiguration:
    @pytest.fixture
    def tq_config(self) -> dict[str, Any]:
        return {"task_default_queue": "custom", "task_track_started": True}

    @pytest.fixture
    def tq_worker_parameters(self) -> dict[str, Any]:
        return {"pool": "solo", "queues": ["custom"]}

    def test_settings_and_worker_parameters_come_from_the_overrides(
        self, tq_app: App, tq_worker: Worker
    ) -> None:
        @tq_app.task
        def hello() -> str:
            return "hi"

        assert tq_app.conf.task_default_queue == "custom"
        assert tq_worker.pool_name == "solo"
        assert tq_worker.queues == ["custom"]
        assert hello.delay().get(timeout=10) == "hi"
