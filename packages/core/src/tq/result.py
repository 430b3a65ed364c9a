"""Handles on task results: :class:`AsyncResult`, :class:`EagerResult`, :class:`GroupResult`."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from tq import states
from tq.errors import TaskRevokedError, TimeoutError
from tq.protocol import as_datetime
from tq.resultstore import Meta, exception_from_meta

if TYPE_CHECKING:
    from tq.app import App

R = TypeVar("R")


class AsyncResult(Generic[R]):
    """The result of a task that was sent, read from the app's result backend."""

    def __init__(
        self,
        id: str,
        *,
        app: App,
        task_name: str | None = None,
        parent: AsyncResult[Any] | GroupResult | None = None,
    ) -> None:
        self.id = id
        self.app = app
        self.task_name = task_name
        self.parent = parent
        self._cache: Meta | None = None

    def __repr__(self) -> str:
        return f"<AsyncResult: {self.id}>"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AsyncResult):
            return self.id == other.id
        return other == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def task_id(self) -> str:
        return self.id

    def _meta(self) -> Meta:
        if self._cache is not None:
            return self._cache
        meta = self.app.results.get_meta(self.id)
        self._keep(meta)
        return meta

    def _keep(self, meta: Meta) -> None:
        """Remember ``meta`` read for this task if it is final: it cannot change."""
        if meta["status"] in states.READY_STATES:
            self._cache = meta

    def get(self, timeout: float | None = None, propagate: bool = True, interval: float = 0.5) -> R:
        """Wait for the task and return its value.

        Raises the task's exception when it failed (and ``propagate``), and
        :class:`~tq.errors.TimeoutError` when it is not ready within ``timeout`` seconds.
        """
        if self._cache is None and propagate:
            self.raise_parent_failure()
        on_interval = self.raise_parent_failure if propagate and self.parent is not None else None
        meta = self._cache or self.app.results.wait(
            self.id, timeout=timeout, interval=interval, on_interval=on_interval
        )
        self._cache = meta
        value: R = self._value(meta, propagate)
        return value

    wait = get

    def raise_parent_failure(self) -> None:
        """Raise the exception of a failed task earlier in this result's chain, if any.

        A chain stops at its first failure, so its last result would never be ready;
        waiting on it raises the failure instead, as Celery does.
        """
        parent = self.parent
        while isinstance(parent, AsyncResult):
            if parent.failed():
                parent.get(propagate=True)
            parent = parent.parent

    def _value(self, meta: Meta, propagate: bool) -> Any:
        status = meta["status"]
        if status == states.FAILURE:
            exc = exception_from_meta(meta["result"])
            if propagate:
                raise exc
            return exc
        if status == states.REVOKED:
            exc = TaskRevokedError(f"Task {self.id} was revoked")
            if propagate:
                raise exc
            return exc
        return meta["result"]

    @property
    def state(self) -> str:
        """PENDING, RECEIVED, STARTED, SUCCESS, FAILURE, RETRY, REVOKED or a custom state."""
        return str(self._meta()["status"])

    status = state

    @property
    def result(self) -> Any:
        """The value, the exception, or a custom state's meta; ``None`` while pending."""
        meta = self._meta()
        if meta["status"] in states.EXCEPTION_STATES and meta["result"] is not None:
            return exception_from_meta(meta["result"])
        return meta["result"]

    info = result

    @property
    def traceback(self) -> str | None:
        return self._meta().get("traceback")

    @property
    def date_done(self) -> datetime | None:
        return as_datetime(self._meta().get("date_done"))

    @property
    def children(self) -> list[AsyncResult[Any] | GroupResult]:
        """Results of the tasks this task sent: callbacks, the next chain step, subtasks."""
        return [
            result_from_tuple(child, app=self.app) for child in self._meta().get("children") or []
        ]

    def collect(
        self, intermediate: bool = False, timeout: float | None = None
    ) -> Iterator[tuple[AsyncResult[Any] | GroupResult, Any]]:
        """``(result, value)`` for this task and every task it led to, depth first.

        Waits for each in turn; ``intermediate`` is accepted for Celery's signature,
        every result is yielded either way.
        """
        yield self, self.get(timeout=timeout)
        for child in self.children:
            if isinstance(child, AsyncResult):
                yield from child.collect(intermediate, timeout)
            else:
                yield child, child.get(timeout=timeout)

    def ready(self) -> bool:
        return self.state in states.READY_STATES

    def successful(self) -> bool:
        return self.state == states.SUCCESS

    def failed(self) -> bool:
        return self.state == states.FAILURE

    def revoke(
        self,
        terminate: bool = False,
        signal: str = "SIGTERM",
        wait: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Tell every worker never to run this task (``app.control.revoke``); with
        ``wait``, collect the workers' replies for ``timeout`` seconds (1 by default)."""
        self.app.control.revoke(
            self.id, terminate=terminate, signal=signal, reply=wait, timeout=timeout or 1.0
        )

    def forget(self) -> None:
        """Remove the stored result."""
        self._cache = None
        self.app.results.forget(self.id)

    def as_tuple(self) -> tuple[Any, Any]:
        parent = self.parent.as_tuple() if self.parent is not None else None
        return ((self.id, parent), None)


class EagerResult(AsyncResult[R]):
    """The result of a task run in this process by ``apply`` or ``task_always_eager``."""

    def __init__(
        self,
        id: str,
        retval: Any,
        state: str,
        traceback: str | None = None,
        *,
        app: App,
        task_name: str | None = None,
    ) -> None:
        super().__init__(id, app=app, task_name=task_name)
        self._retval = retval
        self._state = state
        self._traceback = traceback

    def __repr__(self) -> str:
        return f"<EagerResult: {self.id}>"

    def _meta(self) -> Meta:
        return {
            "status": self._state,
            "result": self._retval,
            "traceback": self._traceback,
            "children": [],
            "date_done": None,
            "task_id": self.id,
        }

    def get(self, timeout: float | None = None, propagate: bool = True, interval: float = 0.5) -> R:
        if self._state == states.FAILURE or self._state == states.REVOKED:
            if propagate:
                raise (
                    self._retval
                    if isinstance(self._retval, BaseException)
                    else exception_from_meta(self._retval)
                )
            return self._retval  # type: ignore[no-any-return]
        return self._retval  # type: ignore[no-any-return]

    wait = get

    @property
    def result(self) -> Any:
        return self._retval

    info = result

    def forget(self) -> None:
        pass


class GroupResult:
    """The results of a group of tasks, in the order the tasks were given."""

    def __init__(
        self,
        id: str | None,
        results: Sequence[AsyncResult[Any]],
        *,
        app: App,
        parent: AsyncResult[Any] | GroupResult | None = None,
    ) -> None:
        self.id = id
        self.results = list(results)
        self.app = app
        self.parent = parent

    def __iter__(self) -> Iterator[AsyncResult[Any]]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __repr__(self) -> str:
        return f"<GroupResult: {self.id} [{', '.join(r.id for r in self.results)}]>"

    def get(
        self, timeout: float | None = None, propagate: bool = True, interval: float = 0.5
    ) -> list[Any]:
        """Every task's value, in order; re-raises the first failure when ``propagate``."""
        return self.join(timeout=timeout, propagate=propagate, interval=interval)

    def join(
        self, timeout: float | None = None, propagate: bool = True, interval: float = 0.5
    ) -> list[Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        self._read_finished()
        values = []
        for result in self.results:
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            if remaining == 0.0 and not result.ready():
                raise TimeoutError(f"The operation timed out waiting for group {self.id}")
            values.append(result.get(timeout=remaining, propagate=propagate, interval=interval))
        return values

    def completed_count(self) -> int:
        """How many tasks succeeded so far."""
        return sum(1 for state in self._states() if state == states.SUCCESS)

    def revoke(self, terminate: bool = False, signal: str = "SIGTERM") -> None:
        """Revoke every task: ``REVOKED`` is stored for each one not finished yet, and
        workers are told through ``app.control.revoke`` when the app has remote control.

        Storing the state marks the results; only remote control stops a worker from
        running a task it already holds.
        """
        pending = [r for r in self.results if not r.ready()]
        for result in pending:
            self.app.results.store(result.id, states.REVOKED, None)
        control = getattr(self.app, "control", None)
        if control is not None and pending:
            control.revoke([r.id for r in pending], terminate=terminate, signal=signal)

    def _read_finished(self) -> None:
        """Read every member not known to be finished in one go, and keep the finished.

        Their ``get()`` then returns without a read, or a subscription, of its own.
        """
        unknown = [r for r in self.results if type(r) is AsyncResult and r._cache is None]
        if not unknown:
            return
        metas = self.app.results.get_many([r.id for r in unknown])
        for result, meta in zip(unknown, metas, strict=True):
            result._keep(meta)

    def _states(self) -> list[str]:
        if any(type(r) is not AsyncResult for r in self.results):
            return [r.state for r in self.results]  # eager results are not in the backend
        # One read for the whole group (one round trip on backends with a native mget).
        metas = self.app.results.get_many([r.id for r in self.results]) if self.results else []
        return [str(meta["status"]) for meta in metas]

    def ready(self) -> bool:
        """Whether every task has finished."""
        return all(state in states.READY_STATES for state in self._states())

    def successful(self) -> bool:
        """Whether every task succeeded."""
        return all(state == states.SUCCESS for state in self._states())

    def failed(self) -> bool:
        """Whether any task failed."""
        return any(state == states.FAILURE for state in self._states())

    def forget(self) -> None:
        for result in self.results:
            result.forget()
        if self.id is not None:
            self.app.results.delete_group(self.id)

    def as_tuple(self) -> tuple[Any, Any]:
        return ((self.id, None), [result.as_tuple() for result in self.results])

    def save(self) -> None:
        """Store the group so :meth:`App.GroupResult.restore`-style look-ups find it."""
        if self.id is None:
            raise ValueError("a group result needs an id to be saved")
        self.app.results.save_group(self.id, self.as_tuple())

    @classmethod
    def restore(cls, group_id: str, *, app: App) -> GroupResult | None:
        """The group saved under ``group_id``, or ``None``."""
        stored = app.results.restore_group(group_id)
        if stored is None:
            return None
        return result_from_tuple(stored, app=app)  # type: ignore[return-value]


class GroupResultFactory:
    """``app.GroupResult``: build a group result, or ``app.GroupResult.restore(id)``."""

    def __init__(self, app: App) -> None:
        self.app = app

    def __call__(self, id: str | None, results: Sequence[AsyncResult[Any]] = ()) -> GroupResult:
        return GroupResult(id, results, app=self.app)

    def restore(self, group_id: str) -> GroupResult | None:
        """The group saved with :meth:`GroupResult.save`, or ``None``."""
        return GroupResult.restore(group_id, app=self.app)


def result_from_tuple(value: Any, *, app: App) -> AsyncResult[Any] | GroupResult:
    """Rebuild a result from its ``as_tuple()`` form."""
    (id_, parent), children = value
    if children is not None:
        return GroupResult(id_, [result_from_tuple(c, app=app) for c in children], app=app)  # type: ignore[misc]
    parent_result = result_from_tuple(parent, app=app) if parent else None
    return AsyncResult(id_, app=app, parent=parent_result)
