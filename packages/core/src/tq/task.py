"""Tasks: ``@app.task`` turns a function into a :class:`Task`.

``Task[P, R]`` carries the function's parameters and return type, so a type checker
checks ``add.delay(2, 2)`` against ``def add(x: int, y: int) -> int``.
"""

from __future__ import annotations

import functools
import inspect
import random
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Generic, NoReturn, ParamSpec, TypedDict, TypeVar

from tq import states
from tq.calling import check_options
from tq.canvas import Signature
from tq.canvas import chord as _chord
from tq.canvas import chunks as _chunks
from tq.canvas import group as _group
from tq.canvas import xmap as _xmap
from tq.canvas import xstarmap as _xstarmap
from tq.errors import Ignore, ImproperlyConfigured, MaxRetriesExceededError, Retry
from tq.request import Request

if TYPE_CHECKING:
    from typing import Unpack

    from tq.app import App
    from tq.result import AsyncResult, EagerResult

P = ParamSpec("P")
R = TypeVar("R")


class TaskOptions(TypedDict, total=False):
    """Options accepted by ``@app.task(...)``; each overrides the class attribute of the same name."""

    name: str
    serializer: str
    compression: str | None
    queue: str | None
    priority: int | None
    max_retries: int | None
    default_retry_delay: float
    rate_limit: str | None
    time_limit: float | None
    soft_time_limit: float | None
    ignore_result: bool | None
    store_errors_even_if_ignored: bool | None
    track_started: bool | None
    acks_late: bool | None
    acks_on_failure_or_timeout: bool | None
    reject_on_worker_lost: bool | None
    autoretry_for: tuple[type[BaseException], ...]
    dont_autoretry_for: tuple[type[BaseException], ...]
    retry_backoff: bool | float
    retry_backoff_max: float
    retry_jitter: bool
    retry_kwargs: dict[str, Any]
    throws: tuple[type[BaseException], ...]
    expires: float | datetime | None
    typing: bool
    shadow: str | None


_OPTION_NAMES = frozenset(TaskOptions.__annotations__)


def _retry_options(request: Request, options: Mapping[str, Any]) -> dict[str, Any]:
    """Call options for a retry: the original call's, unless the caller overrides them."""
    inherited: dict[str, Any] = {
        "link": request.callbacks,
        "link_error": request.errbacks,
        "group_id": request.group,
        "group_index": request.group_index,
        "expires": request.expires,
        "time_limit": request.timelimit[0],
        "soft_time_limit": request.timelimit[1],
        "shadow": request.shadow,
        "chain": request.chain,
        "chord": request.chord,
    }
    if not any(options.get(k) for k in ("queue", "routing_key", "exchange")):
        # Back to the queue the task came from, not wherever routing would send it now.
        queue = request.delivery_info.get("queue") or request.delivery_info.get("routing_key")
        if queue:
            inherited["queue"] = queue
    return {**{k: v for k, v in inherited.items() if v is not None}, **options}


