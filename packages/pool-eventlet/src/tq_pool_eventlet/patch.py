"""Monkey-patching for the eventlet pool, called by ``tq worker`` before the app loads."""

from __future__ import annotations


def patch() -> None:
    """Make the standard library cooperative (sockets, threads, ``time.sleep``...)."""
    import eventlet  # type: ignore[import-untyped, import-not-found, unused-ignore]

    eventlet.monkey_patch()
