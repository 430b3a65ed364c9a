"""The ``compact-json`` serializer: JSON with sorted keys and no whitespace.

Equal payloads always encode to the same bytes, which makes messages easy to hash,
sign or compare.
"""

from __future__ import annotations

import json
from typing import Final, final


@final
class CompactJSON:
    """Serialize to compact, key-sorted UTF-8 JSON."""

    content_type: Final = "application/x-compact-json"
    content_encoding: Final = "utf-8"

    def dumps(self, obj: object) -> bytes:
        """Encode ``obj``; raises ``TypeError`` for values JSON cannot represent."""
        text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return text.encode(self.content_encoding)

    def loads(self, data: bytes) -> object:
        """Decode bytes produced by :meth:`dumps`."""
        return json.loads(data.decode(self.content_encoding))
