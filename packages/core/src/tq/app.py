"""The application: configuration, plugins, the task registry, and sending tasks."""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import (
    TYPE_CHECKING,
    Any,
    Concatenate,
    Final,
    Literal,
    ParamSpec,
    TypeVar,
    Unpack,
    overload,
)

from tq import signals
from tq.backend import ResultBackend
from tq.calling import build_call, check_options
from tq.canvas.builtins import register_builtin_tasks
from tq.errors import ImproperlyConfigured, TransportError
from tq.message import Message
from tq.plugins import CORE_PLUGIN, Plugins, url_scheme
from tq.protocol import build_message
from tq.result import AsyncResult as _AsyncResult
from tq.result import GroupResult as _GroupResult
from tq.result import GroupResultFactory
from tq.resultstore import ResultStore
from tq.routing import Router
from tq.serialization import Codecs
from tq.settings import Settings, plugin_autoload_enabled
from tq.task import Task, TaskOptions
from tq.transport import Queue, Transport

if TYPE_CHECKING:
    from tq.control import Control
    from tq.events import Events
    from tq.events.dispatcher import EventDispatcher

logger = logging.getLogger("tq.app")

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_DATABASE: Final = "sqlite:///tq.sqlite3"
EMBEDDED_SCHEMES: Final = frozenset({"sqlite", "memory"})
# Per-task behaviour hooks: calling them is skipped when no plugin implements them.
_PER_TASK_HOOKS: Final = (
    "tq_task_prerun",
    "tq_task_postrun",
    "tq_task_success",
    "tq_task_failure",
    "tq_task_retry",
    "tq_task_execute",
    "tq_before_publish",
    "tq_after_publish",
    "tq_task_received",
)


class TaskRegistry(dict[str, Task[Any, Any]]):
    """Registered tasks by name (``app.tasks``)."""

    def __missing__(self, name: str) -> Task[Any, Any]:
        raise KeyError(f"Task {name!r} is not registered")


