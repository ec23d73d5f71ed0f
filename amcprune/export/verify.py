"""Check that an exported ONNX file computes what the PyTorch model computes.

QONNX files run in ``qonnx.core.onnx_exec.execute_onnx`` (the executor FINN and the cost tool
trust), QCDQ files in onnxruntime with every graph optimisation disabled (onnxruntime's default
optimisations fuse QuantizeLinear/DequantizeLinear pairs and change quantized results). Both run
frame by frame at batch 1, the shape the files were exported with.

Tolerance. The exported graph computes the same integer arithmetic as Brevitas, but in a different
floating-point order (BatchNorm is a separate node, scales are applied at other points), so values
agree to about 1e-6 relative. The only legitimate larger difference is an activation that lies on a
rounding boundary of a quantizer and rounds the other way: one quantization step of that
activation, which the following layers turn into a small change of the logits. We therefore accept

- ``max_abs_diff <= atol + rtol * max|logit|`` with ``rtol = 2e-2`` (a few steps of an 8-bit output
  range: 1/127 of the range per step) and ``atol = 1e-4``, and
- argmax agreement >= 0.99, or else every disagreement is a near-tie: the PyTorch top-two logits of
  that frame are closer than the tolerance (a tie broken the other way by rounding noise). With few
  frames (n < 100) this means no real disagreement at all.

A wrong export (a perturbed weight, a mask that was not burned in, a missing BatchNorm) moves the
logits by a sizeable fraction of their range and fails both tests.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from amcprune.errors import AmcpruneError
from amcprune.export.onnx_export import burned_copy
from amcprune.export.onnx_io import read_onnx

RTOL = 2e-2
ATOL = 1e-4
MIN_ARGMAX_AGREEMENT = 0.99

QONNX_OPS = {"Quant", "BipolarQuant", "Trunc", "MultiThreshold"}
QCDQ_OPS = {"QuantizeLinear", "DequantizeLinear"}


@dataclass
class VerifyResult:
    max_abs_diff: float
    argmax_agreement: float
    n: int
    fmt: str = ""
    tolerance: float = 0.0
    unexplained_argmax_mismatches: int = 0
    passed: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


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


def torch_outputs(model: nn.Module, frames: np.ndarray) -> np.ndarray:
    clone = burned_copy(model)
    with torch.no_grad():
        out = clone(torch.from_numpy(frames))
    out = getattr(out, "value", out)
    return out.detach().cpu().numpy().reshape(len(frames), -1).astype(np.float64)


def onnx_outputs(path: str | os.PathLike, frames: np.ndarray, fmt: str | None = None) -> tuple[np.ndarray, str]:
    """Run the ONNX file on each frame (batch 1); returns (outputs (n, classes), format used)."""
    proto, _ = read_onnx(path)
    fmt = fmt or detect_format(proto)
    outputs = []
    if fmt == "qonnx":
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.core.onnx_exec import execute_onnx
        from qonnx.transformation.infer_shapes import InferShapes

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
        import onnxruntime as ort

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


def compare_outputs(reference: np.ndarray, candidate: np.ndarray, fmt: str = "",
                    rtol: float = RTOL, atol: float = ATOL) -> VerifyResult:
    """Compare logits (n, classes) with the tolerance described in the module docstring."""
    if reference.shape != candidate.shape:
        raise AmcpruneError(f"export output shape {candidate.shape} differs from the model's {reference.shape}")
    n = reference.shape[0]
    diff = np.abs(reference - candidate)
    max_abs_diff = float(diff.max()) if diff.size else 0.0
    if not np.isfinite(candidate).all():
        max_abs_diff = float("inf")
    tol = atol + rtol * float(np.abs(reference).max())
    ref_arg = reference.argmax(axis=1)
    cand_arg = candidate.argmax(axis=1)
    agree = ref_arg == cand_arg
    top2 = np.sort(reference, axis=1)[:, -2:] if reference.shape[1] > 1 else np.zeros((n, 2))
    margin = top2[:, 1] - top2[:, 0]
    unexplained = int(np.sum(~agree & (margin > tol)))
    agreement = float(agree.mean())
    passed = max_abs_diff <= tol and (agreement >= MIN_ARGMAX_AGREEMENT or unexplained == 0)
    return VerifyResult(max_abs_diff=max_abs_diff, argmax_agreement=agreement, n=n, fmt=fmt, tolerance=tol,
                        unexplained_argmax_mismatches=unexplained, passed=bool(passed))


def verify_export(model: nn.Module, path: str | os.PathLike, frames, fmt: str | None = None,
                  rtol: float = RTOL, atol: float = ATOL, raise_on_failure: bool = True) -> VerifyResult:
    """Run ``frames`` (n, 2, length) through ``model`` and the exported file and compare the logits.

    ``fmt`` is "qonnx" or "qcdq" (detected from the graph when None). Raises ``AmcpruneError`` when
    the outputs disagree beyond quantization rounding (see the module docstring), unless
    ``raise_on_failure`` is False; the returned result carries ``passed`` either way.
    """
    path = Path(path)
    frames = _as_frames(frames)
    reference = torch_outputs(model, frames)
    candidate, fmt = onnx_outputs(path, frames, fmt)
    result = compare_outputs(reference, candidate, fmt=fmt, rtol=rtol, atol=atol)
    if raise_on_failure and not result.passed:
        raise AmcpruneError(
            f"{path}: the {fmt} export disagrees with the PyTorch model: max abs diff {result.max_abs_diff:.4g} "
            f"(tolerance {result.tolerance:.4g}), argmax agreement {result.argmax_agreement:.4f} over {result.n} frames"
        )
    return result
