"""Chord counting in the result backend: idempotent per header task, fires the body once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tq import App, states
from tq.backend import ResultBackend
from tq.backends.memory import MemoryBackend
from tq.chords import record
from tq_backend_sqlite.backend import SQLiteBackend

AppFactory = Callable[..., App]


class FallbackBackend(MemoryBackend):
    """A backend that only has get/set/incr: chords use the base class's generic counting."""

    chord_part = ResultBackend.chord_part


@pytest.fixture(params=["memory", "sqlite", "fallback"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ResultBackend]:
    made: ResultBackend
    if request.param == "sqlite":
        made = SQLiteBackend(f"sqlite:///{tmp_path / 'results.db'}")
    elif request.param == "memory":
        made = MemoryBackend(f"memory://{tmp_path.name}")
    else:
        made = FallbackBackend(f"memory://{tmp_path.name}")
    yield made
    made.close()


def test_recording_a_part_again_never_lowers_the_count(backend: ResultBackend) -> None:
    assert backend.chord_part("c", 0, b"a") == 1
    again = backend.chord_part("c", 0, b"a2")
    assert backend.chord_part("c", 1, b"b") >= 2
    assert again >= 1
    assert backend.chord_parts("c", 3) == [b"a2", b"b", None]


def test_native_counting_counts_each_part_once(tmp_path: Path) -> None:
    for native in (
        MemoryBackend(f"memory://{tmp_path.name}-n"),
        SQLiteBackend(f"sqlite:///{tmp_path / 'n.db'}"),
    ):
        assert [native.chord_part("k", i % 2, b"x") for i in range(4)] == [1, 2, 2, 2]


def test_a_redelivered_header_task_never_fires_the_body_twice(
    make_app: AppFactory, backend: ResultBackend
) -> None:
    app = make_app()
    app.results.backend = backend
    bodies: list[list[int]] = []

    @app.task(name="count.collect")
    def collect(values: list[int]) -> None:
        bodies.append(values)

    body: dict[str, Any] = {**collect.s().to_dict(), "chord_size": 3}
    app.conf["task_always_eager"] = True  # the body runs here when it is sent
    for index, task_id in [(0, "a"), (1, "b"), (1, "b"), (2, "c"), (2, "c"), (0, "a")]:
        record(app, (body, "g1", index), task_id, states.SUCCESS, index * 10)
    assert bodies == [[0, 10, 20]]
