"""Export a (possibly pruned) Brevitas model to QONNX or QCDQ ONNX.

Both exports run on a *copy* of the model with every ``torch.nn.utils.prune`` mask burned in
(``prune.remove``), on the CPU, in eval mode and with batch size 1, so the caller's model keeps its
masks, device and training mode. Files are written atomically.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import warnings
from pathlib import Path

import torch
from brevitas.export import export_onnx_qcdq
from brevitas.export import export_qonnx as brevitas_export_qonnx
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.util.cleanup import cleanup_model
from torch import nn
from torch.nn.utils import prune

from amcprune.errors import AmcpruneError
from amcprune.utils.atomic import atomic_path

FORMATS = ("qonnx", "qcdq")
DEFAULT_INPUT_SHAPE = (1, 2, 1024)


def input_shape_of(model: nn.Module, input_shape: tuple[int, ...] | None = None) -> tuple[int, ...]:
    """The batch-1 input shape used for export and cost: explicit, else (1, 2, ``model.spec.input_length``) for a
    model built from a ``ModelSpec`` (``build_model`` sets ``model.spec``), else (1, 2, 1024)."""
    if input_shape is not None:
        return tuple(int(s) for s in input_shape)
    spec = getattr(model, "spec", None)
    length = getattr(spec, "input_length", None)
    if isinstance(length, int) and length > 0:
        return (1, 2, length)
    return DEFAULT_INPUT_SHAPE


def pruned_parameters(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """(module, parameter name) for every live ``torch.nn.utils.prune`` reparametrisation in ``model``."""
    found = []
    for module in model.modules():
        for hook in module._forward_pre_hooks.values():
            if isinstance(hook, prune.BasePruningMethod):
                found.append((module, hook._tensor_name))
    return found


def burned_copy(model: nn.Module) -> nn.Module:
    """A CPU deep copy of ``model`` in eval mode with every pruning mask made permanent.

    A model with live masks cannot be deep-copied after a training forward pass (the masked
    ``weight`` is then a non-leaf tensor); recomputing ``weight = weight_orig * weight_mask`` under
    ``no_grad`` first makes it a plain tensor again, without running the model.
    """
    with torch.no_grad():
        for module, name in pruned_parameters(model):
            for hook in module._forward_pre_hooks.values():
                if isinstance(hook, prune.BasePruningMethod) and hook._tensor_name == name:
                    setattr(module, name, hook.apply_mask(module))
        clone = copy.deepcopy(model)
    clone = clone.cpu()
    for module, name in pruned_parameters(clone):
        prune.remove(module, name)
    clone.eval()
    return clone


@contextlib.contextmanager
def _quiet_export():
    """Silence the exporters' chatter (TracerWarnings, deprecation notes) on stdout/stderr."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.redirect_stdout(io.StringIO()):
            yield


def _check_model(model: nn.Module) -> None:
    if not isinstance(model, nn.Module):
        raise AmcpruneError(f"expected a PyTorch model to export, got {type(model).__name__}")


def export_qonnx(model: nn.Module, path: str | os.PathLike, input_shape: tuple[int, ...] | None = None,
                 cleanup: bool = True) -> Path:
    """Export ``model`` as QONNX (Brevitas ``Quant`` nodes), batch 1, masks burned in.

    With ``cleanup`` (default) the graph goes through ``qonnx.util.cleanup.cleanup_model`` (shape
    inference, constant folding that keeps the ``Quant`` nodes, unique and readable names): the
    form that FINN's ``ConvertQONNXtoFINN`` and qonnx's ``inference_cost`` expect.
    """

    def tidy(tmp: Path) -> None:
        if cleanup:
            cleanup_model(ModelWrapper(str(tmp))).save(str(tmp))

    return _export(model, path, brevitas_export_qonnx, input_shape, tidy)


def export_qcdq(model: nn.Module, path: str | os.PathLike, input_shape: tuple[int, ...] | None = None) -> Path:
    """Export ``model`` as standard ONNX with QuantizeLinear/Clip/DequantizeLinear (runs in onnxruntime)."""
    return _export(model, path, export_onnx_qcdq, input_shape)


def _export(model: nn.Module, path: str | os.PathLike, exporter, input_shape: tuple[int, ...] | None,
            post=None) -> Path:
    """Run a Brevitas ``exporter`` on a mask-free eval copy of ``model`` into ``path`` atomically; ``post``
    may rewrite the temporary file before it is renamed into place."""
    _check_model(model)
    shape = input_shape_of(model, input_shape)
    clone = burned_copy(model)
    path = Path(path)
    with atomic_path(path, suffix=".onnx") as tmp:
        with _quiet_export():
            exporter(clone, input_t=torch.zeros(shape), export_path=str(tmp), dynamo=False)
        if post is not None:
            post(tmp)
    return path


def export_model(model: nn.Module, path: str | os.PathLike, fmt: str = "qonnx",
                 input_shape: tuple[int, ...] | None = None) -> Path:
    """Export in ``fmt`` ("qonnx" or "qcdq")."""
    if fmt == "qonnx":
        return export_qonnx(model, path, input_shape=input_shape)
    if fmt == "qcdq":
        return export_qcdq(model, path, input_shape=input_shape)
    raise AmcpruneError(f"unknown export format {fmt!r}: choose one of {', '.join(FORMATS)}")
