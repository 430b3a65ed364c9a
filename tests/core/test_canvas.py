"""Canvas: signatures, chains, groups, chords and friends, run by a worker in this process.

Each test sends work through a private memory broker and backend to a real
``tq_worker.Worker`` running threads, or runs it eagerly with ``task_always_eager``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tq import App, GroupResult, Request, Signature, states
from tq.canvas import chain, chord, group, signature
from tq.errors import ChordError
from tq_worker.worker import Worker

AppFactory = Callable[..., App]


class Boom(Exception):
    """An exception the client can rebuild, as a shared tasks module's would be."""


@dataclass
class Tasks:
    """The tasks of one app, and what their error callbacks saw."""

    app: App
    errors: list[tuple[str | None, str, str]] = field(default_factory=list)
    error_ids: list[str] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def define_tasks(app: App) -> Tasks:
    tasks = Tasks(app)

    @app.task(name="c.add")
    def add(x: int, y: int, debug: bool = False) -> int:
        return x + y

    @app.task(name="c.mul")
    def mul(x: int, y: int) -> int:
        return x * y

    @app.task(name="c.xsum")
    def xsum(numbers: list[int]) -> int:
        return sum(numbers)

    @app.task(name="c.fail")
    def fail(*args: Any) -> None:
        raise Boom("no way")

    @app.task(name="c.note")
    def note(label: str, *args: Any) -> str:
        with tasks.lock:
            tasks.ran.append(label)
        return label

    @app.task(name="c.on_error")
    def on_error(request: Request, exc: BaseException, traceback: str) -> None:
        with tasks.lock:
            tasks.errors.append((request.id, repr(exc), traceback))

    @app.task(name="c.log_error")
    def log_error(task_id: str) -> None:
        with tasks.lock:
            tasks.error_ids.append(task_id)

    @app.task(name="c.replaced", bind=True)
    def replaced(self: Any, x: int) -> None:
        self.replace(mul.s(x, 10))

    return tasks


@pytest.fixture
def worker_app(make_app: AppFactory) -> Iterator[Tasks]:
    app = make_app(worker_fetch_timeout=0.05)
    tasks = define_tasks(app)
    worker = Worker(app, pool="threads", concurrency=4)
    worker.start()
    try:
        yield tasks
    finally:
        worker.stop(warm=True)


@pytest.fixture
def eager_app(make_app: AppFactory) -> Tasks:
    return define_tasks(make_app(task_always_eager=True))


@pytest.fixture(params=["worker", "eager"])
def tasks(request: pytest.FixtureRequest) -> Tasks:
    return request.getfixturevalue(f"{request.param}_app")  # type: ignore[no-any-return]


def sig(tasks: Tasks, name: str, *args: Any, **kwargs: Any) -> Signature:
    return tasks.app.tasks[f"c.{name}"].s(*args, **kwargs)


# -- signatures ------------------------------------------------------------------------


def test_signature_keeps_args_kwargs_and_options(tasks: Tasks) -> None:
    add = tasks.app.tasks["c.add"]
    s = add.signature((2, 2), {"debug": True}, countdown=10)
    assert (s.args, s.kwargs, s.options) == ((2, 2), {"debug": True}, {"countdown": 10})
    named = signature("c.add", args=(2, 2), countdown=10, app=tasks.app)
    assert named.task == "c.add" and named.options == {"countdown": 10}
    assert signature(add, (1, 2)).app is tasks.app


def test_partial_signatures_prepend_args_and_merge_kwargs_and_options(tasks: Tasks) -> None:
    partial = sig(tasks, "add", 2)
    assert partial.delay(8).get(timeout=10) == 10
    assert partial.apply_async((4,)).get(timeout=10) == 6
    clone = partial.clone(args=(4,), kwargs={"debug": True}, countdown=1)
    assert (clone.args, clone.kwargs, clone.options) == ((4, 2), {"debug": True}, {"countdown": 1})
    assert partial.args == (2,) and partial.options == {}


def test_immutable_signatures_ignore_partial_args(tasks: Tasks) -> None:
    immutable = tasks.app.tasks["c.add"].si(2, 2)
    assert immutable.clone((100,)).args == (2, 2)
    assert immutable.delay(100).get(timeout=10) == 4


def test_calling_a_signature_runs_the_function_here_and_invert_waits(tasks: Tasks) -> None:
    assert sig(tasks, "add", 2, 2)() == 4
    assert ~sig(tasks, "add", 3, 3) == 6


def test_set_merges_options_in_place(tasks: Tasks) -> None:
    s = sig(tasks, "add", 2, 2).set(countdown=1, queue="tq")
    assert s.options == {"countdown": 1, "queue": "tq"}


