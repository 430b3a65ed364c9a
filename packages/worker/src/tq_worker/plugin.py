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
    ]


@hookimpl
def tq_cli_commands() -> list[Component]:
    return [Component("command", "worker", "tq_worker.cli:worker_command", doc="start a worker")]


@hookimpl
def tq_settings() -> list[Setting]:
    return [
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
            "worker_log_task_events",
            True,
            bool,
            "Log a line when each task is received and when it ends.",
        ),
    ]
