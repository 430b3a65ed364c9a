"""``tq inspect``, ``tq control``, ``tq status`` and ``tq purge``: steering a cluster.

Commands are found among the app's ``tq_control_commands`` components, so a plugin's
or a user's command (``@app.control.inspect_command``) works like a built-in one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from tq.app import App
from tq.cli.main import CLIContext
from tq.components import Component

pass_context = click.make_pass_decorator(CLIContext)
F = TypeVar("F", bound=Callable[..., Any])


def _common_options(function: F) -> F:
    function = click.option(
        "-d", "--destination", help="Comma-separated node names; all workers when omitted."
    )(function)
    function = click.option(
        "-t", "--timeout", type=float, default=1.0, show_default=True, help="Seconds to wait."
    )(function)
    decorated: F = click.option(
        "-j", "--json", "as_json", is_flag=True, help="Print the replies as JSON."
    )(function)
    return decorated


def _destination(value: str | None) -> list[str] | None:
    return [name.strip() for name in value.split(",") if name.strip()] if value else None


def _value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def bind_arguments(component: Component, values: Sequence[str]) -> dict[str, Any]:
    """Positional CLI values as the command's keyword arguments (``meta["args"]``)."""
    names: tuple[str, ...] = tuple(component.meta.get("args", ()))
    arguments: dict[str, Any] = {}
    rest = list(values)
    for name in names:
        if name.startswith("*"):
            arguments[name[1:]] = [_value(v) for v in rest]
            rest = []
            break
        if rest:
            arguments[name] = _value(rest.pop(0))
    if rest:
        raise click.UsageError(f"{component.name} takes {len(names)} argument(s): {names}")
    return arguments


def find_command(app: App, kind: str, method: str) -> Component:
    """The control component ``method`` of ``kind``, or a usage error listing the choices."""
    commands = app.plugins.components("control")
    component = commands.get(method)
    if component is None or component.meta.get("type") != kind:
        choices = sorted(n for n, c in commands.items() if c.meta.get("type") == kind)
        other = "control" if kind == "inspect" else "inspect"
        hint = f" ('{method}' is a {other} command)" if component is not None else ""
        raise click.UsageError(f"No {kind} command {method!r}{hint}. Choose from: {choices}")
    return component


def print_replies(replies: list[dict[str, Any]], as_json: bool) -> None:
    """Celery's layout (``-> node: OK`` and the answer indented), or one JSON object."""
    if not replies:
        raise click.ClickException("No nodes replied within time constraint.")
    merged = {node: answer for reply in replies for node, answer in reply.items()}
    if as_json:
        click.echo(json.dumps(merged, indent=2, sort_keys=True, default=repr))
        return
    for node, answer in sorted(merged.items()):
        failed = isinstance(answer, dict) and "error" in answer
        status = click.style("ERROR", fg="red") if failed else click.style("OK", fg="green")
        click.echo(f"-> {node}: {status}")
        text = json.dumps(answer, indent=2, sort_keys=True, default=repr)
        click.echo("\n".join(f"    {line}" for line in text.splitlines()))
    click.echo(f"\n{len(merged)} node(s) replied.")


def _run(
    ctx: CLIContext,
    kind: str,
    method: str,
    values: Sequence[str],
    extra: dict[str, Any],
    destination: str | None,
    timeout: float,
    as_json: bool,
) -> None:
    app = ctx.app
    component = find_command(app, kind, method)
    arguments = {**bind_arguments(component, values), **extra}
    replies = app.control.broadcast(
        method, arguments, _destination(destination), reply=True, timeout=timeout
    )
    print_replies(replies, as_json)


@click.command("inspect")
@click.argument("method")
@click.argument("values", nargs=-1)
@_common_options
@pass_context
def inspect_command(
    ctx: CLIContext,
    method: str,
    values: tuple[str, ...],
    destination: str | None,
    timeout: float,
    as_json: bool,
) -> None:
    """Ask the workers METHOD (active, reserved, stats, registered, ...)."""
    _run(ctx, "inspect", method, values, {}, destination, timeout, as_json)


@click.command("control")
@click.argument("method")
@click.argument("values", nargs=-1)
@click.option("--terminate", is_flag=True, help="revoke: also stop the task if it runs.")
@click.option("--signal", "signal_name", help="revoke --terminate: the signal (SIGTERM).")
@_common_options
@pass_context
def control_command(
    ctx: CLIContext,
    method: str,
    values: tuple[str, ...],
    terminate: bool,
    signal_name: str | None,
    destination: str | None,
    timeout: float,
    as_json: bool,
) -> None:
    """Send the workers command METHOD (revoke, add_consumer, shutdown, ...)."""
    extra: dict[str, Any] = {}
    if terminate:
        extra["terminate"] = True
    if signal_name:
        extra["signal"] = signal_name
    _run(ctx, "control", method, values, extra, destination, timeout, as_json)


@click.command("status")
@_common_options
@pass_context
def status_command(ctx: CLIContext, destination: str | None, timeout: float, as_json: bool) -> None:
    """List the workers that answer a ping."""
    replies = ctx.app.control.ping(_destination(destination), timeout=timeout)
    if not replies:
        raise click.ClickException("No nodes replied within time constraint.")
    nodes = sorted(node for reply in replies for node in reply)
    if as_json:
        click.echo(json.dumps(nodes))
        return
    for node in nodes:
        click.echo(f"-> {node}: OK")
    click.echo(f"\n{len(nodes)} node(s) online.")


@click.command("purge")
@click.option("-Q", "--queues", help="Comma-separated queues (default: the app's queues).")
@click.option("-X", "--exclude-queues", help="Comma-separated queues not to purge.")
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation.")
@pass_context
def purge_command(
    ctx: CLIContext, queues: str | None, exclude_queues: str | None, force: bool
) -> None:
    """Delete every waiting message from the app's queues. Cannot be undone."""
    app = ctx.app
    names = set(queues.split(",")) if queues else {app.default_queue.name, *app.router.queues}
    names -= set(exclude_queues.split(",")) if exclude_queues else set()
    listed = ", ".join(sorted(names))
    if not names:
        raise click.ClickException("No queues left to purge.")
    if not force:
        click.confirm(
            f"Delete every waiting message from {len(names)} queue(s): {listed}?", abort=True
        )
    count = sum(app.transport.purge(name) for name in sorted(names))
    click.echo(f"Purged {count} message(s) from {len(names)} queue(s): {listed}.")
