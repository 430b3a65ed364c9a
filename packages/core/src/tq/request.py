"""The context of one task execution: ``task.request`` inside a running task."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(slots=True)
class Request:
    """What a running task knows about the call that started it (Celery's ``Context``).

    Built from the message by the worker, or from the call by ``apply`` for eager
    runs; ``called_directly`` is true when the task function was called as a plain
    function, with no message at all.
    """

    id: str | None = None
    task: str = ""
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    retries: int = 0
    is_eager: bool = False
    eta: datetime | None = None
    expires: datetime | None = None
    hostname: str | None = None
    delivery_info: dict[str, Any] = field(default_factory=dict)
    root_id: str | None = None
    parent_id: str | None = None
    group: str | None = None
    group_index: int | None = None
    correlation_id: str | None = None
    reply_to: str | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    origin: str | None = None
    called_directly: bool = True
    timelimit: tuple[float | None, float | None] = (None, None)
    callbacks: list[dict[str, Any]] | None = None
    errbacks: list[dict[str, Any]] | None = None
    chain: list[dict[str, Any]] | None = None
    chord: dict[str, Any] | None = None
    ignore_result: bool = False
    shadow: str | None = None
    argsrepr: str | None = None
    kwargsrepr: str | None = None
    delivery_count: int = 1
    properties: dict[str, Any] = field(default_factory=dict)
    stamps: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The name shown in logs and monitors: ``shadow`` if set, else the task name."""
        return self.shadow or self.task

    @property
    def redelivered(self) -> bool:
        return self.delivery_count > 1

    def info(self) -> dict[str, Any]:
        """A JSON-ready summary for logs, events and inspection."""
        return {
            "id": self.id,
            "name": self.name,
            "args": self.argsrepr if self.argsrepr is not None else repr(self.args),
            "kwargs": self.kwargsrepr if self.kwargsrepr is not None else repr(self.kwargs),
            "hostname": self.hostname,
            "delivery_info": self.delivery_info,
            "retries": self.retries,
        }
