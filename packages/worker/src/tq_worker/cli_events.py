"""``tq events``: the live monitor, or ``--dump`` to print every event as it arrives."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click

from tq.cli.main import CLIContext

pass_context = click.make_pass_decorator(CLIContext)

_SKIPPED_FIELDS = frozenset({"type", "hostname", "timestamp", "local_received", "utcoffset"})


def format_event(event: dict[str, Any]) -> str:
    """One line: time, node, type, then the event's own fields."""
    when = datetime.fromtimestamp(float(event.get("timestamp") or 0)).strftime("%H:%M:%S.%f")
    fields = {k: v for k, v in sorted(event.items()) if k not in _SKIPPED_FIELDS}
    return f"{when} [{event.get('hostname')}] {event['type']}: {json.dumps(fields, default=repr)}"


@click.command("events")
@click.option("--dump", is_flag=True, help="Print every event instead of the live monitor.")
@click.option("--json", "as_json", is_flag=True, help="With --dump: one JSON object per line.")
@click.option(
    "--timeout", type=float, default=None, help="Stop after this many seconds (default: never)."
)
@click.option("--no-enable", is_flag=True, help="Do not ask workers to send task events.")
@pass_context
def events_command(
    ctx: CLIContext, dump: bool, as_json: bool, timeout: float | None, no_enable: bool
) -> None:
    """Watch the cluster's events: workers, task rates, recent tasks and failures."""
    app = ctx.app
    if not no_enable:
        app.control.enable_events()
    if dump:
        receiver = app.events.receiver()
        try:
            for event in receiver.itercapture(timeout=timeout):
                line = json.dumps(event, default=repr) if as_json else format_event(event)
                click.echo(line)
        except KeyboardInterrupt:
            pass
        finally:
            receiver.close()
        return
    from tq_worker.monitor import Monitor  # the terminal UI is only needed here

    Monitor(app, timeout=timeout).run()
