"""Running a task the way a worker does: the one place task outcomes are decided.

:func:`execute` runs a task body for a :class:`~tq.request.Request` and turns what
happened into an :class:`Outcome`: it stores states, calls the task's handlers, the
behaviour hooks and ``link`` callbacks, and applies ``autoretry_for``. The worker uses it
for messages; :func:`apply_eagerly` uses it for ``task.apply()`` and eager mode.
"""

from __future__ import annotations

import inspect
import logging
import os
import socket
import time
import traceback as tb
import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, final

from tq import chords, states
from tq.canvas import Signature
from tq.errors import BackendError, Ignore, Reject, Retry, TqError
from tq.request import Request

if TYPE_CHECKING:
    from tq.app import App
    from tq.result import EagerResult
    from tq.task import Task

logger = logging.getLogger("tq.task")

current_request: ContextVar[Request | None] = ContextVar("tq_current_request", default=None)
"""The request of the task running in this thread or context, for parent/root ids."""

_children: ContextVar[list[str] | None] = ContextVar("tq_children", default=None)
"""Ids of the tasks sent by the task running in this context: its result's children."""

_RETRY_LIMIT_EAGER: Final = 1000


def record_child(task_id: str) -> None:
    """Note that the running task sent ``task_id`` (called when a task is sent)."""
    children = _children.get()
    if children is not None:
        children.append(task_id)


@final
@dataclass(slots=True)
class Outcome:
    """What became of one execution.

    ``state`` is SUCCESS, FAILURE, RETRY, IGNORED, REJECTED or a custom state; ``value``
    is the return value or the exception; ``requeue`` is set for ``Reject(requeue=True)``.
    """

    state: str
    value: Any = None
    traceback: str | None = None
    runtime: float = 0.0
    requeue: bool = False

    @property
    def failed(self) -> bool:
        return self.state == states.FAILURE


def execute(task: Task[Any, Any], request: Request) -> Outcome:
    """Run ``task`` for ``request`` and record the outcome.

    Raises :class:`~tq.errors.BackendError` only when the outcome could not be stored,
    so the caller can hand the message back instead of acknowledging a lost result.
    """
    hooks = task.app.plugins.hook
    active = task.app.active_hooks
    store_results = _stores_results(task, request)
    task.push_request(request)
    token = current_request.set(request)
    children_token = _children.set([])
    started = time.monotonic()
    try:
        if "tq_task_prerun" in active:
            hooks.tq_task_prerun(task=task, request=request)
        if store_results and task.option("track_started"):
            task.app.results.store(
                request.id or "",
                states.STARTED,
                {"pid": os.getpid(), "hostname": request.hostname or socket.gethostname()},
                request=request,
            )
        outcome = _run(task, request, store_results)
        outcome.runtime = time.monotonic() - started
        if "tq_task_postrun" in active:
            hooks.tq_task_postrun(
                task=task, request=request, state=outcome.state, retval=outcome.value
            )
        return outcome
    finally:
        _children.reset(children_token)
        current_request.reset(token)
        task.pop_request()


def _run(task: Task[Any, Any], request: Request, store_results: bool) -> Outcome:
    try:
        retval = _call_body(task, request)
    except Retry as retry:
        return _on_retry(task, request, retry, store_results)
    except Ignore:
        return Outcome(states.IGNORED)
    except Reject as reject:
        return Outcome(states.REJECTED, reject, requeue=reject.requeue)
    except BackendError:
        raise
    except Exception as exc:
        if _should_autoretry(task, exc):
            return _autoretry(task, request, exc, store_results)
        return _on_failure(task, request, exc, store_results)
    return _on_success(task, request, retval, store_results)


def _call_body(task: Task[Any, Any], request: Request) -> Any:
    if "tq_task_execute" in task.app.active_hooks:
        return task.app.plugins.hook.tq_task_execute(
            task=task, request=request, run=lambda: task.run(*request.args, **request.kwargs)
        )
    return task.run(*request.args, **request.kwargs)


