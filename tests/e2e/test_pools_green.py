"""gevent and eventlet pools in a real ``tq worker``: patched early, however chosen."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tq_testing.services import require_service

from .conftest import WorkerProcess, run_client
from .pool_tasks import pool_project  # noqa: F401 (the project fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(180)]

TASKS = 2000

DRAIN = f"""
    import json
    from e2e_tasks import green_nap
    handles = [green_nap.delay(0.2) for _ in range({TASKS})]
    print(json.dumps([h.get(timeout=150) for h in handles]))
"""


@pytest.fixture(params=["sqlite", "redis"])
def broker_env(request: pytest.FixtureRequest, project_env: dict[str, str]) -> dict[str, str]:
    """The embedded broker, or Redis when its transport plugin is installed and up."""
    if request.param == "redis":
        if importlib.util.find_spec("tq_transport_redis") is None:
            pytest.skip("tq-transport-redis is not installed")
        require_service("redis", "127.0.0.1", 6379)
        project_env["TQ_BROKER_URL"] = "redis://127.0.0.1:6379/15"
        project_env["TQ_RESULT_BACKEND"] = "sqlite:///results.sqlite3"
    return project_env


def drain(project: Path, env: dict[str, str]) -> tuple[float, set[str]]:
    """Send the tasks, wait for all; the span from the first start to the last end."""
    spans = json.loads(run_client(project, env, DRAIN, timeout=170).strip().splitlines()[-1])
    assert len(spans) == TASKS
    seconds = max(end for _, end, _ in spans) - min(start for start, _, _ in spans)
    return seconds, {module for _, _, module in spans}


@pytest.mark.parametrize("pool", ["gevent", "eventlet"])
def test_a_green_pool_chosen_with_the_option_drains_sleeping_tasks_concurrently(
    pool: str,
    project: Path,
    broker_env: dict[str, str],
    start_worker: Callable[..., WorkerProcess],
) -> None:
    pytest.importorskip(f"tq_pool_{pool}")
    start_worker("--pool", pool, "-c", "500")
    seconds, sleep_modules = drain(project, broker_env)
    print(f"{pool}: {TASKS} tasks of 0.2 s drained in {seconds:.1f} s")
    assert "time" not in sleep_modules  # time.sleep was patched before the app loaded
    assert seconds < TASKS * 0.2 / 10  # far from serial: many ran at once


@pytest.mark.parametrize("pool", ["gevent", "eventlet"])
def test_a_green_pool_named_only_in_the_settings_is_patched_too(
    pool: str,
    project: Path,
    broker_env: dict[str, str],
    start_worker: Callable[..., WorkerProcess],
) -> None:
    pytest.importorskip(f"tq_pool_{pool}")
    broker_env["E2E_WORKER_POOL"] = pool
    worker = start_worker("-c", "500")
    seconds, sleep_modules = drain(project, broker_env)
    print(f"{pool} (from settings): {TASKS} tasks of 0.2 s drained in {seconds:.1f} s")
    assert "time" not in sleep_modules
    assert seconds < TASKS * 0.2 / 10
    assert "restarting the worker" in worker.output
