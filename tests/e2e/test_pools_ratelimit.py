"""Rate limits per task type in a real ``tq worker``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import WorkerProcess, run_client
from .pool_tasks import pool_project  # noqa: F401 (the project fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def test_a_rate_limited_task_type_does_not_slow_down_another(
    project: Path, project_env: dict[str, str], start_worker: Callable[..., WorkerProcess]
) -> None:
    start_worker("-P", "threads", "-c", "4")
    stamps = json.loads(
        run_client(
            project,
            project_env,
            """
            import json
            from e2e_tasks import limited, unlimited
            slow = [limited.delay(i) for i in range(20)]
            fast = [unlimited.delay(i) for i in range(200)]
            print(json.dumps([[h.get(timeout=60) for h in slow], [h.get(timeout=60) for h in fast]]))
            """,
        ).splitlines()[-1]
    )
    limited, unlimited = stamps
    span = max(limited) - min(limited)
    print(
        f"20 tasks at '5/s' took {span:.2f}s; 200 unlimited ended {max(limited) - max(unlimited):.2f}s before"
    )
    assert span >= 3.5  # 19 intervals of 0.2 s, with tolerance
    assert max(unlimited) < max(limited)  # the other type was not held back behind them
