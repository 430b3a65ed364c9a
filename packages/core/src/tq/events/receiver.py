"""Receiving events: a subscription to the event exchange, handed to handlers."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, final

from tq.events.dispatcher import event_exchange
from tq.transport import Subscription

if TYPE_CHECKING:
    from tq.app import App
    from tq.message import Message

logger = logging.getLogger("tq.events")

Handler = Callable[[dict[str, Any]], None]


def decode(message: Message) -> list[dict[str, Any]]:
    """The events in a message: one, or a list (Celery's batched ``task.multi``)."""
    try:
        body = json.loads(message.body)
    except ValueError:
        logger.warning("Ignoring an event that is not JSON")
        return []
    events = body if isinstance(body, list) else [body]
    return [event for event in events if isinstance(event, dict) and "type" in event]


@final
class EventReceiver:
    """Calls ``handlers[type]``, else ``handlers["*"]``, for every event received.

    Receiving starts when the receiver opens (``with``, :meth:`open` or the first
    :meth:`capture`): events broadcast before that are not seen.
    """

    def __init__(self, app: App, handlers: Mapping[str, Handler] | None = None) -> None:
        self.app = app
        self.handlers = dict(handlers or {})
        self.exchange = event_exchange(app)
        self.should_stop = False
        self._subscription: Subscription | None = None

    def open(self, wakeup: bool = True) -> None:
        """Subscribe; with ``wakeup``, ask workers for a heartbeat so they show at once."""
        if self._subscription is None:
            self._subscription = self.app.transport.subscribe(self.exchange)
            if wakeup:
                self.app.control.heartbeat()

    def close(self) -> None:
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None

    def __enter__(self) -> EventReceiver:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def itercapture(
        self, limit: int | None = None, timeout: float | None = None, wakeup: bool = True
    ) -> Iterator[dict[str, Any]]:
        """Yield events until ``limit`` events, ``timeout`` seconds, or :attr:`should_stop`."""
        self.open(wakeup)
        assert self._subscription is not None
        deadline = None if timeout is None else time.monotonic() + timeout
        count = 0
        while not self.should_stop and (limit is None or count < limit):
            wait = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
            if wait <= 0:
                return
            for message in self._subscription.get(wait):
                for event in decode(message):
                    event["local_received"] = time.time()
                    count += 1
                    yield event

    def capture(
        self, limit: int | None = None, timeout: float | None = None, wakeup: bool = True
    ) -> None:
        """Dispatch events to the handlers until ``limit``, ``timeout`` or :meth:`stop`."""
        for event in self.itercapture(limit, timeout, wakeup):
            self.process(event)

    def process(self, event: dict[str, Any]) -> None:
        handler = self.handlers.get(event["type"]) or self.handlers.get("*")
        if handler is not None:
            handler(event)

    def stop(self) -> None:
        """Make :meth:`capture` return after the event it is handling."""
        self.should_stop = True
