"""Signatures: a task call packed up to be sent later (``add.s(2, 2)``).

A signature serializes to Celery's dict form
``{"task", "args", "kwargs", "options", "subtask_type", "immutable"}``, which is how
``link`` callbacks, chains and chords travel inside task messages. The workflow
primitives (:mod:`tq.canvas.primitives`) are signatures too, told apart by
``subtask_type``; :func:`from_dict` rebuilds the right class.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tq.errors import ImproperlyConfigured

if TYPE_CHECKING:
    from tq.app import App
    from tq.result import AsyncResult
    from tq.task import Task

# Options that say where a signature's final result goes (a group slot, a chord, a
# replaced task's id). On a chain they belong to the last step, on a chord to its body.
FINAL_OPTIONS = frozenset({"task_id", "group_id", "group_index", "chord", "link", "chain"})


class Signature:
    """A task name with arguments and call options.

    Args:
        task: the task, or its registered name.
        args: positional arguments; a mutable signature gets a parent's result prepended.
        kwargs: keyword arguments, merged with those given when it is called.
        options: ``apply_async`` options (``countdown``, ``queue``, ``link`` ...).
        immutable: ignore the parent's result when used as a callback or chain step.
        subtask_type: ``None`` for a task; ``chain``, ``group``, ``chord``... otherwise.
        app: the app that sends it; taken from ``task`` when that is a task object.
    """

    def __init__(
        self,
        task: str | Task[Any, Any],
        args: Sequence[Any] | None = (),
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        *,
        immutable: bool = False,
        subtask_type: str | None = None,
        app: App | None = None,
    ) -> None:
        if not isinstance(task, str):
            app = app or task.app
            task = task.name
        self.task = task
        self.args = tuple(args or ())
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

    __hash__ = None  # type: ignore[assignment]  # mutable, like Celery's dict-based signature

    # -- the dict form ---------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Celery's dict form, for messages."""
        return {
            "task": self.task,
            "args": list(self.args),
            "kwargs": {k: _embed(v) for k, v in self.kwargs.items()},
            "options": {k: _embed(v) for k, v in self.options.items()},
            "subtask_type": self.subtask_type,
            "immutable": self.immutable,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], app: App | None = None) -> Signature:
        """Rebuild a signature (or chain, group, chord...) from its dict form."""
        if isinstance(data, Signature):
            return data
        if not isinstance(data, Mapping) or not isinstance(data.get("task"), str):
            raise ImproperlyConfigured(f"not a signature: {data!r}")
        if data.get("subtask_type"):
            from tq.canvas.primitives import rebuild  # primitives build on this module

            primitive = rebuild(data, app)
            if primitive is not None:
                return primitive
        return Signature(
            data["task"],
            data.get("args") or (),
            data.get("kwargs") or {},
            data.get("options") or {},
            immutable=bool(data.get("immutable")),
            subtask_type=data.get("subtask_type"),
            app=app,
        )

    # -- partial application ---------------------------------------------------------

    def clone(
        self,
        args: Sequence[Any] | None = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Signature:
        """A copy with ``args`` prepended (unless immutable) and kwargs and options merged."""
        new = copy.copy(self)
        new.args = self.args if self.immutable else (*(args or ()), *self.args)
        new.kwargs = self.kwargs if self.immutable else {**self.kwargs, **(kwargs or {})}
        new.kwargs = dict(new.kwargs)
        new.options = {**{k: _copy(v) for k, v in self.options.items()}, **options}
        return new

    def set(self, immutable: bool | None = None, **options: Any) -> Signature:
        """Merge call options into this signature; returns it for chaining."""
        if immutable is not None:
            self.immutable = immutable
        self.options.update(options)
        return self

    def set_immutable(self, immutable: bool) -> None:
        self.immutable = immutable

    def replace(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> Signature:
        """A copy whose args, kwargs or options (those given) are replaced, not merged."""
        new = self.clone()
        if args is not None:
            new.args = tuple(args)
        if kwargs is not None:
            new.kwargs = dict(kwargs)
        if options is not None:
            new.options = dict(options)
        return new

    def link(self, callback: Signature) -> Signature:
        """Add a callback, applied with this signature's result when it succeeds."""
        self.options.setdefault("link", [])
        self.options["link"] = [*_as_list(self.options["link"]), callback]
        return callback

    def link_error(self, errback: Signature) -> Signature:
        """Add an error callback, applied when this signature's task fails."""
        self.options["link_error"] = [*_as_list(self.options.get("link_error")), errback]
        return errback

    def on_error(self, errback: Signature) -> Signature:
        """Add an error callback and return this signature (``sig.on_error(e).delay()``)."""
        self.link_error(errback)
        return self

    def with_final(self, **options: Any) -> Signature:
        """A copy whose final result also obeys ``options`` (see :data:`FINAL_OPTIONS`).

        ``link`` callbacks and ``chain`` stacks are joined, not replaced.
        """
        new = self.clone()
        for name, value in options.items():
            if name == "link":
                value = [*_as_list(new.options.get("link")), *_as_list(value)]
            new.options[name] = value
        return new

    # -- identity --------------------------------------------------------------------

    @property
    def id(self) -> str | None:
        """The task id, once frozen or set with ``set(task_id=...)``."""
        value = self.options.get("task_id")
        return str(value) if value is not None else None

    def freeze(self, _id: str | None = None) -> AsyncResult[Any]:
        """Fix the task id now and return the result it will have."""
        from tq.result import AsyncResult

        task_id = _id or self.id or str(uuid.uuid4())
        self.options["task_id"] = task_id
        return AsyncResult(task_id, app=self._app(), task_name=self.task)

    @property
    def type(self) -> Task[Any, Any]:
        """The registered task this signature calls."""
        return self._app().tasks[self.task]

    # -- calling ---------------------------------------------------------------------

    def apply_async(
        self,
        args: Sequence[Any] | None = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        """Send the task with partial arguments applied; runs it here in eager mode."""
        call = self.clone(args, kwargs, **options)
        app = self._app()
        if app.conf["task_always_eager"]:
            return call.apply()
        task = app.tasks.get(call.task)
        kwargs = {k: _embed(v) for k, v in call.kwargs.items()}
        if task is not None:
            return task.apply_async(call.args, kwargs, **_sendable(call.options))
        return app.send_task(call.task, call.args, kwargs, **_sendable(call.options))

    def apply(
        self,
        args: Sequence[Any] | None = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        """Run the task in this process, as ``task.apply`` does."""
        call = self.clone(args, kwargs, **options)
        kwargs = {k: _embed(v) for k, v in call.kwargs.items()}
        return self.type.apply(call.args, kwargs, **_sendable(call.options))

    def delay(self, *args: Any, **kwargs: Any) -> Any:
        """Send with partial arguments: ``sig.delay(4)`` is ``sig.apply_async((4,))``."""
        return self.apply_async(args, kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the task function here and now (``add.s(2, 2)()`` is 4)."""
        call = self.clone(args, kwargs)
        return self.type(*call.args, **call.kwargs)

    def __invert__(self) -> Any:
        """``~sig`` sends the signature and waits for its value."""
        return self.delay().get()

    def __or__(self, other: Signature) -> Signature:
        from tq.canvas.primitives import chain

        return chain(self, other)

    def _app(self) -> App:
        if self.app is None:
            raise ImproperlyConfigured(f"signature {self!r} is not bound to an app")
        return self.app


def _sendable(options: Mapping[str, Any]) -> dict[str, Any]:
    # Options that only mean something to a workflow never reach apply_async.
    return {k: v for k, v in options.items() if k not in ("immutable",)}


def _copy(value: Any) -> Any:
    # Options hold signatures (bound to an app that must not be copied) and plain data.
    if isinstance(value, Signature):
        return value.clone()
    if isinstance(value, list | tuple):
        return [_copy(v) for v in value]
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return value


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _embed(value: Any) -> Any:
    if isinstance(value, Signature):
        return value.to_dict()
    if isinstance(value, list | tuple) and value and all(isinstance(v, Signature) for v in value):
        return [v.to_dict() for v in value]
    return value


def signature(
    varies: str | Task[Any, Any] | Signature | Mapping[str, Any],
    args: Sequence[Any] | None = None,
    kwargs: Mapping[str, Any] | None = None,
    *,
    app: App | None = None,
    **options: Any,
) -> Signature:
    """A signature from a task, a task name, a signature or a signature dict.

    ``signature("tasks.add", args=(2, 2), countdown=10)``; ``app`` binds a name.
    """
    if isinstance(varies, Signature):
        return varies.clone()
    if isinstance(varies, Mapping):
        return Signature.from_dict(varies, app=app)
    immutable = bool(options.pop("immutable", False))
    return Signature(varies, args, kwargs, options, immutable=immutable, app=app)


def as_signature_dicts(value: Any) -> list[dict[str, Any]] | None:
    """``link``/``link_error`` values (a signature, a dict, or a list of them) as dicts."""
    if value is None:
        return None
    result = []
    for item in _as_list(value):
        if isinstance(item, Signature):
            result.append(item.to_dict())
        elif isinstance(item, Mapping) and "task" in item:
            result.append(dict(item))
        else:
            raise ImproperlyConfigured(f"link callbacks must be signatures, not {item!r}")
    return result or None
