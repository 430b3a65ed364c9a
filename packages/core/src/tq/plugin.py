"""The core's built-in plugin, registered through ``tq-core``'s own ``tq`` entry point.

It declares the components that need nothing but the standard library, the core's
settings and the core's ``tq`` subcommands. Nothing here imports what it declares.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tq.components import Component, Setting
from tq.hookspecs import hookimpl

if TYPE_CHECKING:
    from tq.request import Request
    from tq.task import Task

_B = "tq.builtins"


@hookimpl
def tq_serializers() -> list[Component]:
    return [
        Component(
            "serializer",
            "json",
            f"{_B}.serializers:JSONSerializer",
            content_type="application/json",
            doc="JSON (default)",
        ),
        Component(
            "serializer",
            "pickle",
            f"{_B}.serializers:PickleSerializer",
            content_type="application/x-python-serialize",
            doc="pickle; refused unless listed in accept_content",
        ),
    ]


@hookimpl
def tq_compressors() -> list[Component]:
    return [
        Component(
            "compressor",
            "zlib",
            f"{_B}.compressors:zlib_compressor",
            content_type="application/x-gzip",
            doc="zlib (kombu's 'gzip')",
        ),
        Component(
            "compressor",
            "gzip",
            f"{_B}.compressors:gzip_compressor",
            content_type="application/gzip",
            doc="gzip",
        ),
        Component(
            "compressor",
            "bz2",
            f"{_B}.compressors:bz2_compressor",
            content_type="application/x-bz2",
            doc="bzip2",
        ),
        Component(
            "compressor",
            "lzma",
            f"{_B}.compressors:lzma_compressor",
            content_type="application/x-lzma",
            doc="lzma / xz",
        ),
    ]


@hookimpl
def tq_transports() -> list[Component]:
    return [
        Component(
            "transport",
            "memory",
            "tq.transports.memory:MemoryTransport",
            schemes=("memory",),
            doc="in-process queues for tests and eager use",
        ),
    ]


@hookimpl
def tq_result_backends() -> list[Component]:
    return [
        Component(
            "backend",
            "memory",
            "tq.backends.memory:MemoryBackend",
            schemes=("memory",),
            doc="in-process results for tests",
        ),
    ]


@hookimpl
def tq_cli_commands() -> list[Component]:
    return [
        Component("command", name, f"tq.cli.commands:{name}_command")
        for name in ("plugins", "config", "call", "result")
    ]


def _s(
    name: str, default: Any, type_: type | tuple[type, ...], doc: str, *, secret: bool = False
) -> Setting:
    return Setting(name, default, type_, doc, secret)


_OPTIONAL_STR = (str, type(None))
_OPTIONAL_NUMBER = (int, float, type(None))

CORE_SETTINGS: list[Setting] = [
    # where things go
    _s(
        "broker_url",
        None,
        _OPTIONAL_STR,
        "Broker URL; unset means the embedded SQLite file tq.sqlite3 in the working directory.",
    ),
    _s(
        "result_backend",
        None,
        _OPTIONAL_STR,
        "Result backend URL; unset means the broker's file when the broker is embedded, else none.",
    ),
    _s(
        "broker_transport_options",
        {},
        dict,
        "Options passed to the transport (visibility_timeout, ...).",
    ),
    _s("result_backend_transport_options", {}, dict, "Options passed to the result backend."),
    _s("broker_connection_retry", True, bool, "Retry publishing when the broker is unreachable."),
    _s(
        "celery_compat",
        False,
        bool,
        "Use Celery's names (queue 'celery', keys 'celery-task-meta-') to share a broker with Celery.",
    ),
    _s("disable_plugins", [], list, "Entry-point plugin names not to load."),
    _s("imports", [], (list, tuple), "Modules the worker imports at start (task modules)."),
    _s("include", [], (list, tuple), "More modules to import, after imports."),
    _s("timezone", "UTC", str, "Time zone for ETAs and schedules given without one."),
    _s("enable_utc", True, bool, "Keep times in UTC."),
    # serialization
    _s("task_serializer", "json", str, "Serializer for task messages."),
    _s("result_serializer", "json", str, "Serializer for stored results."),
    _s(
        "accept_content",
        ["json"],
        (list, tuple, set),
        "Content types (names or MIME types) a worker accepts; others are dead-lettered.",
    ),
    _s(
        "result_accept_content",
        None,
        (list, tuple, set, type(None)),
        "Content types accepted when reading results; defaults to accept_content.",
    ),
    _s(
        "task_compression",
        None,
        _OPTIONAL_STR,
        "Compressor for task messages (zlib, gzip, bz2, lzma).",
    ),
    _s("result_compression", None, _OPTIONAL_STR, "Compressor for stored results."),
    # tasks
    _s(
        "task_default_queue",
        "tq",
        str,
        "Queue for tasks with no route ('celery' with celery_compat).",
    ),
    _s(
        "task_default_exchange",
        None,
        _OPTIONAL_STR,
        "Exchange of the default queue (its name if unset).",
    ),
    _s("task_default_routing_key", None, _OPTIONAL_STR, "Routing key of the default queue."),
    _s(
        "task_default_priority",
        None,
        (int, type(None)),
        "Priority for tasks that set none (0-9, 9 first).",
    ),
    _s("task_queues", None, (list, tuple, type(None)), "Declared queues (Queue objects or names)."),
    _s(
        "task_routes",
        None,
        (dict, list, tuple, type(None)),
        "Routes: a dict of name/glob/regex to queue, router callables, or a list of them.",
    ),
    _s(
        "task_create_missing_queues",
        True,
        bool,
        "Create queues that are routed to but not declared.",
    ),
    _s(
        "task_always_eager",
        False,
        bool,
        "Run tasks in the calling process instead of sending them.",
    ),
    _s("task_eager_propagates", False, bool, "Eager tasks re-raise their exceptions."),
    _s("task_store_eager_result", False, bool, "Eager tasks store their results in the backend."),
    _s("task_ignore_result", False, bool, "Do not store results unless a task asks to."),
    _s(
        "task_store_errors_even_if_ignored",
        False,
        bool,
        "Store failures of tasks that ignore results.",
    ),
    _s("task_track_started", False, bool, "Store the STARTED state when a task starts."),
    _s(
        "task_acks_late",
        True,
        bool,
        "Acknowledge after the task finishes (tq's default: at-least-once).",
    ),
    _s(
        "task_acks_on_failure_or_timeout",
        True,
        bool,
        "With acks_late, acknowledge failed tasks too.",
    ),
    _s("task_reject_on_worker_lost", False, bool, "Redeliver a task whose worker process died."),
    _s(
        "task_max_deliveries",
        5,
        int,
        "A message delivered more often than this is dead-lettered instead of run again.",
    ),
    _s(
        "task_dead_letter_queue",
        "{queue}.dead",
        str,
        "Queue that receives messages that cannot be run; '{queue}' is the source queue.",
    ),
    _s("task_time_limit", None, _OPTIONAL_NUMBER, "Hard time limit in seconds for every task."),
    _s(
        "task_soft_time_limit", None, _OPTIONAL_NUMBER, "Soft time limit in seconds for every task."
    ),
    _s("task_default_rate_limit", None, _OPTIONAL_STR, "Rate limit for every task ('10/s')."),
    _s("task_publish_retry", True, bool, "Retry publishing a task when the broker fails."),
    _s(
        "task_publish_retry_policy",
        {"max_retries": 3, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2},
        dict,
        "max_retries, interval_start, interval_step, interval_max for publish retries.",
    ),
    _s("task_send_sent_event", False, bool, "Emit task-sent events."),
    # monitoring: remote control and events (tq.control, tq.events)
    _s(
        "control_exchange",
        "tq",
        str,
        "Remote-control mailbox: fanout exchange '<name>.pidbox' ('celery' with celery_compat).",
    ),
    _s(
        "event_exchange",
        "tqev",
        str,
        "Fanout exchange events are broadcast on ('celeryev' with celery_compat).",
    ),
    _s("event_serializer", "json", str, "Serializer of event messages (JSON only for now)."),
    _s("task_annotations", None, (dict, list, type(None)), "Task attribute overrides by name."),
    # results
    _s("result_expires", 86400, _OPTIONAL_NUMBER, "Seconds a result is kept; None keeps it."),
    _s("result_extended", False, bool, "Store name, args, kwargs, worker and queue with results."),
    _s("result_chord_ordered", True, bool, "Chord results in header order."),
]


@hookimpl
def tq_settings() -> list[Setting]:
    return CORE_SETTINGS


@hookimpl(trylast=True)
def tq_task_execute(task: Task[Any, Any], request: Request, run: Callable[[], Any]) -> Any:
    """The innermost implementation: run the body. Plugins wrap it."""
    return run()
