"""The worker's mailbox: answers remote-control requests broadcast on ``tq.pidbox``.

A thread reads the control exchange; for each request addressed to this node (no
``destination``, or one that names it) it runs the command registered under the
request's ``method`` (a ``tq_control_commands`` component) and, when the request has
a ``reply_to``, publishes ``{nodename: result}`` with the request's ticket to the
client's reply queue. A failing command answers ``{"error": ...}``; nothing a request
does stops the mailbox. See :mod:`tq.control` for the message format.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from tq.control import encode, mailbox_exchange, reply_queue
from tq.errors import TqError, TransportError
from tq_worker.bootsteps import Bootstep

if TYPE_CHECKING:
    from tq.app import App
    from tq.message import Message
    from tq.transport import Subscription
    from tq_worker.consumer import Consumer
    from tq_worker.worker import Worker

logger = logging.getLogger("tq.worker.control")

_POLL: Final = 1.0
# Joining workers ask the others for their revoked ids for this long.
_HELLO_TIMEOUT: Final = 1.0


@dataclass
class ControlState:
    """What every command receives first: the worker, and when the mailbox started."""

    worker: Worker
    started: float = field(default_factory=time.time)
    clock: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def app(self) -> App:
        return self.worker.app

    @property
    def consumer(self) -> Consumer:
        return self.worker.consumer

    @property
    def hostname(self) -> str:
        return self.worker.hostname

    def step(self, name: str) -> Bootstep | None:
        """The worker's bootstep called ``name``, if it has one."""
        return next((s for s in self.worker.steps if s.name == name), None)


def ok(value: Any) -> dict[str, Any]:
    return {"ok": value}


def nok(value: Any) -> dict[str, Any]:
    return {"error": value}


class Mailbox:
    """Decodes requests, runs the commands addressed to this node, and replies."""

    def __init__(self, state: ControlState) -> None:
        self.state = state
        self.app = state.app

    def handle(self, message: Message) -> None:
        try:
            request = json.loads(message.body)
            method = str(request["method"])
        except (ValueError, KeyError, TypeError):
            logger.warning("Ignoring a malformed remote-control request")
            return
        if not self._addressed(request) or _expired(message):
            return
        result = self.dispatch(method, dict(request.get("arguments") or {}))
        reply_to = request.get("reply_to")
        if reply_to and request.get("ticket"):
            self._reply(reply_to, str(request["ticket"]), result)

    def _addressed(self, request: dict[str, Any]) -> bool:
        destination = request.get("destination")
        return not destination or self.state.hostname in destination

    def dispatch(self, method: str, arguments: dict[str, Any]) -> Any:
        """Run command ``method``; an unknown command or a failure is ``{"error": ...}``."""
        component = self.app.plugins.components("control").get(method)
        if component is None:
            return nok(f"No such command: {method}")
        try:
            return component.load()(self.state, **arguments)
        except Exception as exc:
            logger.exception("Remote-control command %s failed", method)
            return nok(repr(exc))

    def _reply(self, reply_to: dict[str, Any], ticket: str, result: Any) -> None:
        headers = {"ticket": ticket, "clock": next(self.state.clock)}
        try:
            self.app.transport.publish(
                encode({self.state.hostname: result}, headers), reply_queue(reply_to)
            )
        except (TransportError, KeyError, TypeError) as exc:
            logger.warning("Cannot reply to a remote-control request: %s", exc)


def _expired(message: Message) -> bool:
    expires = message.headers.get("expires")
    return expires is not None and 0 < float(expires) < time.time()


class ControlStep(Bootstep):
    """Starts the mailbox thread; asks the running workers for their revoked ids."""

    name = "control"

    def __init__(self, worker: Worker) -> None:
        super().__init__(worker)
        self.state = ControlState(worker)
        self.mailbox = Mailbox(self.state)
        self._subscription: Subscription | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        transport = self.worker.app.transport
        if not transport.capabilities.fanout:
            logger.warning("%s has no fanout: remote control is off", type(transport).__name__)
            return
        self._subscription = transport.subscribe(mailbox_exchange(self.worker.app))
        self._thread = threading.Thread(target=self._loop, name="tq-control", daemon=True)
        self._thread.start()
        threading.Thread(target=self._synchronise, name="tq-hello", daemon=True).start()

    def _loop(self) -> None:
        assert self._subscription is not None
        while not self._stopping.is_set():
            try:
                messages = self._subscription.get(_POLL)
            except TqError as exc:
                logger.warning("Cannot read remote-control requests: %s", exc)
                self._stopping.wait(_POLL)
                continue
            for message in messages:
                self.mailbox.handle(message)

    def _synchronise(self) -> None:
        """Take over the revoked ids other workers know (Celery's mingle, revokes only)."""
        try:
            replies = self.worker.app.control.broadcast(
                "hello", {"from_node": self.worker.hostname}, reply=True, timeout=_HELLO_TIMEOUT
            )
        except TqError as exc:
            logger.warning("Cannot ask other workers for revoked ids: %s", exc)
            return
        revoked = self.worker.consumer.revoked
        for reply in replies:
            for node, answer in reply.items():
                if node != self.worker.hostname and isinstance(answer, dict):
                    revoked.add(answer.get("revoked") or ())

    def stop(self, warm: bool) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=_POLL * 2)
        if self._subscription is not None:
            self._subscription.close()
