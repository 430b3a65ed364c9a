"""The core's own subcommands: ``plugins``, ``config``, ``call`` and ``result``."""

from __future__ import annotations

import json
from typing import Any

import click

from tq.cli.main import CLIContext

pass_context = click.make_pass_decorator(CLIContext)


@click.command("plugins")
@pass_context
def plugins_command(ctx: CLIContext) -> None:
    """List every plugin: distribution, version, and what it provides."""
    for info in ctx.app.plugins.info():
        version = f" {info.version}" if info.version else ""
        click.echo(f"{info.name}  ({info.distribution}{version})")
        for provided in info.provides:
            click.echo(f"    {provided}")


@click.command("config")
@click.option(
    "--all", "with_defaults", is_flag=True, help="Include settings left at their default."
)
@pass_context
def config_command(ctx: CLIContext, with_defaults: bool) -> None:
    """Show the app's settings, secrets censored."""
    text = ctx.app.conf.humanize(with_defaults=with_defaults, censored=True)
    click.echo(text or "(every setting is at its default; use --all to see them)")


def _json_option(value: str | None, what: str, kind: type) -> Any:
    if value is None:
        return kind()
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint=what) from None
    if not isinstance(parsed, kind):
        raise click.BadParameter(f"must be a JSON {kind.__name__}", param_hint=what)
    return parsed


@click.command("call")
@click.argument("name")
@click.option(
    "-a", "--args", "args_json", metavar="JSON", help="Positional arguments, a JSON list."
)
@click.option(
    "-k", "--kwargs", "kwargs_json", metavar="JSON", help="Keyword arguments, a JSON object."
)
@click.option("--countdown", type=float, help="Seconds to wait before running.")
@click.option("--eta", help="ISO-8601 time to run at.")
@click.option("--expires", type=float, help="Seconds after which the task is discarded.")
@click.option("-Q", "--queue", help="Queue to send to.")
@click.option("--priority", type=click.IntRange(0, 9), help="Priority, 0-9 (9 first).")
@click.option("--wait/--no-wait", default=False, help="Wait for the result and print it.")
@click.option("--timeout", type=float, default=None, help="With --wait: seconds to wait.")
@pass_context
def call_command(
    ctx: CLIContext,
    name: str,
    args_json: str | None,
    kwargs_json: str | None,
    countdown: float | None,
    eta: str | None,
    expires: float | None,
    queue: str | None,
    priority: int | None,
    wait: bool,
    timeout: float | None,
) -> None:
    """Send task NAME and print its id."""
    args = _json_option(args_json, "--args", list)
    kwargs = _json_option(kwargs_json, "--kwargs", dict)
    result = ctx.app.send_task(
        name,
        args,
        kwargs,
        countdown=countdown,
        eta=eta,
        expires=expires,
        queue=queue,
        priority=priority,
    )
    click.echo(result.id)
    if wait:
        click.echo(json.dumps(result.get(timeout=timeout, propagate=False), default=repr))


@click.command("result")
@click.argument("task_id")
@click.option(
    "--traceback", "show_traceback", is_flag=True, help="Print the traceback of a failure."
)
@click.option("--wait", is_flag=True, help="Wait until the task is ready.")
@click.option("--timeout", type=float, default=None, help="With --wait: seconds to wait.")
@pass_context
def result_command(
    ctx: CLIContext, task_id: str, show_traceback: bool, wait: bool, timeout: float | None
) -> None:
    """Print the state and result of a task."""
    result = ctx.app.AsyncResult(task_id)
    if wait:
        result.get(timeout=timeout, propagate=False)
    click.echo(f"state: {result.state}")
    value = result.result
    if isinstance(value, BaseException):
        value = f"{type(value).__name__}: {value}"
    click.echo(f"result: {json.dumps(value, default=repr)}")
    if show_traceback and result.traceback:
        click.echo(result.traceback)
