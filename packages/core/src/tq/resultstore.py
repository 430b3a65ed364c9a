"""Result records: Celery's result meta, stored through a result backend plugin.

Keys are ``tq-task-meta-<id>`` and ``tq-taskset-meta-<group id>`` (Celery's
``celery-`` prefix with ``celery_compat``). A record is
``{"status", "result", "traceback", "children", "date_done", "task_id"}`` plus
``group_id``/``parent_id`` when set, and name, args, kwargs, worker, retries and queue
with ``result_extended``. Failures are stored as ``{"exc_type", "exc_message",
"exc_module"}`` and come back as their own class only when that class can be imported
and is an exception; anything else comes back as :class:`~tq.errors.RemoteError`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, final

from tq import states
from tq.backend import ResultBackend
from tq.errors import BackendError, ImproperlyConfigured, RemoteError, TimeoutError, TqError
from tq.protocol import utcnow
from tq.request import Request

if TYPE_CHECKING:
    from tq.serialization import Codecs

Meta = dict[str, Any]


@final
class ResultStore:
    """An app's view of its result backend: records in, records out, waiting for them."""

    def __init__(
        self,
        backend: ResultBackend | None,
        codecs: Codecs,
        conf: Mapping[str, Any],
    ) -> None:
        self.backend = backend
        self.codecs = codecs
        prefix = "celery" if conf["celery_compat"] else "tq"
        self.task_prefix = f"{prefix}-task-meta-"
        self.group_prefix = f"{prefix}-taskset-meta-"
        # Celery's non-native chords count at ``chord-unlock-<gid>``; tq's parts differ.
        self.chord_prefix = "chord-unlock-" if conf["celery_compat"] else "tq-chord-"
        self.serializer = conf["result_serializer"]
        self.compression = conf["result_compression"]
        self.accept = frozenset(conf["result_accept_content"] or conf["accept_content"])
        self.expires = conf["result_expires"]
        self.extended = conf["result_extended"]

    @property
    def enabled(self) -> bool:
        return self.backend is not None

    def _require(self) -> ResultBackend:
        if self.backend is None:
            raise ImproperlyConfigured(
                "No result backend is configured: set result_backend "
                "(for example 'redis://localhost') to read task results."
            )
        return self.backend

    # -- writing -----------------------------------------------------------------

    def store(
        self,
        task_id: str,
        state: str,
        result: Any = None,
        traceback: str | None = None,
        request: Request | None = None,
        children: Sequence[Any] = (),
    ) -> None:
        """Write the record for ``task_id``; a stored SUCCESS is never overwritten.

        ``children`` are the ``as_tuple()`` forms of the tasks it started.
        """
        backend = self.backend
        if backend is None:
            return
        if state != states.SUCCESS and self._succeeded(task_id):
            return  # a redelivered duplicate must not undo a success
        meta = self.build_meta(task_id, state, result, traceback, request)
        meta["children"] = list(children)
        try:
            backend.set(self.task_prefix + task_id, self._encode(meta), self.expires)
        except TqError:
            raise
        except Exception as exc:
            raise BackendError(f"cannot store the result of task {task_id}: {exc}") from exc

    def build_meta(
        self,
        task_id: str,
        state: str,
        result: Any,
        traceback: str | None,
        request: Request | None,
    ) -> Meta:
        if isinstance(result, BaseException):
            result = exception_to_meta(result)
        meta: Meta = {
            "status": state,
            "result": result,
            "traceback": traceback,
            "children": [],
            "date_done": utcnow().isoformat() if state in states.READY_STATES else None,
            "task_id": task_id,
        }
        if request is not None:
            if request.group:
                meta["group_id"] = request.group
            if request.parent_id:
                meta["parent_id"] = request.parent_id
            if self.extended:
                meta.update(
                    name=request.task,
                    args=list(request.args),
                    kwargs=request.kwargs,
                    worker=request.hostname,
                    retries=request.retries,
                    queue=request.delivery_info.get("routing_key"),
                )
        return meta

    def _succeeded(self, task_id: str) -> bool:
        current = self._read(self.task_prefix + task_id)
        return current is not None and current.get("status") == states.SUCCESS

    def forget(self, task_id: str) -> None:
        self._require().delete(self.task_prefix + task_id)

    # -- reading -----------------------------------------------------------------

    def get_meta(self, task_id: str) -> Meta:
        """The record for ``task_id``; an unknown id reads as PENDING."""
        meta = self._read(self.task_prefix + task_id)
        return meta if meta is not None else pending_meta(task_id)

    def get_many(self, task_ids: Sequence[str]) -> list[Meta]:
        raws = self._require().mget([self.task_prefix + i for i in task_ids])
        return [
            self._decode(raw) if raw is not None else pending_meta(task_id)
            for task_id, raw in zip(task_ids, raws, strict=True)
        ]

    def wait(
        self,
        task_id: str,
        timeout: float | None = None,
        interval: float = 0.5,
        on_interval: Callable[[], None] | None = None,
    ) -> Meta:
        """Block until ``task_id`` is ready; :class:`~tq.errors.TimeoutError` after ``timeout``."""
        backend = self._require()
        key = self.task_prefix + task_id
        deadline = None if timeout is None else time.monotonic() + timeout
        # A native wait returns as soon as the key is written, so it may wait long;
        # polling starts with short waits so short tasks return quickly, then backs off
        # to ``interval``.
        pause = interval if backend.capabilities.native_wait else 0.001
        # Read as the start of the wait: a native backend may subscribe alongside.
        meta = self._read(key, watch=True) or pending_meta(task_id)
        while meta["status"] not in states.READY_STATES:
            if on_interval is not None:
                on_interval()
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"The operation timed out waiting for task {task_id}")
            wait = pause if remaining is None else min(pause, remaining)
            # A backend that hands back the value written (Redis publishes it) spares
            # a read after every wake-up.
            raw = backend.wait_for_change(key, wait)
            meta = self._decode(raw) if raw is not None else self.get_meta(task_id)
            pause = min(pause * 2, interval)
        return meta

    # -- groups ------------------------------------------------------------------

    def save_group(self, group_id: str, result_tuple: Any) -> None:
        self._require().set(
            self.group_prefix + group_id, self._encode({"result": result_tuple}), self.expires
        )

    def restore_group(self, group_id: str) -> Any | None:
        meta = self._read(self.group_prefix + group_id)
        return None if meta is None else meta.get("result")

    def delete_group(self, group_id: str) -> None:
        self._require().delete(self.group_prefix + group_id)

    def chord_key(self, group_id: str) -> str:
        """Where the parts of the chord whose header is group ``group_id`` are counted."""
        return self.chord_prefix + group_id

    # -- encoding ----------------------------------------------------------------

    def encode(self, meta: Meta) -> bytes:
        """A record as the bytes stored in the backend."""
        return self._encode(meta)

    def decode(self, raw: bytes) -> Meta:
        """Stored bytes back to a record, accepting only allowed content."""
        return self._decode(raw)

    def _read(self, key: str, *, watch: bool = False) -> Meta | None:
        """The record at ``key``; ``watch`` reads it as the start of a wait for it."""
        backend = self._require()
        try:
            raw = backend.get_and_watch(key) if watch else backend.get(key)
        except TqError:
            raise
        except Exception as exc:
            raise BackendError(f"cannot read {key}: {exc}") from exc
        return None if raw is None else self._decode(raw)

    def _encode(self, meta: Meta) -> bytes:
        body, _content_type, _encoding = self.codecs.encode(meta, self.serializer)
        if self.compression:
            body, _ = self.codecs.compress(body, self.compression)
        return body

    def _decode(self, raw: bytes) -> Meta:
        if self.compression:
            raw = self.codecs.decompress(raw, self.compression)
        content_type = self.codecs.serializer(self.serializer).content_type
        meta = self.codecs.decode(raw, content_type, self.accept | {self.serializer})
        if not isinstance(meta, dict):
            raise BackendError(f"stored result is not a record: {meta!r}")
        return meta


