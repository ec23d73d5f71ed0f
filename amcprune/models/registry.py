"""Architecture registry: ``@register_arch("name")`` on a builder ``fn(spec) -> nn.Module``.

``amcprune.models.build.build_model(spec)`` calls the builder (this module cannot import the spec module,
which validates ``arch`` against ``ARCHITECTURES``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from torch import nn

if TYPE_CHECKING:
    from amcprune.models.spec import ModelSpec

Builder = Callable[["ModelSpec"], nn.Module]
ARCHITECTURES: dict[str, Builder] = {}


def register_arch(name: str) -> Callable[[Builder], Builder]:
    """Register a model builder under ``name`` (so ``--arch name`` and ``ModelSpec(arch=name)`` find it)."""

    def decorate(fn: Builder) -> Builder:
        if name in ARCHITECTURES and ARCHITECTURES[name] is not fn:
            raise ValueError(f"architecture {name!r} is already registered")
        ARCHITECTURES[name] = fn
        return fn

    return decorate


def available_archs() -> list[str]:
    return sorted(ARCHITECTURES)
