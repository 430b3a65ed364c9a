"""Signatures: a task call packed up to be sent later (``task.s(2, 2)``).

A signature serializes to Celery's dict form
``{"task", "args", "kwargs", "options", "subtask_type", "immutable"}``, which is how
``link`` callbacks and workflows travel inside task messages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tq.errors import ImproperlyConfigured

if TYPE_CHECKING:
    from tq.app import App
    from tq.result import AsyncResult


class Signature:
    """A task name with arguments and call options.

    Args:
        task: the task's registered name.
        args: positional arguments; a mutable signature gets the parent's result prepended.
        kwargs: keyword arguments, merged with those given when it is called.
        options: ``apply_async`` options (``countdown``, ``queue``, ``link`` ...).
        immutable: ignore the parent's result when used as a callback.
        app: the app that sends it; bound later when ``None``.
    """

    def __init__(
        self,
        task: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        *,
        immutable: bool = False,
        subtask_type: str | None = None,
        app: App | None = None,
    ) -> None:
        self.task = task
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})
        self.options = dict(options or {})
        self.immutable = immutable
        self.subtask_type = subtask_type
        self.app = app

    def __repr__(self) -> str:
        arguments = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{self.task}({', '.join(arguments)}){'!' if self.immutable else ''}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Signature) and self.to_dict() == other.to_dict()

    def to_dict(self) -> dict[str, Any]:
        """Celery's dict form, for messages."""
        options = {k: _embed(v) for k, v in self.options.items()}
        return {
            "task": self.task,
            "args": list(self.args),
            "kwargs": self.kwargs,
            "options": options,
            "subtask_type": self.subtask_type,
            "immutable": self.immutable,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], app: App | None = None) -> Signature:
        """Rebuild a signature from its dict form."""
        if not isinstance(data, Mapping) or not isinstance(data.get("task"), str):
            raise ImproperlyConfigured(f"not a signature: {data!r}")
        return cls(
            data["task"],
            data.get("args") or (),
            data.get("kwargs") or {},
            data.get("options") or {},
            immutable=bool(data.get("immutable")),
            subtask_type=data.get("subtask_type"),
            app=app,
        )

    def clone(
        self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None, **options: Any
    ) -> Signature:
        """A copy with ``args`` prepended (unless immutable) and kwargs and options merged."""
        new_args = self.args if self.immutable else (*args, *self.args)
        new_kwargs = self.kwargs if self.immutable else {**self.kwargs, **(kwargs or {})}
        return Signature(
            self.task,
            new_args,
            new_kwargs,
            {**self.options, **options},
            immutable=self.immutable,
            subtask_type=self.subtask_type,
            app=self.app,
        )

    def set(self, **options: Any) -> Signature:
        """Merge call options into this signature; returns it for chaining."""
        self.options.update(options)
        return self

    def apply_async(
        self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None, **options: Any
    ) -> AsyncResult[Any]:
        """Send the task with partial arguments applied."""
        call = self.clone(args, kwargs, **options)
        return self._app().send_task(call.task, call.args, call.kwargs, **call.options)

    def delay(self, *args: Any, **kwargs: Any) -> AsyncResult[Any]:
        return self.apply_async(args, kwargs)

    def _app(self) -> App:
        if self.app is None:
            raise ImproperlyConfigured(f"signature {self!r} is not bound to an app")
        return self.app


def _embed(value: Any) -> Any:
    if isinstance(value, Signature):
        return value.to_dict()
    if isinstance(value, list | tuple) and value and all(isinstance(v, Signature) for v in value):
        return [v.to_dict() for v in value]
    return value


def as_signature_dicts(value: Any) -> list[dict[str, Any]] | None:
    """``link``/``link_error`` values (a signature, a dict, or a list of them) as dicts."""
    if value is None:
        return None
    items = value if isinstance(value, list | tuple) else [value]
    result = []
    for item in items:
        if isinstance(item, Signature):
            result.append(item.to_dict())
        elif isinstance(item, Mapping) and "task" in item:
            result.append(dict(item))
        else:
            raise ImproperlyConfigured(f"link callbacks must be signatures, not {item!r}")
    return result
