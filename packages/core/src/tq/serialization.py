"""Encoding message bodies and results with the serializers and compressors plugins provide.

A :class:`Codecs` is built per app from its plugins. Serializers are looked up by name
when encoding (``task_serializer='json'``) and by content type when decoding, and a
decoded content type must be listed in ``accept_content`` (by name or MIME type):
pickle is installed but refused unless a user lists it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any, Protocol, final

from tq.components import Component
from tq.errors import ContentDisallowed, DecodeError, ImproperlyConfigured
from tq.plugins import Plugins


class Serializer(Protocol):
    """What a serializer component's factory returns."""

    content_type: str
    content_encoding: str

    def dumps(self, obj: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


class Compressor(Protocol):
    """What a compressor component's factory returns."""

    content_type: str

    def compress(self, data: bytes) -> bytes: ...

    def decompress(self, data: bytes) -> bytes: ...


@final
class Codecs:
    """The serializers and compressors of one app, imported on first use."""

    def __init__(self, plugins: Plugins) -> None:
        self._plugins = plugins
        self._lock = threading.Lock()
        self._serializers: dict[str, Serializer] = {}
        self._compressors: dict[str, Compressor] = {}

    def serializer(self, name: str) -> Serializer:
        """The serializer called ``name`` (``json``, ``pickle``, a plugin's)."""
        found = self._serializers.get(name)
        if found is None:
            component = self._plugins.get("serializer", name)
            found = self._instantiate(component, self._serializers)
        return found

    def serializer_for(self, content_type: str) -> tuple[str, Serializer]:
        """The name and serializer that decode ``content_type``."""
        for component in self._plugins.components("serializer").values():
            if component.content_type == content_type:
                return component.name, self.serializer(component.name)
        raise DecodeError(f"no serializer is installed for content type {content_type!r}")

    def compressor(self, name: str) -> Compressor:
        """The compressor called ``name`` (``zlib``, ``gzip``, ``bz2``, ``lzma``) or with that MIME type."""
        found = self._compressors.get(name)
        if found is None:
            component = self._compressor_component(name)
            found = self._instantiate(component, self._compressors)
            self._compressors[name] = found
        return found

    def _compressor_component(self, name: str) -> Component:
        components = self._plugins.components("compressor")
        if name in components:
            return components[name]
        for component in components.values():
            if component.content_type == name:
                return component
        return self._plugins.get("compressor", name)

    def _instantiate(self, component: Component, cache: dict[str, Any]) -> Any:
        with self._lock:
            if component.name not in cache:
                cache[component.name] = component.load()()
            return cache[component.name]

    # -- encode / decode ---------------------------------------------------------

    def encode(self, obj: Any, serializer: str) -> tuple[bytes, str, str]:
        """``obj`` as ``(body, content_type, content_encoding)``."""
        codec = self.serializer(serializer)
        try:
            body = codec.dumps(obj)
        except (TypeError, ValueError) as exc:
            raise ImproperlyConfigured(
                f"Cannot serialize {type(obj).__name__} with {serializer!r}: {exc}. "
                "Pass JSON-compatible values, or choose another serializer."
            ) from exc
        return body, codec.content_type, codec.content_encoding

    def decode(self, body: bytes, content_type: str, accept: frozenset[str]) -> Any:
        """Decode ``body``; :class:`ContentDisallowed` unless its type is accepted."""
        name, codec = self.serializer_for(content_type)
        if name not in accept and content_type not in accept:
            raise ContentDisallowed(
                f"refusing to decode {content_type!r} ({name}): not in accept_content "
                f"{sorted(accept)}"
            )
        try:
            return codec.loads(body)
        except Exception as exc:
            raise DecodeError(f"cannot decode {content_type} body: {exc}") from exc

    def compress(self, body: bytes, name: str) -> tuple[bytes, str]:
        """``body`` compressed, with the MIME type for the ``compression`` header."""
        compressor = self.compressor(name)
        return compressor.compress(body), compressor.content_type

    def decompress(self, body: bytes, content_type: str) -> bytes:
        """Undo :meth:`compress` given the ``compression`` header's value."""
        try:
            return self.compressor(content_type).decompress(body)
        except DecodeError:
            raise
        except Exception as exc:
            raise DecodeError(f"cannot decompress {content_type} body: {exc}") from exc


def accepted(names: Iterable[str]) -> frozenset[str]:
    """An ``accept_content`` list as a set of names and MIME types."""
    return frozenset(names)
