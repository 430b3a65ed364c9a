"""Defining tasks: ``@app.task``, names, ``bind``, ``base`` classes and argument checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tq import App, Task, states
from tq.errors import ImproperlyConfigured
from tq.request import Request

AppFactory = Callable[..., App]


def add(x: int, y: int) -> int:
    return x + y


def test_app_task_without_parentheses_returns_a_task(app: App) -> None:
    task = app.task(add)
    assert isinstance(task, Task)
    assert task(2, 3) == 5


def test_app_task_with_options_returns_a_task(app: App) -> None:
    task = app.task(name="math.add", queue="math", max_retries=7)(add)
    assert isinstance(task, Task)
    assert (task.name, task.queue, task.max_retries) == ("math.add", "math", 7)


def test_automatic_name_is_module_dot_function(app: App) -> None:
    assert app.task(add).name == f"{__name__}.add"


def test_automatic_name_of_a_task_defined_in_a_function_is_module_dot_function(
    app: App,
) -> None:
    @app.task
    def multiply(x: int, y: int) -> int:
        return x * y

    assert multiply.name == f"{__name__}.multiply"


def test_tasks_defined_in_main_are_named_after_the_app(app: App) -> None:
    def job() -> None:
        pass

    job.__module__ = "__main__"
    job.__qualname__ = "job"
    assert app.task(job).name == "t.job"


def test_explicit_name_wins(app: App) -> None:
    assert app.task(name="custom.name")(add).name == "custom.name"


def test_registered_tasks_are_in_app_tasks(app: App) -> None:
    task = app.task(name="reg.add")(add)
    assert app.tasks["reg.add"] is task
    with pytest.raises(KeyError, match="not registered"):
        app.tasks["reg.missing"]


def test_calling_a_task_runs_it_here_with_called_directly_set(app: App) -> None:
    seen: list[Request] = []

    @app.task(bind=True, name="direct.who")
    def who(self: Task[Any, Any], x: int) -> int:
        seen.append(self.request)
        return x * 2

    assert who(21) == 42
    assert seen[0].called_directly is True
    assert seen[0].args == (21,)
    assert who.request.called_directly is True  # outside any run: an empty request


def test_bind_gives_the_task_itself_with_its_request(app: App) -> None:
    @app.task(bind=True, name="bound.info")
    def info(self: Task[Any, Any], x: int) -> tuple[str, str | None, int]:
        return self.name, self.request.id, self.request.retries

    result = info.apply((1,), task_id="fixed-id")
    assert result.get() == ("bound.info", "fixed-id", 0)


def test_apply_request_is_eager_and_not_called_directly(app: App) -> None:
    @app.task(bind=True, name="bound.flags")
    def flags(self: Task[Any, Any]) -> tuple[bool, bool]:
        return self.request.is_eager, self.request.called_directly

    assert flags.apply().get() == (True, False)


class RecordingTask(Task[Any, Any]):
    """A base class that records which handlers ran."""

    calls: list[tuple[str, Any]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls = []

    def on_success(
        self, retval: Any, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self.calls.append(("on_success", retval))

    def on_failure(
        self,
        exc: BaseException,
        task_id: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        einfo: str,
    ) -> None:
        self.calls.append(("on_failure", type(exc).__name__))
        assert "Traceback" in einfo

    def on_retry(
        self,
        exc: BaseException,
        task_id: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        einfo: str,
    ) -> None:
        self.calls.append(("on_retry", type(exc).__name__))

    def after_return(
        self,
        status: str,
        retval: Any,
        task_id: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        einfo: str | None,
    ) -> None:
        self.calls.append(("after_return", status))


def test_base_class_handlers_run_after_success(app: App) -> None:
    task = app.task(base=RecordingTask, name="base.ok")(add)
    assert task.apply((1, 2)).get() == 3
    assert task.calls == [("on_success", 3), ("after_return", states.SUCCESS)]


def test_base_class_handlers_run_after_failure(app: App) -> None:
    @app.task(base=RecordingTask, name="base.fail")
    def fail() -> None:
        raise KeyError("missing")

    result = fail.apply()
    assert result.state == states.FAILURE
    assert fail.calls == [("on_failure", "KeyError"), ("after_return", states.FAILURE)]


def test_base_class_handlers_run_on_retry(app: App) -> None:
    @app.task(base=RecordingTask, bind=True, name="base.retry", max_retries=1)
    def flaky(self: RecordingTask) -> str:
        if self.request.retries == 0:
            raise self.retry(exc=OSError("down"), countdown=0)
        return "ok"

    assert flaky.apply().get() == "ok"
    assert flaky.calls == [
        ("on_retry", "OSError"),
        ("after_return", states.RETRY),
        ("on_success", "ok"),
        ("after_return", states.SUCCESS),
    ]


def test_class_based_task_overrides_run(app: App) -> None:
    class Hello(Task[Any, Any]):
        name = "cls.hello"

        def run(self, who: str) -> str:
            return f"hello {who}"

    task = app.register_task(Hello(app))
    assert app.tasks["cls.hello"] is task
    assert task.apply(("you",)).get() == "hello you"
    with pytest.raises(TypeError, match=r"cls\.hello"):
        task.delay()


def test_delay_with_wrong_arity_raises_type_error_before_sending(app: App) -> None:
    task = app.task(name="arity.add")(add)
    with pytest.raises(TypeError, match=r"arity\.add"):
        task.delay(1)
    with pytest.raises(TypeError):
        task.apply_async((1, 2, 3))
    with pytest.raises(TypeError):
        task.apply_async((1,), {"z": 2})
    assert app.transport.size("tq") == 0


def test_bound_task_arguments_are_checked_without_self(app: App) -> None:
    @app.task(bind=True, name="arity.bound")
    def bound(self: Task[Any, Any], x: int) -> int:
        return x

    bound.delay(1)
    with pytest.raises(TypeError):
        bound.delay(1, 2)


def test_typing_false_turns_argument_checks_off(app: App) -> None:
    task = app.task(name="arity.unchecked", typing=False)(add)
    task.delay(1)
    assert app.transport.size("tq") == 1


def test_unknown_task_option_is_an_error(app: App) -> None:
    with pytest.raises(ImproperlyConfigured, match="Unknown task options: max_retry"):
        app.task(max_retry=3)(add)


def test_unknown_apply_async_option_is_a_type_error(app: App) -> None:
    task = app.task(name="opts.add")(add)
    with pytest.raises(TypeError, match="unknown options: countdwn"):
        task.apply_async((1, 2), countdwn=5)


def test_task_options_fall_back_to_app_settings(make_app: AppFactory) -> None:
    app = make_app(task_serializer="pickle", task_track_started=True)
    task = app.task(name="opts.defaults")(add)
    assert task.option("serializer") == "pickle"
    assert task.option("track_started") is True
    assert app.task(name="opts.own", serializer="json")(add).option("serializer") == "json"


def test_signatures_carry_arguments_and_options(app: App) -> None:
    task = app.task(name="sig.add")(add)
    signature = task.s(2).set(countdown=10)
    assert signature.to_dict() == {
        "task": "sig.add",
        "args": [2],
        "kwargs": {},
        "options": {"countdown": 10},
        "subtask_type": None,
        "immutable": False,
    }
    assert task.si(1, 1).immutable is True
    assert signature.clone((5,)).args == (5, 2)
