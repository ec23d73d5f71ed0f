"""Inference cost exactly as the ITU-ML5G-PS-007 challenge scored it.

The figures come from ``qonnx.util.inference_cost.inference_cost(path, preprocess=True,
discount_sparsity=True)`` on the QONNX export (batch 1): ``total_bops`` and ``total_mem_w_bits``.
On top of the tool's totals this module

- counts the weights itself from the quantized weights of the preprocessed graph (the folded
  ``Quant`` outputs that the MAC nodes read), per layer: total and non-zero elements;
- reports each MAC layer's MACs, input and weight datatypes, bops and weight bits;
- warns about what makes the score misleading or costly: a MAC layer whose input or weights are wider
  than 8 bits (not quantized, or a 32-bit sum that was never re-quantized), with its share of the total
  bops; ops the tool does not know (billed zero), a graph without any quantizer, a QCDQ graph
  (sub-8-bit quantizers live in 8-bit containers there and are billed as 8-bit);
- caches results by content (ONNX bytes, or state dict + structure + bit widths of an in-memory
  model) in memory and on disk, so a pruning loop can ask every iteration.

Score = 0.5 * bops / baseline.bops + 0.5 * weight_bits / baseline.weight_bits.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import io
import json
import os
import tempfile
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import qonnx
import torch
from brevitas.proxy.quant_proxy import QuantProxyFromInjector
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.util.inference_cost import inference_cost
from torch import nn
from torch.nn.utils import prune

from amcprune.cost.resolve import load_for_cost
from amcprune.errors import AmcpruneError
from amcprune.export.onnx_export import export_qonnx, input_shape_of
from amcprune.export.onnx_io import parse_onnx_bytes, read_onnx, translate_legacy
from amcprune.models import prunable_layers
from amcprune.utils.atomic import write_json_atomic

# Bumped whenever the cached figures or warnings change meaning (2: MAC-width warnings with bops shares).
CACHE_VERSION = "amcprune-cost/2"
MAC_OPS = ("Conv", "MatMul", "Gemm", "Upsample")
QUANT_OPS = {"Quant", "BipolarQuant", "Trunc", "MultiThreshold", "QuantizeLinear", "DequantizeLinear"}
WIDE_BITS = 8  # a MAC operand wider than this is flagged: the challenge baseline is 8-bit throughout


def qonnx_inference_cost(*args, **kwargs):
    """Indirection to qonnx's tool (tests count the calls through this name)."""
    return inference_cost(*args, **kwargs)


# ---------------------------------------------------------------------------------------------- baseline
@dataclass(frozen=True)
class Baseline:
    """The reference a score is normalised against."""

    bops: float
    weight_bits: float
    name: str = "baseline"

    def score(self, bops: float, weight_bits: float) -> float:
        return 0.5 * bops / self.bops + 0.5 * weight_bits / self.weight_bits


CHALLENGE_BASELINE = Baseline(bops=807_699_904, weight_bits=1_244_936, name="ITU-ML5G-PS-007 VGG10 baseline")


def baseline_from(model_or_path: Any, **kwargs) -> Baseline:
    """A ``Baseline`` from another model's cost (``--baseline FILE``)."""
    res = model_cost(model_or_path, baseline=CHALLENGE_BASELINE, **kwargs)
    if res.bops <= 0 or res.weight_bits <= 0:
        raise AmcpruneError(
            f"baseline {model_or_path}: has {res.bops:g} bops and {res.weight_bits:g} weight bits; "
            "cannot normalise against zero"
        )
    return Baseline(bops=res.bops, weight_bits=res.weight_bits, name=str(model_or_path))


# ---------------------------------------------------------------------------------------------- result
@dataclass
class CostResult:
    bops: float
    weight_bits: float
    score: float
    weights: int
    nonzero_weights: int
    sparsity: float
    per_layer: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    macs: float = 0.0
    baseline: dict = field(default_factory=dict)
    key: str = ""

    def to_dict(self) -> dict:
        out = asdict(self)
        for name in ("bops", "weight_bits", "macs"):
            out[name] = _intify(out[name])
        for layer in out["per_layer"]:
            for name in ("macs", "bops", "weight_bits"):
                layer[name] = _intify(layer[name])
        return out


def _intify(x: float) -> float | int:
    return int(round(x)) if abs(x - round(x)) < 1e-6 else x


def fmt_number(x: float) -> str:
    """How bops, MACs and weight bits are printed (the per-layer table and the warnings quote each other)."""
    return f"{int(round(x)):,}" if abs(x - round(x)) < 1e-6 else f"{x:,.2f}"