def _on_success(task: Task[Any, Any], request: Request, retval: Any, store: bool) -> Outcome:
    followups = _followups(task, request)
    if store:
        children = [*(_children.get() or ()), *(sig.id for sig, _ in followups)]
        task.app.results.store(
            request.id or "",
            states.SUCCESS,
            retval,
            request=request,
            children=[[[child, None], None] for child in children],
        )
    task.on_success(retval, request.id or "", request.args, request.kwargs)
    if "tq_task_success" in task.app.active_hooks:
        task.app.plugins.hook.tq_task_success(task=task, request=request, retval=retval)
    for signature, options in followups:
        _dispatch(signature, (retval,), options, request.is_eager)
    target = chords.target_of(request, failed=False)
    if target is not None:
        chords.record(task.app, target, request.id or "", states.SUCCESS, retval)
    task.after_return(states.SUCCESS, retval, request.id or "", request.args, request.kwargs, None)
    return Outcome(states.SUCCESS, retval)


def _on_failure(task: Task[Any, Any], request: Request, exc: Exception, store: bool) -> Outcome:
    einfo = "".join(tb.format_exception(type(exc), exc, exc.__traceback__))
    expected = isinstance(exc, task.throws) if task.throws else False
    if expected:
        logger.info("Task %s[%s] raised expected: %r", request.name, request.id, exc)
    if store or task.option("store_errors_even_if_ignored"):
        task.app.results.store(request.id or "", states.FAILURE, exc, einfo, request=request)
    task.on_failure(exc, request.id or "", request.args, request.kwargs, einfo)
    if "tq_task_failure" in task.app.active_hooks:
        task.app.plugins.hook.tq_task_failure(task=task, request=request, exc=exc, traceback=einfo)
    send_errbacks(task.app, request.errbacks, request, exc, einfo)
    target = chords.target_of(request, failed=True)
    if target is not None:
        chords.record(task.app, target, request.id or "", states.FAILURE, exc)
    task.after_return(states.FAILURE, exc, request.id or "", request.args, request.kwargs, einfo)
    return Outcome(states.FAILURE, exc, einfo)


def _on_retry(task: Task[Any, Any], request: Request, retry: Retry, store: bool) -> Outcome:
    reason = retry.exc if retry.exc is not None else retry
    einfo = "".join(tb.format_exception(type(reason), reason, reason.__traceback__))
    if store:
        task.app.results.store(request.id or "", states.RETRY, reason, einfo, request=request)
    if retry.send is not None:
        try:
            retry.send()
        except TqError as exc:  # the retry could not be sent: the run failed after all
            return _on_failure(task, request, exc, store)
    task.on_retry(reason, request.id or "", request.args, request.kwargs, einfo)
    if "tq_task_retry" in task.app.active_hooks:
        task.app.plugins.hook.tq_task_retry(task=task, request=request, reason=reason)
    task.after_return(states.RETRY, retry, request.id or "", request.args, request.kwargs, einfo)
    return Outcome(states.RETRY, retry, einfo)


def _should_autoretry(task: Task[Any, Any], exc: Exception) -> bool:
    return (
        bool(task.autoretry_for)
        and isinstance(exc, task.autoretry_for)
        and not (task.dont_autoretry_for and isinstance(exc, task.dont_autoretry_for))
    )


def _autoretry(task: Task[Any, Any], request: Request, exc: Exception, store: bool) -> Outcome:
    options = dict(task.retry_kwargs)
    if task.retry_backoff and "countdown" not in options:
        options["countdown"] = task.backoff(request.retries)
    try:
        task.retry(exc=exc, **options)
    except Retry as retry:
        return _on_retry(task, request, retry, store)
    except Exception as final:  # retries used up: the task's own exception comes back
        return _on_failure(task, request, final, store)