class App:
    """A tq application.

    Args:
        main: the name of the main module, used to name tasks defined in ``__main__``.
        broker: broker URL (``broker_url``).
        backend: result backend URL (``result_backend``).
        include: task modules the worker imports at start.
        plugins: plugin objects or modules to register in addition to entry points.
        **settings: any setting, by its lowercase name.
    """

    def __init__(
        self,
        main: str | None = None,
        *,
        broker: str | None = None,
        backend: str | None = None,
        include: Iterable[str] = (),
        plugins: Iterable[object] = (),
        **settings: Any,
    ) -> None:
        self.main = main
        disabled = settings.get("disable_plugins") or ()
        self.plugins = Plugins(autoload=plugin_autoload_enabled(), disabled=disabled)
        for plugin in plugins:
            self.plugins.register(plugin)
        self.conf = Settings(self.plugins.settings())
        explicit = dict(settings)
        if broker is not None:
            explicit["broker_url"] = broker
        if backend is not None:
            explicit["result_backend"] = backend
        if include:
            explicit["include"] = list(include)
        self.conf.update(explicit)
        self.tasks = TaskRegistry()
        register_builtin_tasks(self)  # tq.map, tq.starmap, tq.accumulate for the canvas
        self._lock = threading.RLock()
        self._transport: Transport | None = None
        self._results: ResultStore | None = None
        self._codecs: Codecs | None = None
        self._router: Router | None = None
        self._active_hooks: frozenset[str] | None = None
        self._hooks_generation = -1
        self._control: Control | None = None
        self._events: Events | None = None
        self._sent_events: EventDispatcher | None = None
        signals.attach(self)

    def __repr__(self) -> str:
        return f"<tq.App {self.main or '__main__'} at {id(self):#x}>"

    # -- plugins ---------------------------------------------------------------------

    def register_plugin(self, plugin: object, name: str | None = None) -> None:
        """Register a plugin (hooks, components, settings) on this app."""
        self.plugins.register(plugin, name)
        self.conf.add_specs(self.plugins.settings())

    @property
    def active_hooks(self) -> frozenset[str]:
        """Per-task hooks some plugin implements; the rest are never called."""
        if self._active_hooks is None or self._hooks_generation != self.plugins.generation:
            self._hooks_generation = self.plugins.generation
            self._active_hooks = frozenset(
                name
                for name in _PER_TASK_HOOKS
                if _has_outside_impl(getattr(self.plugins.hook, name))
            )
        return self._active_hooks

    # -- tasks -----------------------------------------------------------------------

    @overload
    def task(self, fun: Callable[P, R], /) -> Task[P, R]: ...

    @overload
    def task(
        self,
        *,
        bind: Literal[True],
        base: type[Task[Any, Any]] | None = None,
        **options: Unpack[TaskOptions],
    ) -> Callable[[Callable[Concatenate[Any, P], R]], Task[P, R]]: ...

    @overload
    def task(
        self,
        *,
        bind: Literal[False] = False,
        base: type[Task[Any, Any]] | None = None,
        **options: Unpack[TaskOptions],
    ) -> Callable[[Callable[P, R]], Task[P, R]]: ...

    def task(
        self,
        *functions: Callable[..., Any],
        bind: bool = False,
        base: type[Task[Any, Any]] | None = None,
        **options: Unpack[TaskOptions],
    ) -> Any:
        """Register a function as a task; use as ``@app.task`` or ``@app.task(**options)``."""

        def decorate(function: Callable[..., Any]) -> Task[Any, Any]:
            task_class = base or Task
            task = task_class(self, function, bind=bind, **options)
            return self.register_task(task)

        if len(functions) > 1:
            raise TypeError("app.task takes one function")
        return decorate(functions[0]) if functions else decorate

    def register_task(self, task: Task[Any, Any]) -> Task[Any, Any]:
        """Add a task object to ``app.tasks`` (class-based tasks use this directly)."""
        existing = self.tasks.get(task.name)
        if existing is not None and existing is not task:
            logger.debug("Task %s registered again; the new definition wins", task.name)
        self.tasks[task.name] = task
        return task

    def gen_task_name(self, obj: Any) -> str:
        """``module.function`` for a task; ``__main__`` becomes ``app.main`` when set."""
        module = getattr(obj, "__module__", "__main__")
        if module == "__main__" and self.main:
            module = self.main
        return f"{module}.{getattr(obj, '__name__', 'task')}"

    def import_task_modules(self) -> list[str]:
        """Import ``imports`` and ``include`` modules so their tasks register."""
        names = [*self.conf["imports"], *self.conf["include"]]
        for name in names:
            try:
                importlib.import_module(name)
            except ImportError as exc:
                raise ImproperlyConfigured(f"Cannot import task module {name!r}: {exc}") from exc
        return names

    # -- connections -------------------------------------------------------------------

    @property
    def broker_url(self) -> str:
        return str(self.conf["broker_url"] or DEFAULT_DATABASE)

    @property
    def result_backend_url(self) -> str | None:
        configured = self.conf["result_backend"]
        if configured:
            return str(configured)
        # With an embedded broker, results live beside the messages by default, so
        # First Steps work with no configuration at all.
        if url_scheme(self.broker_url) in EMBEDDED_SCHEMES:
            return self.broker_url
        return None

    @property
    def transport(self) -> Transport:
        """The broker transport, created on first use."""
        if self._transport is None:
            with self._lock:
                if self._transport is None:
                    url = self.broker_url
                    factory = self.plugins.for_url("transport", url).load()
                    self._transport = factory(url, self.transport_options())
        return self._transport

    def transport_options(self) -> dict[str, Any]:
        """Options for the transport: ``broker_transport_options`` plus ``celery_compat``,
        which tells transports to use Celery's key layout and names."""
        return {
            **self.conf["broker_transport_options"],
            "celery_compat": self.conf["celery_compat"],
        }

    @property
    def codecs(self) -> Codecs:
        if self._codecs is None:
            self._codecs = Codecs(self.plugins)
        return self._codecs

    @property
    def results(self) -> ResultStore:
        """The result store, created on first use."""
        if self._results is None:
            with self._lock:
                if self._results is None:
                    self._results = ResultStore(self._make_backend(), self.codecs, self.conf)
        return self._results

    @property
    def backend(self) -> ResultBackend | None:
        """The result backend plugin instance, or ``None`` when results are off."""
        return self.results.backend

    def _make_backend(self) -> ResultBackend | None:
        url = self.result_backend_url
        if url is None or url in ("disabled", "none"):
            return None
        factory = self.plugins.for_url("backend", url).load()
        options = {
            **self.conf["result_backend_transport_options"],
            "celery_compat": self.conf["celery_compat"],
        }
        backend: ResultBackend = factory(url, options)
        return backend

    @property
    def router(self) -> Router:
        if self._router is None:
            self._router = Router(
                self.conf["task_routes"],
                self.conf["task_queues"],
                self.default_queue,
                self.conf["task_create_missing_queues"],
            )
        return self._router

    @property
    def default_queue(self) -> Queue:
        name = self.conf["task_default_queue"]
        if self.conf["celery_compat"] and name == "tq":
            name = "celery"
        return Queue(
            name,
            exchange=self.conf["task_default_exchange"] or "",
            routing_key=self.conf["task_default_routing_key"] or name,
        )

    def dead_letter_queue(self, queue: str) -> Queue:
        """Where undeliverable messages from ``queue`` go."""
        return Queue(self.conf["task_dead_letter_queue"].format(queue=queue))

    def after_fork(self) -> None:
        """Forget connections inherited from a parent process (call in a forked child).

        They are dropped without being closed, since the parent still uses them; the
        child opens its own on first use.
        """
        self._lock = threading.RLock()
        self._transport = None
        self._results = None

    def close(self) -> None:
        """Close the broker and backend connections."""
        with self._lock:
            if self._transport is not None:
                self._transport.close()
                self._transport = None
            if self._results is not None and self._results.backend is not None:
                self._results.backend.close()
            self._results = None

    # -- sending ------------------------------------------------------------------------

    def send_task(
        self,
        name: str,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> _AsyncResult[Any]:
        """Send a task by name; the task need not be registered in this process.

        Options: ``countdown``, ``eta``, ``expires``, ``queue``, ``routing_key``,
        ``exchange``, ``priority``, ``serializer``, ``compression``, ``headers``,
        ``task_id``, ``link``, ``link_error``, ``ignore_result``, ``argsrepr``,
        ``kwargsrepr``, ``shadow``, ``retry``, ``retry_policy``, ``time_limit``,
        ``soft_time_limit``.
        """
        check_options(options)
        task: Task[Any, Any] | None = options.pop("task", None) or self.tasks.get(name)
        route_options = {
            k: options.get(k) for k in ("queue", "routing_key", "exchange", "priority")
        }
        if task is not None:
            route_options["queue"] = route_options["queue"] or task.queue
            if route_options["priority"] is None:
                route_options["priority"] = task.priority
        queue, extra = self.router.route(name, args or (), kwargs, route_options)
        if options.get("priority") is None:
            options["priority"] = extra.get("priority", self.conf["task_default_priority"])
        call = build_call(name, args or (), kwargs or {}, options, task)
        serializer = options.get("serializer") or (
            task.option("serializer") if task else self.conf["task_serializer"]
        )
        compression = options.get("compression") or (
            task.option("compression") if task else self.conf["task_compression"]
        )
        message = build_message(call, self.codecs, serializer, compression)
        message.properties["delivery_info"] = {
            "exchange": queue.exchange,
            "routing_key": queue.routing_key,
        }
        not_before = call.eta.timestamp() if call.eta is not None else None
        self.publish(
            message,
            queue,
            not_before,
            retry=options.get("retry"),
            retry_policy=options.get("retry_policy"),
        )
        if self.conf["task_send_sent_event"]:
            self._send_sent_event(message, queue)
        return _AsyncResult(call.id, app=self, task_name=name)

    def publish(
        self,
        message: Message,
        queue: Queue,
        not_before: float | None = None,
        *,
        retry: bool | None = None,
        retry_policy: Mapping[str, Any] | None = None,
    ) -> None:
        """Hand a message to the transport, retrying per ``task_publish_retry_policy``.

        Either the transport accepted the message or this raises
        :class:`~tq.errors.TransportError`: a message is never reported sent and lost.
        """
        active = self.active_hooks
        if "tq_before_publish" in active:
            self.plugins.hook.tq_before_publish(app=self, message=message, queue=queue)
        try:
            self.transport.publish(message, queue, not_before)
        except TransportError as exc:
            self._publish_retrying(message, queue, not_before, exc, retry, retry_policy)
        if "tq_after_publish" in active:
            self.plugins.hook.tq_after_publish(app=self, message=message, queue=queue)

    def _publish_retrying(
        self,
        message: Message,
        queue: Queue,
        not_before: float | None,
        failure: TransportError,
        retry: bool | None,
        retry_policy: Mapping[str, Any] | None,
    ) -> None:
        """The first attempt failed with ``failure``: retry per the policy, or raise."""
        if retry is None:
            retry = self.conf["task_publish_retry"]
        policy = {**self.conf["task_publish_retry_policy"], **(retry_policy or {})}
        attempts = int(policy.get("max_retries") or 0) + 1 if retry else 1
        delay = float(policy.get("interval_start", 0))
        for attempt in range(1, attempts + 1):
            if attempt == attempts:
                raise failure
            logger.warning(
                "Publishing to %s failed (%s); retry %d of %d in %.1fs",
                queue.name,
                failure,
                attempt,
                attempts - 1,
                delay,
            )
            time.sleep(delay)
            delay = min(
                delay + float(policy.get("interval_step", 0.2)),
                float(policy.get("interval_max", 0.2)),
            )
            try:
                self.transport.publish(message, queue, not_before)
                return
            except TransportError as exc:
                failure = exc

    # -- monitoring ---------------------------------------------------------------------

    def _send_sent_event(self, message: Message, queue: Queue) -> None:
        """Broadcast ``task-sent`` with Celery's fields (``task_send_sent_event``)."""
        if self._sent_events is None:
            self._sent_events = self.events.dispatcher()
        headers = message.headers
        self._sent_events.send(
            "task-sent",
            uuid=headers["id"],
            root_id=headers.get("root_id"),
            parent_id=headers.get("parent_id"),
            name=headers["task"],
            args=headers.get("argsrepr"),
            kwargs=headers.get("kwargsrepr"),
            retries=headers.get("retries"),
            eta=headers.get("eta"),
            expires=headers.get("expires"),
            queue=queue.name,
            exchange=queue.exchange,
            routing_key=queue.routing_key,
        )

    @property
    def control(self) -> Control:
        """Remote control of the workers: ``app.control.inspect().active()``."""
        if self._control is None:
            from tq.control import Control  # only apps that monitor pay for the import

            self._control = Control(self)
        return self._control

    @property
    def events(self) -> Events:
        """Sending and receiving events: ``app.events.receiver(handlers)``, ``State``."""
        if self._events is None:
            from tq.events import Events

            self._events = Events(self)
        return self._events

    # -- results ------------------------------------------------------------------------

    def AsyncResult(self, id: str, task_name: str | None = None) -> _AsyncResult[Any]:  # noqa: N802
        """A handle on the result of task ``id``."""
        return _AsyncResult(id, app=self, task_name=task_name)

    @property
    def GroupResult(self) -> GroupResultFactory:  # noqa: N802
        """``app.GroupResult(id, results)`` builds a group result;
        ``app.GroupResult.restore(id)`` reads one saved with ``save()``."""
        return GroupResultFactory(self)

    def restore_group(self, group_id: str) -> _GroupResult | None:
        """The group saved with ``GroupResult.save()``, or ``None``."""
        return _GroupResult.restore(group_id, app=self)


def _has_outside_impl(caller: Any) -> bool:
    # The core's own implementations (the body runner of tq_task_execute) need no
    # hook call: only another plugin's implementation puts a hook on the hot path.
    return any(impl.plugin_name != CORE_PLUGIN for impl in caller.get_hookimpls())