def test_signatures_serialize_to_celerys_dict_and_back(tasks: Tasks) -> None:
    workflow = chain(sig(tasks, "add", 1, 1), group(sig(tasks, "mul", 2), sig(tasks, "mul", 3)))
    workflow.link_error(sig(tasks, "log_error"))
    data = workflow.to_dict()
    assert data["subtask_type"] == "chain" and data["kwargs"]["tasks"][0]["task"] == "c.add"
    assert set(data["kwargs"]["tasks"][0]) == {
        "task",
        "args",
        "kwargs",
        "options",
        "subtask_type",
        "immutable",
    }
    rebuilt = Signature.from_dict(data, app=tasks.app)
    assert isinstance(rebuilt, chain) and rebuilt == workflow
    assert isinstance(rebuilt.tasks[1], group)


# -- chains ----------------------------------------------------------------------------


def test_chain_passes_each_result_to_the_next_task(tasks: Tasks) -> None:
    result = chain(sig(tasks, "add", 2, 2), sig(tasks, "add", 4), sig(tasks, "add", 8))()
    assert result.get(timeout=10) == 16
    assert result.parent.get(timeout=10) == 8
    assert result.parent.parent.get(timeout=10) == 4


def test_pipe_builds_chains_and_partial_chains_take_arguments(tasks: Tasks) -> None:
    partial = sig(tasks, "add", 4) | sig(tasks, "mul", 8)
    assert isinstance(partial, chain) and len(partial.tasks) == 2
    assert partial(4).get(timeout=10) == 64
    nested = (
        sig(tasks, "add", 4, 16)
        | sig(tasks, "mul", 2)
        | (sig(tasks, "add", 4) | sig(tasks, "mul", 8))
    )
    assert len(nested.tasks) == 4
    assert nested().get(timeout=10) == 352


def test_chain_of_immutable_tasks_ignores_results(tasks: Tasks) -> None:
    add = tasks.app.tasks["c.add"]
    result = (add.si(2, 2) | add.si(4, 4) | add.si(8, 8))()
    assert result.get(timeout=10) == 16
    assert result.parent.get(timeout=10) == 8


def test_chain_stops_at_a_failure_and_calls_its_error_callback_once(tasks: Tasks) -> None:
    workflow = chain(sig(tasks, "note", "first"), sig(tasks, "fail"), sig(tasks, "note", "third"))
    result = workflow.apply_async(link_error=sig(tasks, "on_error"))
    with pytest.raises(Boom):
        result.get(timeout=10)
    assert tasks.ran == ["first"]
    assert len(tasks.errors) == 1
    failed_id, error, traceback = tasks.errors[0]
    second = result if result.failed() else result.parent  # eager runs stop at the failure
    assert failed_id == second.id and "Boom" in error and "no way" in traceback


def test_error_callbacks_that_take_one_argument_get_the_task_id(tasks: Tasks) -> None:
    result = tasks.app.tasks["c.fail"].apply_async(link_error=sig(tasks, "log_error"))
    with pytest.raises(Boom):
        result.get(timeout=10)
    wait_until(lambda: tasks.error_ids == [result.id])


def test_link_callbacks_are_children_of_the_result(worker_app: Tasks) -> None:
    tasks = worker_app
    result = tasks.app.tasks["c.add"].apply_async((2, 2), link=sig(tasks, "mul", 16))
    assert result.get(timeout=10) == 4
    [child] = result.children
    assert child.get(timeout=10) == 64
    assert [value for _, value in result.collect(timeout=10)] == [4, 64]


# -- groups ----------------------------------------------------------------------------


def test_group_runs_every_task_and_returns_values_in_order(tasks: Tasks) -> None:
    result = group(sig(tasks, "add", i, i) for i in range(10))()
    assert isinstance(result, GroupResult)
    assert result.get(timeout=10) == [i + i for i in range(10)]
    assert result.ready() and result.successful() and not result.failed()
    assert result.completed_count() == 10


def test_partial_group_takes_arguments(tasks: Tasks) -> None:
    assert group(sig(tasks, "add", i) for i in range(10))(10).get(timeout=10) == [
        10 + i for i in range(10)
    ]


def test_group_result_is_saved_and_restored(worker_app: Tasks) -> None:
    tasks = worker_app
    result = group(sig(tasks, "add", 2, 2), sig(tasks, "add", 4, 4))()
    result.save()
    restored = tasks.app.GroupResult.restore(result.id or "")
    assert restored is not None and restored.get(timeout=10) == [4, 8]


def test_revoking_a_group_marks_unfinished_tasks_revoked(worker_app: Tasks) -> None:
    tasks = worker_app
    pending = tasks.app.GroupResult("g-revoke", [tasks.app.AsyncResult("never-sent")])
    pending.revoke()
    assert pending.results[0].state == states.REVOKED


# -- chords ----------------------------------------------------------------------------