def _result(raw: dict, baseline: Baseline) -> CostResult:
    weights = int(raw["weights"])
    nonzero = int(raw["nonzero_weights"])
    return CostResult(
        bops=float(raw["bops"]),
        weight_bits=float(raw["weight_bits"]),
        score=baseline.score(raw["bops"], raw["weight_bits"]),
        weights=weights,
        nonzero_weights=nonzero,
        sparsity=(1.0 - nonzero / weights) if weights else 0.0,
        per_layer=[dict(layer) for layer in raw["per_layer"]],
        warnings=list(raw["warnings"]),
        macs=float(raw["macs"]),
        baseline={"name": baseline.name, "bops": _intify(float(baseline.bops)),
                  "weight_bits": _intify(float(baseline.weight_bits))},
        key=raw.get("key", ""),
    )


# ---------------------------------------------------------------------------------------------- cache
_MEMORY: dict[str, dict] = {}


def cache_dir() -> Path:
    """``$AMCPRUNE_CACHE_DIR`` or ``~/.cache/amcprune/cost``."""
    env = os.environ.get("AMCPRUNE_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "amcprune" / "cost"


def clear_memory_cache() -> None:
    _MEMORY.clear()


def _cache_get(key: str) -> dict | None:
    if key in _MEMORY:
        return _MEMORY[key]
    path = cache_dir() / key[:2] / f"{key}.json"
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict) or raw.get("version") != CACHE_VERSION:
        return None
    _MEMORY[key] = raw
    return raw


def _cache_put(key: str, raw: dict) -> None:
    _MEMORY[key] = raw
    path = cache_dir() / key[:2] / f"{key}.json"
    try:
        write_json_atomic(path, raw)
    except OSError:
        pass  # a read-only or full cache directory only costs speed


def _versions() -> str:
    return f"{CACHE_VERSION}|qonnx={getattr(qonnx, '__version__', '?')}"


def onnx_key(data: bytes) -> str:
    h = hashlib.sha256()
    h.update(_versions().encode())
    h.update(b"|onnx|")
    h.update(data)
    return h.hexdigest()


def module_key(model: nn.Module, input_shape: tuple[int, ...]) -> str:
    """Hash of an in-memory model: structure, state (masks burned in), quantizer bit widths, input shape."""
    h = hashlib.sha256()
    h.update(_versions().encode())
    h.update(b"|module|")
    h.update(repr(model).encode())
    h.update(repr(tuple(input_shape)).encode())
    spec = getattr(model, "spec", None)
    if spec is not None and hasattr(spec, "model_dump_json"):
        h.update(spec.model_dump_json().encode())
    masked = {
        f"{name}.{hook._tensor_name}" if name else hook._tensor_name
        for name, module in model.named_modules()
        for hook in module._forward_pre_hooks.values()
        if isinstance(hook, prune.BasePruningMethod)
    }
    with torch.no_grad():
        state = model.state_dict(keep_vars=False)
        for key in sorted(state):
            value = state[key]
            if key.endswith("_mask") and key[: -len("_mask")] in masked:
                continue
            if key.endswith("_orig") and key[: -len("_orig")] in masked:
                value = value * state[key[: -len("_orig")] + "_mask"]
                key = key[: -len("_orig")]
            h.update(key.encode())
            if isinstance(value, torch.Tensor):
                t = value.detach().cpu().contiguous()
                h.update(str(t.dtype).encode())
                h.update(repr(tuple(t.shape)).encode())
                h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
            else:
                h.update(repr(value).encode())
    # Bit widths live in the quantizer injectors, not in the state dict.
    for name, module in model.named_modules():
        if isinstance(module, QuantProxyFromInjector):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    bw = module.bit_width()
                bw = None if bw is None else float(bw)
            except Exception:
                bw = "?"
            h.update(f"{name}:{bw}:{getattr(module, 'is_quant_enabled', '?')}".encode())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------- analysis
def _parse_unsupported(value: Any) -> list[str]:
    if isinstance(value, (set, list, tuple)):
        return sorted(str(v) for v in value)
    text = str(value or "").strip()
    if text in ("", "set()"):
        return []
    try:
        parsed = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return [text]
    return sorted(str(v) for v in parsed)


def _dtype_bits(name: str) -> int:
    return int(DataType[name].bitwidth())


def _billed_dtypes(cost: dict) -> tuple[str, str] | None:
    """The (input, weight) datatypes qonnx billed a MAC node's ``op_mac_<in>_<w>`` entry at."""
    for key in cost:
        # split as qonnx's compute_bops_and_macs does, so the widths are the ones in its total
        parts = key.split("_")
        if key.startswith("op_mac_") and len(parts) == 4:
            return parts[2], parts[3]
    return None


def _operand(role: str, dtype: str) -> str:
    bits = _dtype_bits(dtype)
    note = ", not quantized" if dtype.startswith("FLOAT") else ""
    return f"{role} {dtype} ({bits} bits{note})"


