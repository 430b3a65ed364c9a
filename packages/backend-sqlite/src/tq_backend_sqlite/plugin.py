"""Declares the ``sqlite://`` result backend; the backend module loads on first use."""

from __future__ import annotations

from tq.components import Component
from tq.hookspecs import hookimpl


@hookimpl
def tq_result_backends() -> list[Component]:
    """The SQLite result backend, chosen by ``sqlite://`` result backend URLs."""
    return [
        Component(
            kind="backend",
            name="sqlite",
            factory="tq_backend_sqlite.backend:SQLiteBackend",
            schemes=("sqlite",),
            doc="Results in one SQLite file shared by local processes (the default).",
        )
    ]
