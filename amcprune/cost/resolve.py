"""Turn what a user points at (run directory, checkpoint, bare state dict, ONNX file) into a model or an ONNX path."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from amcprune.errors import AmcpruneError
from amcprune.export.onnx_io import looks_like_onnx


def spec_for_state_dict(arch: str, bits: int | None = None, weight_bits: int | None = None,
                        act_bits: int | None = None, input_bits: int | None = None,
                        filters: int | list[int] | None = None, dense: int | list[int] | None = None,
                        num_classes: int | None = None):
    """The ``ModelSpec`` a bare state dict is read with (``--arch vgg10 --bits B`` and friends)."""
    from amcprune.models import validate_spec

    data: dict[str, Any] = {"arch": arch, "quantized": True}
    for key, value in (("weight_bits", weight_bits), ("act_bits", act_bits), ("input_bits", input_bits)):
        chosen = value if value is not None else bits
        if chosen is not None:
            data[key] = int(chosen)
    if filters is not None:
        data["conv_filters"] = filters
    if dense is not None:
        data["dense_width"] = dense
    if num_classes is not None:
        data["num_classes"] = num_classes
    return validate_spec(data, "--arch/--bits options")


def _load_model(path: Path) -> nn.Module:
    from amcprune.models import load_model  # provided by the models stage

    model, _spec, _ckpt = load_model(path)
    return model


def load_for_cost(path: str | os.PathLike, arch: str | None = None, **spec_options) -> nn.Module | Path:
    """A model to export and score, or the path of an ONNX file to score as is.

    - a directory: a training run (``checkpoints/best.pt`` / ``last.pt``) or a prune run (``final.pt``,
      else ``final.onnx``), through ``amcprune.models.load_model``;
    - an ONNX/QONNX file (old FINN-era ones included): returned as a path;
    - an amcprune checkpoint: loaded with its stored spec;
    - a bare state dict (a 2021 challenge checkpoint): needs ``arch`` plus bit widths/widths
      (``spec_options``: bits, weight_bits, act_bits, input_bits, filters, dense, num_classes).
    """
    from amcprune.utils.checkpoint import is_amcprune_checkpoint, load_checkpoint, looks_like_torch_file

    path = Path(path)
    if not path.exists():
        raise AmcpruneError(f"{path}: no such file or directory")
    if path.is_dir():
        try:
            return _load_model(path)
        except AmcpruneError:
            if (path / "final.onnx").is_file():  # a prune run directory whose checkpoints are gone
                return path / "final.onnx"
            raise
    if looks_like_onnx(path):
        return path
    if not looks_like_torch_file(path):
        raise AmcpruneError(f"{path}: not an ONNX file, nor a readable PyTorch checkpoint")
    obj = load_checkpoint(path)
    if is_amcprune_checkpoint(obj):
        if arch is not None:
            raise AmcpruneError(f"{path}: is an amcprune checkpoint with its own spec; drop --arch and the bit options")
        return _load_model(path)
    if arch is None:
        raise AmcpruneError(
            f"{path}: is a bare state dict without a model spec; give its architecture, e.g. --arch vgg10 --bits 8"
        )
    spec = spec_for_state_dict(arch, **spec_options)
    from amcprune.models import load_challenge_state_dict  # provided by the models stage

    try:
        return load_challenge_state_dict(obj, spec)
    except AmcpruneError:
        raise
    except (RuntimeError, KeyError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AmcpruneError(f"{path}: the state dict does not fit {arch}: {first}") from None
