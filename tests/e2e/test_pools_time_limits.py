"""Where a task's time limits come from, in a real worker: the task's own attributes, or
the worker's ``--time-limit``/``--soft-time-limit``. How each pool enforces them (and
limits sent with ``apply_async``) is checked by the pool contract, test_pool_contract.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import WorkerProcess, client_json
from .pool_tasks import pool_project  # noqa: F401 (the project fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def test_a_soft_limit_declared_on_the_task_is_raised_inside_it(
    project: Path, project_env: dict[str, str], start_worker: Callable[..., WorkerProcess]
) -> None:
    start_worker("-P", "threads", "-c", "2")
    outcome = client_json(
        project,
        project_env,
        """
        import json
        from e2e_tasks import tidy_in_steps
        print(json.dumps(tidy_in_steps.delay().get(timeout=30)))
        """,
    )
    assert outcome == "cleaned up"


def test_the_workers_hard_limit_applies_to_a_task_without_its_own(
    project: Path, project_env: dict[str, str], start_worker: Callable[..., WorkerProcess]
) -> None:
    start_worker("-P", "prefork", "-c", "1", "--time-limit", "1")
    outcome = client_json(
        project,
        project_env,
        """
        import json
        from e2e_tasks import nap, pid
        from tq.errors import TimeLimitExceeded
        stuck = nap.delay(30)
        after = pid.delay()
        try:
            stuck.get(timeout=30)
        except TimeLimitExceeded as exc:
            error = str(exc)
        print(json.dumps([stuck.state, error, after.get(timeout=30)]))
        """,
    )
    assert isinstance(outcome, list)
    state, error, next_pid = outcome
    assert state == "FAILURE"
    assert error == "hard time limit (1.0s) exceeded"
    assert isinstance(next_pid, int)
