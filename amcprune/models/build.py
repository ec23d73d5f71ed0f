"""``build_model(spec)``: a fresh model for a ``ModelSpec``, carrying that spec as ``model.spec``."""

from __future__ import annotations

from torch import nn

from amcprune.errors import AmcpruneError
from amcprune.models.registry import ARCHITECTURES, available_archs
from amcprune.models.spec import ModelSpec, validate_spec


def build_model(spec: ModelSpec | dict) -> nn.Module:
    """A freshly initialised model for ``spec`` (a ``ModelSpec`` or its dict form).

    The model carries the validated spec as ``model.spec`` (a plain attribute: not in the state dict, kept by
    ``copy.deepcopy``), so export and cost use its ``input_length`` and bit widths. Code that changes the
    model's shape in place (structured pruning) must set ``model.spec`` to the new spec.
    """
    spec = validate_spec(spec)
    try:
        builder = ARCHITECTURES[spec.arch]
    except KeyError:
        raise AmcpruneError(f"unknown arch {spec.arch!r}; available: {', '.join(available_archs())}") from None
    return attach_spec(builder(spec), spec)


def attach_spec(model: nn.Module, spec: ModelSpec) -> nn.Module:
    """Set ``model.spec = spec`` and return ``model``."""
    model.spec = spec
    return model


def spec_of(model: nn.Module) -> ModelSpec | None:
    """The ``ModelSpec`` a model carries (None for a model not built by ``build_model``)."""
    spec = getattr(model, "spec", None)
    return spec if isinstance(spec, ModelSpec) else None
