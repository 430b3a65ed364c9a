"""Celery's signal names, for code migrating from Celery.

New code implements hooks (:mod:`tq.hookspecs`). These signals are a thin layer on top::

    from tq.signals import task_success

    @task_success.connect
    def note(sender, result, **kwargs):
        ...

Receivers get Celery's keyword arguments plus ``sender`` and ``signal``; ``sender=``
filters by task object or name. A signal puts its hook on an app only while it has
receivers, so unused signals cost nothing per task. Unlike the rest of tq, signals are
process-wide, as in Celery: they apply to every app in the process.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, final

from tq.hookspecs import hookimpl

if TYPE_CHECKING:
    from tq.app import App
    from tq.message import Message
    from tq.request import Request
    from tq.task import Task
    from tq.transport import Queue

Receiver = Callable[..., Any]

_apps: weakref.WeakSet[App] = weakref.WeakSet()


@final
class Signal:
    """A Celery-style signal bridged to one tq hook.

    Args:
        name: Celery's name for it.
        bridge: a plugin class whose one hook implementation calls :meth:`send`.
    """

    def __init__(self, name: str, bridge: type) -> None:
        self.name = name
        self._bridge = bridge
        self.receivers: list[tuple[Receiver, Any]] = []

    def __repr__(self) -> str:
        return f"<Signal: {self.name}>"

    def connect(self, receiver: Receiver | None = None, *, sender: Any = None) -> Any:
        """Connect ``receiver``; works as ``@signal.connect`` and ``@signal.connect(sender=...)``."""

        def register(function: Receiver) -> Receiver:
            self.receivers.append((function, sender))
            if len(self.receivers) == 1:
                for app in list(_apps):
                    self._plug(app)
            return function

        return register(receiver) if receiver is not None else register

    def disconnect(self, receiver: Receiver) -> None:
        """Disconnect every connection of ``receiver``; the hook leaves apps with the last one."""
        self.receivers = [(r, s) for r, s in self.receivers if r is not receiver]
        if not self.receivers:
            for app in list(_apps):
                if app.plugins.manager.has_plugin(self._plugin_name):
                    app.plugins.unregister(self._plugin_name)

    def send(self, sender: Any, **kwargs: Any) -> list[tuple[Receiver, Any]]:
        """Call every receiver that wants this sender; return ``(receiver, result)`` pairs."""
        responses = []
        for receiver, wanted in list(self.receivers):
            if wanted is None or wanted is sender or wanted == getattr(sender, "name", sender):
                responses.append((receiver, receiver(sender=sender, signal=self, **kwargs)))
        return responses

    @property
    def _plugin_name(self) -> str:
        return f"tq.signals:{self.name}"

    def _plug(self, app: App) -> None:
        if not app.plugins.manager.has_plugin(self._plugin_name):
            app.plugins.register(self._bridge(), self._plugin_name)


def attach(app: App) -> None:
    """Give ``app`` the hooks of every signal that has receivers (called by :class:`App`)."""
    _apps.add(app)
    for signal in ALL_SIGNALS:
        if signal.receivers:
            signal._plug(app)


# -- bridges: one small plugin per signal, so each hook is registered only when used ----


class _BeforePublish:
    @hookimpl
    def tq_before_publish(self, app: App, message: Message, queue: Queue) -> None:
        before_task_publish.send(
            message.headers.get("task"),
            body=message.body,
            exchange=queue.exchange,
            routing_key=queue.routing_key,
            headers=message.headers,
            properties=message.properties,
        )


class _AfterPublish:
    @hookimpl
    def tq_after_publish(self, app: App, message: Message, queue: Queue) -> None:
        after_task_publish.send(
            message.headers.get("task"),
            body=message.body,
            exchange=queue.exchange,
            routing_key=queue.routing_key,
            headers=message.headers,
        )


class _Received:
    @hookimpl
    def tq_task_received(self, app: App, request: Request) -> None:
        task_received.send(app.tasks.get(request.task), request=request)


class _Prerun:
    @hookimpl
    def tq_task_prerun(self, task: Task[Any, Any], request: Request) -> None:
        task_prerun.send(
            task, task_id=request.id, task=task, args=request.args, kwargs=request.kwargs
        )


class _Postrun:
    @hookimpl
    def tq_task_postrun(
        self, task: Task[Any, Any], request: Request, state: str, retval: Any
    ) -> None:
        task_postrun.send(
            task,
            task_id=request.id,
            task=task,
            args=request.args,
            kwargs=request.kwargs,
            retval=retval,
            state=state,
        )


class _Success:
    @hookimpl
    def tq_task_success(self, task: Task[Any, Any], request: Request, retval: Any) -> None:
        task_success.send(task, result=retval)


class _Failure:
    @hookimpl
    def tq_task_failure(
        self, task: Task[Any, Any], request: Request, exc: BaseException, traceback: str
    ) -> None:
        task_failure.send(
            task,
            task_id=request.id,
            exception=exc,
            args=request.args,
            kwargs=request.kwargs,
            traceback=traceback,
            einfo=traceback,
        )


class _Retry:
    @hookimpl
    def tq_task_retry(self, task: Task[Any, Any], request: Request, reason: BaseException) -> None:
        task_retry.send(task, request=request, reason=reason, einfo=None)


class _Revoked:
    @hookimpl
    def tq_task_revoked(self, app: App, request: Request, expired: bool, terminated: bool) -> None:
        task_revoked.send(
            app.tasks.get(request.task),
            request=request,
            expired=expired,
            terminated=terminated,
            signum=None,
        )


class _Rejected:
    @hookimpl
    def tq_message_rejected(self, app: App, message: Message, queue: str, reason: str) -> None:
        task_rejected.send(None, message=message, exc=reason)


class _WorkerInit:
    @hookimpl
    def tq_worker_init(self, worker: Any) -> None:
        worker_init.send(worker)


class _WorkerReady:
    @hookimpl
    def tq_worker_ready(self, worker: Any) -> None:
        worker_ready.send(worker)


class _WorkerShuttingDown:
    @hookimpl
    def tq_worker_shutting_down(self, worker: Any, how: str) -> None:
        worker_shutting_down.send(worker, how=how, sig=None, exitcode=0)


class _WorkerShutdown:
    @hookimpl
    def tq_worker_shutdown(self, worker: Any) -> None:
        worker_shutdown.send(worker)


class _ProcessInit:
    @hookimpl
    def tq_process_init(self, app: App) -> None:
        worker_process_init.send(None)


class _ProcessShutdown:
    @hookimpl
    def tq_process_shutdown(self, app: App) -> None:
        worker_process_shutdown.send(None, pid=None, exitcode=0)


before_task_publish = Signal("before_task_publish", _BeforePublish)
after_task_publish = Signal("after_task_publish", _AfterPublish)
task_received = Signal("task_received", _Received)
task_prerun = Signal("task_prerun", _Prerun)
task_postrun = Signal("task_postrun", _Postrun)
task_success = Signal("task_success", _Success)
task_failure = Signal("task_failure", _Failure)
task_retry = Signal("task_retry", _Retry)
task_revoked = Signal("task_revoked", _Revoked)
task_rejected = Signal("task_rejected", _Rejected)
worker_init = Signal("worker_init", _WorkerInit)
worker_ready = Signal("worker_ready", _WorkerReady)
worker_shutting_down = Signal("worker_shutting_down", _WorkerShuttingDown)
worker_shutdown = Signal("worker_shutdown", _WorkerShutdown)
worker_process_init = Signal("worker_process_init", _ProcessInit)
worker_process_shutdown = Signal("worker_process_shutdown", _ProcessShutdown)

ALL_SIGNALS: tuple[Signal, ...] = (
    before_task_publish,
    after_task_publish,
    task_received,
    task_prerun,
    task_postrun,
    task_success,
    task_failure,
    task_retry,
    task_revoked,
    task_rejected,
    worker_init,
    worker_ready,
    worker_shutting_down,
    worker_shutdown,
    worker_process_init,
    worker_process_shutdown,
)
