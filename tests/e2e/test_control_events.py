"""Events from real workers: the stream rebuilds what the result backend holds, and the
``tq events`` command prints it (``--dump``) or draws the live monitor (under tmux)."""

from __future__ import annotations

import collections
import shutil
import subprocess
import textwrap
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import TQ, WorkerProcess
from tests.e2e.test_control_cluster import until
from tq import App
from tq.events import State

MODULE = textwrap.dedent(
    '''
    from tq import App

    app = App("e2e_tasks")


    @app.task
    def add(x: int, y: int) -> int:
        return x + y


    @app.task
    def fail(x: int) -> int:
        raise ValueError(f"bad {x}")


    @app.task(bind=True, max_retries=2)
    def flaky(self, x: int) -> int:
        """Fails twice, then succeeds.

        The countdown keeps the next attempt from racing this one's RETRY record (the
        result store checks for SUCCESS, then writes: not atomic)."""
        if self.request.retries < 2:
            raise self.retry(exc=RuntimeError("not yet"), countdown=1)
        return x
    '''
)


@pytest.fixture
def events_env(project: Path, project_env: dict[str, str]) -> dict[str, str]:
    (project / "e2e_tasks.py").write_text(MODULE)
    env = dict(project_env)
    env["TQ_BROKER_URL"] = f"sqlite:///{project / 'tq.sqlite3'}"
    return env


@pytest.fixture
def client(events_env: dict[str, str]) -> Iterator[App]:
    app = App("client", broker=events_env["TQ_BROKER_URL"])
    yield app
    app.close()


@pytest.fixture
def workers(project: Path, events_env: dict[str, str]) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(name: str, *args: str) -> WorkerProcess:
        process = WorkerProcess(project, events_env, "-n", f"{name}@%h", *args)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def test_the_event_stream_rebuilds_the_result_counts(
    workers: Callable[..., WorkerProcess], client: App
) -> None:
    state = State()
    receiver = client.events.receiver({"*": state.event})
    receiver.open(wakeup=False)
    capture = threading.Thread(target=receiver.capture, daemon=True)
    capture.start()
    workers("alpha", "-E")
    workers("beta", "-E")
    results = [
        client.send_task(name, args)
        for i in range(100)
        for name, args in [
            ("e2e_tasks.fail", (i,))
            if i % 10 == 0
            else ("e2e_tasks.flaky", (i,))
            if i % 10 == 1
            else ("e2e_tasks.add", (i, i))
        ]
    ]
    for result in results:
        result.get(timeout=60, propagate=False)
    backend = collections.Counter(result.state for result in results)
    assert backend == {"SUCCESS": 90, "FAILURE": 10}

    def rebuilt() -> bool:
        ids = {r.id for r in results}
        counts = collections.Counter(t.state for t in state.tasks.values() if t.uuid in ids)
        return counts == backend

    until(rebuilt, "the events rebuild the backend's counts")
    retried = [t for t in state.tasks.values() if t.name == "e2e_tasks.flaky"]
    assert all(t.retries == 2 for t in retried)
    assert {w.hostname.partition("@")[0] for w in state.alive_workers()} == {"alpha", "beta"}
    receiver.stop()
    capture.join()
    receiver.close()


def test_events_dump_prints_worker_and_task_events(
    workers: Callable[..., WorkerProcess],
    client: App,
    project: Path,
    events_env: dict[str, str],
) -> None:
    workers("alpha")
    dump = subprocess.Popen(
        [TQ, "-A", "e2e_tasks", "events", "--dump"],
        cwd=project,
        env=events_env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert dump.stdout is not None
    lines: list[str] = []
    try:
        # The dump enables task events, and wakes the worker for a heartbeat.
        for line in dump.stdout:
            lines.append(line)
            if "worker-heartbeat" in line:
                break
        result = client.send_task("e2e_tasks.add", (2, 3))
        for line in dump.stdout:
            lines.append(line)
            if "task-succeeded" in line and result.id in line:
                break
    finally:
        dump.terminate()
        dump.wait()
    text = "".join(lines)
    assert f'"uuid": "{result.id}"' in text
    assert "task-received" in text and "task-started" in text


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_the_live_monitor_shows_workers_and_revokes_the_selected_task(
    workers: Callable[..., WorkerProcess],
    client: App,
    project: Path,
    events_env: dict[str, str],
) -> None:
    session = f"tq-monitor-{uuid.uuid4().hex[:8]}"
    env_args = [f"{k}={v}" for k, v in events_env.items() if k.startswith(("TQ_", "PYTHON"))]
    workers("alpha", "-c", "1")
    subprocess.run(
        [
            "tmux",
            "new-session",
            "-d",
            "-s",
            session,
            "-x",
            "160",
            "-y",
            "50",
            "-c",
            str(project),
            "env",
            *env_args,
            TQ,
            "-A",
            "e2e_tasks",
            "events",
        ],
        check=True,
    )

    def screen() -> str:
        return subprocess.run(
            ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True
        ).stdout

    try:
        until(lambda: "alpha@" in screen() and "online" in screen(), "the worker is listed")
        failing = client.send_task("e2e_tasks.fail", (5,))
        until(lambda: failing.id in screen() and "FAILURE" in screen(), "the failure is listed")
        assert "ValueError: bad 5" in screen()
        subprocess.run(["tmux", "send-keys", "-t", session, "i"], check=True)
        until(lambda: "held by workers" in screen(), "the task is inspected")
        subprocess.run(["tmux", "send-keys", "-t", session, "r"], check=True)
        until(lambda: f"revoked {failing.id}" in screen(), "the task is revoked")
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
