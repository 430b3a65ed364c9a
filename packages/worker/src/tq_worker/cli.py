"""``tq worker``: start a worker for the app named with ``-A``."""

from __future__ import annotations

import logging

import click

from tq.app import App
from tq.cli.main import CLIContext
from tq_worker.banner import banner
from tq_worker.worker import Worker, check_queues

pass_context = click.make_pass_decorator(CLIContext)

LOG_FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s] %(message)s"


@click.command("worker")
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(min=1),
    help="Tasks run at once (default: worker_concurrency, else CPU count).",
)
@click.option("-P", "--pool", help="Execution pool: solo, threads, or a plugin's pool.")
@click.option("-Q", "--queues", help="Comma-separated queues to consume from.")
@click.option("-n", "--hostname", help="Node name, e.g. name@%h.")
@click.option(
    "--prefetch-multiplier",
    type=click.IntRange(min=0),
    help="Messages reserved per unit of concurrency.",
)
@click.option(
    "-l",
    "--loglevel",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False),
    help="Logging level (overrides the global -l).",
)
@click.option("-f", "--logfile", type=click.Path(dir_okay=False), help="Log to this file.")
@pass_context
def worker_command(
    ctx: CLIContext,
    concurrency: int | None,
    pool: str | None,
    queues: str | None,
    hostname: str | None,
    prefetch_multiplier: int | None,
    loglevel: str | None,
    logfile: str | None,
) -> None:
    """Start a worker that runs the app's tasks."""
    level = (loglevel or ctx.loglevel).upper()
    app = ctx.app
    setup_logging(app, level, logfile)
    app.import_task_modules()
    queue_names = check_queues(app, queues.split(",")) if queues else None
    worker = Worker(
        app,
        concurrency=concurrency,
        pool=pool,
        queues=queue_names,
        hostname=hostname,
        prefetch_multiplier=prefetch_multiplier,
    )
    click.echo(banner(worker))
    worker.run()


def setup_logging(app: App, level: str, logfile: str | None) -> None:
    """tq's logging, unless a ``tq_setup_logging`` hook did it."""
    numeric = logging.getLevelName(level)
    if app.plugins.hook.tq_setup_logging(app=app, loglevel=numeric, logfile=logfile):
        return
    handler: logging.Handler = logging.FileHandler(logfile) if logfile else logging.StreamHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(numeric)
    app.plugins.hook.tq_after_setup_logging(app=app, loglevel=numeric, logfile=logfile)
