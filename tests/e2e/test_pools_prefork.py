"""The prefork pool in a real ``tq worker``: children, crashes, recycling, log files,
signals. Results, failures, time limits, shutdown and revokes: see test_pool_contract.py."""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tq import App

from .conftest import TQ, WorkerProcess, client_json, wait_until
from .pool_tasks import pool_project  # noqa: F401 (the project fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

pytest.importorskip("tq_pool_prefork")


def started(project: Path) -> str:
    log = project / "started.log"
    return log.read_text() if log.exists() else ""


@pytest.mark.slow
def test_two_thousand_cpu_bound_tasks_run_in_both_children(
    project: Path, project_env: dict[str, str], start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker("-P", "prefork", "-c", "2")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    pids = client_json(
        project,
        project_env,
        """
        import json
        from e2e_tasks import burn
        handles = [burn.delay(20_000) for _ in range(2000)]
        print(json.dumps([h.get(timeout=170) for h in handles]))
        """,
    )
    assert isinstance(pids, list)
    assert len(pids) == 2000
    assert len(set(pids)) == 2
    assert worker.process.pid not in pids
    assert worker.stop() == 0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"worker and children CPU time: {after.ru_utime - before.ru_utime:.1f}s user")


def test_every_child_runs_process_init_before_its_tasks(
    project: Path, project_env: dict[str, str], start_worker: Callable[..., WorkerProcess]
) -> None:
    start_worker("-P", "prefork", "-c", "2")
    pids = client_json(
        project,
        project_env,
        """
        import json
        from e2e_tasks import nap
        handles = [nap.delay(0.3) for _ in range(4)]
        print(json.dumps([h.get(timeout=30) for h in handles]))
        """,
    )
    assert isinstance(pids, list)
    initialised = {int(line) for line in (project / "process_init.log").read_text().split()}
    assert set(pids) <= initialised


def test_a_child_killed_mid_task_is_replaced_and_the_task_fails_with_worker_lost(
    project: Path, project_env: dict[str, str], start_worker: Callable[..., WorkerProcess]
) -> None:
    start_worker("-P", "prefork", "-c", "1")
    outcome = client_json(
        project,
        project_env,
        """
        import json
        from e2e_tasks import die, pid
        from tq.errors import WorkerLostError
        dead = die.delay()
        try:
            dead.get(timeout=30)
        except WorkerLostError as exc:
            error = str(exc)
        print(json.dumps([dead.state, error, pid.delay().get(timeout=30)]))
        """,
    )
    assert isinstance(outcome, list)
    state, error, next_pid = outcome
    assert state == "FAILURE"
    assert "SIGKILL" in error
    assert isinstance(next_pid, int)


def test_a_child_killed_mid_task_redelivers_it_with_reject_on_worker_lost(
    project: Path, project_env: dict[str, str], start_worker: Callable[..., WorkerProcess]
) -> None:
    project_env["TQ_TASK_REJECT_ON_WORKER_LOST"] = "true"
    worker = start_worker("-P", "prefork", "-c", "1")
    outcome = client_json(
        project,
        project_env,
        """
        import json, time
        from e2e_tasks import app, die
        dead = die.delay()
        deadline = time.monotonic() + 60
        while app.transport.size("tq.dead") == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        print(json.dumps([dead.state, app.transport.size("tq.dead")]))
        """,
    )
    # Redelivered until task_max_deliveries, then dead-lettered: never left STARTED.
    assert outcome == ["PENDING", 1]
    assert worker.output.count("redelivering it") == 5


def test_children_are_replaced_every_ten_tasks_with_max_tasks_per_child(
    project: Path, project_env: dict[str, str], start_worker: Callable[..., WorkerProcess]
) -> None:
    start_worker("-P", "prefork", "-c", "1", "--max-tasks-per-child", "10")
    pids = client_json(
        project,
        project_env,
        """
        import json
        from e2e_tasks import pid
        print(json.dumps([pid.delay().get(timeout=30) for _ in range(30)]))
        """,
    )
    assert isinstance(pids, list)
    assert [len(set(pids[i : i + 10])) for i in (0, 10, 20)] == [1, 1, 1]
    assert len(set(pids)) == 3


