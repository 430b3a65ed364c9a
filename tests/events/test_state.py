"""``tq.events.State`` rebuilds tasks and workers from events, in any order."""

from __future__ import annotations

import time
from typing import Any

from tq.events import State


def event(type_: str, **fields: Any) -> dict[str, Any]:
    return {"type": type_, "hostname": "w@h", "timestamp": time.time(), **fields}


def test_a_late_started_event_does_not_undo_success() -> None:
    state = State()
    state.event(event("task-received", uuid="a", name="add", args="(1, 2)"))
    state.event(event("task-succeeded", uuid="a", result="3", runtime=0.1))
    state.event(event("task-started", uuid="a"))
    task = state.tasks["a"]
    assert (task.state, task.name, task.result, task.worker) == ("SUCCESS", "add", "3", "w@h")


def test_a_retried_task_starts_over_when_received_again() -> None:
    state = State()
    state.event(event("task-retried", uuid="b", exception="RuntimeError()"))
    state.event(event("task-received", uuid="b", retries=1))
    assert state.tasks["b"].state == "RECEIVED"
    assert state.tasks["b"].retries == 1


def test_workers_are_alive_by_heartbeat_and_gone_when_offline() -> None:
    state = State()
    state.event(event("worker-heartbeat", freq=2.0, local_received=time.time(), active=1))
    assert [w.hostname for w in state.alive_workers()] == ["w@h"]
    state.event(event("worker-heartbeat", freq=2.0, local_received=time.time() - 5))
    assert state.alive_workers() == []
    state.event(event("worker-online", freq=2.0, local_received=time.time()))
    state.event(event("worker-offline", local_received=time.time()))
    assert state.alive_workers() == []


def test_only_the_most_recent_tasks_are_kept() -> None:
    state = State(max_tasks=2)
    for uuid in ("a", "b", "c"):
        state.event(event("task-received", uuid=uuid))
    assert list(state.tasks) == ["b", "c"]
