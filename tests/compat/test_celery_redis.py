"""With ``celery_compat = True``, Celery 5 and tq share queues and results on Redis.

Both sides run as real processes: a Celery client and a ``tq worker``, then a tq client
and a ``celery worker``. They share one task name and one Redis (db 15 under a key
prefix of this test's own, which both Celery and tq apply to every key and channel).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import WorkerProcess, run_client

pytest.importorskip("celery", reason="Celery 5 is not installed")
pytestmark = pytest.mark.e2e

CELERY_APP = textwrap.dedent(
    """
    import os

    from celery import Celery

    URL = os.environ["TQ_BROKER_URL"]
    PREFIX = os.environ["PREFIX"]
    app = Celery("proj", broker=URL, backend=URL)
    app.conf.broker_transport_options = {"global_keyprefix": PREFIX}
    app.conf.result_backend_transport_options = {"global_keyprefix": PREFIX}


    @app.task(name="proj.add")
    def add(x, y):
        return x + y
    """
)

# The tq side: the worker module the e2e helpers start (``tq -A e2e_tasks worker``).
TQ_APP = textwrap.dedent(
    """
    from tq import App

    app = App("e2e_tasks", celery_compat=True)


    @app.task(name="proj.add")
    def add(x: int, y: int) -> int:
        return x + y
    """
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "celery_app.py").write_text(CELERY_APP)
    (tmp_path / "e2e_tasks.py").write_text(TQ_APP)
    return tmp_path


@pytest.fixture
def env(project: Path, redis_url: str, key_prefix: str) -> dict[str, str]:
    options = json.dumps({"global_keyprefix": key_prefix})
    return {
        **os.environ,
        "PYTHONPATH": str(project),
        "PREFIX": key_prefix,
        "TQ_BROKER_URL": redis_url,
        "TQ_RESULT_BACKEND": redis_url,
        "TQ_BROKER_TRANSPORT_OPTIONS": options,
        "TQ_RESULT_BACKEND_TRANSPORT_OPTIONS": options,
    }


@pytest.fixture
def tq_worker(project: Path, env: dict[str, str]) -> Iterator[WorkerProcess]:
    worker = WorkerProcess(project, env, "-P", "threads", "-c", "2")
    yield worker
    worker.stop()


@pytest.fixture
def celery_worker(project: Path, env: dict[str, str]) -> Iterator[Path]:
    log_path = project / "celery-worker.log"
    celery = str(Path(sys.executable).parent / "celery")
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                *(celery, "-A", "celery_app", "worker", "-P", "solo", "-l", "info"),
                *("--without-mingle", "--without-gossip", "--without-heartbeat"),
            ],
            cwd=project,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while "ready." not in log_path.read_text():
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        yield log_path
        process.send_signal(signal.SIGTERM)
        process.wait(30)


def test_a_celery_clients_task_runs_on_a_tq_worker_and_celery_reads_the_result(
    project: Path, env: dict[str, str], tq_worker: WorkerProcess
) -> None:
    output = run_client(
        project,
        env,
        """
        from celery_app import add
        print(add.delay(2, 2).get(timeout=60))
        """,
    )
    assert output.strip() == "4"
    tq_worker.wait_for("proj.add")


def test_a_tq_clients_task_runs_on_a_celery_worker_and_tq_reads_the_result(
    project: Path, env: dict[str, str], celery_worker: Path
) -> None:
    output = run_client(
        project,
        env,
        """
        from e2e_tasks import add
        print(add.delay(2, 3).get(timeout=60))
        """,
    )
    assert output.strip() == "5"
    assert "proj.add" in celery_worker.read_text()
