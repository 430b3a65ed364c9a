"""Remote control: ``app.control`` sends commands to running workers and gathers replies.

Requests and replies use kombu's pidbox format, so Celery's tools can talk to tq workers
and the reverse. A request is broadcast on the fanout exchange ``tq.pidbox``
(``celery.pidbox`` with ``celery_compat``) with body ``{"method", "arguments",
"destination", "pattern", "matcher", "ticket", "reply_to"}`` and headers ``{"clock",
"expires"}``. Each worker that is addressed answers ``{nodename: result}`` on the
client's own reply queue, ``<oid>.reply.tq.pidbox``: a normal queue the client fetches
from and acknowledges.

Commands are components (``tq_control_commands``); users add theirs with
:meth:`Control.inspect_command` and :meth:`Control.control_command`.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar, final

from tq.components import Component
from tq.hookspecs import hookimpl
from tq.message import Message
from tq.transport import Queue

if TYPE_CHECKING:
    from tq.app import App

F = TypeVar("F", bound=Callable[..., Any])
CommandType = Literal["inspect", "control"]
Replies = list[dict[str, Any]]

DEFAULT_TIMEOUT: Final = 1.0
# A request older than this is ignored by workers that see it late.
_REQUEST_TTL: Final = 30.0


def mailbox_exchange(app: App) -> str:
    """The fanout exchange of remote-control requests (``tq.pidbox``, ``celery.pidbox``)."""
    name = str(app.conf["control_exchange"])
    if app.conf["celery_compat"] and name == "tq":
        name = "celery"
    return f"{name}.pidbox"


def reply_queue(reply_to: dict[str, Any]) -> Queue:
    """The queue a worker answers on, from a request's ``reply_to`` (kombu's naming)."""
    exchange, routing_key = str(reply_to["exchange"]), str(reply_to["routing_key"])
    return Queue(f"{routing_key}.{exchange}", exchange=exchange, routing_key=routing_key)


def encode(body: Any, headers: dict[str, Any]) -> Message:
    """A pidbox message: JSON body, non-persistent."""
    return Message(
        json.dumps(body).encode(),
        "application/json",
        "utf-8",
        headers,
        {"delivery_mode": 1},
    )


@final
class _CommandPlugin:
    """Declares one user command as a component, as a plugin package would."""

    def __init__(self, component: Component) -> None:
        self.component = component

    @hookimpl
    def tq_control_commands(self) -> list[Component]:
        return [self.component]


class Control:
    """``app.control``: broadcast commands to workers and collect their replies.

    Every command takes ``destination`` (node names; all workers when omitted);
    commands that answer also take ``reply`` and ``timeout`` (seconds to collect).
    """

    def __init__(self, app: App) -> None:
        self.app = app
        self.oid = uuid.uuid4().hex
        self._clock = itertools.count(1)

    @property
    def exchange(self) -> str:
        return mailbox_exchange(self.app)

    # -- registering commands ------------------------------------------------------

    def inspect_command(
        self, name: str | None = None, *, args: Sequence[str] = ()
    ) -> Callable[[F], F]:
        """Declare a read-only command answered by workers: ``tq inspect NAME``.

        The function takes the worker's control state and keyword arguments, and
        returns something JSON can encode. ``args`` names the arguments the CLI's
        positional values fill, in order. It must be defined at module level in a
        module the worker imports (the app module, say)."""
        return self._register("inspect", name, args)

    def control_command(
        self, name: str | None = None, *, args: Sequence[str] = ()
    ) -> Callable[[F], F]:
        """Declare a command that changes workers: ``tq control NAME``."""
        return self._register("control", name, args)

    def _register(
        self, kind: CommandType, name: str | None, args: Sequence[str]
    ) -> Callable[[F], F]:
        def register(function: F) -> F:
            component = Component(
                "control",
                name or function.__name__,
                f"{function.__module__}:{function.__qualname__}",
                doc=(function.__doc__ or "").strip().split("\n")[0],
                meta={"type": kind, "args": tuple(args)},
            )
            plugin = _CommandPlugin(component)
            self.app.register_plugin(plugin, f"control-command:{component.name}")
            return function

        return register

    # -- broadcasting --------------------------------------------------------------

    def broadcast(
        self,
        command: str,
        arguments: dict[str, Any] | None = None,
        destination: Sequence[str] | None = None,
        reply: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        limit: int | None = None,
        pattern: str | None = None,
        matcher: str | None = None,
    ) -> Replies:
        """Send ``command`` to the workers; with ``reply``, the ``{node: result}`` answers.

        Replies are collected for ``timeout`` seconds, or until ``limit`` replies (or
        one per ``destination``) arrived.
        """
        destination = list(destination) if destination else None
        ticket = uuid.uuid4().hex if reply else None
        body: dict[str, Any] = {
            "method": command,
            "arguments": dict(arguments or {}),
            "destination": destination,
            "pattern": pattern,
            "matcher": matcher,
        }
        if ticket is not None:
            body["ticket"] = ticket
            body["reply_to"] = {"exchange": f"reply.{self.exchange}", "routing_key": self.oid}
        headers = {"clock": next(self._clock), "expires": time.time() + _REQUEST_TTL}
        self.app.transport.broadcast(self.exchange, encode(body, headers))
        if ticket is None:
            return []
        if limit is None and destination:
            limit = len(destination)
        return self._collect(ticket, timeout, limit)

    def _collect(self, ticket: str, timeout: float, limit: int | None) -> Replies:
        transport = self.app.transport
        queue = reply_queue({"exchange": f"reply.{self.exchange}", "routing_key": self.oid}).name
        replies: Replies = []
        deadline = time.monotonic() + timeout
        while limit is None or len(replies) < limit:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            for delivery in transport.fetch([queue], 100, remaining):
                transport.ack(delivery)
                if delivery.message.headers.get("ticket") == ticket:
                    replies.append(json.loads(delivery.message.body))
        return replies

    # -- commands ------------------------------------------------------------------

    def inspect(
        self,
        destination: Sequence[str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        limit: int | None = None,
    ) -> Inspect:
        """Read-only questions to workers: ``app.control.inspect().active()``."""
        return Inspect(self, destination, timeout, limit)

    def ping(
        self, destination: Sequence[str] | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> Replies:
        """``[{node: {"ok": "pong"}}, ...]`` from every worker that answered in time."""
        return self.broadcast("ping", destination=destination, reply=True, timeout=timeout)

    def revoke(
        self,
        task_id: str | Iterable[str],
        destination: Sequence[str] | None = None,
        terminate: bool = False,
        signal: str = "SIGTERM",
        reply: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Replies:
        """Tell every worker never to run these tasks; ``terminate`` also stops them if
        they run and the pool can (the ``threads`` pool cannot; see docs/monitoring.md)."""
        ids: str | list[str] = task_id if isinstance(task_id, str) else list(task_id)
        arguments = {"task_id": ids, "terminate": terminate, "signal": signal}
        return self.broadcast("revoke", arguments, destination, reply, timeout)

    def rate_limit(self, task_name: str, rate_limit: str | int | None, **options: Any) -> Replies:
        """Set a task's rate limit (``"10/m"``) on the workers."""
        arguments = {"task_name": task_name, "rate_limit": rate_limit}
        return self._send("rate_limit", arguments, **options)

    def time_limit(
        self, task_name: str, soft: float | None = None, hard: float | None = None, **options: Any
    ) -> Replies:
        """Set a task's soft and hard time limits on the workers."""
        arguments = {"task_name": task_name, "soft": soft, "hard": hard}
        return self._send("time_limit", arguments, **options)

    def add_consumer(self, queue: str, **options: Any) -> Replies:
        """Make workers consume from ``queue`` too."""
        return self._send("add_consumer", {"queue": queue}, **options)

    def cancel_consumer(self, queue: str, **options: Any) -> Replies:
        """Make workers stop consuming from ``queue``."""
        return self._send("cancel_consumer", {"queue": queue}, **options)

    def pool_grow(self, n: int = 1, **options: Any) -> Replies:
        return self._send("pool_grow", {"n": n}, **options)

    def pool_shrink(self, n: int = 1, **options: Any) -> Replies:
        return self._send("pool_shrink", {"n": n}, **options)

    def autoscale(self, max: int, min: int, **options: Any) -> Replies:
        return self._send("autoscale", {"max": max, "min": min}, **options)

    def shutdown(self, **options: Any) -> Replies:
        """Warm-shut-down the workers."""
        return self._send("shutdown", {}, **options)

    def enable_events(self, **options: Any) -> Replies:
        """Make workers send task events."""
        return self._send("enable_events", {}, **options)

    def disable_events(self, **options: Any) -> Replies:
        return self._send("disable_events", {}, **options)

    def heartbeat(self, **options: Any) -> Replies:
        """Ask workers to send a heartbeat event now."""
        return self._send("heartbeat", {}, **options)

    def purge(self) -> int:
        """Delete every waiting message of the app's queues; returns how many."""
        names = {self.app.default_queue.name, *self.app.router.queues}
        return sum(self.app.transport.purge(name) for name in sorted(names))

    def _send(
        self,
        command: str,
        arguments: dict[str, Any],
        destination: Sequence[str] | None = None,
        reply: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Replies:
        return self.broadcast(command, arguments, destination, reply, timeout)


@final
class Inspect:
    """Questions to workers; each method returns ``{node: answer}`` or ``None``."""

    def __init__(
        self,
        control: Control,
        destination: Sequence[str] | None,
        timeout: float,
        limit: int | None,
    ) -> None:
        self.control = control
        self.destination = destination
        self.timeout = timeout
        self.limit = limit

    def _request(self, command: str, **arguments: Any) -> dict[str, Any] | None:
        replies = self.control.broadcast(
            command,
            arguments,
            self.destination,
            reply=True,
            timeout=self.timeout,
            limit=self.limit,
        )
        merged: dict[str, Any] = {}
        for reply in replies:
            merged.update(reply)
        return merged or None

    def call(self, command: str, **arguments: Any) -> dict[str, Any] | None:
        """Any inspect command by name, custom ones included."""
        return self._request(command, **arguments)

    def ping(self) -> dict[str, Any] | None:
        return self._request("ping")

    def active(self, safe: bool | None = None) -> dict[str, Any] | None:
        """Tasks running now, with their arguments."""
        return self._request("active")

    def reserved(self) -> dict[str, Any] | None:
        """Tasks fetched and waiting for a free slot."""
        return self._request("reserved")

    def scheduled(self) -> dict[str, Any] | None:
        """Tasks held by workers until their ETA."""
        return self._request("scheduled")

    def registered(self, *taskinfoitems: str) -> dict[str, Any] | None:
        """Names of the tasks each worker knows."""
        return self._request("registered", taskinfoitems=list(taskinfoitems))

    def stats(self) -> dict[str, Any] | None:
        """Broker, clock, pid, pool, prefetch_count, rusage and per-task totals."""
        return self._request("stats")

    def revoked(self) -> dict[str, Any] | None:
        """Ids each worker will not run."""
        return self._request("revoked")

    def active_queues(self) -> dict[str, Any] | None:
        """The queues each worker consumes from."""
        return self._request("active_queues")

    def query_task(self, *ids: str) -> dict[str, Any] | None:
        """What each worker knows about these task ids (active, reserved, scheduled)."""
        return self._request("query_task", ids=list(ids))

    def conf(self, with_defaults: bool = False) -> dict[str, Any] | None:
        """Each worker's settings, secrets censored."""
        return self._request("conf", with_defaults=with_defaults)

    def clock(self) -> dict[str, Any] | None:
        return self._request("clock")

    def report(self) -> dict[str, Any] | None:
        return self._request("report")
