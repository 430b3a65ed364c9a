"""What plugins declare: components (named factories) and settings.

Declarations are plain data, so importing a plugin costs nothing: the factory is a
dotted path (``"package.module:attribute"``) imported the first time the component is
used.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Final, Literal, final

from tq.errors import PluginError

ComponentKind = Literal[
    "transport",
    "backend",
    "pool",
    "autoscaler",
    "serializer",
    "compressor",
    "scheduler",
    "bootstep",
    "command",
    "control",
]

KINDS: Final[tuple[ComponentKind, ...]] = (
    "transport",
    "backend",
    "pool",
    "autoscaler",
    "serializer",
    "compressor",
    "scheduler",
    "bootstep",
    "command",
    "control",
)


@final
@dataclass(frozen=True, slots=True)
class Component:
    """A named, lazily imported factory contributed by a plugin.

    Attributes:
        kind: what sort of component it is.
        name: the name users choose it by (``--pool=gevent``, ``serializer='json'``).
        factory: ``"module:attribute"`` imported on first use.
        schemes: URL schemes it serves (transports and backends).
        content_type: MIME type (serializers and compressors).
        doc: one line for ``tq plugins``.
        meta: anything else the kind needs (a bootstep's ``requires``, for instance).
    """

    kind: ComponentKind
    name: str
    factory: str
    schemes: tuple[str, ...] = ()
    content_type: str = ""
    doc: str = ""
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise PluginError(f"unknown component kind {self.kind!r}; expected one of {KINDS}")
        if ":" not in self.factory:
            raise PluginError(
                f"{self.kind} {self.name!r}: factory {self.factory!r} must be 'module:attribute'"
            )

    def load(self) -> Any:
        """Import and return the factory."""
        module_name, _, attribute = self.factory.partition(":")
        try:
            module = importlib.import_module(module_name)
            target: Any = module
            for part in attribute.split("."):
                target = getattr(target, part)
        except (ImportError, AttributeError) as exc:
            raise PluginError(
                f"{self.kind} {self.name!r} cannot be loaded from {self.factory!r}: {exc}"
            ) from exc
        return target


@final
@dataclass(frozen=True, slots=True)
class Setting:
    """A configuration setting a plugin understands.

    ``type`` converts values from ``TQ_*`` environment variables and is what
    ``tq config`` shows; ``secret`` settings are censored when printed.
    """

    name: str
    default: Any
    type: type | tuple[type, ...]
    doc: str
    secret: bool = False
