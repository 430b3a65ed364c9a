"""Finding plugins and the components they provide.

Plugins are found through the ``tq`` entry-point group. Built-in plugins (the core's
own serializers, compressors and memory transport) are registered the same way, by
``tq-core``'s own entry point, so switching autoload off leaves a bare core.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from types import ModuleType
from typing import Any, Final, final
from urllib.parse import urlsplit

import pluggy

from tq import hookspecs
from tq.components import KINDS, Component, ComponentKind, Setting
from tq.errors import MissingPluginError, PluginError

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP: Final = "tq"
CORE_PLUGIN: Final = "core"

# Where to find a component that is not installed: the extra of the ``tq`` bundle
# that brings it, so error messages can name the fix.
KNOWN_PROVIDERS: Final[dict[tuple[str, str], str]] = {
    ("transport", "redis"): "tq[redis]",
    ("transport", "rediss"): "tq[redis]",
    ("transport", "sentinel"): "tq[redis]",
    ("transport", "amqp"): "tq[amqp]",
    ("transport", "amqps"): "tq[amqp]",
    ("transport", "pyamqp"): "tq[amqp]",
    ("transport", "sqs"): "tq[sqs]",
    ("transport", "sqlite"): "tq-transport-sqlite",
    ("backend", "sqlite"): "tq-backend-sqlite",
    ("backend", "redis"): "tq[redis]",
    ("backend", "rediss"): "tq[redis]",
    ("backend", "mongodb"): "tq[mongodb]",
    ("backend", "cassandra"): "tq[cassandra]",
    ("backend", "dynamodb"): "tq[dynamodb]",
    ("backend", "s3"): "tq[s3]",
    ("backend", "rpc"): "tq[amqp]",
    ("pool", "prefork"): "tq-pool-prefork",
    ("pool", "gevent"): "tq[gevent]",
    ("pool", "eventlet"): "tq[eventlet]",
    ("pool", "solo"): "tq-worker",
    ("pool", "threads"): "tq-worker",
    ("serializer", "msgpack"): "tq[msgpack]",
    ("serializer", "yaml"): "tq[yaml]",
    ("command", "worker"): "tq-worker",
    ("command", "beat"): "tq-beat",
}

_COMPONENT_HOOKS: Final[dict[ComponentKind, str]] = {
    "transport": "tq_transports",
    "backend": "tq_result_backends",
    "pool": "tq_pools",
    "autoscaler": "tq_autoscalers",
    "serializer": "tq_serializers",
    "compressor": "tq_compressors",
    "scheduler": "tq_schedulers",
    "bootstep": "tq_bootsteps",
    "command": "tq_cli_commands",
    "control": "tq_control_commands",
}


@final
@dataclass(frozen=True, slots=True)
class PluginInfo:
    """One registered plugin, as ``tq plugins`` shows it."""

    name: str
    distribution: str
    version: str
    provides: tuple[str, ...]


@cache
def _entry_points() -> tuple[metadata.EntryPoint, ...]:
    # Reading distribution metadata costs milliseconds; every app in a process shares it.
    return tuple(metadata.entry_points(group=ENTRY_POINT_GROUP))


def _distribution_of(entry_point: metadata.EntryPoint) -> tuple[str, str]:
    dist = entry_point.dist
    if dist is None:
        return ("?", "?")
    return (dist.metadata["Name"] or "?", dist.version)


@final
class Plugins:
    """The plugins of one app: a pluggy manager plus the components they declared.

    Args:
        autoload: load the ``tq`` entry points (``TQ_DISABLE_PLUGIN_AUTOLOAD`` turns
            this off; the app passes the setting in).
        disabled: entry-point or plugin names not to load (``disable_plugins``).
    """

    def __init__(self, *, autoload: bool = True, disabled: Iterable[str] = ()) -> None:
        self.manager = pluggy.PluginManager("tq")
        self.manager.add_hookspecs(hookspecs)
        self.disabled = frozenset(disabled)
        self._loaded = False
        self.generation = 0
        """Grows with every registration, so callers can drop what they cached."""
        self._dists: dict[str, tuple[str, str]] = {}
        self._components: dict[ComponentKind, dict[str, Component]] | None = None
        self._settings: dict[str, Setting] | None = None
        # The core's built-ins are always there, as pytest's are: switching autoload
        # off removes third-party plugins, not the settings every app needs.
        self.register(importlib.import_module("tq.plugin"), CORE_PLUGIN)
        self._dists[CORE_PLUGIN] = ("tq-core", importlib.import_module("tq").__version__)
        if autoload:
            self._load_entry_points()
        self.validate()

    @property
    def hook(self) -> Any:
        """The hook caller: ``plugins.hook.tq_task_success(...)``."""
        return self.manager.hook

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register a module or object with ``@hookimpl`` functions."""
        registered = self.manager.register(plugin, name)
        if registered is None:
            return
        self._components = None
        self._settings = None
        self.generation += 1
        try:
            self.manager.check_pending()
            if self._loaded:
                self.validate()
        except Exception:
            # A rejected plugin must not stay half-registered.
            self.unregister(registered)
            raise

    def unregister(self, name: str) -> None:
        """Remove the plugin registered as ``name``."""
        self.manager.unregister(name=name)
        self._components = None
        self._settings = None
        self.generation += 1

    def validate(self) -> None:
        """Collect every declaration now, so a conflict fails at registration, not on use."""
        self._loaded = True
        self.components("transport")
        self.settings()

    def _load_entry_points(self) -> None:
        for entry_point in _entry_points():
            if entry_point.name in self.disabled:
                continue
            if self.manager.has_plugin(entry_point.name):
                self._dists.setdefault(entry_point.name, _distribution_of(entry_point))
                continue
            try:
                plugin = entry_point.load()
            except Exception as exc:
                raise PluginError(
                    f"plugin {entry_point.name!r} ({entry_point.value}) failed to import: {exc}"
                ) from exc
            self._dists[entry_point.name] = _distribution_of(entry_point)
            self.register(plugin, entry_point.name)

    # -- components --------------------------------------------------------------

    def components(self, kind: ComponentKind) -> dict[str, Component]:
        """Every component of ``kind`` by name; conflicts are errors."""
        if self._components is None:
            self._components = self._collect_components()
        return self._components[kind]

    def _collect_components(self) -> dict[ComponentKind, dict[str, Component]]:
        found: dict[ComponentKind, dict[str, Component]] = {kind: {} for kind in KINDS}
        for kind, hook_name in _COMPONENT_HOOKS.items():
            for plugin_name, declared in self._call_per_plugin(hook_name):
                for component in declared:
                    _check_kind(component, kind, plugin_name)
                    if component.name in found[kind]:
                        raise PluginError(
                            f"{kind} {component.name!r} is declared twice "
                            f"(again by plugin {plugin_name!r})"
                        )
                    found[kind][component.name] = component
        return found

    def _call_per_plugin(self, hook_name: str) -> Iterator[tuple[str, Sequence[Any]]]:
        caller = getattr(self.manager.hook, hook_name)
        for impl in caller.get_hookimpls():
            result = impl.function()
            yield impl.plugin_name, result or ()

    def provided_by(self, plugin_name: str) -> tuple[str, ...]:
        """What a plugin provides, as ``kind:name`` strings."""
        provides: list[str] = []
        plugin = self.manager.get_plugin(plugin_name)
        for kind, hook_name in _COMPONENT_HOOKS.items():
            function = getattr(plugin, hook_name, None)
            if function is not None:
                provides += [f"{kind}:{c.name}" for c in function() or ()]
        return tuple(provides)

    def settings(self) -> dict[str, Setting]:
        """Every setting declared by every plugin, by name."""
        if self._settings is None:
            collected: dict[str, Setting] = {}
            for plugin_name, declared in self._call_per_plugin("tq_settings"):
                for setting in declared:
                    if setting.name in collected:
                        raise PluginError(
                            f"setting {setting.name!r} is declared twice "
                            f"(again by plugin {plugin_name!r})"
                        )
                    collected[setting.name] = setting
            self._settings = collected
        return self._settings

    def info(self) -> list[PluginInfo]:
        """Every registered plugin with its distribution, version and components."""
        result = []
        for name, _plugin in self.manager.list_name_plugin():
            distribution, version = self._dists.get(name, ("(registered in code)", ""))
            result.append(PluginInfo(name, distribution, version, self.provided_by(name)))
        return sorted(result, key=lambda info: info.name)

    # -- look-ups with helpful errors ----------------------------------------------

    def get(self, kind: ComponentKind, name: str) -> Component:
        """The component ``name`` of ``kind``, or an error naming what to install."""
        try:
            return self.components(kind)[name]
        except KeyError:
            raise _missing(kind, name, sorted(self.components(kind))) from None

    def for_url(self, kind: ComponentKind, url: str) -> Component:
        """The transport or backend serving ``url``'s scheme."""
        scheme = url_scheme(url)
        for component in self.components(kind).values():
            if scheme in component.schemes:
                return component
        available = sorted(s for c in self.components(kind).values() for s in c.schemes)
        raise _missing(kind, scheme, available, as_url=True)


