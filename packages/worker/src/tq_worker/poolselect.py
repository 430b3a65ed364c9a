"""Choosing the pool before the user's app is imported, so green pools patch in time.

gevent and eventlet must monkey-patch the standard library before anything creates
sockets, locks or threads, which includes importing the user's app module. ``tq
worker`` therefore decides the pool from ``-P`` or ``TQ_WORKER_POOL`` before it touches
the app, and calls the pool's patch function (``meta={"patch": "module:function"}`` on
its component) first. When only the app's settings name a green pool, it is too late
to patch the running process: the worker re-executes itself with ``TQ_WORKER_POOL``
set, so the new process patches before importing the app.
"""

from __future__ import annotations

import logging
import os
import sys

from tq.app import App
from tq.components import Component
from tq.plugins import Plugins
from tq.settings import environ_snapshot, plugin_autoload_enabled

logger = logging.getLogger("tq.worker")

POOL_ENV = "TQ_WORKER_POOL"


def patch_early(pool: str | None) -> str | None:
    """The pool named by ``-P`` or ``TQ_WORKER_POOL``, patched for if it needs it."""
    name = pool or environ_snapshot().get(POOL_ENV) or None
    if name is None:
        return None
    component = Plugins(autoload=plugin_autoload_enabled()).components("pool").get(name)
    if component is not None and _patcher(component):
        component_patch(component)
    return name


def reexec_if_green(app: App, chosen: str | None) -> None:
    """Re-execute the worker when only the app's settings name a pool that patches."""
    if chosen is not None:
        return
    name = app.conf["worker_pool"]
    component = app.plugins.components("pool").get(name)
    if component is None or not _patcher(component):
        return
    logger.warning("worker_pool is %r: restarting the worker with %s set", name, POOL_ENV)
    env = environ_snapshot()
    env[POOL_ENV] = name
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, sys.orig_argv, env)


def _patcher(component: Component) -> str:
    return str(component.meta.get("patch", ""))


def component_patch(component: Component) -> None:
    """Import and call the pool's patch function."""
    patch = Component("pool", component.name, _patcher(component)).load()
    patch()
