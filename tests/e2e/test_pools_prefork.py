"""The prefork pool in a real ``tq worker``: children, crashes, time limits, recycling."""

from __future__ import annotations

import json
import resource
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import WorkerProcess, run_client
from .pool_tasks import TASKS_MODULE

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

pytest.importorskip("tq_pool_prefork")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "e2e_tasks.py").write_text(TASKS_MODULE)
    return tmp_path


def results(project: Path, env: dict[str, str], code: str) -> object:
    return json.loads(run_client(project, env, code).strip().splitlines()[-1])


@pytest.mark.slow
def test_two_thousand_cpu_bound_tasks_run_in_both_children(
    project: Path, project_env: dict[str, str], start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker("-P", "prefork", "-c", "2")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    pids = results(
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
    pids = results(
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
    outcome = results(
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
    outcome = results(
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


def test_a_task_over_its_hard_limit_is_killed_and_the_next_task_runs(
    project: Path, project_env: dict[str, str], start_worker: Callable[..., WorkerProcess]
) -> None:
    start_worker("-P", "prefork", "-c", "1")
    outcome = results(
        project,
        project_env,
        """
        import json
        from e2e_tasks import hang, pid
        from tq.errors import TimeLimitExceeded
        stuck = hang.delay()
        after = pid.delay()
        try:
            stuck.get(timeout=30)
        except TimeLimitExceeded as exc:
            error = str(exc)
        print(json.dumps([stuck.state, error, after.get(timeout=30)]))
        """,
    )
    assert isinstance(outcome, list)
    assert outcome[0] == "FAILURE"
    assert "hard time limit" in outcome[1]
    assert isinstance(outcome[2], int)


def test_a_task_catching_its_soft_limit_returns_a_value(
    project: Path, project_env: dict[str, str], start_worker: Callable[..., WorkerProcess]
) -> None:
    start_worker("-P", "prefork", "-c", "1")
    outcome = results(
        project,
        project_env,
        """
        import json
        from e2e_tasks import tidy
        print(json.dumps(tidy.delay().get(timeout=30)))
        """,
    )
    assert outcome == "cleaned up"


def test_children_are_replaced_every_ten_tasks_with_max_tasks_per_child(
    project: Path, project_env: dict[str, str], start_worker: Callable[..., WorkerProcess]
) -> None:
    start_worker("-P", "prefork", "-c", "1", "--max-tasks-per-child", "10")
    pids = results(
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
    outcome = results(
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
    pids = results(
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
