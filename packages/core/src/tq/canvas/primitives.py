"""Workflow primitives: ``chain``, ``group``, ``chord``, ``xmap``, ``xstarmap``, ``chunks``.

Each is a :class:`~tq.canvas.signature.Signature` whose ``kwargs`` hold its parts, so it
nests inside any other and travels in messages as Celery's dict form. How they run:

- a chain sends its first task with the rest as the message's ``chain`` stack; the worker
  pops the next step from the end and sends it with the result prepended;
- a group sends every task with its ``group_id`` and ``group_index``;
- a chord sends its header tasks with the body in their ``chord`` field; each finished
  header task records its result in the backend (:mod:`tq.chords`) and the last one
  sends the body with every result, in header order.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from itertools import islice
from typing import TYPE_CHECKING, Any

from tq.canvas.signature import FINAL_OPTIONS, Signature
from tq.errors import ChordError, ImproperlyConfigured

if TYPE_CHECKING:
    from tq.app import App
    from tq.result import AsyncResult, GroupResult


def _signatures(tasks: tuple[Any, ...], app: App | None) -> list[Signature]:
    """``f(a, b)`` or ``f([a, b])`` or ``f(a for ...)``: the signatures given."""
    if len(tasks) == 1 and not isinstance(tasks[0], Signature | Mapping):
        tasks = tuple(tasks[0])
    return [Signature.from_dict(t, app) if isinstance(t, Mapping) else t for t in tasks]


def _app_of(signatures: Sequence[Signature], app: App | None) -> App | None:
    return app or next((s.app for s in signatures if s.app is not None), None)


def _split_final(options: dict[str, Any]) -> dict[str, Any]:
    return {name: options.pop(name) for name in list(options) if name in FINAL_OPTIONS}


def _eager(app: App | None) -> bool:
    return app is not None and bool(app.conf["task_always_eager"])


def root_of(result: Any) -> Any:
    """The earliest result in ``result``'s parent links."""
    while getattr(result, "parent", None) is not None:
        result = result.parent
    return result


