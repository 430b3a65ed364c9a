"""Running ``tq worker`` as a daemon: expanded file names, pidfile, --detach, SIGUSR1,
and SIGHUP restarts."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tq import App

from .conftest import TQ, WorkerProcess, alive, wait_until
from .pool_tasks import pool_project  # noqa: F401 (the project fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


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


def started(project: Path) -> str:
    log = project / "started.log"
    return log.read_text() if log.exists() else ""


def test_sighup_restarts_a_detached_worker_with_the_same_pid_and_loses_no_task(
    project: Path, project_env: dict[str, str], client: App
) -> None:
    options = ["-P", "prefork", "-c", "1", "--pidfile", "hup.pid", "--logfile", "hup.log"]
    launcher = subprocess.run(
        [TQ, "-A", "e2e_tasks", "worker", "-l", "info", "--detach", *options],
        cwd=project,
        env=project_env,
        timeout=60,
    )
    assert launcher.returncode == 0
    pidfile, log = project / "hup.pid", project / "hup.log"
    wait_until(pidfile.exists, "the detached worker writes hup.pid")
    pid = int(pidfile.read_text())
    try:
        wait_until(contains(log, "ready."), "the detached worker is ready")
        running = client.send_task("e2e_tasks.hold", ("go",))
        wait_until(lambda: running.id in started(project), "a task runs")
        os.kill(pid, signal.SIGHUP)
        wait_until(contains(log, "Restarting worker (SIGHUP)"), "the worker logs the restart")
        queued = client.send_task("e2e_tasks.pid")  # arrives while the worker restarts
        time.sleep(0.5)
        assert "ready." in log.read_text()  # still the first run: waiting for its task
        (project / "go").touch()
        assert isinstance(running.get(timeout=30), int)  # finished, not lost
        wait_until(lambda: log.read_text().count("ready.") == 2, "the worker is ready again")
        assert int(pidfile.read_text()) == pid
        assert alive(pid)
        assert isinstance(queued.get(timeout=30), int)
        assert isinstance(client.send_task("e2e_tasks.pid").get(timeout=30), int)
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not alive(pid), "the restarted worker exits on SIGTERM")
    assert not pidfile.exists()
    assert "is running" not in log.read_text()  # the pidfile naming itself was taken over


def test_sighup_stops_a_worker_attached_to_a_terminal(
    project: Path, project_env: dict[str, str], client: App
) -> None:
    # SIGHUP to a process on a terminal means the terminal closed: a warm shutdown,
    # not a restart into the background.
    terminal, worker_end = pty.openpty()
    worker = subprocess.Popen(
        [TQ, "-A", "e2e_tasks", "worker", "-l", "info", "--logfile", "tty.log"],
        cwd=project,
        env=project_env,
        stdout=worker_end,
        stderr=worker_end,
    )
    os.close(worker_end)
    log = project / "tty.log"
    try:
        wait_until(contains(log, "ready."), "the worker is ready")
        running = client.send_task("e2e_tasks.hold", ("go",))
        wait_until(lambda: running.id in started(project), "a task runs")
        worker.send_signal(signal.SIGHUP)
        wait_until(contains(log, "Warm shutdown"), "the worker shuts down")
        (project / "go").touch()
        assert isinstance(running.get(timeout=30), int)
        assert worker.wait(30) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        os.close(terminal)
    assert "Restarting" not in log.read_text()
