"""Finding the user's app from ``-A/--app``."""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType

from tq.app import App
from tq.errors import ImproperlyConfigured

_CANDIDATE_ATTRIBUTES = ("app", "tq", "application")
_CANDIDATE_SUBMODULES = ("tq", "tasks")


def find_app(reference: str) -> App:
    """Load an app from ``"module"``, ``"module:attribute"`` or ``"package"``.

    Without an attribute the module's ``app`` (or ``tq``) attribute is used, then any
    :class:`App` defined at module level, then the same in ``<package>.tq`` and
    ``<package>.tasks``. The working directory is importable, as with ``python -m``.
    """
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module_name, _, attribute = reference.partition(":")
    module = _import(module_name)
    if attribute:
        found = getattr(module, attribute, None)
        if not isinstance(found, App):
            raise ImproperlyConfigured(
                f"{reference!r} is not a tq.App (got {type(found).__name__})"
            )
        return found
    app = _app_in(module)
    if app is not None:
        return app
    for submodule in _CANDIDATE_SUBMODULES:
        try:
            nested = importlib.import_module(f"{module_name}.{submodule}")
        except ImportError:
            continue
        app = _app_in(nested)
        if app is not None:
            return app
    raise ImproperlyConfigured(
        f"Module {module_name!r} has no tq.App; name it with -A {module_name}:<attribute>"
    )


def _import(module_name: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name or module_name.startswith(f"{exc.name}."):
            raise ImproperlyConfigured(
                f"Cannot find the app module {module_name!r} (looked in {os.getcwd()} "
                "and on sys.path)"
            ) from exc
        raise


def _app_in(module: ModuleType) -> App | None:
    for name in _CANDIDATE_ATTRIBUTES:
        found = getattr(module, name, None)
        if isinstance(found, App):
            return found
    apps = [value for value in vars(module).values() if isinstance(value, App)]
    return apps[0] if len(apps) == 1 else None
