"""Every exception tq raises.

The tree::

    TqError
    ├── ImproperlyConfigured         settings, URLs, app loading
    │   └── MissingPluginError       no installed plugin provides a component
    ├── PluginError                  a plugin declared something invalid
    ├── TransportError               the broker failed (wraps the client's error)
    ├── BackendError                 the result backend failed
    ├── MessageError                 a message cannot be used
    │   ├── DecodeError              body or envelope cannot be decoded
    │   ├── ContentDisallowed        content type not in ``accept_content``
    │   └── UnknownTaskError         the task name is not registered
    ├── TaskError                    about a task and its results
    │   ├── TimeoutError             ``AsyncResult.get`` waited too long
    │   ├── MaxRetriesExceededError
    │   ├── TaskRevokedError
    │   ├── RemoteError              a task failed with an exception class that
    │   │                            cannot be rebuilt here
    │   ├── WorkerLostError
    │   ├── ChordError               a chord header task failed
    │   ├── SoftTimeLimitExceeded    raised inside a task at its soft time limit
    │   └── TimeLimitExceeded        the task ran past its hard time limit
    └── TaskControl                  control flow raised inside tasks, not errors
        ├── Retry
        ├── Ignore
        └── Reject

Errors raised at a plugin boundary keep the third-party error as ``__cause__``.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from datetime import datetime
from typing import Any


class TqError(Exception):
    """Base of every tq error."""


class ImproperlyConfigured(TqError):
    """A setting, URL or app reference is wrong; the message says how to fix it."""


class MissingPluginError(ImproperlyConfigured):
    """No installed plugin provides the component that was asked for."""


class PluginError(TqError):
    """A plugin declared an invalid component or hook."""


class TransportError(TqError):
    """The broker could not be reached or refused an operation."""


class BackendError(TqError):
    """The result backend could not be reached or refused an operation."""


class MessageError(TqError):
    """A message cannot be delivered to a task."""


class DecodeError(MessageError):
    """The envelope or the body of a message cannot be decoded."""


class ContentDisallowed(MessageError):
    """The message's content type is not listed in ``accept_content``."""


class UnknownTaskError(MessageError):
    """The message names a task that is not registered on this app."""


class TaskError(TqError):
    """Base for errors about tasks and their results."""


class TimeoutError(TaskError, builtins.TimeoutError):  # noqa: A001 - mirrors Celery's name
    """A result was not ready within the time given."""


class MaxRetriesExceededError(TaskError):
    """A task asked to retry more times than it may."""


class TaskRevokedError(TaskError):
    """The task was revoked (or expired) and will not run."""


class WorkerLostError(TaskError):
    """The process running the task died before it finished."""


class ChordError(TaskError):
    """A chord's header task failed; the message names the task and its exception."""


class SoftTimeLimitExceeded(TaskError):
    """Raised inside a running task when its soft time limit passes; it may clean up."""


class TimeLimitExceeded(TaskError):
    """The task ran past its hard time limit and was stopped (stored as its failure)."""


class RemoteError(TaskError):
    """A task failed with an exception that cannot be rebuilt in this process.

    Carries the remote type's dotted name and its message instead.
    """

    def __init__(self, exc_type: str, message: str) -> None:
        super().__init__(f"{exc_type}: {message}")
        self.exc_type = exc_type
        self.message = message


class TaskControl(Exception):
    """Base of the exceptions a task raises to steer its own execution."""


class Retry(TaskControl):
    """Raised by ``Task.retry``: the task was sent again and this run ends."""

    def __init__(
        self,
        message: str | None = None,
        exc: BaseException | None = None,
        when: float | datetime | None = None,
    ) -> None:
        self.exc = exc
        self.when = when
        # Eager runs retry in place; the new (args, kwargs), if any, travel here.
        self.args_override: tuple[Any, Any] | None = None
        # Sends the retry message; set by Task.retry, called once RETRY is stored.
        self.send: Callable[[], Any] | None = None
        super().__init__(message or self._describe())

    def _describe(self) -> str:
        reason = f": {self.exc!r}" if self.exc is not None else ""
        when = f" in {self.when}s" if isinstance(self.when, int | float) else ""
        if isinstance(self.when, datetime):
            when = f" at {self.when.isoformat()}"
        return f"Retry{when}{reason}"


class Ignore(TaskControl):
    """The task ends without storing a state; its message is acknowledged."""


class Reject(TaskControl):
    """The task rejects its message, optionally asking the broker to requeue it."""

    def __init__(self, reason: Any = None, requeue: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.requeue = requeue
