"""Configuration: layered settings with Celery's lowercase names.

Precedence, lowest first: each setting's declared default < values from
``config_from_object`` < ``TQ_*`` environment variables < explicit values (``App(...)``
keyword arguments and ``conf.update``). This is the only module that reads the
environment.

Environment variables, all read here:

* ``TQ_<SETTING>`` — any setting, e.g. ``TQ_BROKER_URL``; lists and dicts as JSON,
  booleans as ``1/0``, ``true/false``, ``yes/no``.
* ``TQ_DISABLE_PLUGIN_AUTOLOAD`` — when set, no entry-point plugin is loaded.
* ``TQ_CONFIG_MODULE`` — the default for ``config_from_envvar``.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import json
import os
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from types import ModuleType
from typing import Any, Final, final
from urllib.parse import urlsplit, urlunsplit

from tq.components import Setting
from tq.errors import ImproperlyConfigured

ENV_PREFIX: Final = "TQ_"
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off", ""})
_SECRET_WORDS: Final = ("password", "secret", "token", "key", "signature")


def plugin_autoload_enabled(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether entry-point plugins load (``TQ_DISABLE_PLUGIN_AUTOLOAD`` unset)."""
    return not environ.get("TQ_DISABLE_PLUGIN_AUTOLOAD")


def environ_snapshot() -> dict[str, str]:
    """A copy of the environment, for code that must not read it elsewhere."""
    return dict(os.environ)


