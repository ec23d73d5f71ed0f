"""Records of a prune run: measured weight counts, ``records.jsonl`` (fsync per line) and ``records.csv``.

Weight counts are always *measured* on the model: the total and non-zero weights of the prunable layers after
the weight quantizer (a weight that rounds to 0 costs nothing in the challenge score), and the unmasked count
(after the pruning masks, before quantization). The compression ratio is ``dense weights / non-zero
weights`` where the dense weights are those of the starting model; the ratio a formula would claim,
``prod 1/(1-p_k)`` over the rates applied, is written beside it (the published FMP script reported only the
formula, "813x").
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import nn

from amcprune.outputs import RECORDS_CSV, RECORDS_FILE, PruneRecord, check
from amcprune.prune.criteria import prunable_layers
from amcprune.prune.shrink import effective
from amcprune.utils.atomic import append_jsonl, read_jsonl, write_text_atomic

# Column order of records.csv (other keys follow, sorted).
CSV_COLUMNS = [
    "record",
    "event",
    "stage",
    "method",
    "criterion",
    "iteration",
    "p",
    "p_applied",
    "epochs",
    "epochs_total",
    "judge_on",
    "criterion_acc",
    "test_acc",
    "threshold",
    "met",
    "weights",
    "nonzero_weights",
    "unmasked_weights",
    "sparsity",
    "compression",
    "compression_formula",
    "bops",
    "weight_bits",
    "score",
    "widths",
    "checkpoint",
    "reason",
    "wall_s",
]


@torch.no_grad()
def quantized_weight(module: nn.Module) -> torch.Tensor:
    """The weight the layer computes with: mask applied, then its weight quantizer (if it has one)."""
    w = effective(module, "weight")
    quant = getattr(module, "weight_quant", None)
    if quant is not None and callable(quant):
        try:
            q = quant(w)
        except Exception:  # pragma: no cover - a quantizer that cannot run standalone
            return w
        return q.value if hasattr(q, "value") and not isinstance(q, torch.Tensor) else q
    return w


@torch.no_grad()
def weight_counts(model: nn.Module) -> dict[str, Any]:
    """Total, non-zero (after quantization) and unmasked weights of the prunable layers, and per layer."""
    total = nonzero = unmasked = 0
    per_layer = {}
    for name, module in prunable_layers(model):
        w = effective(module, "weight")
        n = int(w.numel())
        nz = int(quantized_weight(module).ne(0).sum())
        um = int(w.ne(0).sum()) if not hasattr(module, "weight_mask") else int(module.weight_mask.ne(0).sum())
        total += n
        nonzero += nz
        unmasked += um
        per_layer[name] = {"weights": n, "nonzero": nz, "shape": list(w.shape)}
    return {"weights": total, "nonzero_weights": nonzero, "unmasked_weights": unmasked, "per_layer": per_layer}


def layer_widths(model: nn.Module) -> list[int]:
    return [int(effective(m, "weight").shape[0]) for _, m in prunable_layers(model)]


def standard_error(acc: float, n: int) -> float:
    """Binomial standard error of an accuracy ``acc`` measured on ``n`` frames."""
    return math.sqrt(max(acc * (1.0 - acc), 0.0) / n) if n else float("nan")


def criterion_noise(acc: float, threshold: float, n: int) -> dict:
    """How far the threshold lies from the judged accuracy, in standard errors of that accuracy; a margin below
    two standard errors means the criterion's decisions are mostly noise."""
    se = standard_error(acc, n)
    margin = acc - threshold
    return {"n": n, "se": se, "margin": margin, "margin_in_se": margin / se if se > 0 else float("inf"),
            "noisy": bool(se > 0 and abs(margin) < 2 * se)}


def truncate_jsonl(path: str | os.PathLike, n: int) -> list[dict]:
    """Keep the first ``n`` records of ``path`` (rewritten atomically); returns them."""
    path = Path(path)
    records = read_jsonl(path)[:n]
    if path.exists() or records:
        write_text_atomic(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    return records


def _cell(value: Any) -> Any:
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True)
    if value is None:
        return ""
    return value


def records_csv_text(records: Iterable[dict]) -> str:
    records = list(records)
    keys = [c for c in CSV_COLUMNS if any(c in r for r in records)]
    extra = sorted({k for r in records for k in r} - set(keys))
    fields = keys + extra
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for r in records:
        writer.writerow({k: _cell(r.get(k)) for k in fields})
    return buf.getvalue()


class RecordLog:
    """``records.jsonl`` (appended with fsync) and ``records.csv`` (rewritten atomically from it)."""

    def __init__(self, out_dir: str | os.PathLike) -> None:
        self.out_dir = Path(out_dir)
        self.jsonl = self.out_dir / RECORDS_FILE
        self.csv = self.out_dir / RECORDS_CSV
        self.records: list[dict] = read_jsonl(self.jsonl)

    def __len__(self) -> int:
        return len(self.records)

    def truncate(self, n: int) -> None:
        """Drop records beyond the first ``n`` (those written after the last saved state)."""
        self.records = truncate_jsonl(self.jsonl, n)
        self.write_csv()

    def append(self, record: dict) -> dict:
        record = {"record": len(self.records), **record}
        check(PruneRecord, record, self.jsonl)  # what the report reads is what is written
        append_jsonl(self.jsonl, record)
        self.records.append(record)
        self.write_csv()
        return record

    def write_csv(self) -> None:
        write_text_atomic(self.csv, records_csv_text(self.records))
