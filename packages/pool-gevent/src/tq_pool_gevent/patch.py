"""Monkey-patching for the gevent pool, called by ``tq worker`` before the app loads."""

from __future__ import annotations


def patch() -> None:
    """Make the standard library cooperative (sockets, threads, ``time.sleep``...)."""
    from gevent import monkey  # type: ignore[import-untyped, import-not-found, unused-ignore]

    monkey.patch_all()
