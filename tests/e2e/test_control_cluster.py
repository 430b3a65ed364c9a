"""Remote control of a cluster of real ``tq worker`` processes, through the ``tq`` CLI.

Parametrized over brokers: the embedded SQLite file, and Redis when the Redis plugins
are installed and a server answers. Tasks that must still be running when a command
arrives wait for a release file, so nothing here depends on timing.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import TQ, WorkerProcess
from tq import App

REDIS_URL = "redis://127.0.0.1:6379/15"

MODULE = textwrap.dedent(
    '''
    import os
    import time

    from tq import App

    app = App("e2e_tasks")
    HERE = os.path.dirname(os.path.abspath(__file__))
    LOG = os.path.join(HERE, "executions.log")


    @app.task(bind=True)
    def record(self, i: int, pause: float = 0.0) -> int:
        with open(LOG, "a") as log:
            log.write(f"{self.request.id} {i}\\n")
        return i * 2


    @app.task(bind=True)
    def hold(self, name: str) -> str:
        """Run until the file ``name`` appears in the project directory."""
        with open(LOG, "a") as log:
            log.write(f"{self.request.id} started\\n")
        while not os.path.exists(os.path.join(HERE, name)):
            time.sleep(0.02)
        return name


    @app.control.inspect_command(args=("word",))
    def shout(state, word: str = "hello") -> dict:
        """A user's own inspect command: echoes a word with the node's name."""
        return {"ok": f"{word.upper()} from {state.hostname}"}
    '''
)


def _redis_ready() -> None:
    pytest.importorskip("tq_transport_redis")
    pytest.importorskip("tq_backend_redis")
    from tq_testing.services import require_service

    require_service("redis", "127.0.0.1", 6379)


@pytest.fixture(params=["sqlite", "redis"])
def broker(request: pytest.FixtureRequest, project: Path) -> str:
    if request.param == "redis":
        _redis_ready()
        return REDIS_URL
    return f"sqlite:///{project / 'tq.sqlite3'}"


@pytest.fixture
def cluster_env(project: Path, project_env: dict[str, str], broker: str) -> dict[str, str]:
    (project / "e2e_tasks.py").write_text(MODULE)
    env = dict(project_env)
    env["TQ_BROKER_URL"] = broker
    env["TQ_RESULT_BACKEND"] = broker
    return env


@pytest.fixture
def client(broker: str, cluster_env: dict[str, str]) -> Iterator[App]:
    app = App("client", broker=broker, backend=broker)
    if broker.startswith("redis"):
        app.transport.purge("tq")
    yield app
    app.close()


@pytest.fixture
def worker(project: Path, cluster_env: dict[str, str]) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(name: str, *args: str) -> WorkerProcess:
        process = WorkerProcess(project, cluster_env, "-n", f"{name}@%h", *args)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def tq(env: dict[str, str], cwd: Path, *args: str, check: bool = True) -> str:
    done = subprocess.run(
        [TQ, "-A", "e2e_tasks", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )
    if check:
        assert done.returncode == 0, f"tq {' '.join(args)} failed:\n{done.stdout}{done.stderr}"
    return done.stdout + done.stderr


def tq_json(env: dict[str, str], cwd: Path, *args: str) -> Any:
    return json.loads(tq(env, cwd, *args, "--json", "--timeout", "3"))


def until(condition: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    """Poll ``condition`` until it is truthy; the timeout only bounds a hung test."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.1)


def executions(project: Path) -> str:
    log = project / "executions.log"
    return log.read_text() if log.exists() else ""


def test_status_lists_every_worker(
    worker: Callable[..., WorkerProcess], cluster_env: dict[str, str], project: Path
) -> None:
    worker("alpha")
    worker("beta")
    nodes = tq_json(cluster_env, project, "status")
    assert sorted(n.partition("@")[0] for n in nodes) == ["alpha", "beta"]


def test_inspect_active_shows_a_running_task_with_its_arguments(
    worker: Callable[..., WorkerProcess], cluster_env: dict[str, str], project: Path, client: App
) -> None:
    worker("alpha")
    worker("beta")
    result = client.send_task("e2e_tasks.hold", ("go-active",))

    def running() -> list[dict[str, Any]]:
        replies = tq_json(cluster_env, project, "inspect", "active")
        return [task for tasks in replies.values() for task in tasks]

    [task] = until(running, "the task shows as active")
    assert task["id"] == result.id
    assert task["name"] == "e2e_tasks.hold"
    assert "go-active" in task["args"]
    (project / "go-active").touch()
    assert result.get(timeout=30) == "go-active"


def test_revoked_task_that_has_not_started_never_runs_and_is_revoked(
    worker: Callable[..., WorkerProcess], cluster_env: dict[str, str], project: Path, client: App
) -> None:
    worker("alpha", "-c", "1")
    blocker = client.send_task("e2e_tasks.hold", ("go-revoke",))
    until(lambda: blocker.id in executions(project), "the blocking task started")
    waiting = client.send_task("e2e_tasks.record", (7,))
    output = tq(cluster_env, project, "control", "revoke", waiting.id, "--timeout", "3")
    assert "flagged as revoked" in output
    (project / "go-revoke").touch()
    assert blocker.get(timeout=30) == "go-revoke"
    until(lambda: waiting.state == "REVOKED", "the revoked task is stored as REVOKED")
    assert waiting.id not in executions(project)


