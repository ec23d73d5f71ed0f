"""Reading ONNX files safely, and translating 2021 FINN-era QONNX files to what qonnx 1.0 reads.

FINN-era exports (the 2021 challenge submissions) differ from qonnx 1.0 in two ways:

- datatype labels: ``SCALEDINT4`` / ``SCALEDUINT4`` where qonnx 1.0 writes ``SCALEDINT<4>``
  (``DataType["SCALEDINT4"]`` raises, and qonnx 1.0 has no scaled unsigned type at all). The labels live
  in ``graph.quantization_annotation[*].quant_parameter_tensor_names`` under the key ``finn_datatype``,
  and in string node attributes such as MultiThreshold's ``out_dtype``. ``INTn``, ``UINTn``, ``BIPOLAR``,
  ``TERNARY``, ``BINARY`` and ``FLOAT32`` are spelled the same in both.
- custom-op domain: ``finn.custom_op.general`` (also ``finn`` alone in the oldest files) where qonnx
  1.0 wants ``qonnx.custom_op.general``, in the nodes and in ``opset_import``.

The labels must be translated, not dropped: a folded weight initializer whose label is dropped is
billed as FLOAT32 (32 bits per weight, 32 x act bits per MAC). A label qonnx cannot read after
translation is an error naming where it sits, never a silent FLOAT32.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError
from qonnx.core.datatype import DataType

from amcprune.errors import AmcpruneError

QONNX_DOMAIN = "qonnx.custom_op.general"
LEGACY_DOMAINS = {"finn.custom_op.general": QONNX_DOMAIN, "finn": QONNX_DOMAIN}
DATATYPE_KEY = "finn_datatype"

# Every integer label of either era, by one grammar: optional SCALED, optional U, INT, then the width
# bare (FINN: SCALEDINT4, INT4) or in angle brackets (qonnx 1.0: SCALEDINT<4>).
_INT_LABEL = re.compile(r"^(?P<scaled>SCALED)?(?P<unsigned>U)?INT(?:<(?P<bracketed>\d+)>|(?P<bare>\d+))$")
_LEGACY_FIXED = re.compile(r"^FIXED(\d+)_(\d+)$")


def translate_datatype_name(name: str) -> str:
    """A FINN-era datatype label in qonnx 1.0 spelling (``SCALEDUINT4`` -> ``SCALEDINT<4>``).

    Names that are not integer labels (``BIPOLAR``, ``TERNARY``, ``FLOAT32``, ...) are returned
    unchanged; ``_check_datatype_name`` decides whether qonnx reads them.
    """
    m = _INT_LABEL.match(name)
    if m:
        bits = int(m["bracketed"] or m["bare"])
        if m["scaled"]:
            # qonnx 1.0 has one scaled type, ScaledIntType (signed). Its own Quant op labels every scaled
            # output SCALEDINT<n> whether the quantizer is signed or not, and inference_cost bills a
            # datatype by its bit width alone, so SCALEDUINTn -> SCALEDINT<n> bills exactly what a
            # qonnx 1.0 re-export of the same graph bills. UINTn would bill the same bops but claims
            # unscaled integers, so the datatypes qonnx infers downstream would differ from the re-export's.
            return f"SCALEDINT<{bits}>"
        return f"{'U' if m['unsigned'] else ''}INT{bits}"
    m = _LEGACY_FIXED.match(name)
    if m:
        return f"FIXED<{m.group(1)},{m.group(2)}>"
    return name


def _check_datatype_name(name: str, where: str, label: str | None = None) -> None:
    """Raise unless qonnx reads ``name``; ``label`` is the label as the file spells it (for the message)."""
    label = name if label is None else label
    try:
        bits = DataType[name].bitwidth()
    except Exception:  # qonnx's parser raises KeyError, ValueError or worse on labels it does not know
        raise AmcpruneError(f"unknown quantization datatype label {label!r} on {where}") from None
    if bits < 1:  # qonnx reads INT0, and would bill its MACs and weights as free
        raise AmcpruneError(f"quantization datatype label {label!r} on {where} has no bits")


def _translate_label(value: str, where: str) -> tuple[str, bool]:
    new = translate_datatype_name(value)
    _check_datatype_name(new, where, label=value)
    return new, new != value


def translate_legacy(proto: onnx.ModelProto) -> int:
    """Rewrite FINN-era datatype labels and custom-op domains in place; return how many were changed."""
    changed = 0
    graphs = [proto.graph]
    while graphs:
        graph = graphs.pop()
        for ann in graph.quantization_annotation:
            for entry in ann.quant_parameter_tensor_names:
                if entry.key == DATATYPE_KEY:
                    entry.value, rewritten = _translate_label(entry.value, f"tensor {ann.tensor_name!r}")
                    changed += rewritten
        for node in graph.node:
            if node.domain in LEGACY_DOMAINS:
                node.domain = LEGACY_DOMAINS[node.domain]
                changed += 1
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.STRING and "dtype" in attr.name.lower():
                    old = attr.s.decode("utf-8", errors="replace")
                    if node.domain == QONNX_DOMAIN and old:
                        # qonnx reads these labels (MultiThreshold's out_dtype); other domains' are not ours
                        new, rewritten = _translate_label(
                            old, f"attribute {attr.name!r} of node {node.name or node.op_type!r}")
                    else:
                        new = translate_datatype_name(old)
                        rewritten = new != old
                    if rewritten:
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


def looks_like_onnx(path: str | os.PathLike, parse: bool = False) -> bool:
    """Whether ``path`` should be read as ONNX: it parses as an ONNX model (torch checkpoints, zip files and
    pickles never do). Without ``parse`` an ``.onnx`` suffix is taken at its word (a broken ``.onnx`` file then
    fails with the ONNX reader's one-line error, which names the problem better than a checkpoint loader)."""
    path = Path(path)
    if not parse and path.suffix.lower() == ".onnx":
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
            if head.startswith(b"PK") or head.startswith(b"\x80") or os.fstat(fh.fileno()).st_size > (2 << 30):
                return False
            data = head + fh.read()
    except OSError:
        return False
    try:
        parse_onnx_bytes(data, str(path))
    except AmcpruneError:
        return False
    return True
