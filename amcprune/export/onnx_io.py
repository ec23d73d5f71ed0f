"""Reading ONNX files safely, and translating 2021 FINN-era QONNX files to what qonnx 1.0 reads.

FINN-era exports (the 2021 challenge submissions) differ from qonnx 1.0 in two ways:

- datatype labels: ``SCALEDINT4`` where qonnx 1.0 writes ``SCALEDINT<4>`` (``DataType["SCALEDINT4"]``
  raises). The labels live in ``graph.quantization_annotation[*].quant_parameter_tensor_names`` under
  the key ``finn_datatype``, and in string node attributes such as MultiThreshold's ``out_dtype``.
- custom-op domain: ``finn.custom_op.general`` (also ``finn`` alone in the oldest files) where qonnx
  1.0 wants ``qonnx.custom_op.general``, in the nodes and in ``opset_import``.

The labels must be translated, not dropped: a folded weight initializer whose label is dropped is
billed as FLOAT32 (32 bits per weight, 32 x act bits per MAC).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from amcprune.errors import AmcpruneError

QONNX_DOMAIN = "qonnx.custom_op.general"
LEGACY_DOMAINS = {"finn.custom_op.general": QONNX_DOMAIN, "finn": QONNX_DOMAIN}
DATATYPE_KEY = "finn_datatype"

_LEGACY_SCALED = re.compile(r"^SCALEDINT(\d+)$")
_LEGACY_FIXED = re.compile(r"^FIXED(\d+)_(\d+)$")


def translate_datatype_name(name: str) -> str:
    """``SCALEDINT4`` -> ``SCALEDINT<4>``; names qonnx already reads are returned unchanged."""
    m = _LEGACY_SCALED.match(name)
    if m:
        return f"SCALEDINT<{m.group(1)}>"
    m = _LEGACY_FIXED.match(name)
    if m:
        return f"FIXED<{m.group(1)},{m.group(2)}>"
    return name


def _check_datatype_name(name: str, where: str) -> None:
    from qonnx.core.datatype import DataType

    try:
        DataType[name]
    except (KeyError, ValueError):
        raise AmcpruneError(f"unknown quantization datatype label {name!r} on {where}") from None


def translate_legacy(proto: onnx.ModelProto) -> int:
    """Rewrite FINN-era datatype labels and custom-op domains in place; return how many were changed."""
    changed = 0
    graphs = [proto.graph]
    while graphs:
        graph = graphs.pop()
        for ann in graph.quantization_annotation:
            for entry in ann.quant_parameter_tensor_names:
                if entry.key == DATATYPE_KEY:
                    new = translate_datatype_name(entry.value)
                    if new != entry.value:
                        entry.value = new
                        changed += 1
                    _check_datatype_name(entry.value, f"tensor {ann.tensor_name!r}")
        for node in graph.node:
            if node.domain in LEGACY_DOMAINS:
                node.domain = LEGACY_DOMAINS[node.domain]
                changed += 1
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.STRING and "dtype" in attr.name.lower():
                    old = attr.s.decode("utf-8", errors="replace")
                    new = translate_datatype_name(old)
                    if new != old:
                        attr.s = new.encode()
                        changed += 1
                elif attr.type == onnx.AttributeProto.GRAPH:
                    graphs.append(attr.g)
                elif attr.type == onnx.AttributeProto.GRAPHS:
                    graphs.extend(attr.graphs)
    present = {op.domain for op in proto.opset_import}
    for op in list(proto.opset_import):
        if op.domain in LEGACY_DOMAINS:
            target = LEGACY_DOMAINS[op.domain]
            changed += 1
            if target in present:
                proto.opset_import.remove(op)
            else:
                op.domain = target
                present.add(target)
    return changed


def parse_onnx_bytes(data: bytes, name: str = "<bytes>") -> onnx.ModelProto:
    """Parse and sanity-check ONNX bytes; anything that is not a usable model raises ``AmcpruneError``."""
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise AmcpruneError(f"{name}: not a readable ONNX model ({str(exc).strip() or type(exc).__name__})") from None
    if not proto.HasField("graph") or len(proto.graph.node) == 0:
        raise AmcpruneError(f"{name}: not an ONNX model (no graph nodes; is the file truncated or of another kind?)")
    if len(proto.graph.input) == 0 or len(proto.graph.output) == 0:
        raise AmcpruneError(f"{name}: not a usable ONNX model (the graph has no inputs or no outputs)")
    if proto.ir_version <= 0:
        raise AmcpruneError(f"{name}: not an ONNX model (no IR version)")
    return proto


def read_onnx(path: str | os.PathLike, translate: bool = True) -> tuple[onnx.ModelProto, int]:
    """Load an ONNX file (legacy labels translated when ``translate``); returns (model, number of translations)."""
    path = Path(path)
    if not path.exists():
        raise AmcpruneError(f"{path}: no such file")
    if path.is_dir():
        raise AmcpruneError(f"{path}: is a directory, expected an ONNX file")
    proto = parse_onnx_bytes(path.read_bytes(), str(path))
    changed = translate_legacy(proto) if translate else 0
    return proto, changed


def looks_like_onnx(path: str | os.PathLike) -> bool:
    """Cheap guess: ``.onnx`` suffix, or not a zip/pickle (torch checkpoints are zip files)."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError:
        return False
    return not (head.startswith(b"PK") or head.startswith(b"\x80"))
