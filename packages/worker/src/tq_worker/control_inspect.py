"""Built-in inspect commands: read-only answers about a worker (``tq inspect NAME``).

Each takes the :class:`~tq_worker.control.ControlState` and keyword arguments and
returns what JSON can encode; the shapes follow Celery's replies so its tools read them.
"""

from __future__ import annotations

import os
import resource
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tq.protocol import utcnow
from tq.settings import censor, censor_url
from tq_worker.control import ok

if TYPE_CHECKING:
    from tq.request import Request
    from tq.transport import Delivery
    from tq_worker.control import ControlState


def ping(state: ControlState, **kwargs: Any) -> dict[str, Any]:
    """``{"ok": "pong"}``."""
    return ok("pong")


def clock(state: ControlState, **kwargs: Any) -> dict[str, Any]:
    return {"clock": next(state.clock)}


def hello(state: ControlState, from_node: str = "", **kwargs: Any) -> dict[str, Any]:
    """A joining worker asks for what it must not run (revoked ids)."""
    return {"revoked": list(state.consumer.revoked.items()), "clock": next(state.clock)}


def report(state: ControlState, **kwargs: Any) -> dict[str, Any]:
    info = state.worker.info()
    return ok(f"{info['hostname']} pid {info['pid']}: {len(state.consumer.active)} running")


def _request_info(request: Request, acknowledged: bool) -> dict[str, Any]:
    return {
        **request.info(),
        "type": request.task,
        "time_start": None,
        "acknowledged": acknowledged,
        "worker_pid": os.getpid(),
    }


def _delivery_info(delivery: Delivery) -> dict[str, Any]:
    headers = delivery.message.headers
    return {
        "id": headers.get("id"),
        "name": headers.get("shadow") or headers.get("task"),
        "type": headers.get("task"),
        "args": headers.get("argsrepr"),
        "kwargs": headers.get("kwargsrepr"),
        "hostname": None,
        "time_start": None,
        "acknowledged": False,
        "delivery_info": {"queue": delivery.queue, "redelivered": delivery.redelivered},
        "worker_pid": None,
        "eta": headers.get("eta"),
    }


def active(state: ControlState, safe: bool | None = None, **kwargs: Any) -> list[dict[str, Any]]:
    """Tasks running now."""
    hostname = state.hostname
    infos = [_request_info(r, True) for r in list(state.consumer.active.values())]
    return [{**info, "hostname": hostname} for info in infos]


def _waiting(state: ControlState) -> list[Delivery]:
    consumer = state.consumer
    return [d for tag, d in list(consumer.reserved.items()) if tag not in consumer.active]


def reserved(state: ControlState, **kwargs: Any) -> list[dict[str, Any]]:
    """Tasks fetched, waiting for a free slot (not those held for an ETA)."""
    return [_delivery_info(d) for d in _waiting(state) if not _is_future(d)]


def scheduled(state: ControlState, **kwargs: Any) -> list[dict[str, Any]]:
    """Tasks this worker holds until their ETA (brokers with delayed delivery keep them)."""
    return [
        {"eta": d.message.headers.get("eta"), "priority": d.message.priority, "request": info}
        for d in _waiting(state)
        if _is_future(d)
        for info in [_delivery_info(d)]
    ]


def _is_future(delivery: Delivery) -> bool:
    eta = delivery.message.headers.get("eta")
    return bool(eta) and str(eta) > utcnow().isoformat()


def registered(
    state: ControlState, taskinfoitems: list[str] | None = None, **kwargs: Any
) -> list[str]:
    """Names of the tasks this worker can run."""
    return sorted(state.app.tasks)


def revoked(state: ControlState, **kwargs: Any) -> list[str]:
    return list(state.consumer.revoked.items())


def active_queues(state: ControlState, **kwargs: Any) -> list[dict[str, Any]]:
    """The queues consumed from, in kombu's ``Queue.as_dict`` shape."""
    answer = []
    for name in list(state.consumer.queues):
        queue = state.app.router.queues.get(name) or state.app.router.queue(name)
        answer.append(
            {
                "name": queue.name,
                "exchange": {"name": queue.exchange or queue.name, "type": queue.exchange_type},
                "routing_key": queue.routing_key,
                "durable": queue.durable,
                "exclusive": False,
                "auto_delete": False,
                "no_ack": False,
                "max_priority": queue.max_priority,
            }
        )
    return answer


def query_task(state: ControlState, ids: list[str] | None = None, **kwargs: Any) -> dict[str, Any]:
    """``{id: [state, info]}`` for the given ids this worker holds."""
    wanted = set(ids or ())
    found: dict[str, Any] = {}
    for info in active(state):
        if info["id"] in wanted:
            found[info["id"]] = ["active", info]
    for info in reserved(state):
        if info["id"] in wanted:
            found[info["id"]] = ["reserved", info]
    for item in scheduled(state):
        if item["request"]["id"] in wanted:
            found[item["request"]["id"]] = ["scheduled", item["request"]]
    return found


def conf(state: ControlState, with_defaults: bool = False, **kwargs: Any) -> dict[str, Any]:
    """The worker's settings, secrets censored."""
    settings = state.app.conf
    names = settings.changes() if not with_defaults else dict(settings.items())
    return {
        name: censor(name, value, secret=settings.spec(name).secret)
        for name, value in names.items()
    }


def stats(state: ControlState, **kwargs: Any) -> dict[str, Any]:
    """Celery's ``stats`` keys: broker, clock, pid, pool, prefetch_count, rusage, total."""
    worker = state.worker
    return {
        **worker.info(),
        "broker": _broker(state),
        "clock": next(state.clock),
        "uptime": int(time.time() - state.started),
        "rusage": _rusage(),
    }


def _broker(state: ControlState) -> dict[str, Any]:
    parts = urlsplit(state.app.broker_url)
    return {
        "hostname": parts.hostname,
        "port": parts.port,
        "userid": parts.username,
        "virtual_host": parts.path.lstrip("/") or "/",
        "transport": parts.scheme,
        "uri": censor_url(state.app.broker_url),
        "ssl": parts.scheme in ("rediss", "amqps"),
        "transport_options": censor("options", dict(state.app.conf["broker_transport_options"])),
    }


def _rusage() -> dict[str, Any]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "utime": usage.ru_utime,
        "stime": usage.ru_stime,
        "maxrss": usage.ru_maxrss,
        "minflt": usage.ru_minflt,
        "majflt": usage.ru_majflt,
        "nvcsw": usage.ru_nvcsw,
        "nivcsw": usage.ru_nivcsw,
    }
