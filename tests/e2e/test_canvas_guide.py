"""Celery's "Canvas: Designing Work-flows" guide, written with tq, against a real worker.

Every example of the guide runs here with the value the guide documents, on each broker
(the embedded SQLite file, and Redis when the plugin is installed and Redis answers).
One ``tq worker`` process serves the whole module per broker.
"""

from __future__ import annotations

import importlib
import os
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from tq import App, GroupResult
from tq.canvas import chain, chord, group, signature
from tq.errors import ChordError
from tq_testing.services import require_service

from .conftest import WorkerProcess

pytestmark = pytest.mark.e2e

GUIDE_TASKS = textwrap.dedent(
    '''
    """The tasks the canvas guide uses, defined on any app by ``define``."""
    import os

    from tq import App

    HERE = os.path.dirname(os.path.abspath(__file__))


    def define(app):
        @app.task(name="guide.add")
        def add(x, y, debug=False):
            return x + y

        @app.task(name="guide.mul")
        def mul(x, y):
            return x * y

        @app.task(name="guide.xsum")
        def xsum(numbers):
            return sum(numbers)

        @app.task(name="guide.tsum")
        def tsum(numbers):
            return sum(numbers)

        @app.task(name="guide.raising_task")
        def raising_task(*args):
            raise KeyError("foo")

        @app.task(name="guide.note")
        def note(label, *args):
            with open(os.path.join(HERE, "notes.log"), "a") as log:
                log.write(f"{label}\\n")
            return label

        @app.task(name="guide.on_error")
        def on_error(request, exc, traceback):
            with open(os.path.join(HERE, "errors.log"), "a") as log:
                log.write(f"{request.id} {exc!r}\\n")

        @app.task(name="guide.log_error")
        def log_error(task_id):
            with open(os.path.join(HERE, "errors.log"), "a") as log:
                log.write(f"{task_id} by-id\\n")

        return app


    app = define(App("guide_tasks"))
    '''
)

BROKERS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("redis", id="redis"),
]


