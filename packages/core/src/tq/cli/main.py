"""The ``tq`` command: global options, then a subcommand from a plugin."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from typing import Any

import click

from tq.app import App
from tq.cli.loader import find_app
from tq.errors import TqError
from tq.plugins import KNOWN_PROVIDERS, Plugins
from tq.settings import plugin_autoload_enabled

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass
class CLIContext:
    """What the global options chose; commands get it as ``ctx.obj``."""

    app_reference: str | None = None
    broker: str | None = None
    result_backend: str | None = None
    config: str | None = None
    loglevel: str = "WARNING"
    _app: App | None = field(default=None, repr=False)

    @property
    def app(self) -> App:
        """The user's app (``-A``), or a default app, with the global options applied."""
        if self._app is None:
            app = find_app(self.app_reference) if self.app_reference else App()
            if self.config:
                app.conf.config_from_object(self.config)
            if self.broker:
                app.conf["broker_url"] = self.broker
            if self.result_backend:
                app.conf["result_backend"] = self.result_backend
            self._app = app
        return self._app


class PluginCommands(click.Group):
    """A group whose subcommands are declared by plugins and imported on use."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plugins: Plugins | None = None

    def _declared(self) -> Plugins:
        if self._plugins is None:
            self._plugins = Plugins(autoload=plugin_autoload_enabled())
        return self._plugins

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self._declared().components("command"))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        component = self._declared().components("command").get(cmd_name)
        if component is None:
            provider = KNOWN_PROVIDERS.get(("command", cmd_name))
            if provider is not None:
                raise click.UsageError(
                    f"'tq {cmd_name}' is provided by {provider}, which is not installed. "
                    f'Install it with: pip install "{provider}"'
                )
            return None
        command = component.load()
        if not isinstance(command, click.Command):
            raise click.ClickException(f"plugin command {cmd_name!r} is not a click command")
        return command


@click.group(cls=PluginCommands, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-A",
    "--app",
    "app_reference",
    metavar="MODULE[:APP]",
    envvar="TQ_APP",
    help="The module holding your tq.App.",
)
@click.option("-b", "--broker", help="Broker URL, overriding broker_url.")
@click.option("--result-backend", help="Result backend URL, overriding result_backend.")
@click.option("--config", metavar="MODULE", help="Module to read settings from.")
@click.option(
    "-l",
    "--loglevel",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default="WARNING",
    show_default=True,
    help="Logging level.",
)
@click.version_option(package_name="tq-core", prog_name="tq")
@click.pass_context
def cli(
    ctx: click.Context,
    app_reference: str | None,
    broker: str | None,
    result_backend: str | None,
    config: str | None,
    loglevel: str,
) -> None:
    """tq: a distributed task queue."""
    ctx.obj = CLIContext(app_reference, broker, result_backend, config, loglevel.upper())
    logging.basicConfig(level=loglevel.upper(), format="[%(asctime)s: %(levelname)s] %(message)s")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``tq`` console script: user errors are one line, no traceback."""
    try:
        cli.main(args=argv, prog_name="tq", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except TqError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
