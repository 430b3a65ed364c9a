"""Sending events: one JSON message per event, broadcast on the event exchange.

Every event carries Celery's standard fields (``type``, ``hostname``, ``utcoffset``,
``pid``, ``clock``, ``timestamp``); its routing key is the type with dots
(``task.succeeded``). Sending never raises: an event lost to a broker outage must not
fail the task it describes.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, final

from tq.errors import TransportError
from tq.message import Message

if TYPE_CHECKING:
    from tq.app import App

logger = logging.getLogger("tq.events")


def event_exchange(app: App) -> str:
    """``tqev`` by default, ``celeryev`` with ``celery_compat``."""
    name = str(app.conf["event_exchange"])
    if app.conf["celery_compat"] and name == "tqev":
        return "celeryev"
    return name


def utcoffset() -> int:
    """Hours west of UTC, as Celery's events carry it."""
    offset = time.altzone if time.daylight and time.localtime().tm_isdst else time.timezone
    return offset // 3600


@final
class EventDispatcher:
    """Broadcasts events as ``hostname`` (``gen<pid>@<host>`` for clients).

    Args:
        app: whose transport and settings are used.
        hostname: the node name events are sent as.
    """

    def __init__(self, app: App, hostname: str | None = None) -> None:
        self.app = app
        self.exchange = event_exchange(app)
        self.hostname = hostname or f"gen{os.getpid()}@{socket.gethostname()}"
        self.pid = os.getpid()
        self._clock = itertools.count(1)
        self._lock = threading.Lock()
        self._failing = False

    def event(self, type_: str, **fields: Any) -> dict[str, Any]:
        """The event ``type_`` with the standard fields filled in."""
        with self._lock:
            clock = next(self._clock)
        return {
            "type": type_,
            "hostname": self.hostname,
            "utcoffset": utcoffset(),
            "pid": self.pid,
            "clock": clock,
            "timestamp": time.time(),
            **fields,
        }

    def send(self, type_: str, **fields: Any) -> None:
        """Broadcast one event; a broker failure is logged once per outage, not raised."""
        event = self.event(type_, **fields)
        message = Message(
            json.dumps(event, default=repr).encode(),
            "application/json",
            "utf-8",
            {"hostname": self.hostname},
            {
                "delivery_mode": 1,
                "delivery_info": {
                    "exchange": self.exchange,
                    "routing_key": type_.replace("-", "."),
                },
            },
        )
        try:
            self.app.transport.broadcast(self.exchange, message)
        except (TransportError, NotImplementedError) as exc:
            if not self._failing:
                logger.warning("Cannot send %s events: %s", self.exchange, exc)
            self._failing = True
        else:
            self._failing = False
