"""Celery's task message protocol 2: building messages and reading them back.

Headers carry the task's identity and options, the body is
``[args, kwargs, {"callbacks", "errbacks", "chain", "chord"}]`` in the task
serializer, and ``correlation_id`` equals the task id. See
``shared/reference/celery-wire-formats.md`` §1.2 for every field.
"""

from __future__ import annotations

import os
import reprlib
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Final, final

from tq.errors import DecodeError
from tq.message import Message
from tq.request import Request
from tq.serialization import Codecs

REPR_MAX: Final = 1024
_repr = reprlib.Repr()
_repr.maxstring = 200
_repr.maxother = 200
_repr.maxlist = _repr.maxtuple = _repr.maxdict = 50


def saferepr(obj: Any, limit: int = REPR_MAX) -> str:
    """A bounded ``repr`` for logs, events and ``argsrepr``."""
    if not obj and type(obj) in (tuple, dict):
        return "()" if type(obj) is tuple else "{}"  # most calls: no args or no kwargs
    text = _repr.repr(obj)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_origin: tuple[int, str] = (0, "")


def origin_nodename() -> str:
    """``gen<pid>@<host>``, the ``origin`` header of messages a client sends."""
    global _origin
    pid = os.getpid()
    if _origin[0] != pid:  # computed once per process (a fork gets its own)
        _origin = (pid, f"gen{pid}@{socket.gethostname()}")
    return _origin[1]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_datetime(
    value: datetime | float | int | str | None, *, relative: bool = True
) -> datetime | None:
    """An aware datetime from a datetime, an ISO string, or seconds from now."""
    if value is None or isinstance(value, datetime):
        if isinstance(value, datetime) and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value
    if isinstance(value, int | float):
        return (
            utcnow() + timedelta(seconds=value)
            if relative
            else datetime.fromtimestamp(value, timezone.utc)
        )
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise DecodeError(f"not an ISO-8601 time: {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


@final
@dataclass(slots=True)
class TaskCall:
    """Everything that goes into one task message."""

    id: str
    task: str
    args: Sequence[Any] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    eta: datetime | None = None
    expires: datetime | None = None
    retries: int = 0
    group: str | None = None
    group_index: int | None = None
    root_id: str | None = None
    parent_id: str | None = None
    timelimit: tuple[float | None, float | None] = (None, None)
    argsrepr: str | None = None
    kwargsrepr: str | None = None
    shadow: str | None = None
    ignore_result: bool = False
    callbacks: list[dict[str, Any]] | None = None
    errbacks: list[dict[str, Any]] | None = None
    chain: list[dict[str, Any]] | None = None
    chord: dict[str, Any] | None = None
    reply_to: str | None = None
    priority: int | None = None
    headers: Mapping[str, Any] = field(default_factory=dict)
    origin: str | None = None
    stamps: dict[str, Any] = field(default_factory=dict)


def build_message(
    call: TaskCall, codecs: Codecs, serializer: str, compression: str | None = None
) -> Message:
    """Encode ``call`` as a protocol 2 message."""
    embed = {
        "callbacks": call.callbacks,
        "errbacks": call.errbacks,
        "chain": call.chain,
        "chord": call.chord,
    }
    body, content_type, content_encoding = codecs.encode(
        [list(call.args), dict(call.kwargs), embed], serializer
    )
    headers: dict[str, Any] = {
        "lang": "py",
        "task": call.task,
        "id": call.id,
        "shadow": call.shadow,
        "eta": call.eta.isoformat() if call.eta else None,
        "expires": call.expires.isoformat() if call.expires else None,
        "group": call.group,
        "group_index": call.group_index,
        "retries": call.retries,
        "timelimit": list(call.timelimit),
        "root_id": call.root_id or call.id,
        "parent_id": call.parent_id,
        "argsrepr": call.argsrepr if call.argsrepr is not None else saferepr(tuple(call.args)),
        "kwargsrepr": call.kwargsrepr
        if call.kwargsrepr is not None
        else saferepr(dict(call.kwargs)),
        "origin": call.origin or origin_nodename(),
        "ignore_result": call.ignore_result,
        "replaced_task_nesting": 0,
        "stamped_headers": None,
        "stamps": call.stamps,
    }
    headers.update(call.headers)
    if compression:
        body, headers["compression"] = codecs.compress(body, compression)
    properties: dict[str, Any] = {
        "correlation_id": call.id,
        "reply_to": call.reply_to or "",
        "delivery_mode": 2,
        "priority": call.priority if call.priority is not None else 0,
    }
    return Message(body, content_type, content_encoding, headers, properties)


def parse_message(message: Message, codecs: Codecs, accept: frozenset[str]) -> Request:
    """Read a protocol 2 message into a :class:`Request`; :class:`DecodeError` if it is not one."""
    headers = message.headers
    task = headers.get("task")
    if not isinstance(task, str) or not task:
        raise DecodeError("message has no 'task' header: not a task protocol 2 message")
    body = message.body
    if headers.get("compression"):
        body = codecs.decompress(body, str(headers["compression"]))
    decoded = codecs.decode(body, message.content_type, accept)
    args, kwargs, embed = _split_body(decoded)
    properties = message.properties
    return Request(
        id=_str_or_none(headers.get("id")) or _str_or_none(properties.get("correlation_id")),
        task=task,
        args=tuple(args),
        kwargs=kwargs,
        retries=int(headers.get("retries") or 0),
        eta=as_datetime(headers.get("eta")),
        expires=as_datetime(headers.get("expires")),
        root_id=_str_or_none(headers.get("root_id")),
        parent_id=_str_or_none(headers.get("parent_id")),
        group=_str_or_none(headers.get("group")),
        group_index=headers.get("group_index"),
        correlation_id=_str_or_none(properties.get("correlation_id")),
        reply_to=_str_or_none(properties.get("reply_to")),
        headers=headers,
        origin=_str_or_none(headers.get("origin")),
        called_directly=False,
        timelimit=_timelimit(headers.get("timelimit")),
        callbacks=embed.get("callbacks"),
        errbacks=embed.get("errbacks"),
        chain=embed.get("chain"),
        chord=embed.get("chord"),
        ignore_result=bool(headers.get("ignore_result", False)),
        shadow=_str_or_none(headers.get("shadow")),
        argsrepr=_str_or_none(headers.get("argsrepr")),
        kwargsrepr=_str_or_none(headers.get("kwargsrepr")),
        delivery_info=dict(properties.get("delivery_info") or {}),
        properties=properties,
        stamps=dict(headers.get("stamps") or {}),
    )


def _split_body(decoded: Any) -> tuple[list[Any], dict[str, Any], dict[str, Any]]:
    if not isinstance(decoded, list | tuple) or len(decoded) != 3:
        raise DecodeError("task body is not [args, kwargs, embed]")
    args, kwargs, embed = decoded
    if not isinstance(args, list | tuple) or not isinstance(kwargs, dict):
        raise DecodeError("task body args must be a list and kwargs an object")
    if not isinstance(embed, dict):
        embed = {}
    return list(args), kwargs, embed


def _timelimit(value: Any) -> tuple[float | None, float | None]:
    # Celery sends [hard, soft], whatever its protocol document says.
    if isinstance(value, list | tuple) and len(value) == 2:
        hard, soft = value
        return (
            float(hard) if hard is not None else None,
            float(soft) if soft is not None else None,
        )
    return (None, None)


def _str_or_none(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None
