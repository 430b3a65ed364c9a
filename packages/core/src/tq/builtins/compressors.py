"""The built-in compressors, from the standard library.

``zlib`` keeps kombu's MIME type ``application/x-gzip`` so compressed messages read the
same in Celery; ``gzip`` is the real gzip format.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import zlib
from collections.abc import Callable
from typing import final


@final
class _Compressor:
    __slots__ = ("_compress", "_decompress", "content_type")

    def __init__(
        self,
        content_type: str,
        compress: Callable[[bytes], bytes],
        decompress: Callable[[bytes], bytes],
    ) -> None:
        self.content_type = content_type
        self._compress = compress
        self._decompress = decompress

    def compress(self, data: bytes) -> bytes:
        return self._compress(data)

    def decompress(self, data: bytes) -> bytes:
        return self._decompress(data)


def zlib_compressor() -> _Compressor:
    return _Compressor("application/x-gzip", zlib.compress, zlib.decompress)


def gzip_compressor() -> _Compressor:
    return _Compressor("application/gzip", gzip.compress, gzip.decompress)


def bz2_compressor() -> _Compressor:
    return _Compressor("application/x-bz2", bz2.compress, bz2.decompress)


def lzma_compressor() -> _Compressor:
    return _Compressor("application/x-lzma", lzma.compress, lzma.decompress)
