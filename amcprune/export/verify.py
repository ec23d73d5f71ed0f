"""Check that an exported ONNX file computes what the PyTorch model computes.

Like with like. The files are exported at batch 1, so both sides run frame by frame at batch 1: QONNX
files in ``qonnx.core.onnx_exec.execute_onnx`` (the executor FINN and the cost tool trust), QCDQ files in
onnxruntime with every graph optimisation disabled (its default optimisations fuse QuantizeLinear/
DequantizeLinear pairs and change quantized results), and the PyTorch model one frame at a time. Batch
size matters on the PyTorch side alone: its convolutions sum in another order at batch 64 than at batch 1,
and an activation that sits on a rounding boundary of a quantizer then rounds the other way; the logits of
that frame move by one step of that activation carried through the layers after it, many output steps
(``batch_effect`` measures it; docs/cost.md gives figures).

Tolerance, in steps of the output quantizer. The last layer (QuantLinear with an Int32 bias) computes its
logits on the grid of its int32 accumulator: one step is ``q = s_in * s_w``, the scale of its input
activation times the scale of its weights (Brevitas quantizes the bias with exactly that scale), the
smallest change of a logit the quantized arithmetic can make. A correct export computes the same integers
in a different floating-point order, so its logits differ from PyTorch's by float rounding only, far
below one step (figures in docs/cost.md). We accept

- per frame, ``max |logit difference| <= VERIFY_STEPS * q`` (one step; or ``ACCUMULATION_RTOL`` = 1e-5 of
  the largest logit if that is more: float32 accumulation noise of the last layer, which approaches a step
  at 8 bits with large logits), except on at most
  ``floor(MAX_FLIP_FRACTION * n)`` frames (5%: none below 20 frames): a frame beyond one step is either an
  activation on a rounding boundary rounding the other way in the two executors (rare, one frame at a
  time) or a defect, and a defect (a perturbed weight, a mask not burned in, a missing BatchNorm) moves
  the logits of every frame by many steps;
- every argmax disagreement must be a tie: the class each side picks is within that frame's difference
  of the top logit on the other side (exact ties count as agreement).

A float model (no output quantizer) gets ``1e-4 * max(1, max|logit|)`` instead of a step.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from brevitas.nn.quant_layer import QuantWeightBiasInputOutputLayer
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.transformation.infer_shapes import InferShapes
from torch import nn

from amcprune.errors import AmcpruneError
from amcprune.export.onnx_export import burned_copy
from amcprune.export.onnx_io import read_onnx

VERIFY_STEPS = 1.0
MAX_FLIP_FRACTION = 0.05
FLOAT_RTOL = 1e-4
# float32 accumulation of the last layer: up to n_in * 6e-8 of the logit scale (n_in = 128 for VGG10)
ACCUMULATION_RTOL = 1e-5

QONNX_OPS = {"Quant", "BipolarQuant", "Trunc", "MultiThreshold"}
QCDQ_OPS = {"QuantizeLinear", "DequantizeLinear"}


@dataclass
class VerifyResult:
    max_abs_diff: float
    argmax_agreement: float  # ties (equal top logits on one side) count as agreement
    n: int
    fmt: str = ""
    tolerance: float = 0.0  # per logit, absolute: VERIFY_STEPS output steps (or the float tolerance)
    output_step: float | None = None  # q = s_in * s_w of the last layer; None for a float model
    max_diff_steps: float | None = None  # max_abs_diff / output_step
    frames_over_tolerance: int = 0
    allowed_frames_over_tolerance: int = 0
    unexplained_argmax_mismatches: int = 0
    passed: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        steps = f" = {self.max_diff_steps:.3g} output steps" if self.max_diff_steps is not None else ""
        return (f"max abs diff {self.max_abs_diff:.4g}{steps} (tolerance {self.tolerance:.4g} per logit), "
                f"{self.frames_over_tolerance} of {self.n} frames over it ({self.allowed_frames_over_tolerance} allowed), "
                f"argmax agreement {self.argmax_agreement:.4f}")


def detect_format(proto) -> str:
    """"qonnx" if the graph has QONNX custom ops (Quant, ...), else "qcdq" (plain ONNX)."""
    ops = {node.op_type for node in proto.graph.node}
    if ops & QONNX_OPS:
        return "qonnx"
    return "qcdq"


def _as_frames(frames) -> np.ndarray:
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu().numpy()
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim == 2:
        frames = frames[None]
    if frames.ndim != 3:
        raise AmcpruneError(f"verification frames must have shape (n, 2, length), got {frames.shape}")
    if frames.shape[1] != 2 and frames.shape[2] == 2:
        frames = np.ascontiguousarray(frames.transpose(0, 2, 1))
    if frames.shape[0] == 0:
        raise AmcpruneError("no frames to verify the export with")
    return frames


def last_quant_layer(model: nn.Module) -> nn.Module | None:
    """The last Brevitas layer with weights (the one that computes the logits), or None for a float model."""
    layers = [m for m in model.modules() if isinstance(m, QuantWeightBiasInputOutputLayer)]
    return layers[-1] if layers else None


def _as_output(out) -> torch.Tensor:
    return getattr(out, "value", out)


def torch_outputs(model: nn.Module, frames: np.ndarray, batch_size: int = 1) -> tuple[np.ndarray, float | None]:
    """PyTorch logits (n, classes) in batches of ``batch_size``, and the output step ``q`` (None if unknown)."""
    clone = burned_copy(model)
    last = last_quant_layer(clone)
    seen: dict[str, torch.Tensor] = {}

    def grab_input_scale(module, args):
        scale = getattr(args[0], "scale", None) if args else None
        if scale is not None:
            seen["scale"] = scale.detach()

    handle = last.register_forward_pre_hook(grab_input_scale) if last is not None else None
    try:
        with torch.no_grad():
            x = torch.from_numpy(frames)
            outs = [_as_output(clone(x[i : i + batch_size])) for i in range(0, len(x), batch_size)]
            step = None
            if last is not None and "scale" in seen:
                q = seen["scale"].float() * last.quant_weight().scale.detach().float()
                if q.numel() == 1 and float(q) > 0:
                    step = float(q)
    finally:
        if handle is not None:
            handle.remove()
    out = torch.cat(outs).detach().cpu().numpy().reshape(len(frames), -1).astype(np.float64)
    return out, step


def batch_effect(model: nn.Module, frames, batch_size: int = 64) -> dict:
    """How much PyTorch's own logits change between batch ``batch_size`` and batch 1 on ``frames``.

    Returns ``max_abs_diff``, ``frames_differing`` (by more than half an output step: a rounding flip, not
    float noise), ``n``, ``output_step`` and ``max_diff_steps``.
    """
    frames = _as_frames(frames)
    batched, step = torch_outputs(model, frames, batch_size=batch_size)
    single, _ = torch_outputs(model, frames, batch_size=1)
    per_frame = np.abs(batched - single).max(axis=1)
    noise = 0.5 * step if step else FLOAT_RTOL * max(1.0, float(np.abs(single).max()))
    return {
        "n": int(len(frames)),
        "batch_size": int(batch_size),
        "max_abs_diff": float(per_frame.max()),
        "frames_differing": int((per_frame > noise).sum()),
        "output_step": step,
        "max_diff_steps": float(per_frame.max() / step) if step else None,
    }


def onnx_outputs(path: str | os.PathLike, frames: np.ndarray, fmt: str | None = None) -> tuple[np.ndarray, str]:
    """Run the ONNX file on each frame (batch 1); returns (outputs (n, classes), format used)."""
    proto, _ = read_onnx(path)
    fmt = fmt or detect_format(proto)
    outputs = []
    if fmt == "qonnx":
        wrapper = ModelWrapper(proto)
        if not wrapper.check_all_tensor_shapes_specified():
            wrapper = wrapper.transform(InferShapes())
        iname = wrapper.graph.input[0].name
        oname = wrapper.graph.output[0].name
        for frame in frames:
            try:
                res = execute_onnx(wrapper, {iname: frame[None]})
            except Exception as exc:  # the executor raises bare exceptions for malformed graphs
                raise AmcpruneError(f"{path}: qonnx could not execute the graph: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}") from None
            outputs.append(np.asarray(res[oname], dtype=np.float64).reshape(-1))
    elif fmt == "qcdq":
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(proto.SerializeToString(), sess_options=options,
                                           providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise AmcpruneError(f"{path}: onnxruntime cannot load this graph ({str(exc).strip().splitlines()[0]}); "
                                "a QONNX file must be verified with --format qonnx") from None
        iname = session.get_inputs()[0].name
        for frame in frames:
            res = session.run(None, {iname: frame[None]})
            outputs.append(np.asarray(res[0], dtype=np.float64).reshape(-1))
    else:
        raise AmcpruneError(f"unknown export format {fmt!r}: choose qonnx or qcdq")
    return np.stack(outputs), fmt


def _argmax_agrees(a: np.ndarray, b: np.ndarray, slack: np.ndarray) -> np.ndarray:
    """Per frame: one side's pick is within ``slack`` of the top logit of the other side (so ties agree)."""
    rows = np.arange(len(a))
    pick_a, pick_b = a.argmax(axis=1), b.argmax(axis=1)
    return (a.max(axis=1) - a[rows, pick_b] <= slack) | (b.max(axis=1) - b[rows, pick_a] <= slack)