def _wide_mac_warning(layer: dict, billed: tuple[str, str], total_bops: float) -> str | None:
    """The warning for a MAC layer with an operand wider than ``WIDE_BITS``, from the layer's own row."""
    in_dt, w_dt = billed
    if _dtype_bits(in_dt) <= WIDE_BITS and _dtype_bits(w_dt) <= WIDE_BITS:
        return None
    share = layer["bops"] / total_bops if total_bops else 0.0
    text = (f"{layer['name']} ({layer['op']}): MACs wider than {WIDE_BITS} bits, "
            f"{_operand('input', in_dt)} x {_operand('weights', w_dt)}: {fmt_number(layer['bops'])} bops, "
            f"{100 * share:.2f}% of the total {fmt_number(total_bops)} bops")
    if layer["weight_dtype"].startswith("FLOAT"):
        text += f"; each weight is billed at {_dtype_bits(layer['weight_dtype'])} bits"
    if not in_dt.startswith("FLOAT") and _dtype_bits(in_dt) > WIDE_BITS:
        text += "; a quantizer on its input (e.g. after a residual add or a BatchNorm) would cut this"
    return text


def _weight_tensor(wrapper, node) -> str | None:
    if node.op_type == "Conv":
        return node.input[1] if wrapper.get_initializer(node.input[1]) is not None else None
    if node.op_type in ("MatMul", "Gemm"):
        if wrapper.get_initializer(node.input[1]) is not None:
            return node.input[1]
        if wrapper.get_initializer(node.input[0]) is not None:
            return node.input[0]
    return None


def _analyse(proto, source: str) -> dict:
    """Run qonnx's inference cost on ``proto`` and build the raw (baseline-free) result."""
    warn: list[str] = []
    op_types = {node.op_type for node in proto.graph.node}
    annotated = any(
        entry.key == "finn_datatype" and not entry.value.startswith("FLOAT")
        for ann in proto.graph.quantization_annotation
        for entry in ann.quant_parameter_tensor_names
    )
    if not (op_types & QUANT_OPS) and not annotated:
        warn.append("the model has no quantizers at all: every MAC is billed at 32 x 32 bits and every weight at 32 bits")
    if "QuantizeLinear" in op_types and not (op_types & {"Quant", "BipolarQuant"}):
        warn.append("QCDQ graph: quantizers narrower than 8 bits sit in 8-bit containers here and are billed as 8-bit;"
                    " score the QONNX export instead")

    with tempfile.TemporaryDirectory(prefix="amcprune-cost-") as tmp:
        src = Path(tmp) / "model.onnx"
        pre = Path(tmp) / "preprocessed.onnx"
        src.write_bytes(proto.SerializeToString())
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                res = qonnx_inference_cost(str(src), preprocess=True, discount_sparsity=True,
                                           cost_breakdown=True, output_onnx=str(pre))
        except AmcpruneError:
            raise
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise AmcpruneError(f"{source}: qonnx inference_cost failed on this graph: {type(exc).__name__}: {first}") from None
        wrapper = ModelWrapper(str(pre))

    total = res["total_cost"]
    node_cost = res.get("node_cost", {})
    unsupported = _parse_unsupported(total.get("unsupported"))
    if unsupported:
        warn.append(f"ops the cost tool does not know are billed zero: {', '.join(unsupported)}; "
                    "the score is then not comparable")

    # the one total the "bops:" line, the score and every share in the warnings are taken from
    total_bops = float(total.get("total_bops", 0.0))
    per_layer = []
    weights = nonzero = 0
    for node in wrapper.graph.node:
        if node.op_type not in MAC_OPS:
            continue
        cost = node_cost.get(node.name, {})
        in_dt = wrapper.get_tensor_datatype(node.input[0]).name
        w_dt = wrapper.get_tensor_datatype(node.input[1]).name if len(node.input) > 1 else ""
        wname = _weight_tensor(wrapper, node)
        if wname is not None:
            w = wrapper.get_initializer(wname)
            n_w = int(np.prod(w.shape))
            n_nz = int(np.count_nonzero(w))
            w_dt = wrapper.get_tensor_datatype(wname).name
        else:
            n_w = n_nz = 0
        weights += n_w
        nonzero += n_nz
        layer = {
            "name": node.name,
            "op": node.op_type,
            "macs": float(cost.get("total_macs", 0.0)),
            "input_dtype": in_dt,
            "weight_dtype": w_dt if wname is not None else "",
            "bops": float(cost.get("total_bops", 0.0)),
            "weight_bits": float(cost.get("total_mem_w_bits", 0.0)),
            "weights": n_w,
            "nonzero": n_nz,
        }
        per_layer.append(layer)
        billed = _billed_dtypes(cost) or (in_dt, w_dt)
        wide = _wide_mac_warning(layer, billed, total_bops)
        if wide is not None:
            warn.append(wide)
        if wname is None and node.op_type in ("MatMul", "Gemm", "Conv"):
            warn.append(f"{node.name} ({node.op_type}): has no constant weight; "
                        "its MACs are counted but no weight memory")

    return {
        "version": CACHE_VERSION,
        "bops": total_bops,
        "weight_bits": float(total.get("total_mem_w_bits", 0.0)),
        "macs": float(total.get("total_macs", 0.0)),
        "weights": weights,
        "nonzero_weights": nonzero,
        "per_layer": per_layer,
        "warnings": warn,
        "unsupported": unsupported,
    }


