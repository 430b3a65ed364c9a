"""Time limits on the threads pool in a real worker: exceptions raised in the task's thread."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import WorkerProcess, run_client
from .pool_tasks import TASKS_MODULE

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "e2e_tasks.py").write_text(TASKS_MODULE)
    return tmp_path


def results(project: Path, env: dict[str, str], code: str) -> object:
    return json.loads(run_client(project, env, code).strip().splitlines()[-1])


def test_a_soft_limit_raises_in_the_task_thread_which_may_return_a_value(
    project: Path, project_env: dict[str, str], start_worker: Callable[..., WorkerProcess]
) -> None:
    start_worker("-P", "threads", "-c", "2")
    outcome = results(
        project,
        project_env,
        """
        import json
        from e2e_tasks import tidy_in_steps
        print(json.dumps(tidy_in_steps.delay().get(timeout=30)))
        """,
    )
    assert outcome == "cleaned up"


def test_a_hard_limit_fails_the_task_in_its_thread_and_the_thread_runs_the_next_task(
    project: Path, project_env: dict[str, str], start_worker: Callable[..., WorkerProcess]
) -> None:
    # The documented behaviour: TimeLimitExceeded is raised in the thread between two
    # bytecodes (here, between two short sleeps); the thread is not killed.
    worker = start_worker("-P", "threads", "-c", "1")
    outcome = results(
        project,
        project_env,
        """
        import json
        from e2e_tasks import overrun_in_steps, pid
        from tq.errors import TimeLimitExceeded
        stuck = overrun_in_steps.delay()
        after = pid.delay()
        try:
            stuck.get(timeout=30)
        except TimeLimitExceeded as exc:
            error = type(exc).__name__
        print(json.dumps([stuck.state, error, after.get(timeout=30)]))
        """,
    )
    assert isinstance(outcome, list)
    assert outcome[:2] == ["FAILURE", "TimeLimitExceeded"]
    assert outcome[2] == worker.process.pid
