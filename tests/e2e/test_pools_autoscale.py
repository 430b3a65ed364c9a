"""``tq worker --autoscale=MAX,MIN`` in a real worker: the pool follows the load."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import TQ, WorkerProcess, run_client
from .pool_tasks import pool_project  # noqa: F401 (the project fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

pytest.importorskip("tq_pool_prefork")

# Asks the worker (inspect stats) how many processes its pool has, while tasks run.
PROCESS_COUNTS = """
import json, time
from e2e_tasks import app, nap


def processes():
    stats = app.control.inspect(timeout=1).stats() or {}
    return [len(answer["pool"]["processes"]) for answer in stats.values()][0]


at_start = processes()
handles = [nap.delay(0.5) for _ in range(40)]
peak = at_start
while not all(handle.ready() for handle in handles):
    peak = max(peak, processes())
pids = {handle.get(timeout=60) for handle in handles}
deadline = time.monotonic() + 60
while processes() > 1 and time.monotonic() < deadline:
    time.sleep(0.5)
print(json.dumps([at_start, peak, len(pids), processes()]))
"""


def test_autoscale_grows_to_max_under_a_burst_and_returns_to_min_when_idle(
    project: Path, project_env: dict[str, str], start_worker: Callable[..., WorkerProcess]
) -> None:
    project_env["TQ_WORKER_AUTOSCALE_KEEPALIVE"] = "1"
    worker = start_worker("-P", "prefork", "--autoscale=4,1")
    output = run_client(project, project_env, PROCESS_COUNTS)
    at_start, peak, distinct_pids, when_idle = json.loads(output.strip().splitlines()[-1])
    assert (at_start, peak, when_idle) == (1, 4, 1)
    assert distinct_pids == 4
    assert "autoscale: growing the pool from 1 to 4" in worker.output
    assert "autoscale: shrinking the pool" in worker.output


def test_autoscale_on_the_threads_pool_grows_and_shrinks_it(
    project: Path, project_env: dict[str, str], start_worker: Callable[..., WorkerProcess]
) -> None:
    project_env["TQ_WORKER_AUTOSCALE_KEEPALIVE"] = "1"
    worker = start_worker("-P", "threads", "--autoscale=4,1")
    run_client(
        project,
        project_env,
        """
        from e2e_tasks import nap
        handles = [nap.delay(0.5) for _ in range(40)]
        [handle.get(timeout=60) for handle in handles]
        """,
    )
    worker.wait_for("autoscale: shrinking the pool from 4 to 1")
    assert "autoscale: growing the pool from 1 to 4" in worker.output


def test_autoscale_refuses_a_minimum_above_the_maximum(
    project: Path, project_env: dict[str, str]
) -> None:
    done = subprocess.run(
        [TQ, "-A", "e2e_tasks", "worker", "--autoscale=1,4"],
        cwd=project,
        env=project_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "expected 1 <= MIN <= MAX" in done.stderr