@final
class Settings(MutableMapping[str, Any]):
    """An app's configuration (``app.conf``).

    Reads as a mapping (``conf["broker_url"]``) and by attribute (``conf.broker_url``),
    as Celery's does. Unknown names are errors that suggest the closest known name.
    """

    __slots__ = ("_config", "_env", "_explicit", "_specs")
    _specs: dict[str, Setting]
    _config: dict[str, Any]
    _env: dict[str, Any]
    _explicit: dict[str, Any]

    def __init__(
        self, specs: Mapping[str, Setting], environ: Mapping[str, str] | None = None
    ) -> None:
        object.__setattr__(self, "_specs", dict(specs))
        object.__setattr__(self, "_config", {})
        object.__setattr__(self, "_explicit", {})
        object.__setattr__(
            self, "_env", self._read_env(environ if environ is not None else os.environ)
        )

    # -- mapping protocol --------------------------------------------------------

    def __getitem__(self, name: str) -> Any:
        for layer in (self._explicit, self._env, self._config):
            if name in layer:
                return layer[name]
        return self._spec(name).default

    def __setitem__(self, name: str, value: Any) -> None:
        self._spec(name)
        self._explicit[name] = value

    def __delitem__(self, name: str) -> None:
        self._spec(name)
        self._explicit.pop(name, None)
        self._config.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._specs))

    def __len__(self) -> int:
        return len(self._specs)

    def __getattr__(self, name: str) -> Any:
        # Attribute access mirrors item access for setting names only (Celery's
        # ``app.conf.broker_url``); anything else is a plain AttributeError.
        if name.startswith("_") or name not in self._specs:
            raise AttributeError(_unknown_message(name, self._specs))
        return self[name]

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    # -- loading -----------------------------------------------------------------

    def add_specs(self, specs: Mapping[str, Setting]) -> None:
        """Learn settings declared by plugins registered after the app was built."""
        self._specs.update(specs)
        self._env.update(self._read_env(os.environ, only=specs))

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Set explicit values; the highest-precedence layer."""
        for name, value in dict(*args, **kwargs).items():
            self[name] = value

    def config_from_object(self, obj: object | str, *, namespace: str | None = None) -> None:
        """Read settings from a module, a ``"module:Object"`` path, a module name or an object.

        With ``namespace="TQ"``, only ``TQ_``-prefixed uppercase names are read (as
        Django settings are written); otherwise public lowercase attributes are.
        """
        source = _import_object(obj) if isinstance(obj, str) else obj
        values = _public_values(source, namespace, self._specs)
        for name in values:
            self._spec(name)
        self._config.update(values)

    def config_from_envvar(
        self, variable: str = "TQ_CONFIG_MODULE", *, silent: bool = False
    ) -> bool:
        """Read settings from the module named by the environment variable ``variable``."""
        module_name = os.environ.get(variable)
        if not module_name:
            if silent:
                return False
            raise ImproperlyConfigured(
                f"The environment variable {variable!r} is not set; "
                "set it to the module that holds your settings"
            )
        self.config_from_object(module_name)
        return True

    # -- reporting ---------------------------------------------------------------

    def changes(self) -> dict[str, Any]:
        """Settings whose value differs from the declared default."""
        return {
            name: self[name]
            for name in sorted(self._specs)
            if self[name] != self._specs[name].default
        }

    def humanize(self, *, with_defaults: bool = False, censored: bool = True) -> str:
        """The settings as ``name: value`` lines, secrets censored."""
        names = sorted(self._specs) if with_defaults else list(self.changes())
        lines = []
        for name in names:
            value = self[name]
            if censored:
                value = censor(name, value, secret=self._specs[name].secret)
            lines.append(f"{name}: {value!r}")
        return "\n".join(lines)

    def spec(self, name: str) -> Setting:
        """The declaration of setting ``name``."""
        return self._spec(name)

    # -- helpers -----------------------------------------------------------------

    def _spec(self, name: str) -> Setting:
        try:
            return self._specs[name]
        except KeyError:
            raise ImproperlyConfigured(_unknown_message(name, self._specs)) from None

    def _read_env(
        self, environ: Mapping[str, str], only: Mapping[str, Setting] | None = None
    ) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, spec in (only if only is not None else self._specs).items():
            raw = environ.get(ENV_PREFIX + name.upper())
            if raw is not None:
                values[name] = _convert(spec, raw)
        return values


def _unknown_message(name: str, specs: Mapping[str, Setting]) -> str:
    close = difflib.get_close_matches(name, list(specs), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"Unknown setting {name!r}.{hint}"


def _convert(spec: Setting, raw: str) -> Any:
    types = spec.type if isinstance(spec.type, tuple) else (spec.type,)
    variable = ENV_PREFIX + spec.name.upper()
    if bool in types:
        lowered = raw.strip().lower()
        if lowered in _TRUE | _FALSE:
            return lowered in _TRUE
    if int in types or float in types:
        try:
            return int(raw) if int in types else float(raw)
        except ValueError:
            pass
    if str in types:
        return raw
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(
            f"{variable}={raw!r} is not valid for {spec.name}: {exc}"
        ) from exc


def _import_object(path: str) -> object:
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"Cannot import configuration module {module_name!r}: {exc}"
        ) from exc
    if not attribute:
        return module
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ImproperlyConfigured(
            f"Module {module_name!r} has no attribute {attribute!r}"
        ) from None


def _public_values(
    source: object, namespace: str | None, known: Mapping[str, Setting]
) -> dict[str, Any]:
    items: Iterable[tuple[Any, Any]]
    if isinstance(source, Mapping):
        items = dict(source).items()
    else:
        items = ((name, getattr(source, name)) for name in dir(source))
    prefix = f"{namespace}_" if namespace else None
    values = {}
    for name, value in items:
        if prefix is not None:
            if name.startswith(prefix):
                values[name[len(prefix) :].lower()] = value
            continue
        if name.startswith("_") or not name.islower():
            continue
        if _is_code(value) and name not in known:
            continue  # imports and helpers in a config module; routers are settings
        values[name] = value
    return values


def _is_code(value: object) -> bool:
    return isinstance(value, ModuleType) or inspect.isroutine(value) or inspect.isclass(value)


def censor(name: str, value: Any, *, secret: bool = False) -> Any:
    """``value`` with passwords in URLs and secret settings masked."""
    if isinstance(value, str):
        if secret or (any(word in name for word in _SECRET_WORDS) and not name.endswith("_url")):
            return "********" if value else value
        return censor_url(value)
    if isinstance(value, Mapping):
        return {key: censor(str(key), item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(censor(name, item) for item in value)
    return value


def censor_url(url: str) -> str:
    """``url`` with its password replaced by ``**``."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = f"{parts.username or ''}:**@{parts.netloc.rpartition('@')[2]}"
    return urlunsplit(parts._replace(netloc=netloc))
