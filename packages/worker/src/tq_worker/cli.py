"""``tq worker``: start a worker for the app named with ``-A``."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any, Final

import click

from tq.app import App
from tq.cli.main import CLIContext
from tq_worker import daemon
from tq_worker.banner import banner
from tq_worker.daemon import DETACHED_LOGFILE, DETACHED_PIDFILE, RESTARTED_OPTION
from tq_worker.poolselect import patch_early, reexec_if_green
from tq_worker.processes import ProcessGroup, child_nodename, stop_when_orphaned
from tq_worker.worker import DEFAULT_NODENAME, Worker, check_queues, expand_nodename

pass_context = click.make_pass_decorator(CLIContext)

LOG_FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s] %(message)s"

_SECONDS = click.FloatRange(min=0, min_open=True)

#: The pools a ``--processes`` child may run: they keep the child a single process.
PROCESS_POOLS: Final = ("solo", "threads")


@click.command("worker")
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(min=1),
    help="Tasks run at once (default: worker_concurrency, else CPU count).",
)
@click.option(
    "-P", "--pool", help="Execution pool: solo, threads, prefork, gevent, eventlet, or a plugin's."
)
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    help="Run N worker processes, each a whole worker (solo or threads pool) on its own "
    "connection (default: worker_processes).",
)
@click.option("-Q", "--queues", help="Comma-separated queues to consume from.")
@click.option("-n", "--hostname", help="Node name, e.g. name@%h.")
@click.option(
    "--prefetch-multiplier",
    type=click.IntRange(min=0),
    help="Messages reserved per unit of concurrency.",
)
@click.option("--time-limit", type=_SECONDS, help="Hard time limit in seconds for every task.")
@click.option("--soft-time-limit", type=_SECONDS, help="Soft time limit in seconds.")
@click.option(
    "--max-tasks-per-child",
    type=click.IntRange(min=1),
    help="Replace a pool child after this many tasks (prefork).",
)
@click.option(
    "--max-memory-per-child",
    type=click.IntRange(min=1),
    help="Replace a pool child once its resident memory passed this many KiB (prefork).",
)
@click.option(
    "--autoscale",
    callback=lambda ctx, param, value: _autoscale(value),
    metavar="MAX,MIN",
    help="Grow the pool up to MAX under load, shrink it to MIN when idle.",
)
@click.option(
    "-O",
    "optimization",
    type=click.Choice(["fair", "default"]),
    help="Accepted for Celery compatibility: dispatch is always fair.",
)
@click.option("-E", "--task-events", is_flag=True, help="Send task events (for monitors).")
@click.option("-S", "--statedb", help="File keeping revoked task ids across restarts.")
@click.option(
    "-l",
    "--loglevel",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False),
    help="Logging level (overrides the global -l).",
)
@click.option(
    "-f",
    "--logfile",
    type=click.Path(dir_okay=False),
    help="Log to this file; %n %h %d %i %I are expanded (see docs/workers.md).",
)
@click.option(
    "--pidfile",
    type=click.Path(dir_okay=False),
    help="Write the worker's pid here while it runs; refuse to start if its owner lives.",
)
@click.option(
    "-D",
    "--detach",
    is_flag=True,
    help=f"Run in the background (logfile {DETACHED_LOGFILE}, pidfile {DETACHED_PIDFILE}).",
)
@click.option(
    RESTARTED_OPTION,
    "restarted",
    is_flag=True,
    hidden=True,
    help="Set by the worker when SIGHUP re-executes it: already detached.",
)
@pass_context
def worker_command(
    ctx: CLIContext,
    /,
    pool: str | None,
    queues: str | None,
    loglevel: str | None,
    logfile: str | None,
    pidfile: str | None,
    detach: bool,
    restarted: bool,
    optimization: str | None,
    **options: Any,
) -> None:
    """Start a worker that runs the app's tasks."""
    chosen = patch_early(pool)  # before the app is imported: green pools patch here
    level = (loglevel or ctx.loglevel).upper()
    app = ctx.app
    _monitoring_options(app, options.pop("task_events"), options.pop("statedb"))
    reexec_if_green(app, chosen)
    nodename = expand_nodename(
        options["hostname"] or app.conf["worker_hostname"] or DEFAULT_NODENAME
    )
    if detach:
        logfile, pidfile = logfile or DETACHED_LOGFILE, pidfile or DETACHED_PIDFILE
    if detach and not restarted:
        daemon.detach()  # before the pool forks and any thread starts
    setup_logging(app, level, logfile, nodename)
    app.import_task_modules()
    queue_names = check_queues(app, queues.split(",")) if queues else None
    pidfile = daemon.absolute_path(pidfile, nodename) if pidfile else None
    processes = options.pop("processes") or app.conf["worker_processes"]
    if processes > 1:
        _run(_process_group(app, processes, chosen, queue_names, options).run, pidfile)
        return
    worker = Worker(app, pool=chosen, queues=queue_names, **options)
    click.echo(banner(worker))
    _run(worker.run, pidfile)