def pending_meta(task_id: str) -> Meta:
    return {
        "status": states.PENDING,
        "result": None,
        "traceback": None,
        "children": [],
        "date_done": None,
        "task_id": task_id,
    }


def exception_to_meta(exc: BaseException) -> dict[str, Any]:
    """Celery's JSON form of an exception."""
    cls = type(exc)
    return {
        "exc_type": cls.__qualname__,
        "exc_message": [_jsonable(arg) for arg in exc.args],
        "exc_module": cls.__module__,
    }


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return repr(value)


def exception_from_meta(result: Any) -> BaseException:
    """Rebuild a stored exception, safely.

    The class is looked up by module and qualified name and used only if it is an
    exception class; nothing else named by stored data is ever called.
    """
    if isinstance(result, BaseException):
        return result
    if not isinstance(result, Mapping) or "exc_type" not in result:
        return RemoteError("Exception", repr(result))
    type_name = str(result.get("exc_type"))
    module_name = str(result.get("exc_module") or "builtins")
    message = result.get("exc_message") or []
    args = tuple(message) if isinstance(message, list | tuple) else (message,)
    cls = _find_exception_class(module_name, type_name)
    if cls is None:
        return RemoteError(f"{module_name}.{type_name}", ", ".join(map(str, args)))
    try:
        return cls(*args)
    except Exception:
        return RemoteError(f"{module_name}.{type_name}", ", ".join(map(str, args)))


def _find_exception_class(module_name: str, type_name: str) -> type[BaseException] | None:
    # Only modules already imported are searched: importing a module named by stored
    # data would run its code.
    module = sys.modules.get(module_name)
    if module is None:
        return None
    target: Any = module
    for part in type_name.split("."):
        target = getattr(target, part, None)
        if target is None:
            return None
    if isinstance(target, type) and issubclass(target, BaseException):
        return target
    return None
