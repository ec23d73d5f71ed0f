"""Loading models from amcprune checkpoints, run directories and 2021 challenge state dicts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from amcprune.errors import AmcpruneError
from amcprune.models.build import build_model
from amcprune.models.spec import ModelSpec, validate_spec
from amcprune.utils.checkpoint import check_finite_weights, describe_mismatch, load_checkpoint, load_model_state

# Where a run directory keeps its model, in order of preference.
RUN_DIR_CANDIDATES = ("checkpoints/best.pt", "checkpoints/last.pt", "final.pt")


def resolve_checkpoint_path(path: str | os.PathLike) -> Path:
    """``path`` itself for a file; for a run directory its best checkpoint (``RUN_DIR_CANDIDATES`` order)."""
    path = Path(path)
    if not path.exists():
        raise AmcpruneError(f"{path}: no such file or directory")
    if path.is_dir():
        for rel in RUN_DIR_CANDIDATES:
            if (path / rel).is_file():
                return path / rel
        raise AmcpruneError(f"{path}: run directory without a checkpoint (looked for {', '.join(RUN_DIR_CANDIDATES)})")
    return path


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[nn.Module, ModelSpec, dict[str, Any]]:
    """``(model, spec, checkpoint)`` from an amcprune checkpoint file or a run directory.

    The model is rebuilt from ``checkpoint["spec"]``, its state loaded strictly and pruning masks
    (``checkpoint["masks"]``) re-applied. It is returned in eval mode.
    """
    file = resolve_checkpoint_path(path)
    ckpt = load_checkpoint(file, map_location=map_location)
    if "spec" not in ckpt or "model" not in ckpt:
        raise AmcpruneError(
            f"{file}: not an amcprune checkpoint (no model spec); for a bare state dict such as a 2021 challenge "
            "checkpoint pass --arch and the bit widths (--input-bits, --weight-bits, --act-bits)"
        )
    spec = validate_spec(ckpt["spec"], f"{file}: spec")
    model = build_model(spec)
    try:
        load_model_state(model, ckpt["model"], ckpt.get("masks") or None)
    except AmcpruneError as exc:
        raise AmcpruneError(f"{file}: {exc}") from None
    model.to(map_location).eval()
    return model, spec, ckpt


def load_challenge_state_dict(path_or_state: str | os.PathLike | dict[str, torch.Tensor], spec: ModelSpec | dict) -> nn.Module:
    """A model built from ``spec`` with a bare state dict (e.g. a 2021 challenge VGG10) loaded strictly.

    Accepts a file holding a state dict (or a dict with a ``state_dict``/``model`` entry) or the dict itself.
    A mismatch raises ``AmcpruneError`` naming the missing, unexpected and wrongly shaped keys.
    """
    spec = validate_spec(spec)
    source = "state dict"
    if isinstance(path_or_state, dict):
        state = path_or_state
    else:
        source = str(path_or_state)
        state = load_checkpoint(path_or_state)
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state.get(key), dict):
            state = state[key]
            break
    if not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise AmcpruneError(f"{source}: not a state dict (expected a mapping of parameter names to tensors)")
    check_finite_weights(state, source)  # a file was checked on load; a dict handed in directly was not
    model = build_model(spec)
    problem = describe_mismatch(model, state)
    if problem:
        raise AmcpruneError(f"{source} does not fit {spec.arch} {_describe_spec(spec)}: {problem}")
    load_model_state(model, state)
    return model.eval()


def _describe_spec(spec: ModelSpec) -> str:
    if spec.arch == "vgg10":
        return f"(conv_filters={spec.conv_filters}, dense_width={spec.dense_width}, quantized={spec.quantized})"
    return f"(quantized={spec.quantized})"
