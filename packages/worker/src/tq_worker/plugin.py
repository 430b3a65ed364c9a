"""tq-worker's plugin: the ``solo`` and ``threads`` pools, the worker's bootsteps,
the ``tq worker`` command and the worker's settings. Nothing heavy is imported here."""

from __future__ import annotations

from tq.components import Component, Setting
from tq.hookspecs import hookimpl


@hookimpl
def tq_pools() -> list[Component]:
    return [
        Component(
            "pool",
            "solo",
            "tq_worker.pools.solo:SoloPool",
            doc="runs tasks one at a time in the consumer thread",
        ),
        Component(
            "pool",
            "threads",
            "tq_worker.pools.threads:ThreadPool",
            doc="runs tasks in a pool of threads",
        ),
    ]


@hookimpl
def tq_autoscalers() -> list[Component]:
    return [
        Component(
            "autoscaler",
            "default",
            "tq_worker.autoscale:DefaultRules",
            doc="grow at once to the demand; shrink after worker_autoscale_keepalive idle",
        )
    ]


@hookimpl
def tq_bootsteps() -> list[Component]:
    return [
        Component(
            "bootstep", "pool", "tq_worker.bootsteps:PoolStep", doc="starts the execution pool"
        ),
        Component(
            "bootstep",
            "consumer",
            "tq_worker.bootsteps:ConsumerStep",
            meta={"requires": ("pool",)},
            doc="fetches messages and dispatches tasks",
        ),
        Component(
            "bootstep",
            "ratelimits",
            "tq_worker.ratelimit:RateLimitStep",
            meta={"requires": ("consumer",)},
            doc="holds rate-limited tasks until their task type may run",
        ),
        Component(
            "bootstep",
            "autoscaler",
            "tq_worker.autoscale:AutoscaleStep",
            meta={"requires": ("consumer",)},
            doc="resizes the pool under --autoscale",
        ),
        *MONITORING_BOOTSTEPS,
    ]


@hookimpl
def tq_cli_commands() -> list[Component]:
    return [
        Component("command", "worker", "tq_worker.cli:worker_command", doc="start a worker"),
        *MONITORING_CLI_COMMANDS,
    ]


@hookimpl
def tq_control_commands() -> list[Component]:
    return CONTROL_COMMANDS


@hookimpl
def tq_settings() -> list[Setting]:
    return [
        *MONITORING_SETTINGS,
        Setting(
            "worker_concurrency",
            None,
            (int, type(None)),
            "Tasks run at once; unset means the number of CPUs.",
        ),
        Setting(
            "worker_pool", "threads", str, "Execution pool: solo, threads, or a plugin's pool."
        ),
        Setting(
            "worker_processes",
            1,
            int,
            "Worker processes (--processes): each a whole worker with its own connection.",
        ),
        Setting(
            "worker_prefetch_multiplier",
            4,
            int,
            "Messages reserved per unit of concurrency; 0 means concurrency only.",
        ),
        Setting(
            "worker_hostname",
            None,
            (str, type(None)),
            "Node name (name@host); %h, %n and %d are expanded.",
        ),
        Setting(
            "worker_lease_renewal",
            None,
            (int, float, type(None)),
            "Seconds between lease renewals; unset means a third of the visibility timeout.",
        ),
        Setting(
            "worker_fetch_timeout",
            1.0,
            (int, float),
            "Longest wait for messages before checking for shutdown.",
        ),
        Setting(
            "worker_max_tasks_per_child",
            None,
            (int, type(None)),
            "Replace a pool child process after this many tasks (prefork).",
        ),
        Setting(
            "worker_max_memory_per_child",
            None,
            (int, type(None)),
            "Replace a pool child process whose resident memory passed this many KiB (prefork).",
        ),
        Setting(
            "worker_autoscaler",
            "default",
            str,
            "Name of the autoscaler component whose rules --autoscale=MAX,MIN follows.",
        ),
        Setting(
            "worker_autoscale_keepalive",
            30.0,
            (int, float),
            "Seconds an autoscaled pool keeps spare processes before shrinking.",
        ),
        Setting(
            "worker_log_task_events",
            True,
            bool,
            "Log a line when each task is received and when it ends.",
        ),
    ]


# -- monitoring: remote control, events, worker state (tq_worker.control, .events) --

MONITORING_BOOTSTEPS = [
    Component(
        "bootstep",
        "statedb",
        "tq_worker.state:StateDBStep",
        meta={"requires": ("consumer",)},
        doc="keeps revoked task ids in worker_state_db",
    ),
    Component(
        "bootstep",
        "control",
        "tq_worker.control:ControlStep",
        meta={"requires": ("statedb",)},
        doc="answers remote-control requests",
    ),
    Component(
        "bootstep",
        "events",
        "tq_worker.events:EventsStep",
        meta={"requires": ("consumer",)},
        doc="sends worker heartbeats and task events",
    ),
]

MONITORING_CLI_COMMANDS = [
    Component("command", name, f"tq_worker.cli_control:{name}_command", doc=doc)
    for name, doc in (
        ("inspect", "ask workers questions"),
        ("control", "send workers commands"),
        ("status", "list the workers that answer"),
        ("purge", "delete waiting messages"),
    )
] + [Component("command", "events", "tq_worker.cli_events:events_command", doc="watch events")]

_INSPECT = (
    "ping",
    "clock",
    "hello",
    "report",
    "active",
    "reserved",
    "scheduled",
    "registered",
    "revoked",
    "active_queues",
    "query_task",
    "conf",
    "stats",
)
_CONTROL = (
    "revoke",
    "add_consumer",
    "cancel_consumer",
    "pool_grow",
    "pool_shrink",
    "autoscale",
    "rate_limit",
    "time_limit",
    "shutdown",
    "enable_events",
    "disable_events",
    "heartbeat",
)
# Names the CLI's positional values fill, in order; "*" takes the rest as a list.
_ARGS: dict[str, tuple[str, ...]] = {
    "query_task": ("*ids",),
    "revoke": ("*task_id",),
    "add_consumer": ("queue",),
    "cancel_consumer": ("queue",),
    "pool_grow": ("n",),
    "pool_shrink": ("n",),
    "autoscale": ("max", "min"),
    "rate_limit": ("task_name", "rate_limit"),
    "time_limit": ("task_name", "soft", "hard"),
}

CONTROL_COMMANDS = [
    Component(
        "control",
        name,
        f"tq_worker.control_{kind}:{name}",
        meta={"type": "inspect" if kind == "inspect" else "control", "args": _ARGS.get(name, ())},
    )
    for kind, names in (("inspect", _INSPECT), ("actions", _CONTROL))
    for name in names
]

MONITORING_SETTINGS = [
    Setting(
        "worker_send_task_events",
        False,
        bool,
        "Send task events (tq worker -E); monitors can switch them on with enable_events.",
    ),
    Setting(
        "worker_heartbeat_interval",
        2.0,
        (int, float),
        "Seconds between worker-heartbeat events; a worker is gone after two missed.",
    ),
    Setting(
        "worker_state_db",
        None,
        (str, type(None)),
        "File keeping revoked task ids across restarts (tq worker --statedb).",
    ),
]