# ---------------------------------------------------------------------------------------------- entry points
def onnx_cost(path_or_bytes: str | os.PathLike | bytes, baseline: Baseline = CHALLENGE_BASELINE,
              use_cache: bool = True) -> CostResult:
    """Cost of an ONNX/QONNX file (old FINN-era labels translated first)."""
    if isinstance(path_or_bytes, (bytes, bytearray)):
        source = "<onnx bytes>"
        proto = parse_onnx_bytes(bytes(path_or_bytes), source)
        translated = translate_legacy(proto)
    else:
        source = str(path_or_bytes)
        proto, translated = read_onnx(path_or_bytes)
    data = proto.SerializeToString()
    key = onnx_key(data)
    raw = _cache_get(key) if use_cache else None
    if raw is None:
        raw = _analyse(proto, source)
        raw["key"] = key
        if translated:
            raw["translated_legacy_labels"] = translated
        if use_cache:
            _cache_put(key, raw)
    return _result(raw, baseline)


def module_cost(model: nn.Module, baseline: Baseline = CHALLENGE_BASELINE, use_cache: bool = True,
                input_shape: tuple[int, ...] | None = None) -> CostResult:
    """Cost of an in-memory model: export to QONNX (masks burned in) and score, cached by content.

    The input shape is ``input_shape``, else (1, 2, ``model.spec.input_length``) for a model built from a
    spec, else (1, 2, 1024).
    """
    shape = input_shape_of(model, input_shape)
    key = module_key(model, shape)
    raw = _cache_get(key) if use_cache else None
    if raw is None:
        with tempfile.TemporaryDirectory(prefix="amcprune-cost-") as tmp:
            path = Path(tmp) / "model.onnx"
            export_qonnx(model, path, input_shape=shape, cleanup=False)  # inference_cost preprocesses itself
            raw = dict(_raw_of(onnx_cost(path, baseline, use_cache=use_cache)))
        raw["key"] = key
        _name_layers(model, raw["per_layer"])
        if use_cache:
            _cache_put(key, raw)
    return _result(raw, baseline)


def _name_layers(model: nn.Module, per_layer: list[dict]) -> None:
    """Add ``module`` (the PyTorch layer name) to each MAC layer when graph and model line up one to one."""
    layers = prunable_layers(model)
    if len(layers) != len(per_layer):
        return
    sizes = [int(getattr(m, "weight_orig", getattr(m, "weight", None)).numel()) for _, m in layers]
    if sizes != [int(layer["weights"]) for layer in per_layer]:
        return
    for (name, _), layer in zip(layers, per_layer):
        layer["module"] = name


def _raw_of(res: CostResult) -> dict:
    return {
        "version": CACHE_VERSION,
        "bops": res.bops,
        "weight_bits": res.weight_bits,
        "macs": res.macs,
        "weights": res.weights,
        "nonzero_weights": res.nonzero_weights,
        "per_layer": res.per_layer,
        "warnings": res.warnings,
        "onnx_key": res.key,
    }


def model_cost(model_or_path: Any, baseline: Baseline = CHALLENGE_BASELINE, use_cache: bool = True,
               input_shape: tuple[int, ...] | None = None) -> CostResult:
    """Cost of an in-memory model, an ONNX/QONNX file, ONNX bytes, or a checkpoint / run directory.

    Checkpoints and run directories go through ``amcprune.models.load_model``; a bare challenge
    state dict needs its architecture (use ``amcprune.cost.resolve.load_for_cost``).
    """
    if isinstance(model_or_path, nn.Module):
        return module_cost(model_or_path, baseline, use_cache=use_cache, input_shape=input_shape)
    if isinstance(model_or_path, (bytes, bytearray)):
        return onnx_cost(model_or_path, baseline, use_cache=use_cache)
    if isinstance(model_or_path, (str, os.PathLike)):
        target = load_for_cost(model_or_path)
        if isinstance(target, nn.Module):
            return module_cost(target, baseline, use_cache=use_cache, input_shape=input_shape)
        return onnx_cost(target, baseline, use_cache=use_cache)
    raise AmcpruneError(f"cannot compute the cost of a {type(model_or_path).__name__}: "
                        "give a model, an ONNX file, a checkpoint or a run directory")