def test_terminate_cannot_stop_a_running_task_on_the_threads_pool(
    worker: Callable[..., WorkerProcess], cluster_env: dict[str, str], project: Path, client: App
) -> None:
    """Threads cannot be killed: the reply says so and the task finishes with its result."""
    worker("alpha")
    running = client.send_task("e2e_tasks.hold", ("go-terminate",))
    until(lambda: running.id in executions(project), "the task started")
    output = tq(
        cluster_env, project, "control", "revoke", running.id, "--terminate", "--timeout", "3"
    )
    assert "cannot be terminated by pool ThreadPool" in output
    (project / "go-terminate").touch()
    assert running.get(timeout=30) == "go-terminate"
    revoked = tq_json(cluster_env, project, "inspect", "revoked")
    assert [running.id] == next(iter(revoked.values()))


def test_revoke_terminate_stops_a_running_task_on_the_prefork_pool(
    worker: Callable[..., WorkerProcess], cluster_env: dict[str, str], project: Path, client: App
) -> None:
    """A process pool can kill the child running the task: it ends REVOKED, never finishes."""
    worker("gamma", "-P", "prefork", "-c", "1")
    running = client.send_task("e2e_tasks.hold", ("never-created",))
    until(lambda: running.id in executions(project), "the task started")
    output = tq(
        cluster_env, project, "control", "revoke", running.id, "--terminate", "--timeout", "3"
    )
    assert "terminated 1 running" in output
    until(lambda: running.state == "REVOKED", "the terminated task is stored as REVOKED")
    after = client.send_task("e2e_tasks.record", (21,))
    assert after.get(timeout=30) == 42  # a new child took the killed one's place


def test_add_and_cancel_consumer_change_the_active_queues(
    worker: Callable[..., WorkerProcess], cluster_env: dict[str, str], project: Path, client: App
) -> None:
    worker("alpha")

    def queues() -> list[str]:
        replies = tq_json(cluster_env, project, "inspect", "active_queues")
        return sorted(q["name"] for q in next(iter(replies.values())))

    assert queues() == ["tq"]
    tq(cluster_env, project, "control", "add_consumer", "extra", "--timeout", "3")
    assert queues() == ["extra", "tq"]
    result = client.send_task("e2e_tasks.record", (3,), queue="extra")
    assert result.get(timeout=30) == 6
    tq(cluster_env, project, "control", "cancel_consumer", "extra", "--timeout", "3")
    assert queues() == ["tq"]


def test_a_users_inspect_command_answers_through_the_cli(
    worker: Callable[..., WorkerProcess], cluster_env: dict[str, str], project: Path
) -> None:
    worker("alpha")
    replies = tq_json(cluster_env, project, "inspect", "shout", "tq")
    assert [answer["ok"] for answer in replies.values()] == [f"TQ from {next(iter(replies))}"]


def test_inspect_stats_and_registered_answer_in_celerys_shape(
    worker: Callable[..., WorkerProcess], cluster_env: dict[str, str], project: Path
) -> None:
    worker("alpha")
    [stats] = tq_json(cluster_env, project, "inspect", "stats").values()
    assert {"broker", "clock", "pid", "pool", "prefetch_count", "rusage", "total"} <= set(stats)
    [registered] = tq_json(cluster_env, project, "inspect", "registered").values()
    assert "e2e_tasks.hold" in registered


def test_revoked_ids_survive_a_restart_with_statedb(
    worker: Callable[..., WorkerProcess], cluster_env: dict[str, str], project: Path, client: App
) -> None:
    statedb = str(project / "worker.state")
    cluster_env["TQ_WORKER_STATE_DB"] = statedb
    first = worker("alpha")
    task_id = str(uuid.uuid4())
    tq(cluster_env, project, "control", "revoke", task_id, "--timeout", "3")
    first.stop()
    worker("alpha")
    [revoked] = tq_json(cluster_env, project, "inspect", "revoked").values()
    assert revoked == [task_id]
    result = client.send_task("e2e_tasks.record", (1,), task_id=task_id)
    until(lambda: result.state == "REVOKED", "the revoked id is refused after the restart")


def test_a_joining_worker_learns_the_revoked_ids_of_the_others(
    worker: Callable[..., WorkerProcess], cluster_env: dict[str, str], project: Path
) -> None:
    worker("alpha")
    task_id = str(uuid.uuid4())
    tq(cluster_env, project, "control", "revoke", task_id, "--timeout", "3")
    worker("beta")

    def known_by_beta() -> bool:
        replies = tq_json(cluster_env, project, "inspect", "revoked", "-d", _node("beta"))
        return any(task_id in ids for ids in replies.values())

    until(known_by_beta, "beta knows the revoked id")


def _node(name: str) -> str:
    import socket

    return f"{name}@{socket.gethostname()}"
