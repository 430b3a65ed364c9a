"""Messages as transports carry them.

A :class:`Message` is what a producer hands to a transport and what a consumer gets
back: an encoded body plus the headers and properties of Celery's task protocol 2.
On the wire every transport that stores messages as text uses kombu's JSON envelope
(``{"body", "content-encoding", "content-type", "headers", "properties"}`` with the
body base64-encoded), so stored messages read the same across transports and Celery
tools can read them where the key layout matches too.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Final, final

from tq.errors import DecodeError

BODY_ENCODING: Final = "base64"


@final
@dataclass(slots=True)
class Message:
    """One message: an encoded body, its content type, headers and properties.

    ``properties`` holds the AMQP-style properties Celery uses: ``correlation_id``,
    ``reply_to``, ``priority``, ``delivery_mode``, ``delivery_info``
    (``{"exchange", "routing_key"}``) and ``delivery_tag``.
    """

    body: bytes
    content_type: str
    content_encoding: str = "utf-8"
    headers: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)

    @property
    def priority(self) -> int:
        value = self.properties.get("priority")
        return int(value) if value is not None else 0

    @property
    def delivery_tag(self) -> str:
        """A unique tag for this message, assigned when first encoded."""
        tag = self.properties.get("delivery_tag")
        if not tag:
            tag = self.properties["delivery_tag"] = str(uuid.uuid4())
        return str(tag)

    def to_envelope(self) -> dict[str, Any]:
        """The kombu JSON envelope (body base64-encoded)."""
        properties = dict(self.properties)
        properties["body_encoding"] = BODY_ENCODING
        properties.setdefault("delivery_tag", self.delivery_tag)
        return {
            "body": base64.b64encode(self.body).decode("ascii"),
            "content-encoding": self.content_encoding,
            "content-type": self.content_type,
            "headers": self.headers,
            "properties": properties,
        }

    def dumps(self) -> str:
        """The envelope as a JSON string, as stored by text-based transports."""
        return json.dumps(self.to_envelope(), separators=(",", ":"))

    @classmethod
    def from_envelope(cls, envelope: Any) -> Message:
        """Rebuild a message from a kombu envelope; raise :class:`DecodeError` if malformed."""
        if not isinstance(envelope, dict) or "body" not in envelope:
            raise DecodeError("message envelope is not a JSON object with a 'body'")
        properties = envelope.get("properties") or {}
        headers = envelope.get("headers") or {}
        if not isinstance(properties, dict) or not isinstance(headers, dict):
            raise DecodeError("message headers and properties must be JSON objects")
        return cls(
            body=_decode_body(envelope["body"], properties.get("body_encoding")),
            content_type=str(envelope.get("content-type") or "application/data"),
            content_encoding=str(envelope.get("content-encoding") or "binary"),
            headers=headers,
            properties=properties,
        )

    @classmethod
    def loads(cls, raw: str | bytes) -> Message:
        """Parse a stored envelope; raise :class:`DecodeError` if it is not one."""
        try:
            envelope = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise DecodeError(f"message envelope is not valid JSON: {exc}") from exc
        return cls.from_envelope(envelope)


def _decode_body(body: Any, encoding: Any) -> bytes:
    if encoding == BODY_ENCODING:
        if not isinstance(body, str):
            raise DecodeError("base64 message body is not a string")
        try:
            return base64.b64decode(body, validate=True)
        except ValueError as exc:
            raise DecodeError(f"message body is not valid base64: {exc}") from exc
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    raise DecodeError(f"message body has unsupported type {type(body).__name__}")
