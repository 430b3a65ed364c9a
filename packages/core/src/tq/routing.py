"""Choosing a task's queue: ``task_routes``, ``task_queues`` and the default queue.

Routers are tried in order; the first that answers wins. A router is a mapping from
task name (exact, glob like ``"feed.tasks.*"``, or a compiled regex) to a route, or a
callable ``(name, args, kwargs, options, task=None) -> route | None``. A route is a
queue name, a :class:`~tq.transport.Queue`, or a dict with ``queue``, ``exchange``,
``routing_key`` and ``priority``. Options given to ``apply_async`` win over routes.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, final

from tq.errors import ImproperlyConfigured
from tq.transport import Queue

RouterFunction = Callable[..., Any]


@final
class Router:
    """Resolves ``(task name, call options)`` to a :class:`Queue` and message options."""

    def __init__(
        self,
        routes: Any,
        queues: Sequence[Queue | str] | None,
        default_queue: Queue,
        create_missing: bool,
    ) -> None:
        self.routers = _prepare(routes)
        self.queues: dict[str, Queue] = {default_queue.name: default_queue}
        for queue in queues or ():
            declared = Queue(queue) if isinstance(queue, str) else queue
            self.queues[declared.name] = declared
        self.default_queue = default_queue
        self.create_missing = create_missing
        self._by_routing_key = {q.routing_key: q for q in self.queues.values()}

    def route(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> tuple[Queue, dict[str, Any]]:
        """The queue for a call, and route options (``priority``) it did not set itself."""
        options = dict(options or {})
        route: dict[str, Any] = {}
        if not any(options.get(k) for k in ("queue", "routing_key", "exchange")):
            route = self._from_routers(name, args, kwargs or {}, options)
        merged = {**route, **{k: v for k, v in options.items() if v is not None}}
        queue = self._queue(merged)
        extra = {"priority": merged["priority"]} if merged.get("priority") is not None else {}
        return queue, extra

    def _from_routers(
        self, name: str, args: Sequence[Any], kwargs: Mapping[str, Any], options: Mapping[str, Any]
    ) -> dict[str, Any]:
        for router in self.routers:
            answer = router(name, args, kwargs, options)
            if answer:
                return _as_route(answer)
        return {}

    def _queue(self, route: Mapping[str, Any]) -> Queue:
        queue = route.get("queue")
        if isinstance(queue, Queue):
            return queue
        if isinstance(queue, str):
            return self.queue(queue)
        routing_key = route.get("routing_key")
        if routing_key:
            found = self._by_routing_key.get(routing_key)
            if found is not None:
                return found
            return Queue(routing_key, exchange=route.get("exchange") or "", routing_key=routing_key)
        return self.default_queue

    def queue(self, name: str) -> Queue:
        """The declared queue ``name``, or a new one when missing queues may be created."""
        found = self.queues.get(name)
        if found is not None:
            return found
        if not self.create_missing:
            raise ImproperlyConfigured(
                f"Queue {name!r} is not declared in task_queues and "
                "task_create_missing_queues is off."
            )
        return Queue(name)


def _prepare(
    routes: Any,
) -> list[Callable[[str, Sequence[Any], Mapping[str, Any], Mapping[str, Any]], Any]]:
    if routes is None:
        return []
    if isinstance(routes, Mapping) or callable(routes):
        routes = [routes]
    prepared: list[Callable[..., Any]] = []
    for router in routes:
        if isinstance(router, Mapping):
            prepared.append(_MapRouter(router))
        elif callable(router):
            prepared.append(_call_router(router))
        else:
            raise ImproperlyConfigured(
                f"task_routes entries must be dicts or callables, not {type(router).__name__}"
            )
    return prepared


def _call_router(function: RouterFunction) -> Callable[..., Any]:
    def call(
        name: str, args: Sequence[Any], kwargs: Mapping[str, Any], options: Mapping[str, Any]
    ) -> Any:
        return function(name, args, kwargs, options)

    return call


@final
class _MapRouter:
    """A dict router: exact names first, then globs and regexes in the dict's order."""

    def __init__(self, table: Mapping[Any, Any]) -> None:
        self.exact: dict[str, Any] = {}
        self.patterns: list[tuple[re.Pattern[str], Any]] = []
        for key, route in table.items():
            if isinstance(key, re.Pattern):
                self.patterns.append((key, route))
            elif isinstance(key, str) and any(c in key for c in "*?["):
                self.patterns.append((re.compile(fnmatch.translate(key)), route))
            else:
                self.exact[str(key)] = route

    def __call__(
        self, name: str, args: Sequence[Any], kwargs: Mapping[str, Any], options: Mapping[str, Any]
    ) -> Any:
        if name in self.exact:
            return self.exact[name]
        for pattern, route in self.patterns:
            if pattern.match(name):
                return route
        return None


def _as_route(answer: Any) -> dict[str, Any]:
    if isinstance(answer, str | Queue):
        return {"queue": answer}
    if isinstance(answer, Mapping):
        return dict(answer)
    raise ImproperlyConfigured(f"a router returned {answer!r}; expected a queue name or a dict")
