"""A chord of 1,000 header tasks on the embedded SQLite broker, with and without a crash.

The body must run exactly once, with the 1,000 results in header order, also when the
worker is SIGKILLed half-way through the header and its messages are redelivered.
"""

from __future__ import annotations

import collections
import importlib
import json
import sqlite3
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tq import App
from tq.canvas import chord

from .conftest import WorkerProcess

pytestmark = pytest.mark.e2e

CHORD_TASKS = textwrap.dedent(
    """
    import json
    import os
    import time

    from tq import App

    HERE = os.path.dirname(os.path.abspath(__file__))


    def define(app):
        @app.task(name="chords.double", bind=True)
        def double(self, i, pause=0.0):
            if pause:
                time.sleep(pause)
            with open(os.path.join(HERE, "executions.log"), "a") as log:
                log.write(f"{self.request.id} {i}\\n")
            return i * 2

        @app.task(name="chords.collect")
        def collect(values):
            with open(os.path.join(HERE, "bodies.log"), "a") as log:
                log.write(json.dumps(values) + "\\n")
            return len(values)

        return app


    app = define(App("e2e_tasks"))
    """
)

SIZE = 1000


@pytest.fixture
def chord_project(project: Path) -> Path:
    (project / "e2e_tasks.py").write_text(CHORD_TASKS)
    return project


@pytest.fixture
def client(chord_project: Path) -> Iterator[ModuleType]:
    sys.path.insert(0, str(chord_project))
    sys.modules.pop("e2e_tasks", None)
    try:
        module = importlib.import_module("e2e_tasks")
        url = f"sqlite:///{chord_project / 'tq.sqlite3'}"
        module.client = module.define(App("chords_client", broker=url, backend=url))
        yield module
        module.client.close()
    finally:
        sys.path.remove(str(chord_project))
        sys.modules.pop("e2e_tasks", None)


def executions(project: Path) -> collections.Counter[int]:
    log = project / "executions.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return collections.Counter(int(line.split()[1]) for line in lines)


def bodies(project: Path) -> list[list[int]]:
    log = project / "bodies.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def wait_until_no_messages_left(project: Path) -> None:
    """Every message settled, leased ones included (a killed worker's leases expire)."""
    deadline = time.monotonic() + 60
    with sqlite3.connect(project / "tq.sqlite3") as db:
        while db.execute("SELECT COUNT(*) FROM tq_messages WHERE queue = 'tq'").fetchone()[0]:
            assert time.monotonic() < deadline, "messages were never settled"
            time.sleep(0.1)


def send_chord(client: ModuleType, pause: float) -> object:
    tasks = client.client.tasks
    header = [tasks["chords.double"].s(i, pause) for i in range(SIZE)]
    return chord(header, tasks["chords.collect"].s())()


def test_chord_of_a_thousand_fires_once_with_results_in_order(
    chord_project: Path, client: ModuleType, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker("-P", "threads", "-c", "4")
    result = send_chord(client, 0.0)
    assert result.get(timeout=180) == SIZE  # type: ignore[attr-defined]
    wait_until_no_messages_left(chord_project)
    assert worker.stop() == 0
    assert bodies(chord_project) == [[2 * i for i in range(SIZE)]]


def test_chord_fires_once_when_the_worker_is_killed_during_the_header(
    chord_project: Path, client: ModuleType, start_worker: Callable[..., WorkerProcess]
) -> None:
    first = start_worker("-P", "threads", "-c", "4")
    result = send_chord(client, 0.01)
    deadline = time.monotonic() + 120
    while sum(executions(chord_project).values()) < SIZE // 3:
        assert time.monotonic() < deadline, "the worker never got a third of the way"
        time.sleep(0.02)
    first.kill()
    killed_at = sum(executions(chord_project).values())
    second = start_worker("-P", "threads", "-c", "4")
    assert result.get(timeout=180) == SIZE  # type: ignore[attr-defined]
    wait_until_no_messages_left(chord_project)
    assert second.stop() == 0
    counts = executions(chord_project)
    duplicates = sum(n - 1 for n in counts.values())
    print(f"chord of {SIZE}; SIGKILL after {killed_at} header runs; {duplicates} ran twice")
    assert set(counts) == set(range(SIZE))
    assert bodies(chord_project) == [[2 * i for i in range(SIZE)]]
