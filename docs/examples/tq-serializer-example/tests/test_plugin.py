"""The plugin, installed, is found through its entry point and works."""

from __future__ import annotations

from tq.plugins import Plugins
from tq_serializer_example.serializer import CompactJSON


def test_compact_json_serializer_is_found_through_its_entry_point() -> None:
    component = Plugins().get("serializer", "compact-json")

    assert component.content_type == "application/x-compact-json"
    assert component.load() is CompactJSON


def test_compact_json_round_trips_task_arguments() -> None:
    serializer = Plugins().get("serializer", "compact-json").load()()
    body = [[2, 3], {"b": "é", "a": None}, {"callbacks": None, "chain": None}]

    encoded = serializer.dumps(body)

    assert encoded == b'[[2,3],{"a":null,"b":"\xc3\xa9"},{"callbacks":null,"chain":null}]'
    assert serializer.loads(encoded) == body
    assert serializer.content_encoding == "utf-8"
