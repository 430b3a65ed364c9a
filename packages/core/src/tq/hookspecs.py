"""Every hook tq calls, in one place.

Two kinds of hooks exist, and only two:

* **Component hooks** (``tq_transports`` … ``tq_settings``) are called once when an
  app loads its plugins. Each implementation returns a list of
  :class:`~tq.components.Component` (or :class:`~tq.components.Setting`); all lists are
  collected. A component that reuses a taken name is rejected when plugins load, not
  when it is first used.
* **Behaviour hooks** replace Celery's signals. They are called while tq runs; unless
  a docstring says otherwise their return values are ignored and an exception in an
  implementation propagates to the caller (a publish fails, a task fails). Per-task
  hooks are skipped entirely when no plugin implements them.

Implement hooks with :data:`tq.hookimpl`; a module or object with such functions is a
plugin (register it with the ``tq`` entry-point group or ``app.plugins.register``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from tq.app import App
    from tq.components import Component, Setting
    from tq.message import Message
    from tq.request import Request
    from tq.task import Task
    from tq.transport import Queue

hookspec = pluggy.HookspecMarker("tq")
hookimpl = pluggy.HookimplMarker("tq")

# -- components ------------------------------------------------------------------


@hookspec
def tq_transports() -> list[Component]:
    """Transports: ``Component(kind="transport", name, factory, schemes=(...))``.

    The factory is a :class:`tq.transport.Transport` subclass taking ``(url, options)``.
    Called once per app when plugins load.
    """


@hookspec
def tq_result_backends() -> list[Component]:
    """Result backends: ``Component(kind="backend", name, factory, schemes=(...))``.

    The factory is a :class:`tq.backend.ResultBackend` subclass taking ``(url, options)``.
    """


@hookspec
def tq_serializers() -> list[Component]:
    """Serializers: ``Component(kind="serializer", name, factory, content_type=...)``.

    The factory returns an object with ``dumps(obj) -> bytes`` and
    ``loads(data: bytes) -> object`` and a ``content_encoding`` attribute.
    """


@hookspec
def tq_compressors() -> list[Component]:
    """Compressors: ``Component(kind="compressor", name, factory, content_type=...)``.

    The factory returns an object with ``compress(bytes) -> bytes`` and
    ``decompress(bytes) -> bytes``.
    """


@hookspec
def tq_pools() -> list[Component]:
    """Worker pools chosen with ``tq worker --pool=NAME``; see ``tq_worker.pools``."""


@hookspec
def tq_autoscalers() -> list[Component]:
    """Rules that resize a worker's pool (``tq worker --autoscale=MAX,MIN``), chosen by the
    ``worker_autoscaler`` setting; see ``tq_worker.autoscale``."""


@hookspec
def tq_schedulers() -> list[Component]:
    """Periodic-task schedulers and schedule stores (``tq beat --scheduler=NAME``)."""


@hookspec
def tq_bootsteps() -> list[Component]:
    """Worker bootsteps; ``meta={"requires": (...)}`` names the steps that must start first."""


@hookspec
def tq_cli_commands() -> list[Component]:
    """``tq`` subcommands; the factory is a :class:`click.Command`."""


@hookspec
def tq_control_commands() -> list[Component]:
    """Remote-control commands; ``meta={"type": "inspect" | "control"}``."""


@hookspec
def tq_settings() -> list[Setting]:
    """Settings this plugin understands, with their defaults and one-line docs."""


# -- publishing ------------------------------------------------------------------


@hookspec
def tq_before_publish(app: App, message: Message, queue: Queue) -> None:
    """Called before a task message is handed to the transport (Celery's
    ``before_task_publish``). Implementations may change ``message.headers``."""


@hookspec
def tq_after_publish(app: App, message: Message, queue: Queue) -> None:
    """Called after the transport accepted a task message (``after_task_publish``)."""


# -- task execution ----------------------------------------------------------------


@hookspec(firstresult=True)
def tq_task_execute(task: Task[Any, Any], request: Request, run: Callable[[], Any]) -> Any:
    """Run a task body. Where: the process executing the task.

    The core's implementation returns ``run()``. Plugins implement this hook with
    ``wrapper=True`` to see, and possibly change, the outcome::

        @hookimpl(wrapper=True)
        def tq_task_execute(task, request, run):
            started = time.monotonic()
            try:
                return (yield)
            finally:
                record(task.name, time.monotonic() - started)

    Control-flow exceptions (``Retry``, ``Ignore``, ``Reject``) pass through wrappers.
    """


@hookspec
def tq_task_received(app: App, request: Request) -> None:
    """A worker accepted a task message and will run it when due (``task_received``).

    Where: the worker's consumer thread, before the task reaches the pool.
    """


@hookspec
def tq_task_prerun(task: Task[Any, Any], request: Request) -> None:
    """Before the task body runs (``task_prerun``)."""


@hookspec
def tq_task_postrun(task: Task[Any, Any], request: Request, state: str, retval: Any) -> None:
    """After the task finished, whatever the outcome (``task_postrun``)."""


@hookspec
def tq_task_success(task: Task[Any, Any], request: Request, retval: Any) -> None:
    """The task returned ``retval`` (``task_success``)."""


@hookspec
def tq_task_failure(
    task: Task[Any, Any], request: Request, exc: BaseException, traceback: str
) -> None:
    """The task raised ``exc`` and will not be retried (``task_failure``)."""


@hookspec
def tq_task_retry(task: Task[Any, Any], request: Request, reason: BaseException) -> None:
    """The task was sent again to be retried (``task_retry``)."""


@hookspec
def tq_task_revoked(app: App, request: Request, expired: bool, terminated: bool) -> None:
    """The task will not run: revoked, or past its expiry (``task_revoked``)."""


@hookspec
def tq_message_rejected(app: App, message: Message, queue: str, reason: str) -> None:
    """A message was dead-lettered: undecodable, unknown task, refused content, or
    delivered too often (``task_rejected``, ``task_unknown``)."""


# -- worker and process lifecycle ------------------------------------------------------


@hookspec
def tq_worker_init(worker: Any) -> None:
    """The worker was built and is about to start its bootsteps (``worker_init``)."""


@hookspec
def tq_worker_ready(worker: Any) -> None:
    """The worker consumes from its queues (``worker_ready``)."""


@hookspec
def tq_worker_shutting_down(worker: Any, how: str) -> None:
    """A ``"warm"`` or ``"cold"`` shutdown began (``worker_shutting_down``)."""


@hookspec
def tq_worker_shutdown(worker: Any) -> None:
    """The worker stopped; called last (``worker_shutdown``)."""


@hookspec
def tq_process_init(app: App) -> None:
    """A pool child process started, before it runs a task (``worker_process_init``)."""


@hookspec
def tq_process_shutdown(app: App) -> None:
    """A pool child process is about to exit (``worker_process_shutdown``)."""


@hookspec
def tq_beat_init(beat: Any) -> None:
    """The beat scheduler started (``beat_init``)."""


# -- logging -------------------------------------------------------------------------


@hookspec(firstresult=True)
def tq_setup_logging(app: App, loglevel: int, logfile: str | None) -> bool | None:
    """Configure logging for a worker or beat; return ``True`` to skip tq's own setup
    (``setup_logging``)."""


@hookspec
def tq_after_setup_logging(app: App, loglevel: int, logfile: str | None) -> None:
    """Logging is configured; add handlers or filters here (``after_setup_logger``)."""
