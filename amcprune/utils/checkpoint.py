"""The one checkpoint format every stage reads and writes.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts so that it loads with
``torch.load(weights_only=True)``: nothing in it can run code. Its keys:

- ``format``: ``CHECKPOINT_FORMAT``
- ``spec``: the model spec as a plain dict (``ModelSpec.model_dump()``), enough to rebuild the model
- ``model``: the state dict with pruning masks *burned in* (plain ``weight`` keys, zeros where pruned),
  so it loads into a freshly built model and into tools that know nothing of masks
- ``masks``: ``{"<module>.<param>": bool tensor}`` for parameters that carry a live pruning mask,
  re-applied with ``torch.nn.utils.prune.custom_from_mask`` on load so that pruned weights stay zero
- any stage-specific extras (optimizer, scheduler, RNG states, epoch, data fingerprint, metrics, ...)
"""

from __future__ import annotations

import os
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune

from amcprune.errors import AmcpruneError
from amcprune.export.onnx_io import looks_like_onnx
from amcprune.utils.atomic import atomic_path

CHECKPOINT_FORMAT = "amcprune-checkpoint/1"


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Write ``payload`` atomically (temporary file, fsync, rename)."""
    payload = {"format": CHECKPOINT_FORMAT, **payload}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _torch_file_head(head: bytes) -> bool:
    # torch.save writes a zip archive (a pickle in torch < 1.6); anything else is not a checkpoint
    return head.startswith(b"PK") or head.startswith(b"\x80")


def looks_like_torch_file(path: str | os.PathLike) -> bool:
    """Whether the file starts like something ``torch.save`` wrote (it may still fail to load)."""
    with open(path, "rb") as fh:
        return _torch_file_head(fh.read(2))


def _not_a_checkpoint(path: Path, detail: str) -> AmcpruneError:
    if looks_like_onnx(path, parse=True):
        return AmcpruneError(
            f"{path}: is an ONNX file, not a PyTorch checkpoint; this command needs an amcprune checkpoint or run "
            "directory (ONNX files are read by `amcprune cost`)"
        )
    return AmcpruneError(f"{path}: not a readable PyTorch checkpoint ({detail})")


def _state_tensors(obj: dict) -> dict[str, Any]:
    """The weights of a loaded checkpoint: ``model`` of an amcprune checkpoint, else the state dict itself."""
    for key in ("model", "state_dict", "model_state_dict"):
        if isinstance(obj.get(key), dict):
            return obj[key]
    return obj


def check_finite_weights(state: dict[str, Any], source: str) -> None:
    """Raise unless every floating-point tensor of ``state`` is finite (a diverged run saves NaN weights)."""
    bad = [
        (key, int((~torch.isfinite(value)).sum()))
        for key, value in state.items()
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all())
    ]
    if bad:
        key, count = bad[0]
        more = f" and {len(bad) - 1} more tensor(s)" if len(bad) > 1 else ""
        raise AmcpruneError(
            f"{source}: non-finite weights (NaN or Inf): {count} value(s) in {key}{more}; "
            "the model is unusable (did its training diverge?)"
        )


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint or bare state dict with ``weights_only=True``, turning failures into one line.

    A checkpoint whose weights hold NaN or Inf is refused: evaluating, scoring, exporting or training from
    it would only produce chance accuracy or ``loss nan`` with exit 0.
    """
    path = Path(path)
    if not path.exists():
        raise AmcpruneError(f"{path}: no such file")
    if path.is_dir():
        raise AmcpruneError(f"{path}: is a directory, expected a checkpoint file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
    except OSError as exc:
        raise AmcpruneError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not head:
        raise AmcpruneError(f"{path}: is empty, not a checkpoint")
    if not _torch_file_head(head):
        raise _not_a_checkpoint(path, "neither a zip archive nor a pickle")
    try:
        with warnings.catch_warnings():
            # torch warns about pickle protocols > 2 before failing; the error below says all that matters.
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message opens with advice to retry with weights_only=False: exactly what must not be
        # done with an untrusted file. Keep only the line that names the refused object.
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        named = next((line for line in lines if "GLOBAL" in line or "Unsupported" in line), "")
        raise AmcpruneError(
            f"{path}: refused to load: it holds Python objects that weights_only loading does not allow "
            f"(a checkpoint must hold only tensors and plain containers; this one may run code)"
            + (f": {named}" if named else "")
        ) from None
    except Exception as exc:  # torch.load raises KeyError, RuntimeError, EOFError, ... on foreign bytes
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _not_a_checkpoint(path, first) from None
    if not isinstance(obj, dict):
        raise AmcpruneError(f"{path}: expected a checkpoint dict or a state dict, found {type(obj).__name__}")
    check_finite_weights(_state_tensors(obj), str(path))
    return obj


def is_amcprune_checkpoint(obj: dict) -> bool:
    return obj.get("format") == CHECKPOINT_FORMAT


def split_masks(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Turn a state dict with live ``*_orig``/``*_mask`` pairs into (burned state dict, masks)."""
    burned: dict[str, torch.Tensor] = {}
    masks: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.endswith("_mask") and key[: -len("_mask")] + "_orig" in state:
            continue
        if key.endswith("_orig") and key[: -len("_orig")] + "_mask" in state:
            name = key[: -len("_orig")]
            mask = state[name + "_mask"]
            burned[name] = (value * mask).detach().clone()
            masks[name] = mask.detach().bool().clone()
        else:
            burned[key] = value.detach().clone() if isinstance(value, torch.Tensor) else value
    return burned, masks


def model_state(model: nn.Module) -> dict[str, Any]:
    """The ``model`` and ``masks`` entries of a checkpoint for ``model`` (masks burned in)."""
    burned, masks = split_masks(model.state_dict())
    return {"model": burned, "masks": masks}


def describe_mismatch(model: nn.Module, state: dict[str, torch.Tensor]) -> str:
    """Name the layers where ``state`` does not fit ``model`` (missing, unexpected, wrong shape)."""
    expected = split_masks(model.state_dict())[0]
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} (checkpoint {tuple(state[k].shape)}, model {tuple(expected[k].shape)})"
        for k in expected
        if k in state and isinstance(state[k], torch.Tensor) and state[k].shape != expected[k].shape
    ]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
        if items:
            shown = ", ".join(items[:6]) + (f" and {len(items) - 6} more" if len(items) > 6 else "")
            parts.append(f"{label}: {shown}")
    return "; ".join(parts)


def load_model_state(model: nn.Module, state: dict[str, torch.Tensor], masks: dict[str, torch.Tensor] | None = None) -> None:
    """Load a burned state dict strictly into a mask-free ``model``, then re-apply ``masks``."""
    problem = describe_mismatch(model, state)
    if problem:
        raise AmcpruneError(f"checkpoint does not fit the model: {problem}")
    model.load_state_dict(state, strict=True)
    modules = dict(model.named_modules())
    for name, mask in (masks or {}).items():
        module_name, _, param = name.rpartition(".")
        prune.custom_from_mask(modules[module_name], param, mask.to(getattr(modules[module_name], param).device))
