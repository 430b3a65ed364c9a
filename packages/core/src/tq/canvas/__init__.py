"""Signatures and the workflow primitives built on them (Celery's canvas).

``from tq.canvas import Signature, chain, group, chord`` — see ``docs/canvas.md``.
"""

from tq.canvas.primitives import chain, chord, chunks, group, xmap, xstarmap
from tq.canvas.signature import Signature, as_signature_dicts, signature

__all__ = [
    "Signature",
    "as_signature_dicts",
    "chain",
    "chord",
    "chunks",
    "group",
    "signature",
    "xmap",
    "xstarmap",
]
