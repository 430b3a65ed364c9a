"""Worker events: ``worker-online``/``-heartbeat``/``-offline`` always, task events when on.

Task events are a plugin on the behaviour hooks (received, prerun, success, failure,
retry, revoked, rejected), registered on the app only once task events are enabled
(``worker_send_task_events``, ``tq worker -E`` or the ``enable_events`` command): a
worker that never sends them has no event code on its hot path. ``disable_events``
turns the registered plugin into a flag check.
"""

from __future__ import annotations

import logging
import os
import platform
import threading
import time
import traceback as tb
from typing import TYPE_CHECKING, Any, Final

import tq
from tq.events import EventDispatcher
from tq.hookspecs import hookimpl
from tq_worker.bootsteps import Bootstep

if TYPE_CHECKING:
    from tq.app import App
    from tq.message import Message
    from tq.request import Request
    from tq.task import Task
    from tq_worker.worker import Worker

logger = logging.getLogger("tq.worker.events")

RESULT_REPR_MAXSIZE: Final = 1024


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= RESULT_REPR_MAXSIZE else f"{text[:RESULT_REPR_MAXSIZE]}..."


class TaskEvents:
    """The task-event plugin: one event per hook call, while :attr:`enabled`."""

    def __init__(self, dispatcher: EventDispatcher) -> None:
        self.dispatcher = dispatcher
        self.enabled = True
        self._started: dict[str, float] = {}

    def _send(self, type_: str, request: Request, **fields: Any) -> None:
        if self.enabled:
            self.dispatcher.send(type_, uuid=request.id, **fields)

    @hookimpl
    def tq_task_received(self, app: App, request: Request) -> None:
        info = request.info()
        self._send(
            "task-received",
            request,
            name=request.name,
            args=info["args"],
            kwargs=info["kwargs"],
            root_id=request.root_id,
            parent_id=request.parent_id,
            retries=request.retries,
            eta=request.eta.isoformat() if request.eta else None,
            expires=request.expires.isoformat() if request.expires else None,
        )

    @hookimpl
    def tq_task_prerun(self, task: Task[Any, Any], request: Request) -> None:
        self._started[request.id or ""] = time.monotonic()
        self._send("task-started", request)

    def _runtime(self, request: Request) -> float:
        started = self._started.pop(request.id or "", None)
        return time.monotonic() - started if started is not None else 0.0

    @hookimpl
    def tq_task_success(self, task: Task[Any, Any], request: Request, retval: Any) -> None:
        runtime = self._runtime(request)
        self._send("task-succeeded", request, result=_short_repr(retval), runtime=runtime)

    @hookimpl
    def tq_task_failure(
        self, task: Task[Any, Any], request: Request, exc: BaseException, traceback: str
    ) -> None:
        runtime = self._runtime(request)
        self._send(
            "task-failed", request, exception=_short_repr(exc), traceback=traceback, runtime=runtime
        )

    @hookimpl
    def tq_task_retry(self, task: Task[Any, Any], request: Request, reason: BaseException) -> None:
        self._runtime(request)
        trace = "".join(tb.format_exception(type(reason), reason, reason.__traceback__))
        self._send("task-retried", request, exception=_short_repr(reason), traceback=trace)

    @hookimpl
    def tq_task_revoked(self, app: App, request: Request, expired: bool, terminated: bool) -> None:
        self._send("task-revoked", request, terminated=terminated, signum=None, expired=expired)

    @hookimpl
    def tq_message_rejected(self, app: App, message: Message, queue: str, reason: str) -> None:
        if self.enabled and message.headers.get("id"):
            self.dispatcher.send("task-rejected", uuid=message.headers["id"], requeue=False)


class EventsStep(Bootstep):
    """Sends worker events and heartbeats; switches task events on and off."""

    name = "events"

    def __init__(self, worker: Worker) -> None:
        super().__init__(worker)
        app = worker.app
        self.dispatcher = EventDispatcher(app, worker.hostname)
        self.freq = float(app.conf["worker_heartbeat_interval"])
        self.task_events: TaskEvents | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._fanout = app.transport.capabilities.fanout

    def start(self) -> None:
        if not self._fanout:
            return
        if self.worker.app.conf["worker_send_task_events"]:
            self.enable_task_events()
        self._send_worker_event("worker-online")
        self._thread = threading.Thread(target=self._beat, name="tq-heartbeat", daemon=True)
        self._thread.start()

    def stop(self, warm: bool) -> None:
        if not self._fanout:
            return
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=self.freq * 2)
        self._send_worker_event("worker-offline")

    def _beat(self) -> None:
        while not self._stopping.wait(self.freq):
            self.send_heartbeat()

    def send_heartbeat(self) -> None:
        self._send_worker_event("worker-heartbeat")

    def _send_worker_event(self, type_: str) -> None:
        consumer = self.worker.consumer
        self.dispatcher.send(
            type_,
            freq=self.freq,
            active=len(consumer.active),
            processed=sum(consumer.total.values()),
            loadavg=[round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else [],
            sw_ident="py-tq",
            sw_ver=tq.__version__,
            sw_sys=platform.system(),
        )

    def enable_task_events(self) -> None:
        """Register the task-event plugin the first time; afterwards just switch it on."""
        if self.task_events is None:
            self.task_events = TaskEvents(self.dispatcher)
            self.worker.app.register_plugin(self.task_events, "tq-worker-task-events")
            logger.info("Task events enabled")
        self.task_events.enabled = True

    def disable_task_events(self) -> None:
        if self.task_events is not None:
            self.task_events.enabled = False
