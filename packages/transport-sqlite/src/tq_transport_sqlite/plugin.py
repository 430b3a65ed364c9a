"""Declares the ``sqlite://`` transport; the transport module loads on first use."""

from __future__ import annotations

from tq.components import Component
from tq.hookspecs import hookimpl


@hookimpl
def tq_transports() -> list[Component]:
    """The SQLite broker, chosen by ``sqlite://`` broker URLs."""
    return [
        Component(
            kind="transport",
            name="sqlite",
            factory="tq_transport_sqlite.transport:SQLiteTransport",
            schemes=("sqlite",),
            doc="Durable queues in one SQLite file shared by local processes (the default).",
        )
    ]
