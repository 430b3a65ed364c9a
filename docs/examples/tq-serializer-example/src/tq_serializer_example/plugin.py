"""Hook implementations: what this plugin adds to tq.

Kept cheap to import: it only declares the component. The serializer module is
imported the first time an app uses ``compact-json``.
"""

from __future__ import annotations

from tq.components import Component
from tq.hookspecs import hookimpl

CONTENT_TYPE = "application/x-compact-json"


@hookimpl
def tq_serializers() -> list[Component]:
    """Declare the ``compact-json`` serializer."""
    return [
        Component(
            kind="serializer",
            name="compact-json",
            factory="tq_serializer_example.serializer:CompactJSON",
            content_type=CONTENT_TYPE,
            doc="JSON with sorted keys and no spaces",
        )
    ]