def _stores_results(task: Task[Any, Any], request: Request) -> bool:
    if request.is_eager and not task.app.conf["task_store_eager_result"]:
        return False
    if not task.app.results.enabled:
        return False
    return not (request.ignore_result or task.option("ignore_result"))


def _followups(task: Task[Any, Any], request: Request) -> list[tuple[Signature, dict[str, Any]]]:
    """What a success sends on: ``link`` callbacks, then the chain's next step.

    Their ids are fixed first so the stored result can list them as children.
    """
    lineage: dict[str, Any] = {"parent_id": request.id, "root_id": request.root_id or request.id}
    followups = []
    for data in request.callbacks or ():
        signature = Signature.from_dict(data, app=task.app).clone()
        signature.freeze()
        followups.append((signature, dict(lineage)))
    if request.chain:
        stack = list(request.chain)
        step = Signature.from_dict(stack.pop(), app=task.app).clone()
        step.freeze()
        followups.append((step, {**lineage, "chain": stack} if stack else dict(lineage)))
    return followups


def _dispatch(
    signature: Signature, args: tuple[Any, ...], options: dict[str, Any], eager: bool
) -> Any:
    """Send ``signature`` with ``args`` prepended; run it here when the sender ran eagerly."""
    if eager and signature.app is not None and signature.task in signature.app.tasks:
        return signature.apply(args, **options)
    return signature.apply_async(args, **options)


def send_errbacks(
    app: App, errbacks: Any, request: Request, exc: BaseException, einfo: str
) -> None:
    """Run or send a failed task's error callbacks.

    As in Celery, an error callback whose task function takes ``(request, exc,
    traceback)`` is called here with them; any other is sent with the failed task's id.
    """
    for data in errbacks or ():
        signature = Signature.from_dict(data, app=app)
        callee = app.tasks.get(signature.task)
        try:
            if callee is not None and _takes_failure_details(callee, len(signature.args)):
                signature(request, exc, einfo)
            else:
                lineage = {"parent_id": request.id, "root_id": request.root_id or request.id}
                _dispatch(signature, (request.id,), lineage, request.is_eager)
        except Exception:
            logger.exception(
                "Task %s[%s]: error callback %r failed", request.name, request.id, signature
            )


def _takes_failure_details(task: Task[Any, Any], partial: int) -> bool:
    function = task.__wrapped__ if task.__wrapped__ is not None else task.run
    leading = 1 if task.bind and task.__wrapped__ is not None else 0
    try:
        inspect.signature(function).bind(*([None] * (leading + 3 + partial)))
    except (TypeError, ValueError):
        return False
    return True


def apply_eagerly(
    task: Task[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any]
) -> EagerResult[Any]:
    """Run ``task`` in this process like a worker would (``task.apply``).

    Retries run again at once, in place; ``task_eager_propagates`` (or ``throw=True``)
    re-raises a failure instead of returning it in the result.
    """
    from tq.calling import eager_request
    from tq.result import EagerResult

    request = eager_request(task, args, kwargs, options)
    for _attempt in range(_RETRY_LIMIT_EAGER):
        outcome = execute(task, request)
        if outcome.state != states.RETRY or not isinstance(outcome.value, Retry):
            break
        override = outcome.value.args_override
        if override is not None:
            new_args, new_kwargs = override
            request.args = request.args if new_args is None else tuple(new_args)
            request.kwargs = request.kwargs if new_kwargs is None else dict(new_kwargs)
        request.retries += 1
    throw = options.get("throw", task.app.conf["task_eager_propagates"])
    if outcome.failed and throw:
        raise outcome.value
    value = outcome.value if not isinstance(outcome.value, Retry) else outcome.value.exc
    return EagerResult(
        request.id or str(uuid.uuid4()),
        value,
        outcome.state,
        outcome.traceback,
        app=task.app,
        task_name=task.name,
    )