class chain(Signature):  # noqa: N801 - Celery's name
    """Tasks run one after another, each getting the previous result: ``a | b | c``."""

    def __init__(self, *tasks: Any, app: App | None = None, **options: Any) -> None:
        steps: list[Signature] = []
        for step in _signatures(tasks, app):
            steps.extend(step.tasks if type(step) is chain and not step.options else [step])
        super().__init__(
            "tq.chain", (), {"tasks": steps}, options, subtask_type="chain", app=_app_of(steps, app)
        )

    @property
    def tasks(self) -> list[Signature]:
        steps: list[Signature] = self.kwargs["tasks"]
        return steps

    def __repr__(self) -> str:
        return " | ".join(repr(step) for step in self.tasks) or "chain()"

    def clone(
        self,
        args: Sequence[Any] | None = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> chain:
        new = super().clone(args, kwargs, **options)
        new.kwargs["tasks"] = [step.clone() for step in self.tasks]
        return new  # type: ignore[return-value]

    def __or__(self, other: Signature) -> Signature:
        return chain(*self.tasks, other, app=self.app, **self.options)

    def _prepare(self) -> list[Signature]:
        """The steps as they run: a group followed by a step becomes a chord, and a chord
        followed by steps takes them into its body, so only the last step can fan out."""
        pending = [s.group() if isinstance(s, chunks) else s for s in self.tasks]
        steps: list[Signature] = []
        while pending:
            step = pending.pop(0)
            if isinstance(step, group) and pending:
                step = chord(step.tasks, pending.pop(0), app=self.app, **step.options)
            if isinstance(step, chord) and pending:
                body = chain(step.body, *pending, app=self.app)
                step = chord(step.header, body, app=self.app, **step.options)
                pending = []
            steps.append(step)
        return steps

    def freeze(self, _id: str | None = None) -> AsyncResult[Any]:
        """Fix every step's id; the result is the last step's, with ``parent`` links back."""
        steps = self._prepare()
        self.kwargs["tasks"] = steps
        previous: Any = None
        for index, step in enumerate(steps):
            result = step.freeze(_id if index == len(steps) - 1 else None)
            root_of(result).parent = previous
            previous = result
        return previous  # type: ignore[no-any-return]

    @property
    def id(self) -> str | None:
        return self.tasks[-1].id if self.tasks else None

    def apply_async(
        self,
        args: Sequence[Any] | None = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        """Send the first step with the others as its ``chain`` stack."""
        options = {**self.options, **options}
        if _eager(self.app):
            return self.apply(args, kwargs, **options)
        final = _split_final(options)
        # A chain that continues another (a replaced task's) runs that one's steps after.
        after = [Signature.from_dict(d, self.app) for d in reversed(final.pop("chain", None) or [])]
        c = chain(*self._with_errbacks(options), *after, app=self.app)
        steps = c._prepare()
        if not steps:
            raise ImproperlyConfigured("cannot apply an empty chain")
        task_id = final.pop("task_id", None)
        if final:
            steps[-1] = steps[-1].with_final(**final)
        c.kwargs["tasks"] = steps
        result = c.freeze(task_id)
        rest = [step.to_dict() for step in reversed(steps[1:])]
        if rest:
            options["chain"] = rest
        steps[0].apply_async((*(args or ()), *self.args), kwargs, **options)
        return result

    def _with_errbacks(self, options: dict[str, Any]) -> list[Signature]:
        # An error anywhere in the chain reaches its error callbacks: every step gets them.
        errbacks = options.pop("link_error", None)
        steps = [step.clone() for step in self.tasks]
        if errbacks:
            for step in steps:
                for errback in errbacks if isinstance(errbacks, list | tuple) else [errbacks]:
                    step.link_error(errback)
        return steps

    def apply(
        self,
        args: Sequence[Any] | None = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        """Run every step here, in order; stops at the first failure and returns it."""
        options = {**self.options, **options}
        final = _split_final(options)
        c = chain(*self.tasks, app=self.app)
        c.kwargs["tasks"] = c._with_errbacks(options)
        steps = c._prepare()
        if final:
            steps[-1] = steps[-1].with_final(**final)
        step_args: tuple[Any, ...] = (*(args or ()), *self.args)
        previous: Any = None
        for index, step in enumerate(steps):
            result = step.apply(step_args, kwargs if index == 0 else None, **options)
            root_of(result).parent = previous
            previous = result
            if result.failed():
                break
            step_args = (result.get(),)
        return previous

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply_async(args, kwargs)


class group(Signature):  # noqa: N801 - Celery's name
    """Tasks run in parallel; the result is a :class:`~tq.result.GroupResult`."""

    def __init__(self, *tasks: Any, app: App | None = None, **options: Any) -> None:
        members: list[Signature] = []
        for task in _signatures(tasks, app):
            # A group inside a group adds its tasks, as Celery flattens them.
            members.extend(task.tasks if type(task) is group and not task.options else [task])
        super().__init__(
            "tq.group",
            (),
            {"tasks": members},
            options,
            subtask_type="group",
            app=_app_of(members, app),
        )

    @property
    def tasks(self) -> list[Signature]:
        members: list[Signature] = self.kwargs["tasks"]
        return members

    def __repr__(self) -> str:
        return f"group({', '.join(repr(t) for t in self.tasks)})"

    def __len__(self) -> int:
        return len(self.tasks)

    def clone(
        self,
        args: Sequence[Any] | None = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> group:
        new = super().clone(args, kwargs, **options)
        new.kwargs["tasks"] = [task.clone() for task in self.tasks]
        return new  # type: ignore[return-value]

    def __or__(self, other: Signature) -> Signature:
        return chord(self.tasks, other, app=self.app, **self.options)

    def skew(self, start: float = 1.0, stop: float | None = None, step: float = 1.0) -> group:
        """Spread the tasks out: countdowns ``start``, ``start + step``... up to ``stop``."""
        countdown = start
        for task in self.tasks:
            task.set(countdown=countdown)
            if stop is None or countdown + step < stop:
                countdown += step
        return self

    def freeze(self, _id: str | None = None) -> GroupResult:  # type: ignore[override]
        from tq.result import GroupResult

        group_id = _id or self.id or str(uuid.uuid4())
        self.options["task_id"] = group_id
        results = [task.freeze() for task in self.tasks]
        return GroupResult(group_id, results, app=self._app())

    def apply_async(
        self,
        args: Sequence[Any] | None = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        """Send every task; each knows its group id and position."""
        options = {**self.options, **options}
        if _eager(self.app):
            return self.apply(args, kwargs, **options)
        if any(options.get(name) for name in ("group_id", "chord", "chain")):
            # The group's list of results has somewhere to go: collect it with a chord.
            body = Signature("tq.accumulate", app=self._app())
            return chord(self.tasks, body, app=self.app).apply_async(args, kwargs, **options)
        members = self.clone()
        result = members.freeze(options.pop("task_id", None))
        for index, task in enumerate(members.tasks):
            task.apply_async(args, kwargs, group_id=result.id, group_index=index, **options)
        return result

    def apply(
        self,
        args: Sequence[Any] | None = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        """Run every task here, in order."""
        from tq.result import GroupResult

        options = {**self.options, **options}
        final = _split_final(options)
        group_id = final.get("task_id") or str(uuid.uuid4())
        results = [task.apply(args, kwargs, **options) for task in self.tasks]
        return GroupResult(group_id, results, app=self._app())

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply_async(args, kwargs)


class chord(Signature):  # noqa: N801 - Celery's name
    """A group (the header) whose results, in order, go to one callback (the body)."""

    def __init__(
        self,
        header: Any,
        body: Signature | Mapping[str, Any] | None = None,
        *,
        app: App | None = None,
        **options: Any,
    ) -> None:
        members = group(header, app=app).tasks if not isinstance(header, group) else header.tasks
        body_sig = Signature.from_dict(body, app) if isinstance(body, Mapping) else body
        super().__init__(
            "tq.chord",
            (),
            {"header": members, "body": body_sig},
            options,
            subtask_type="chord",
            app=_app_of([*members, *([body_sig] if body_sig else [])], app),
        )

    @property
    def header(self) -> list[Signature]:
        members: list[Signature] = self.kwargs["header"]
        return members

    @property
    def body(self) -> Signature:
        body: Signature | None = self.kwargs["body"]
        if body is None:
            raise ImproperlyConfigured("a chord needs a body: chord(header)(callback)")
        return body

    @property
    def tasks(self) -> list[Signature]:
        return self.header

    def __repr__(self) -> str:
        return f"chord([{', '.join(repr(t) for t in self.header)}], {self.kwargs['body']!r})"

    def clone(
        self,
        args: Sequence[Any] | None = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> chord:
        new = super().clone(args, kwargs, **options)
        new.kwargs["header"] = [task.clone() for task in self.header]
        body = self.kwargs["body"]
        new.kwargs["body"] = body.clone() if body is not None else None
        return new  # type: ignore[return-value]

    @property
    def id(self) -> str | None:
        body = self.kwargs["body"]
        return body.id if body is not None else self.options.get("task_id")

    def freeze(self, _id: str | None = None) -> AsyncResult[Any]:
        """Fix the ids; the result is the body's, with the header's group as its parent."""
        result = self.body.freeze(_id or self.id)
        header = group(self.header, app=self.app).freeze(self.options.get("header_id"))
        self.options["header_id"] = header.id
        root_of(result).parent = header
        return result

    def apply_async(
        self,
        args: Sequence[Any] | None = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        """Send the header tasks, each carrying the body to send when all are done."""
        options = {**self.options, **options}
        kwargs = dict(kwargs or {})
        c = self.clone()
        if kwargs.get("body") is not None:
            c.kwargs["body"] = kwargs.pop("body")
        if _eager(self.app):
            return c.apply(args, kwargs, **options)
        final = _split_final(options)
        c.kwargs["body"] = c._body_with(final, options.pop("link_error", None))
        header_id = options.pop("header_id", None)
        result = c.freeze(final.get("task_id"))
        if not c.header:
            c.body.apply_async(([],))
            return result
        if not c._app().results.enabled:
            raise ImproperlyConfigured("chords need a result backend: set result_backend")
        body = {**c.body.to_dict(), "chord_size": len(c.header)}
        header_id = root_of(result).id
        for index, task in enumerate(c.header):
            task.apply_async(
                (*(args or ()), *c.args),
                kwargs,
                group_id=header_id,
                group_index=index,
                chord=body,
                **options,
            )
        return result

    def _body_with(self, final: Mapping[str, Any], errbacks: Any) -> Signature:
        body = self.body.with_final(**{k: v for k, v in final.items() if k != "task_id"})
        for errback in (
            errbacks if isinstance(errbacks, list | tuple) else [errbacks] * bool(errbacks)
        ):
            body.link_error(errback)
        return body

    def apply(
        self,
        args: Sequence[Any] | None = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        """Run the header here, then the body with the header's results."""
        from tq.result import EagerResult

        options = {**self.options, **options}
        final = _split_final(options)
        body = self._body_with(
            {k: v for k, v in final.items() if k != "task_id"}, options.pop("link_error", None)
        )
        header = group(self.header, app=self.app).apply(
            (*(args or ()), *self.args), kwargs, **options
        )
        failed = next((r for r in header.results if r.failed()), None)
        if failed is not None:
            error = ChordError(f"Dependency {failed.id} raised {failed.result!r}")
            _eager_errbacks(body, error)
            result: Any = EagerResult(
                final.get("task_id") or str(uuid.uuid4()), error, "FAILURE", app=self._app()
            )
        else:
            ids = {"task_id": final["task_id"]} if final.get("task_id") else {}
            result = body.apply((header.get(),), **ids)
        root_of(result).parent = header
        return result

    def __call__(self, body: Signature | None = None, **options: Any) -> Any:
        return self.apply_async((), {"body": body} if body is not None else {}, **options)


def _eager_errbacks(body: Signature, error: ChordError) -> None:
    from tq.chords import errbacks_of, final_step
    from tq.execution import send_errbacks
    from tq.request import Request

    last = final_step(body)
    request = Request(id=last.id, task=last.task, is_eager=True, called_directly=False)
    send_errbacks(body._app(), errbacks_of(body), request, error, f"ChordError: {error}\n")


class xmap(Signature):  # noqa: N801 - Celery's name
    """One task message that calls ``task`` once per item: ``add.map(items)``."""

    builtin = "tq.map"
    kind = "xmap"

    def __init__(
        self,
        task: Signature | Mapping[str, Any],
        it: Iterable[Any],
        *,
        app: App | None = None,
        **options: Any,
    ) -> None:
        sig = Signature.from_dict(task, app) if isinstance(task, Mapping) else task
        super().__init__(
            self.builtin,
            (),
            {"task": sig, "it": list(it)},
            options,
            subtask_type=self.kind,
            immutable=True,
            app=app or sig.app,
        )

    def __repr__(self) -> str:
        return f"[{self.kwargs['task'].task}(x) for x in {self.kwargs['it']!r}]"


class xstarmap(xmap):  # noqa: N801 - Celery's name
    """One task message that calls ``task(*item)`` per item: ``add.starmap(pairs)``."""

    builtin = "tq.starmap"
    kind = "xstarmap"

    def __repr__(self) -> str:
        return f"[{self.kwargs['task'].task}(*x) for x in {self.kwargs['it']!r}]"


class chunks(Signature):  # noqa: N801 - Celery's name
    """Items split into parts of ``n``, one starmap message per part: ``add.chunks(items, 10)``."""

    def __init__(
        self,
        task: Signature | Mapping[str, Any],
        it: Iterable[Any],
        n: int,
        *,
        app: App | None = None,
        **options: Any,
    ) -> None:
        sig = Signature.from_dict(task, app) if isinstance(task, Mapping) else task
        super().__init__(
            "tq.chunks",
            (),
            {"task": sig, "it": [list(i) for i in it], "n": int(n)},
            options,
            subtask_type="chunks",
            app=app or sig.app,
        )

    def group(self) -> group:
        """The group of starmap signatures, one per chunk."""
        items, n = iter(self.kwargs["it"]), self.kwargs["n"]
        parts = iter(lambda: list(islice(items, n)), [])
        return group(
            [xstarmap(self.kwargs["task"], part, app=self.app) for part in parts],
            app=self.app,
            **self.options,
        )

    def freeze(self, _id: str | None = None) -> GroupResult:  # type: ignore[override]
        return self.group().freeze(_id)

    def apply_async(
        self,
        args: Sequence[Any] | None = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        return self.group().apply_async(args, kwargs, **options)

    def apply(
        self,
        args: Sequence[Any] | None = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        return self.group().apply(args, kwargs, **options)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply_async(args, kwargs)


_KINDS: dict[str, tuple[type[Signature], tuple[str, ...]]] = {
    "chain": (chain, ("tasks",)),
    "group": (group, ("tasks",)),
    "chord": (chord, ("header", "body")),
    "xmap": (xmap, ("task", "it")),
    "xstarmap": (xstarmap, ("task", "it")),
    "chunks": (chunks, ("task", "it", "n")),
}


def rebuild(data: Mapping[str, Any], app: App | None) -> Signature | None:
    """The primitive a signature dict describes, or ``None`` for a plain task signature."""
    kind = _KINDS.get(str(data.get("subtask_type") or ""))
    if kind is None:
        return None
    cls, names = kind
    kwargs = data.get("kwargs") or {}
    options = dict(data.get("options") or {})
    if cls is chain or cls is group:
        return cls(
            *[Signature.from_dict(t, app) for t in kwargs.get("tasks") or []], app=app, **options
        )
    if cls is chord:
        header = [Signature.from_dict(t, app) for t in kwargs.get("header") or []]
        return chord(header, kwargs.get("body"), app=app, **options)
    return cls(*[kwargs.get(name) for name in names], app=app, **options)  # type: ignore[arg-type]
