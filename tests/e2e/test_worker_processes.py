"""``tq worker --processes N``: N whole workers under one supervisor, on the embedded
broker: each process its own node, signals passed on, dead processes replaced."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tq import App

from .conftest import TQ, WorkerProcess, alive, wait_until
from .pool_tasks import pool_project  # noqa: F401 (the project fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

HOST = socket.gethostname()


def start_processes(
    start_worker: Callable[..., WorkerProcess], *args: str, count: int = 2
) -> WorkerProcess:
    worker = start_worker("--processes", str(count), *args)
    wait_until(lambda: worker.output.count("ready.") >= count, f"{count} processes ready")
    return worker


def children_of(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(line) for line in found.stdout.split()]


def started(project: Path) -> str:
    log = project / "started.log"
    return log.read_text() if log.exists() else ""


def test_each_process_runs_tasks_and_answers_as_its_own_node(
    start_worker: Callable[..., WorkerProcess], client: App
) -> None:
    worker = start_processes(start_worker, "-P", "solo")
    pids = {
        handle.get(timeout=30)
        for handle in [client.send_task("e2e_tasks.nap", (0.3,)) for _ in range(6)]
    }
    children = children_of(worker.process.pid)
    assert len(children) == 2
    assert pids == set(children)  # both ran tasks, and only they: not the supervisor
    replies = client.control.ping(timeout=2.0)
    assert sorted(name for reply in replies for name in reply) == [
        f"tq-1@{HOST}",
        f"tq-2@{HOST}",
    ]
    assert "concurrency:  1 (solo) in each of 2 processes" in worker.output
    assert worker.stop() == 0
    assert not any(alive(pid) for pid in children)


def test_node_names_take_the_process_index_where_the_template_asks(
    start_worker: Callable[..., WorkerProcess], client: App
) -> None:
    start_processes(start_worker, "-P", "threads", "-c", "2", "-n", "w%I.%h@box")
    replies = client.control.ping(timeout=2.0)
    assert sorted(name for reply in replies for name in reply) == [
        f"w-1.{HOST}@box",
        f"w-2.{HOST}@box",
    ]


def test_sigterm_lets_every_process_finish_its_running_task(
    project: Path, start_worker: Callable[..., WorkerProcess], client: App
) -> None:
    worker = start_processes(start_worker, "-P", "solo", "--prefetch-multiplier", "1")
    children = children_of(worker.process.pid)
    handles = [client.send_task("e2e_tasks.hold", ("go",)) for _ in range(2)]
    wait_until(
        lambda: all(handle.id in started(project) for handle in handles),
        "both processes started a task",
    )
    worker.process.send_signal(signal.SIGTERM)
    worker.wait_for("Warm shutdown of 2 process(es)")
    time.sleep(0.5)
    assert worker.process.poll() is None  # still waiting for the tasks
    (project / "go").touch()
    assert sorted(handle.get(timeout=30) for handle in handles) == sorted(children)
    assert worker.process.wait(30) == 0


def test_killed_processes_are_replaced_and_their_message_comes_back(
    project: Path, start_worker: Callable[..., WorkerProcess], client: App
) -> None:
    worker = start_processes(start_worker, "-P", "solo", "--prefetch-multiplier", "1")
    killed = children_of(worker.process.pid)
    running = client.send_task("e2e_tasks.hold", ("go",))
    wait_until(lambda: running.id in started(project), "the task started")
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    wait_until(
        lambda: worker.output.count("exited with signal 9: replacing it") == 2,
        "both deaths noticed",
    )
    wait_until(lambda: worker.output.count("ready.") >= 4, "two new processes are ready")
    replacements = children_of(worker.process.pid)
    assert len(replacements) == 2
    assert not set(replacements) & set(killed)
    (project / "go").touch()
    # The killed process never acknowledged: the message is delivered again once its
    # visibility timeout (3 s here) passes, and a replacement runs it.
    assert running.get(timeout=60) in replacements


def test_sighup_restarts_every_process_under_the_same_supervisor(
    start_worker: Callable[..., WorkerProcess], client: App
) -> None:
    worker = start_processes(start_worker, "-P", "solo")  # stdout is a file: SIGHUP restarts
    before = children_of(worker.process.pid)
    worker.process.send_signal(signal.SIGHUP)
    worker.wait_for("Restarting worker processes (SIGHUP)")
    wait_until(lambda: worker.output.count("ready.") >= 4, "the new processes are ready")
    after = children_of(worker.process.pid)
    assert len(after) == 2
    assert not set(after) & set(before)
    assert worker.process.poll() is None  # the same supervisor process, re-executed
    assert client.send_task("e2e_tasks.pid").get(timeout=30) in after


def test_remote_shutdown_stops_every_process_and_the_supervisor(
    start_worker: Callable[..., WorkerProcess], client: App
) -> None:
    worker = start_processes(start_worker, "-P", "solo")
    client.control.shutdown()
    assert worker.process.wait(30) == 0
    assert "replacing" not in worker.output


def test_processes_stop_when_their_supervisor_is_killed(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    worker = start_processes(start_worker, "-P", "solo")
    children = children_of(worker.process.pid)
    worker.kill()
    wait_until(lambda: not any(alive(pid) for pid in children), "the orphans stopped")
    assert "the supervising process is gone: stopping" in worker.output


def test_processes_refuse_a_pool_that_forks_or_patches(
    project: Path, project_env: dict[str, str]
) -> None:
    done = subprocess.run(
        [TQ, "-A", "e2e_tasks", "worker", "--processes", "2", "-P", "prefork"],
        cwd=project,
        env=project_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "add -P solo or -P threads" in done.stderr