def test_chord_calls_its_body_with_every_result_in_order(tasks: Tasks) -> None:
    result = chord((sig(tasks, "add", i, i) for i in range(10)), sig(tasks, "xsum"))()
    assert result.get(timeout=10) == 90
    assert isinstance(result.parent, GroupResult)
    assert result.parent.get(timeout=10) == [i + i for i in range(10)]


def test_group_piped_to_a_task_becomes_a_chord(tasks: Tasks) -> None:
    workflow = group(sig(tasks, "add", i, i) for i in range(10)) | sig(tasks, "xsum")
    assert isinstance(workflow, chord)
    assert workflow().get(timeout=10) == 90


def test_chord_called_with_its_body(tasks: Tasks) -> None:
    result = chord([sig(tasks, "add", i, i) for i in range(100)])(sig(tasks, "xsum"))
    assert result.get(timeout=10) == 9900


def test_failing_header_task_fails_the_chord_with_a_chord_error(tasks: Tasks) -> None:
    body = sig(tasks, "xsum")
    result = chord([sig(tasks, "add", 4, 4), sig(tasks, "fail"), sig(tasks, "add", 8, 8)], body)
    outcome = result.apply_async(link_error=sig(tasks, "on_error"))
    with pytest.raises(ChordError, match=r"Dependency .* raised .*Boom"):
        outcome.get(timeout=10)
    wait_until(lambda: len(tasks.errors) == 1)


def test_chord_inside_a_chain_gets_the_previous_result(tasks: Tasks) -> None:
    workflow = (
        sig(tasks, "add", 1, 1)
        | chord([sig(tasks, "mul", 10), sig(tasks, "mul", 100)], sig(tasks, "xsum"))
        | sig(tasks, "add", 1)
    )
    assert workflow().get(timeout=10) == 2 * 10 + 2 * 100 + 1


def test_chain_ending_in_a_group_returns_the_group_result(tasks: Tasks) -> None:
    result = (sig(tasks, "add", 4, 4) | group(sig(tasks, "add", i) for i in range(10)))()
    assert result.get(timeout=10) == [8 + i for i in range(10)]


def test_group_in_the_middle_of_a_chain_is_upgraded_to_a_chord(tasks: Tasks) -> None:
    workflow = (
        sig(tasks, "add", 1, 1)
        | group(sig(tasks, "mul", 2), sig(tasks, "mul", 3))
        | sig(tasks, "xsum")
    )
    assert workflow().get(timeout=10) == 4 + 6


def test_group_of_chains(tasks: Tasks) -> None:
    result = group(sig(tasks, "add", i, i) | sig(tasks, "mul", 10) for i in range(5))()
    assert result.get(timeout=10) == [20 * i for i in range(5)]


def test_chord_of_chains_and_chord_of_chords(tasks: Tasks) -> None:
    chains = chord(
        [sig(tasks, "add", i, i) | sig(tasks, "mul", 2) for i in range(4)], sig(tasks, "xsum")
    )
    assert chains().get(timeout=10) == sum(4 * i for i in range(4))
    inner = [
        chord([sig(tasks, "add", i, j) for j in range(3)], sig(tasks, "xsum")) for i in range(3)
    ]
    outer = chord(inner, sig(tasks, "xsum"))
    assert outer().get(timeout=10) == sum(3 * i + 3 for i in range(3))


def test_empty_chord_calls_its_body_with_an_empty_list(tasks: Tasks) -> None:
    assert chord([], sig(tasks, "xsum"))().get(timeout=10) == 0


# -- map, starmap, chunks, replace -----------------------------------------------------


def test_map_and_starmap_run_in_one_message(tasks: Tasks) -> None:
    xsum = tasks.app.tasks["c.xsum"]
    assert ~xsum.map([list(range(10)), list(range(100))]) == [45, 4950]
    assert ~tasks.app.tasks["c.add"].starmap(zip(range(10), range(10))) == [
        i + i for i in range(10)
    ]


def test_chunks_split_work_into_groups(tasks: Tasks) -> None:
    add = tasks.app.tasks["c.add"]
    result = add.chunks(zip(range(100), range(100)), 10)()
    assert result.get(timeout=10) == [[2 * (i + j) for j in range(10)] for i in range(0, 100, 10)]
    assert len(add.chunks(zip(range(100), range(100)), 10).group()) == 10


def test_replaced_task_gives_its_result_to_the_caller_and_its_chain(worker_app: Tasks) -> None:
    tasks = worker_app
    replaced = tasks.app.tasks["c.replaced"]
    assert replaced.delay(4).get(timeout=10) == 40
    assert (replaced.s(3) | sig(tasks, "add", 1))().get(timeout=10) == 31


def wait_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    """Wait for something another thread does (not a timing assertion: it fails only
    when it never happens)."""
    event = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        event.wait(0.01)
    raise AssertionError("condition never became true")