def test_children_killed_while_many_short_tasks_run_on_sqlite_are_replaced_and_all_end(
    project: Path, project_env: dict[str, str], start_worker: Callable[..., WorkerProcess]
) -> None:
    # Every few tasks a child dies (SIGKILL) or retires (max-tasks-per-child), so many
    # replacements are forked while the worker's threads fetch, settle and store results
    # in SQLite: the fork server must keep every replacement free of their locks.
    start_worker("-P", "prefork", "-c", "2", "--max-tasks-per-child", "5")
    outcome = client_json(
        project,
        project_env,
        """
        import json
        from e2e_tasks import die, pid
        handles = [die.delay() if i % 10 == 0 else pid.delay() for i in range(400)]
        for handle in handles:
            handle.get(timeout=120, propagate=False)
        states = [handle.state for handle in handles]
        pids = {handle.result for handle, state in zip(handles, states) if state == "SUCCESS"}
        print(json.dumps([states.count("SUCCESS"), states.count("FAILURE"), len(pids)]))
        """,
    )
    assert isinstance(outcome, list)
    succeeded, failed, children = outcome
    assert (succeeded, failed) == (360, 40)
    assert children >= 360 // 5


def test_a_child_past_max_memory_per_child_is_replaced_after_its_task(
    project: Path, project_env: dict[str, str], start_worker: Callable[..., WorkerProcess]
) -> None:
    start_worker("-P", "prefork", "-c", "1", "--max-memory-per-child", "150000")
    pids = client_json(
        project,
        project_env,
        """
        import json
        from e2e_tasks import hog, pid
        print(json.dumps([
            pid.delay().get(timeout=30),
            hog.delay(10_000).get(timeout=30),
            hog.delay(250_000).get(timeout=30),
            pid.delay().get(timeout=30),
        ]))
        """,
    )
    assert isinstance(pids, list)
    small, light, heavy, after = pids
    assert small == light == heavy
    assert after != heavy


def test_each_child_logs_to_its_own_file_when_the_logfile_name_holds_percent_i(
    project: Path, project_env: dict[str, str], client: App
) -> None:
    options = ["-P", "prefork", "-c", "2", "--max-tasks-per-child", "2", "--logfile", "w%I.log"]
    worker = subprocess.Popen(
        [TQ, "-A", "e2e_tasks", "worker", "-l", "info", *options],
        cwd=project,
        env=project_env,
    )
    try:
        main_log = project / "w.log"
        wait_until(lambda: main_log.exists() and "ready." in main_log.read_text(), "w.log")
        handles = [client.send_task("e2e_tasks.chatter", (f"word{i}",)) for i in range(8)]
        pids = {handle.get(timeout=30) for handle in handles}
    finally:
        worker.terminate()
        worker.wait(30)
    # %I is the child's index in the pool, not a count: replacements reuse 1 and 2.
    assert sorted(path.name for path in project.glob("w*.log")) == ["w-1.log", "w-2.log", "w.log"]
    lines = {index: (project / f"w-{index}.log").read_text().splitlines() for index in (1, 2)}
    words = [re.findall(r"chatter (word\d) from (\d+)", "\n".join(lines[i])) for i in (1, 2)]
    assert all(words), "both children ran tasks and logged them to their own file"
    assert sorted(word for found in words for word, _ in found) == [f"word{i}" for i in range(8)]
    assert {int(pid) for found in words for _, pid in found} == pids
    assert len(pids) >= 4  # each child was replaced after two tasks
    assert all("ForkPoolWorker" in line for index in (1, 2) for line in lines[index])
    assert "chatter word" not in main_log.read_text()  # task lines went to the children's files
    assert "Warm shutdown" in main_log.read_text()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_to_the_whole_process_group_lets_the_running_task_finish(
    signum: signal.Signals, project: Path, project_env: dict[str, str], client: App
) -> None:
    # Ctrl-C in a terminal sends SIGINT to every process of the foreground group;
    # kill -TERM -PGID and some supervisors send SIGTERM to all of them.
    worker = WorkerProcess(project, project_env, "-P", "prefork", "-c", "1", new_session=True)
    try:
        running = client.send_task("e2e_tasks.hold", ("go",))
        wait_until(lambda: running.id in started(project), "the task started in a child")
        os.killpg(worker.process.pid, signum)
        worker.wait_for("Warm shutdown")
        time.sleep(1)  # a child that took the signal would be dead by now
        (project / "go").touch()
        child_pid = running.get(timeout=30)
        assert running.state == "SUCCESS"
        assert child_pid != worker.process.pid
        assert worker.process.wait(30) == 0
    finally:
        worker.stop()
    assert "exited prematurely" not in worker.output
