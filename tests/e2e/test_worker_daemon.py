"""Running ``tq worker`` as a daemon: expanded file names, pidfile, --detach, SIGUSR1."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import TQ, WorkerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def contains(path: Path, text: str) -> Callable[[], bool]:
    return lambda: path.exists() and text in path.read_text()


def test_logfile_and_pidfile_names_expand_the_node_name_codes(
    project: Path, project_env: dict[str, str]
) -> None:
    names = ["-n", "alpha@box.example.org", "-f", "%n-%d-%i%I.log", "--pidfile", "%h.pid"]
    worker = subprocess.Popen(
        [TQ, "-A", "e2e_tasks", "worker", "-l", "info", *names],
        cwd=project,
        env=project_env,
    )
    log, pidfile = project / "alpha-example.org-0.log", project / "box.example.org.pid"
    try:
        wait_until(contains(log, "ready."), "the worker logs to alpha-example.org-0.log")
        assert pidfile.read_text().strip() == str(worker.pid)
    finally:
        worker.terminate()
        worker.wait(30)
    assert not pidfile.exists()


def test_a_second_worker_refuses_a_pidfile_whose_owner_runs(
    project: Path, project_env: dict[str, str], start_worker: Callable[..., WorkerProcess]
) -> None:
    start_worker("--pidfile", "w.pid")
    done = subprocess.run(
        [TQ, "-A", "e2e_tasks", "worker", "--pidfile", "w.pid"],
        cwd=project,
        env=project_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "is running" in done.stderr


def test_a_detached_worker_writes_its_pidfile_and_removes_it_on_sigterm(
    project: Path, project_env: dict[str, str]
) -> None:
    launcher = subprocess.run(
        [TQ, "-A", "e2e_tasks", "worker", "-l", "info", "--detach", "-n", "bg@%h"],
        cwd=project,
        env=project_env,
        timeout=60,
    )
    assert launcher.returncode == 0
    pidfile, log = project / "bg.pid", project / "bg.log"  # the defaults: %n.pid, %n%I.log
    wait_until(pidfile.exists, "the detached worker writes bg.pid")
    pid = int(pidfile.read_text())
    try:
        wait_until(contains(log, "ready."), "the detached worker logs to bg.log")
        assert alive(pid)
        assert os.getsid(pid) != os.getsid(0)  # a session of its own, without our terminal
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not alive(pid), "the detached worker exits on SIGTERM")
    assert not pidfile.exists()


def test_sigusr1_logs_the_stack_of_every_thread(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    worker = start_worker("-P", "threads", "-c", "2")
    worker.process.send_signal(signal.SIGUSR1)
    worker.wait_for("Thread tq-consumer")
    assert "SIGUSR1: stacks of" in worker.output
    assert "Thread tq-pool-1" in worker.output
    assert worker.process.poll() is None
