"""Architecture registry: ``@register_arch("name")`` on a builder ``fn(spec) -> nn.Module``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from torch import nn

from amcprune.errors import AmcpruneError

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


def build_model(spec: "ModelSpec | dict") -> nn.Module:
    """A freshly initialised model for ``spec`` (a ``ModelSpec`` or its dict form)."""
    from amcprune.models.spec import validate_spec

    spec = validate_spec(spec)
    try:
        builder = ARCHITECTURES[spec.arch]
    except KeyError:
        raise AmcpruneError(f"unknown arch {spec.arch!r}; available: {', '.join(available_archs())}") from None
    return builder(spec)