def url_scheme(url: str) -> str:
    """The scheme of a broker or backend URL (``"sqlite"`` for ``sqlite:///tq.db``)."""
    scheme = urlsplit(url).scheme
    if not scheme:
        raise MissingPluginError(f"{url!r} is not a URL; expected something like 'redis://host'")
    return scheme.split("+", 1)[0].lower()


def _check_kind(component: Any, kind: ComponentKind, plugin_name: str) -> None:
    if not isinstance(component, Component) or component.kind != kind:
        raise PluginError(
            f"plugin {plugin_name!r} returned {component!r} from its {kind} hook; "
            f"expected Component(kind={kind!r}, ...)"
        )


_KIND_WORDS: Final[dict[str, str]] = {"backend": "result backend", "command": "tq command"}


def _missing(
    kind: ComponentKind, name: str, available: list[str], *, as_url: bool = False
) -> MissingPluginError:
    what = _KIND_WORDS.get(kind, kind)
    label = f"'{name}://'" if as_url else repr(name)
    provider = KNOWN_PROVIDERS.get((kind, name))
    if provider is not None:
        return MissingPluginError(
            f'No {what} for {label}. Install it with: pip install "{provider}"'
        )
    choices = ", ".join(available) or "none installed"
    return MissingPluginError(f"No {what} for {label}. Available: {choices}")


def plugin_module_names(plugins: Iterable[ModuleType | object]) -> list[str]:
    """Names for plugins registered in code, for banners."""
    return [getattr(p, "__name__", type(p).__name__) for p in plugins]
