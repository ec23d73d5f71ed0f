"""Turn what a user points at (run directory, checkpoint, bare state dict, ONNX file) into a model or an ONNX path."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from amcprune.errors import AmcpruneError
from amcprune.export.onnx_io import looks_like_onnx
from amcprune.models import ModelSpec, check_spec_options, load_challenge_state_dict, load_model, spec_from_options
from amcprune.models.spec import OPTION_FLAGS
from amcprune.utils.checkpoint import is_amcprune_checkpoint, load_checkpoint, looks_like_torch_file


def spec_for_state_dict(arch: str, **options: Any) -> ModelSpec:
    """The ``ModelSpec`` a bare state dict is read with (``--arch vgg10 --bits B`` and friends).

    ``options`` are those of :func:`amcprune.models.spec_from_options` (bits, weight_bits, act_bits,
    input_bits, filters, dense, num_classes, ...): ``bits`` sets weights and activations, the input keeps
    ``input_bits`` (default 8), and the defaults are the 2021 challenge baseline's.
    """
    return spec_from_options(arch=arch, source="--arch/--bits options", **options)


def _given(options: dict[str, Any]) -> list[str]:
    return [OPTION_FLAGS.get(k, k) for k, v in options.items() if v is not None and v is not False]


def _load_model(path: Path, options: dict[str, Any]) -> nn.Module:
    model, spec, _ckpt = load_model(path)
    check_spec_options(spec, str(path), **options)
    return model


def _onnx_path(path: Path, options: dict[str, Any]) -> Path:
    if _given(options):
        raise AmcpruneError(f"{path}: is an ONNX file, which carries its own bit widths and shapes; "
                            f"drop {'/'.join(_given(options))}")
    return path


def load_for_cost(path: str | os.PathLike, arch: str | None = None, **spec_options: Any) -> nn.Module | Path:
    """A model to export and score, or the path of an ONNX file to score as is.

    - a directory: a training run (``checkpoints/best.pt`` / ``last.pt``) or a prune run (``final.pt``,
      else ``final.onnx``), through ``amcprune.models.load_model``;
    - an ONNX/QONNX file (old FINN-era ones included): returned as a path;
    - an amcprune checkpoint: loaded with its stored spec;
    - a bare state dict (a 2021 challenge checkpoint): needs ``arch`` plus bit widths/widths
      (``spec_options``: bits, weight_bits, act_bits, input_bits, filters, dense, num_classes).

    For a model that brings its own spec (run directory, amcprune checkpoint) ``arch`` and ``spec_options``
    may only repeat it: an option that disagrees raises ``AmcpruneError``. An ONNX file takes none.
    """
    options = {"arch": arch, **spec_options}
    path = Path(path)
    if not path.exists():
        raise AmcpruneError(f"{path}: no such file or directory")
    if path.is_dir():
        try:
            model, spec, _ckpt = load_model(path)
        except AmcpruneError:
            if (path / "final.onnx").is_file():  # a prune run directory whose checkpoints are gone
                return _onnx_path(path / "final.onnx", options)
            raise
        check_spec_options(spec, str(path), **options)
        return model
    if looks_like_onnx(path):
        return _onnx_path(path, options)
    if not looks_like_torch_file(path):
        raise AmcpruneError(f"{path}: not an ONNX file, nor a readable PyTorch checkpoint")
    obj = load_checkpoint(path)
    if is_amcprune_checkpoint(obj):
        return _load_model(path, options)
    if arch is None:
        raise AmcpruneError(
            f"{path}: is a bare state dict without a model spec; give its architecture, e.g. --arch vgg10 --bits 8"
        )
    spec = spec_for_state_dict(arch, **spec_options)
    try:
        return load_challenge_state_dict(obj, spec)
    except AmcpruneError:
        raise
    except (RuntimeError, KeyError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AmcpruneError(f"{path}: the state dict does not fit {arch}: {first}") from None
