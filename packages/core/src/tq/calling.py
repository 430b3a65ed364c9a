"""Turning ``apply_async`` options into a task message (or an eager request)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from tq.canvas import Signature, as_signature_dicts
from tq.errors import ImproperlyConfigured
from tq.execution import current_request, record_child
from tq.protocol import TaskCall, as_datetime, utcnow
from tq.request import Request

if TYPE_CHECKING:
    from tq.task import Task

CALL_OPTIONS: Final = frozenset(
    {
        "countdown",
        "eta",
        "expires",
        "queue",
        "routing_key",
        "exchange",
        "priority",
        "serializer",
        "compression",
        "headers",
        "task_id",
        "link",
        "link_error",
        "ignore_result",
        "argsrepr",
        "kwargsrepr",
        "shadow",
        "retry",
        "retry_policy",
        "time_limit",
        "soft_time_limit",
        "parent_id",
        "root_id",
        "group_id",
        "group_index",
        "chain",
        "chord",
        "reply_to",
        "retries",
        "throw",
        "task",
        "_request",
        "stamps",
    }
)


def check_options(options: Mapping[str, Any]) -> None:
    """Reject option names ``apply_async`` does not know, naming them."""
    unknown = set(options) - CALL_OPTIONS
    if unknown:
        raise TypeError(f"apply_async() got unknown options: {', '.join(sorted(unknown))}")


def eta_from(options: Mapping[str, Any]) -> datetime | None:
    """The ETA of a call from ``eta`` or ``countdown`` (seconds)."""
    eta, countdown = options.get("eta"), options.get("countdown")
    if eta is not None and countdown is not None:
        raise ImproperlyConfigured("Give eta or countdown, not both")
    if countdown is not None:
        return utcnow() + timedelta(seconds=float(countdown))
    return as_datetime(eta)


def build_call(
    name: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    options: Mapping[str, Any],
    task: Task[Any, Any] | None,
) -> TaskCall:
    """A :class:`TaskCall` from ``send_task`` arguments and the task's own defaults."""
    task_id = options.get("task_id") or str(uuid.uuid4())
    parent = options.get("_request") or current_request.get()
    parent_id, root_id = _lineage(options, parent)
    limits = _time_limits(options, task)
    expires = options.get("expires", task.expires if task is not None else None)
    ignore_result = options.get("ignore_result")
    if ignore_result is None and task is not None:
        ignore_result = task.option("ignore_result")
    if parent is not None and options.get("_request") is None:
        record_child(task_id)
    return TaskCall(
        id=task_id,
        task=name,
        args=tuple(args),
        kwargs=dict(kwargs),
        eta=eta_from(options),
        expires=as_datetime(expires),
        retries=int(options.get("retries") or 0),
        group=options.get("group_id"),
        group_index=options.get("group_index"),
        root_id=root_id or task_id,
        parent_id=parent_id,
        timelimit=limits,
        argsrepr=options.get("argsrepr"),
        kwargsrepr=options.get("kwargsrepr"),
        shadow=options.get("shadow") or (task.shadow if task is not None else None),
        ignore_result=bool(ignore_result),
        callbacks=as_signature_dicts(options.get("link")),
        errbacks=as_signature_dicts(options.get("link_error")),
        chain=as_signature_dicts(options.get("chain")),
        chord=_as_dict(options.get("chord")),
        reply_to=options.get("reply_to"),
        priority=options.get("priority"),
        headers=options.get("headers") or {},
        stamps=options.get("stamps") or {},
    )


def _as_dict(value: Any) -> dict[str, Any] | None:
    if isinstance(value, Signature):
        return value.to_dict()
    return dict(value) if isinstance(value, Mapping) else None


def _lineage(options: Mapping[str, Any], parent: Request | None) -> tuple[str | None, str | None]:
    # Retries keep their own lineage; tasks sent from inside a task become its children.
    if options.get("_request") is not None and parent is not None:
        return parent.parent_id, parent.root_id
    parent_id = options.get("parent_id") or (parent.id if parent is not None else None)
    root_id = options.get("root_id") or (parent.root_id if parent is not None else None)
    return parent_id, root_id


def _time_limits(
    options: Mapping[str, Any], task: Task[Any, Any] | None
) -> tuple[float | None, float | None]:
    hard = options.get("time_limit", task.time_limit if task is not None else None)
    soft = options.get("soft_time_limit", task.soft_time_limit if task is not None else None)
    return (hard, soft)


def eager_request(
    task: Task[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any], options: Mapping[str, Any]
) -> Request:
    """The request an eager run sees: like a worker's, with ``is_eager`` set."""
    call = build_call(task.name, args, kwargs, options, task)
    return Request(
        id=call.id,
        task=task.name,
        args=args,
        kwargs=kwargs,
        retries=call.retries,
        is_eager=True,
        eta=call.eta,
        expires=call.expires,
        root_id=call.root_id,
        parent_id=call.parent_id,
        group=call.group,
        group_index=call.group_index,
        correlation_id=call.id,
        called_directly=False,
        timelimit=call.timelimit,
        callbacks=call.callbacks,
        errbacks=call.errbacks,
        chain=call.chain,
        chord=call.chord,
        ignore_result=call.ignore_result,
        shadow=call.shadow,
        headers=dict(call.headers),
        delivery_info={"is_eager": True},
    )
