"""tq: a distributed task queue built from plugins.

The public API::

    from tq import App

    app = App("proj")

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    add.delay(2, 2).get(timeout=10)
"""

from tq import states
from tq.app import App
from tq.canvas import Signature, chain, chord, chunks, group, signature, xmap, xstarmap
from tq.components import Component, Setting
from tq.errors import (
    ChordError,
    Ignore,
    ImproperlyConfigured,
    MaxRetriesExceededError,
    Reject,
    RemoteError,
    Retry,
    TaskRevokedError,
    TimeoutError,
    TqError,
)
from tq.hookspecs import hookimpl
from tq.request import Request
from tq.result import AsyncResult, EagerResult, GroupResult
from tq.task import Task
from tq.transport import Queue

__version__ = "0.1.0"

__all__ = [
    "App",
    "AsyncResult",
    "ChordError",
    "Component",
    "EagerResult",
    "GroupResult",
    "Ignore",
    "ImproperlyConfigured",
    "MaxRetriesExceededError",
    "Queue",
    "Reject",
    "RemoteError",
    "Request",
    "Retry",
    "Setting",
    "Signature",
    "Task",
    "TaskRevokedError",
    "TimeoutError",
    "TqError",
    "__version__",
    "chain",
    "chord",
    "chunks",
    "group",
    "hookimpl",
    "signature",
    "states",
    "xmap",
    "xstarmap",
]
