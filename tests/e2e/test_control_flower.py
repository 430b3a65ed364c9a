"""Acceptance: with ``celery_compat``, Flower watching the same Redis sees a tq worker
online and a tq task succeeded, through Flower's HTTP API.

Needs Flower (a test dependency in hatch.toml), the Redis plugins and a Redis server;
skipped cleanly otherwise.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import WorkerProcess
from tests.e2e.test_control_cluster import until
from tq import App

REDIS_URL = "redis://127.0.0.1:6379/15"

CELERY_APP = textwrap.dedent(
    f"""
    from celery import Celery

    app = Celery("flower_view", broker="{REDIS_URL}", backend="{REDIS_URL}")
    """
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())
    except OSError:
        return None


def test_flower_lists_the_tq_worker_and_a_succeeded_task(
    project: Path,
    project_env: dict[str, str],
    start_worker: Callable[..., WorkerProcess],
) -> None:
    pytest.importorskip("flower")
    pytest.importorskip("tq_transport_redis")
    pytest.importorskip("tq_backend_redis")
    from tq_testing.services import require_service

    require_service("redis", "127.0.0.1", 6379)
    env = {
        **project_env,
        "TQ_BROKER_URL": REDIS_URL,
        "TQ_RESULT_BACKEND": REDIS_URL,
        "TQ_CELERY_COMPAT": "true",
        # Flower 2 refuses its HTTP API without authentication unless told otherwise.
        "FLOWER_UNAUTHENTICATED_API": "true",
    }
    project_env.update(env)
    (project / "flower_view.py").write_text(CELERY_APP)
    port = _free_port()
    flower = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "flower_view", "flower", f"--port={port}"],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        start_worker("-E", "-n", "flowered@%h")
        client = App("client", broker=REDIS_URL, backend=REDIS_URL, celery_compat=True)
        base = f"http://127.0.0.1:{port}/api"

        def online() -> bool:
            workers = _get(f"{base}/workers?refresh=1") or {}
            return any(name.startswith("flowered@") for name in workers)

        until(online, "Flower lists the tq worker", timeout=60)
        result = client.send_task("e2e_tasks.record", (4,))
        assert result.get(timeout=30) == 8

        def succeeded() -> bool:
            task = _get(f"{base}/task/info/{result.id}") or {}
            return task.get("state") == "SUCCESS"

        until(succeeded, "Flower shows the task as succeeded", timeout=60)
        client.close()
    finally:
        flower.terminate()
        flower.wait()