class Task(Generic[P, R]):
    """A registered task. Subclass it (``base=``) to add ``on_success`` and friends.

    Class attributes are the defaults of every option in :class:`TaskOptions`; options
    left at ``None`` fall back to the app's ``task_*`` settings.
    """

    name: str = ""
    bind: bool = False
    serializer: str | None = None
    compression: str | None = None
    queue: str | None = None
    priority: int | None = None
    max_retries: int | None = 3
    default_retry_delay: float = 180
    rate_limit: str | None = None
    time_limit: float | None = None
    soft_time_limit: float | None = None
    ignore_result: bool | None = None
    store_errors_even_if_ignored: bool | None = None
    track_started: bool | None = None
    acks_late: bool | None = None
    acks_on_failure_or_timeout: bool | None = None
    reject_on_worker_lost: bool | None = None
    autoretry_for: tuple[type[BaseException], ...] = ()
    dont_autoretry_for: tuple[type[BaseException], ...] = ()
    retry_backoff: bool | float = False
    retry_backoff_max: float = 600
    retry_jitter: bool = True
    retry_kwargs: ClassVar[dict[str, Any]] = {}
    throws: tuple[type[BaseException], ...] = ()
    expires: float | datetime | None = None
    typing: bool = True
    shadow: str | None = None

    def __init__(
        self,
        app: App,
        fun: Callable[..., R] | None = None,
        *,
        bind: bool = False,
        **options: Unpack[TaskOptions],
    ) -> None:
        unknown = set(options) - _OPTION_NAMES
        if unknown:
            raise ImproperlyConfigured(f"Unknown task options: {', '.join(sorted(unknown))}")
        self.app = app
        self.bind = bind or self.bind
        self._fun = fun
        for option, value in options.items():
            setattr(self, option, value)
        if not self.name:
            self.name = app.gen_task_name(fun or type(self))
        self._stack = threading.local()
        self._signature: inspect.Signature | None = None
        self.__doc__ = getattr(fun, "__doc__", None) or type(self).__doc__
        self.__wrapped__ = fun

    def __repr__(self) -> str:
        return f"<@task: {self.name}>"

    # -- running in this process ---------------------------------------------------

    def run(self, *args: Any, **kwargs: Any) -> R:
        """The task body: the decorated function, or override this in a subclass."""
        if self._fun is None:
            raise NotImplementedError(f"task {self.name!r} has no function and no run()")
        if self.bind:
            return self._fun(self, *args, **kwargs)
        return self._fun(*args, **kwargs)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the task body here and now, as a plain function call."""
        self.push_request(Request(args=tuple(args), kwargs=dict(kwargs), called_directly=True))
        try:
            return self.run(*args, **kwargs)
        finally:
            self.pop_request()

    @property
    def request(self) -> Request:
        """The context of the current execution of this task in this thread."""
        stack = self._request_stack()
        return stack[-1] if stack else Request()

    def push_request(self, request: Request) -> None:
        self._request_stack().append(request)

    def pop_request(self) -> None:
        self._request_stack().pop()

    def _request_stack(self) -> list[Request]:
        stack: list[Request] | None = getattr(self._stack, "items", None)
        if stack is None:
            stack = self._stack.items = []
        return stack

    # -- sending ---------------------------------------------------------------------

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        """Send the task with these arguments; shortcut for :meth:`apply_async`."""
        return self.apply_async(args, kwargs)

    def apply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> AsyncResult[R]:
        """Send the task. Options are those of :meth:`tq.App.send_task`.

        Arguments are checked against the function's signature first (``typing=False``
        turns that off), so a wrong call fails here, not in a worker.
        """
        args = tuple(args or ())
        kwargs = dict(kwargs or {})
        if self.typing:
            self.check_arguments(args, kwargs)
        if self.app.conf["task_always_eager"]:
            check_options(options)
            return self.apply(args, kwargs, **options)
        return self.app.send_task(self.name, args, kwargs, task=self, **options)

    def check_arguments(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Raise ``TypeError`` if the task function cannot be called with these arguments."""
        if self._signature is None:
            self._signature = inspect.signature(self._fun if self._fun is not None else self.run)
        call_args = (None, *args) if self.bind and self._fun is not None else tuple(args)
        try:
            self._signature.bind(*call_args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{self.name}() {exc}") from None

    def apply(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> EagerResult[R]:
        """Run the task in this process, as a worker would, and return its result."""
        from tq.execution import apply_eagerly

        return apply_eagerly(self, tuple(args or ()), dict(kwargs or {}), options)

    # -- signatures --------------------------------------------------------------

    def signature(
        self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None, **options: Any
    ) -> Signature:
        """A :class:`~tq.canvas.Signature` of this task."""
        immutable = bool(options.pop("immutable", False))
        return Signature(self.name, args, kwargs, options, immutable=immutable, app=self.app)

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """A signature with these arguments."""
        return self.signature(args, kwargs)

    def si(self, *args: Any, **kwargs: Any) -> Signature:
        """An immutable signature: it ignores the result of the task it follows."""
        return self.signature(args, kwargs, immutable=True)

    def map(self, it: Iterable[Any]) -> _xmap:
        """One message that calls this task once per item (``add.map(range(10))``)."""
        return _xmap(self.s(), it, app=self.app)

    def starmap(self, it: Iterable[Any]) -> _xstarmap:
        """One message that calls this task with each item as arguments."""
        return _xstarmap(self.s(), it, app=self.app)

    def chunks(self, it: Iterable[Any], n: int) -> _chunks:
        """Argument tuples split into messages of ``n`` calls each."""
        return _chunks(self.s(), it, n, app=self.app)

    def replace(self, sig: Signature) -> NoReturn:
        """Replace this running task with ``sig``, which inherits its place in workflows.

        ``sig``'s final result takes this task's id, callbacks, chain and chord, so
        whoever waits on this task gets the replacement's result. Ends this run with
        :class:`~tq.errors.Ignore` (nothing is stored for it).
        """
        request = self.request
        if isinstance(sig, _group):
            # A group's results need one task id to land on: collect them with a chord.
            sig = _chord(sig.tasks, Signature("tq.accumulate", app=self.app), app=self.app)
        final: dict[str, Any] = {"task_id": request.id}
        for name, value in (
            ("link", request.callbacks),
            ("chain", request.chain),
            ("chord", request.chord),
            ("group_id", request.group),
            ("group_index", request.group_index),
        ):
            if value is not None:
                final[name] = value
        replacement = sig.with_final(**final)
        for errback in request.errbacks or ():
            replacement.link_error(Signature.from_dict(errback, app=self.app))
        replacement.apply_async(parent_id=request.id, root_id=request.root_id)
        raise Ignore("Replaced by new task")

    # -- inside a running task ---------------------------------------------------------

    def retry(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        exc: BaseException | None = None,
        throw: bool = True,
        eta: datetime | None = None,
        countdown: float | None = None,
        max_retries: int | None = None,
        **options: Any,
    ) -> NoReturn:
        """Send this task again and end the current run with :class:`~tq.errors.Retry`.

        When retries are used up, re-raises ``exc`` (or raises
        :class:`~tq.errors.MaxRetriesExceededError` when there is none).
        """
        request = self.request
        limit = self.max_retries if max_retries is None else max_retries
        if request.called_directly:
            raise exc if exc is not None else Retry("Task can be retried", None)
        if limit is not None and request.retries >= limit:
            if exc is not None:
                raise exc
            raise MaxRetriesExceededError(
                f"Can't retry {self.name}[{request.id}] args:{request.args} kwargs:{request.kwargs}"
            )
        if eta is None and countdown is None:
            countdown = self.default_retry_delay
        retry = Retry(exc=exc, when=eta or countdown)
        if not request.is_eager:
            # Sent by the execution once the RETRY state is stored, so the next attempt
            # can never finish before this one records that it is retrying.
            retry.send = functools.partial(
                self.app.send_task,
                self.name,
                request.args if args is None else tuple(args),
                request.kwargs if kwargs is None else dict(kwargs),
                task=self,
                task_id=request.id,
                retries=request.retries + 1,
                countdown=countdown,
                eta=eta,
                _request=request,
                **_retry_options(request, options),
            )
        else:
            retry.args_override = (args, kwargs)
        raise retry

    def backoff(self, retries: int) -> float:
        """The countdown before retry number ``retries + 1`` under ``retry_backoff``."""
        factor = 1.0 if self.retry_backoff is True else float(self.retry_backoff)
        countdown = min(self.retry_backoff_max, factor * (2.0**retries))
        if self.retry_jitter:
            countdown = random.uniform(0, countdown)
        return countdown

    def update_state(
        self, task_id: str | None = None, state: str | None = None, meta: Any = None
    ) -> None:
        """Store a state (often a custom one, with ``meta``) for this or another task."""
        target = task_id or self.request.id
        if target is None:
            raise ImproperlyConfigured("update_state needs a task_id outside a running task")
        self.app.results.store(target, state or states.PENDING, meta, request=self.request)

    # -- handlers a subclass may override -------------------------------------------------

    def on_success(
        self, retval: Any, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """Called in the worker after the task returned."""

    def on_failure(
        self,
        exc: BaseException,
        task_id: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        einfo: str,
    ) -> None:
        """Called in the worker after the task failed (``einfo`` is the traceback text)."""

    def on_retry(
        self,
        exc: BaseException,
        task_id: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        einfo: str,
    ) -> None:
        """Called in the worker when the task is retried."""

    def after_return(
        self,
        status: str,
        retval: Any,
        task_id: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        einfo: str | None,
    ) -> None:
        """Called in the worker after every run, whatever the outcome."""

    # -- settings with app-wide defaults ------------------------------------------------

    def option(self, name: str) -> Any:
        """This task's value for ``name``, or the app's ``task_<name>`` setting if unset."""
        value = getattr(self, name)
        return self.app.conf[f"task_{name}"] if value is None else value
