"""The built-in serializers: ``json`` (the default) and ``pickle`` (refused unless accepted)."""

from __future__ import annotations

import datetime
import decimal
import json
import pickle
import uuid
from typing import Any, final


def _default(obj: Any) -> Any:
    # The types Celery's JSON encoder turns into strings, so task arguments that
    # work there work here.
    if isinstance(obj, datetime.datetime | datetime.date | datetime.time):
        return obj.isoformat()
    if isinstance(obj, uuid.UUID | decimal.Decimal):
        return str(obj)
    if isinstance(obj, set | frozenset):
        return list(obj)
    if hasattr(obj, "__json__"):
        return obj.__json__()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


@final
class JSONSerializer:
    """UTF-8 JSON; datetimes, UUIDs and decimals become strings."""

    content_type = "application/json"
    content_encoding = "utf-8"

    def __init__(self) -> None:
        self._encoder = json.JSONEncoder(default=_default, separators=(",", ":"))

    def dumps(self, obj: Any) -> bytes:
        return self._encoder.encode(obj).encode("utf-8")

    def loads(self, data: bytes) -> Any:
        return json.loads(data)


@final
class PickleSerializer:
    """Python pickle. Decoding pickle runs code: accept it only from trusted producers."""

    content_type = "application/x-python-serialize"
    content_encoding = "binary"

    def dumps(self, obj: Any) -> bytes:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)

    def loads(self, data: bytes) -> Any:
        return pickle.loads(data)