def compare_outputs(reference: np.ndarray, candidate: np.ndarray, fmt: str = "", output_step: float | None = None,
                    steps: float = VERIFY_STEPS, max_flip_fraction: float = MAX_FLIP_FRACTION) -> VerifyResult:
    """Compare logits (n, classes) with the rules of the module docstring."""
    if reference.shape != candidate.shape:
        raise AmcpruneError(f"export output shape {candidate.shape} differs from the model's {reference.shape}")
    n = reference.shape[0]
    diff = np.abs(reference - candidate)
    per_frame = diff.max(axis=1) if diff.size else np.zeros(n)
    per_frame = np.where(np.isfinite(candidate).all(axis=1), per_frame, np.inf)
    max_abs_diff = float(per_frame.max()) if n else 0.0
    largest = float(np.abs(reference).max()) if reference.size else 0.0
    if output_step:
        tol = max(steps * output_step, ACCUMULATION_RTOL * largest)
    else:
        tol = FLOAT_RTOL * max(1.0, largest)
    over = per_frame > tol
    allowed = int(np.floor(max_flip_fraction * n))
    exact_ties = _argmax_agrees(reference, candidate, np.zeros(n))
    # Logits that each move by at most d can swap two classes whose reference logits are within 2 d.
    explained = _argmax_agrees(reference, candidate, 2 * np.maximum(per_frame, tol))
    unexplained = int(np.sum(~explained))
    passed = int(over.sum()) <= allowed and unexplained == 0
    return VerifyResult(
        max_abs_diff=max_abs_diff, argmax_agreement=float(exact_ties.mean()) if n else 1.0, n=n, fmt=fmt,
        tolerance=float(tol), output_step=output_step,
        max_diff_steps=(max_abs_diff / output_step) if output_step else None,
        frames_over_tolerance=int(over.sum()), allowed_frames_over_tolerance=allowed,
        unexplained_argmax_mismatches=unexplained, passed=bool(passed),
    )


def verify_export(model: nn.Module, path: str | os.PathLike, frames, fmt: str | None = None,
                  steps: float = VERIFY_STEPS, raise_on_failure: bool = True) -> VerifyResult:
    """Run ``frames`` (n, 2, length) through ``model`` and the exported file, both at batch 1, and compare.

    ``fmt`` is "qonnx" or "qcdq" (detected from the graph when None). Raises ``AmcpruneError`` when the
    outputs disagree beyond the tolerance of the module docstring (``steps`` output quantization steps),
    unless ``raise_on_failure`` is False; the returned result carries ``passed`` either way.
    """
    path = Path(path)
    frames = _as_frames(frames)
    reference, step = torch_outputs(model, frames, batch_size=1)
    candidate, fmt = onnx_outputs(path, frames, fmt)
    result = compare_outputs(reference, candidate, fmt=fmt, output_step=step, steps=steps)
    if raise_on_failure and not result.passed:
        raise AmcpruneError(f"{path}: the {fmt} export disagrees with the PyTorch model: {result.describe()}")
    return result
