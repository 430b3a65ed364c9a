"""Events: what workers and clients broadcast about tasks and themselves, in Celery's format.

``app.events`` is the entry point for users' own monitors::

    state = app.events.State()
    with app.events.receiver({"*": state.event}) as receiver:
        receiver.capture(timeout=10)
    print(state.counts())
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tq.events.dispatcher import EventDispatcher, event_exchange
from tq.events.receiver import EventReceiver, Handler
from tq.events.state import State, TaskState, WorkerState

if TYPE_CHECKING:
    from collections.abc import Mapping

    from tq.app import App

__all__ = [
    "EventDispatcher",
    "EventReceiver",
    "Events",
    "Handler",
    "State",
    "TaskState",
    "WorkerState",
    "event_exchange",
]


class Events:
    """``app.events``: make dispatchers, receivers and states bound to the app."""

    State = State

    def __init__(self, app: App) -> None:
        self.app = app

    def dispatcher(self, hostname: str | None = None) -> EventDispatcher:
        """A sender of events as ``hostname`` (a client name by default)."""
        return EventDispatcher(self.app, hostname)

    def receiver(self, handlers: Mapping[str, Handler] | None = None) -> EventReceiver:
        """A receiver calling ``handlers[event type]`` (or ``handlers["*"]``) per event."""
        return EventReceiver(self.app, handlers)
