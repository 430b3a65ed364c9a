"""A real ``tq worker`` process on the embedded SQLite broker, driven by client processes."""

from __future__ import annotations

import collections
import json
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import WorkerProcess, run_client

pytestmark = pytest.mark.e2e

SEND_AND_COLLECT = """
    import json
    from e2e_tasks import record

    results = [record.delay(i, {pause}) for i in range({count})]
    print(json.dumps([r.get(timeout=120) for r in results]))
"""


def executions(project: Path) -> collections.Counter[int]:
    log = project / "executions.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return collections.Counter(int(line.split()[1]) for line in lines)


def test_worker_runs_a_thousand_tasks_sent_by_another_process(
    project: Path, project_env: dict[str, str], start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker("-P", "threads", "-c", "4")
    output = run_client(project, project_env, SEND_AND_COLLECT.format(count=1000, pause=0))
    assert json.loads(output) == [i * 2 for i in range(1000)]
    assert set(executions(project)) == set(range(1000))
    assert worker.stop() == 0


def test_tasks_survive_a_worker_killed_half_way(
    project: Path, project_env: dict[str, str], start_worker: Callable[..., WorkerProcess]
) -> None:
    first = start_worker("-P", "threads", "-c", "4")
    client = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(SEND_AND_COLLECT.format(count=1000, pause=0.005))],
        cwd=project,
        env=project_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while sum(executions(project).values()) < 500:
        assert time.monotonic() < deadline, "the worker never got half-way"
        time.sleep(0.02)
    first.kill()
    killed_at = sum(executions(project).values())
    start_worker("-P", "threads", "-c", "4")
    stdout, stderr = client.communicate(timeout=180)
    assert client.returncode == 0, stderr
    assert json.loads(stdout) == [i * 2 for i in range(1000)]
    counts = executions(project)
    duplicates = sum(n - 1 for n in counts.values())
    print(f"1000 tasks; worker SIGKILLed after {killed_at} executions; duplicates: {duplicates}")
    assert set(counts) == set(range(1000)), "a task was lost"
    # Only messages leased to the killed worker may run twice.
    assert duplicates <= 4 * 4 + 4


def test_bad_messages_are_dead_lettered_and_the_worker_goes_on(
    project: Path, project_env: dict[str, str], start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker("-P", "threads", "-c", "2")
    output = run_client(
        project,
        project_env,
        """
        import json, uuid
        from tq import Queue
        from tq.message import Message
        from e2e_tasks import app, record

        headers = {"task": "e2e_tasks.record", "id": str(uuid.uuid4())}
        app.transport.publish(Message(b"{not json", "application/json", "utf-8", headers), Queue("tq"))
        app.send_task("e2e_tasks.no_such_task", (1,))
        record.apply_async((1,), serializer="pickle")
        after = record.delay(21)
        print(json.dumps(after.get(timeout=60)))
    """,
    )
    assert json.loads(output) == 42
    worker.wait_for("no_such_task")
    log = worker.output
    assert "DecodeError" in log
    assert "unknown task 'e2e_tasks.no_such_task'" in log
    assert "ContentDisallowed" in log and "pickle" in log
    dead = run_client(
        project,
        project_env,
        """
        from e2e_tasks import app
        print(app.transport.size("tq.dead"))
    """,
    )
    assert int(dead) == 3
    assert worker.stop() == 0


SEND_ONLY = """
    import json
    from e2e_tasks import record

    ids = [record.delay(i, {pause}).id for i in range({count})]
    print(json.dumps(ids))
"""

STATES = """
    import json
    from e2e_tasks import app

    print(json.dumps([app.AsyncResult(i).state for i in {ids!r}]))
"""


@pytest.mark.parametrize("acks_late", ["true", "false"])
def test_warm_shutdown_finishes_the_running_task_and_hands_back_the_rest(
    project: Path,
    project_env: dict[str, str],
    start_worker: Callable[..., WorkerProcess],
    acks_late: str,
) -> None:
    # Without acks_late a message is acknowledged when its task starts, not when the
    # worker reserves it: the three waiting for the busy thread must not be lost.
    project_env["TQ_TASK_ACKS_LATE"] = acks_late
    worker = start_worker("-P", "threads", "-c", "1", "--prefetch-multiplier", "4")
    ids = json.loads(run_client(project, project_env, SEND_ONLY.format(count=4, pause=2)))
    worker.wait_for(f"Task e2e_tasks.record[{ids[0]}] received")
    time.sleep(0.3)
    assert worker.stop() == 0
    states = json.loads(run_client(project, project_env, STATES.format(ids=ids)))
    assert states == ["SUCCESS", "PENDING", "PENDING", "PENDING"]
    left = run_client(
        project,
        project_env,
        """
        from e2e_tasks import app
        print(app.transport.size("tq"))
    """,
    )
    # Handed back at once, not leased until the visibility timeout.
    assert int(left) == 3
    assert "Warm shutdown" in worker.output


def test_a_task_longer_than_the_visibility_timeout_runs_once(
    project: Path, project_env: dict[str, str], start_worker: Callable[..., WorkerProcess]
) -> None:
    # The visibility timeout is 3 s here; the worker renews its lease while the task runs,
    # so a second worker never receives the message.
    start_worker("-P", "threads", "-c", "1", "-n", "one@%h")
    start_worker("-P", "threads", "-c", "1", "-n", "two@%h")
    output = run_client(project, project_env, SEND_AND_COLLECT.format(count=1, pause=7))
    assert json.loads(output) == [0]
    assert executions(project) == collections.Counter({0: 1})


def test_cold_shutdown_returns_the_running_task_to_the_queue(
    project: Path, project_env: dict[str, str], start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker("-P", "threads", "-c", "1")
    ids = json.loads(run_client(project, project_env, SEND_ONLY.format(count=1, pause=30)))
    worker.wait_for(f"Task e2e_tasks.record[{ids[0]}] received")
    worker.process.send_signal(signal.SIGQUIT)
    worker.process.wait(timeout=10)
    assert "Cold shutdown" in worker.output
    left = run_client(
        project,
        project_env,
        """
        from e2e_tasks import app
        print(app.transport.size("tq"))
    """,
    )
    assert int(left) == 1