def _process_group(
    app: App,
    processes: int,
    pool: str | None,
    queue_names: list[str] | None,
    options: dict[str, Any],
) -> ProcessGroup:
    """``--processes``: each child builds and runs its own :class:`Worker`."""
    name = pool or app.conf["worker_pool"]
    if name not in PROCESS_POOLS:
        raise click.UsageError(
            f"--processes runs whole workers, each with a solo or threads pool, not {name!r}: "
            "add -P solo or -P threads (prefork already runs tasks in child processes)."
        )
    template = options.pop("hostname") or app.conf["worker_hostname"] or DEFAULT_NODENAME

    def run_child(index: int, lifeline: int) -> None:
        daemon.use_process_log_files(index)
        hostname = child_nodename(template, index)
        worker = Worker(app, pool=name, queues=queue_names, hostname=hostname, **options)
        if index == 1:
            click.echo(banner(worker, processes))
        stop_when_orphaned(worker, lifeline)
        worker.run()

    return ProcessGroup(processes, run_child)


def _run(run: Callable[[bool], bool], pidfile: str | None) -> None:
    lock = daemon.Pidfile(pidfile) if pidfile else None
    if lock is not None:
        try:
            lock.acquire()
        except FileExistsError as exc:
            raise click.ClickException(str(exc)) from None
    # SIGHUP restarts a worker without a terminal (detached, or under a supervisor);
    # with a terminal it means the terminal closed, and the worker stops.
    restart = False
    try:
        restart = run(not sys.stdout.isatty())
    finally:
        if lock is not None and not restart:
            lock.release()
    if restart:
        daemon.reexec()  # the same pid comes back and keeps the pidfile


def _autoscale(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    high, _, low = value.partition(",")
    try:
        bounds = (int(high), int(low or high))
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected MAX,MIN, e.g. 10,3") from None
    if not 1 <= bounds[1] <= bounds[0]:
        raise click.BadParameter(f"{value!r}: expected 1 <= MIN <= MAX")
    return bounds


def _monitoring_options(app: App, task_events: bool, statedb: str | None) -> None:
    if task_events:
        app.conf["worker_send_task_events"] = True
    if statedb:
        app.conf["worker_state_db"] = statedb


def setup_logging(app: App, level: str, logfile: str | None, nodename: str) -> None:
    """tq's logging, unless a ``tq_setup_logging`` hook did it.

    ``logfile`` is the name as given: hooks get it expanded for the main process; tq's
    own handler expands it again in each prefork child when it holds ``%i``/``%I``.
    """
    numeric = logging.getLevelName(level)
    expanded = daemon.absolute_path(logfile, nodename) if logfile else None
    if app.plugins.hook.tq_setup_logging(app=app, loglevel=numeric, logfile=expanded):
        return
    handler: logging.Handler = (
        daemon.ProcessLogFile(logfile, nodename) if logfile else logging.StreamHandler()
    )
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(numeric)
    app.plugins.hook.tq_after_setup_logging(app=app, loglevel=numeric, logfile=expanded)