def broker_url(kind: str, project: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{project / 'tq.sqlite3'}"
    pytest.importorskip("tq_transport_redis")
    pytest.importorskip("tq_backend_redis")
    require_service("redis", "localhost", 6379)
    return "redis://localhost:6379/0"


@pytest.fixture(scope="module", params=BROKERS)
def guide(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SimpleNamespace]:
    """A worker on one broker, and a client app with the guide's tasks."""
    project = tmp_path_factory.mktemp(f"guide-{request.param}")
    # The worker fixture of tests/e2e/conftest.py starts ``tq -A e2e_tasks``.
    (project / "e2e_tasks.py").write_text(GUIDE_TASKS)
    url = broker_url(request.param, project)
    queue = f"guide-{uuid.uuid4().hex[:8]}"  # a private queue on a shared Redis
    env = {
        **os.environ,
        "PYTHONPATH": str(project),
        "TQ_BROKER_URL": url,
        "TQ_RESULT_BACKEND": url,
        "TQ_TASK_DEFAULT_QUEUE": queue,
    }
    worker = WorkerProcess(project, env, "-P", "threads", "-c", "4")
    client = App("guide_client", broker=url, backend=url, task_default_queue=queue)
    tasks = load_tasks(project).define(client)
    try:
        yield SimpleNamespace(
            app=client,
            project=project,
            **{
                name.split(".")[1]: task
                for name, task in tasks.tasks.items()
                if name.startswith("guide.")
            },
        )
    finally:
        client.close()
        worker.stop()


def load_tasks(project: Path) -> ModuleType:
    sys.path.insert(0, str(project))
    try:
        sys.modules.pop("e2e_tasks", None)
        return importlib.import_module("e2e_tasks")
    finally:
        sys.path.remove(str(project))


def log_lines(project: Path, name: str) -> list[str]:
    path = project / name
    return path.read_text().splitlines() if path.exists() else []


# -- Signatures --------------------------------------------------------------------------


def test_signatures_hold_arguments_and_execution_options(guide: Any) -> None:
    s = guide.add.signature((2, 2), {"debug": True}, countdown=10)
    assert (s.args, s.kwargs, s.options) == ((2, 2), {"debug": True}, {"countdown": 10})
    by_name = signature("guide.add", args=(2, 2), countdown=10, app=guide.app)
    assert by_name.options == {"countdown": 10}
    assert guide.add(2, 2) == 4
    assert guide.add.s(2, 2)() == 4
    assert guide.add.delay(2, 2).get(timeout=30) == 4
    assert guide.add.signature((2, 2), countdown=1).apply_async().get(timeout=30) == 4
    assert guide.add.s(2, 2).set(countdown=1).delay().get(timeout=30) == 4


def test_partials(guide: Any) -> None:
    partial = guide.add.s(2)
    assert partial.delay(4).get(timeout=30) == 6
    assert partial.apply_async((4,)).get(timeout=30) == 6
    s = guide.add.s(2, 2)
    assert s.delay(debug=True).get(timeout=30) == 4
    assert s.apply_async(kwargs={"debug": True}).get(timeout=30) == 4
    s3 = guide.add.s(2, 2, debug=True)
    assert s3.delay(debug=False).get(timeout=30) == 4
    clone = guide.add.s(2).clone(args=(4,), kwargs={"debug": True})
    assert (clone.args, clone.kwargs) == ((4, 2), {"debug": True})


def test_immutability_and_callbacks(guide: Any) -> None:
    result = guide.add.apply_async((2, 2), link=guide.add.s(8))
    assert result.get(timeout=30) == 4
    assert result.children[0].get(timeout=30) == 12
    assert ~guide.add.s(2, 2) == 4
    immutable = guide.add.signature((2, 2), immutable=True)
    assert immutable.delay(100).get(timeout=30) == 4


# -- The Primitives ---------------------------------------------------------------------


def test_simple_chain(guide: Any) -> None:
    add = guide.add
    result = chain(add.s(2, 2), add.s(4), add.s(8))()
    assert result.get(timeout=30) == 16
    assert (add.s(2, 2) | add.s(4) | add.s(8))().get(timeout=30) == 16


def test_immutable_chain_and_its_parents(guide: Any) -> None:
    add = guide.add
    result = (add.si(2, 2) | add.si(4, 4) | add.si(8, 8))()
    assert result.get(timeout=30) == 16
    assert result.parent.get(timeout=30) == 8
    assert result.parent.parent.get(timeout=30) == 4


def test_simple_group_and_simple_chord(guide: Any) -> None:
    add = guide.add
    assert group(add.s(i, i) for i in range(10))().get(timeout=30) == list(range(0, 20, 2))
    assert chord((add.s(i, i) for i in range(10)), guide.xsum.s())().get(timeout=30) == 90


def test_blow_your_mind_by_combining(guide: Any) -> None:
    add, mul, xsum = guide.add, guide.mul, guide.xsum
    c1 = add.s(4) | mul.s(8)
    assert c1(16).get(timeout=30) == 160
    c2 = add.s(4, 16) | mul.s(2) | (add.s(4) | mul.s(8))
    assert c2().get(timeout=30) == 352
    c3 = group(add.s(i, i) for i in range(10)) | xsum.s()
    assert c3().get(timeout=30) == 90
    result = (add.s(4, 4) | group(add.si(i, i) for i in range(10)))()
    assert result.get(timeout=30) == list(range(0, 20, 2))
    assert result.parent.get(timeout=30) == 8


def test_the_group_examples(guide: Any) -> None:
    add = guide.add
    assert group(add.s(2, 2), add.s(4, 4))().get(timeout=30) == [4, 8]
    job = group([add.s(2, 2), add.s(4, 4), add.s(8, 8), add.s(16, 16), add.s(32, 32)])
    result = job.apply_async()
    assert result.get(timeout=30) == [4, 8, 16, 32, 64]
    assert result.ready() and result.successful()
    assert result.completed_count() == 5
    result.save()
    restored = guide.app.GroupResult.restore(result.id)
    assert isinstance(restored, GroupResult) and restored.get(timeout=30) == [4, 8, 16, 32, 64]


# -- Chains -----------------------------------------------------------------------------


def test_chains_and_their_graph_of_parents(guide: Any) -> None:
    add, mul = guide.add, guide.mul
    result = chain(add.s(4, 4), mul.s(8), mul.s(10))()
    assert result.get(timeout=30) == 640
    assert result.parent.get(timeout=30) == 64
    assert result.parent.parent.get(timeout=30) == 8
    assert (add.s(2, 2) | mul.s(8) | mul.s(10)).apply_async().get(timeout=30) == 320


def test_link_children_and_collect(guide: Any) -> None:
    result = guide.add.apply_async((2, 2), link=guide.mul.s(16))
    assert result.get(timeout=30) == 4
    assert result.children[0].get(timeout=30) == 64
    assert [value for _, value in result.collect(timeout=30)] == [4, 64]


def test_error_callbacks(guide: Any) -> None:
    failing = guide.raising_task.s().on_error(guide.log_error.s()).delay()
    with pytest.raises(KeyError):
        failing.get(timeout=30)
    other = guide.raising_task.apply_async(link_error=guide.on_error.s())
    with pytest.raises(KeyError):
        other.get(timeout=30)
    wait_for_lines(guide.project, "errors.log", 2)
    lines = log_lines(guide.project, "errors.log")
    assert f"{failing.id} by-id" in lines
    assert f"{other.id} KeyError('foo')" in lines


def test_chain_whose_second_task_fails_calls_its_errback_once_and_stops(guide: Any) -> None:
    note = guide.note
    workflow = chain(note.si("one"), guide.raising_task.s(), note.si("three"))
    result = workflow.apply_async(link_error=guide.on_error.s())
    with pytest.raises(KeyError):
        result.get(timeout=30)
    failed = result.parent
    wait_for_lines(guide.project, "errors.log", 1, containing=failed.id)
    # The third task's message was never sent; once the errback ran, nothing more comes.
    assert [line for line in log_lines(guide.project, "errors.log") if failed.id in line] == [
        f"{failed.id} KeyError('foo')"
    ]
    assert "three" not in log_lines(guide.project, "notes.log")
    assert result.state == "PENDING"


# -- Chords -----------------------------------------------------------------------------


def test_chords(guide: Any) -> None:
    add, tsum = guide.add, guide.tsum
    assert chord(add.s(i, i) for i in range(100))(tsum.s()).get(timeout=30) == 9900
    header = [add.s(i, i) for i in range(100)]
    assert chord(header)(tsum.s()).get(timeout=30) == 9900
    c = group(add.s(i, i) for i in range(10)) | tsum.s()
    assert c().get(timeout=30) == 90


def test_chord_error_handling(guide: Any) -> None:
    add = guide.add
    c = chord([add.s(4, 4), guide.raising_task.s(), add.s(8, 8)], guide.xsum.s())
    result = c()
    with pytest.raises(ChordError, match=r"Dependency .* raised KeyError\('foo'\)"):
        result.get(timeout=30)


# -- Map & Starmap, Chunks --------------------------------------------------------------


def test_map_and_starmap(guide: Any) -> None:
    assert ~guide.tsum.map([list(range(10)), list(range(100))]) == [45, 4950]
    assert ~guide.add.starmap(zip(range(10), range(10), strict=True)) == list(range(0, 20, 2))


def test_chunks(guide: Any) -> None:
    add = guide.add
    result = add.chunks(zip(range(100), range(100), strict=True), 10)()
    assert result.get(timeout=30) == [[2 * i for i in range(j, j + 10)] for j in range(0, 100, 10)]
    skewed = add.chunks(zip(range(100), range(100), strict=True), 10).group()
    assert skewed.skew(start=1, stop=10)().get(timeout=60)[9][9] == 198


def wait_for_lines(project: Path, name: str, count: int, containing: str = "") -> None:
    """Wait until the worker wrote ``count`` matching lines (fails only if it never does)."""
    import time

    deadline = time.monotonic() + 30
    while len([line for line in log_lines(project, name) if containing in line]) < count:
        assert time.monotonic() < deadline, f"{name} never got {count} lines"
        time.sleep(0.05)
