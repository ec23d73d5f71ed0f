"""Tables shared by the HTML and Markdown renderers: rows of already formatted strings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from amcprune.report.collect import CostData, EvalData, ModelSummary, ReportData, _num

DASH = "–"


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    numeric: list[bool]  # per column: right-align
    caption: str = ""
    collapsed: bool = False  # HTML: shown folded, with the caption as its summary


# --------------------------------------------------------------------------------------------------
# Number formatting
# --------------------------------------------------------------------------------------------------
def fmt_pct(value: Any, digits: int = 2) -> str:
    v = _num(value)
    return DASH if v is None else f"{100 * v:.{digits}f} %"


def fmt_acc(value: Any) -> str:
    """Accuracies are fractions in every file amcprune writes."""
    return fmt_pct(value)


def fmt_int(value: Any) -> str:
    v = _num(value)
    if v is None:
        return DASH
    return f"{v:,.0f}" if abs(v - round(v)) < 1e-9 or abs(v) >= 1000 else f"{v:,.2f}"


def fmt_si(value: Any) -> str:
    """Large counts in short form: 411.7 M, 636.4 k."""
    v = _num(value)
    if v is None:
        return DASH
    for factor, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= factor:
            return f"{v / factor:.1f} {suffix}"
    return fmt_int(v)


def fmt_float(value: Any, digits: int = 4) -> str:
    v = _num(value)
    return DASH if v is None else f"{v:.{digits}f}"


def fmt_ratio(value: Any) -> str:
    v = _num(value)
    return DASH if v is None else f"{v:.2f}×"


def fmt_seconds(value: Any) -> str:
    v = _num(value)
    return DASH if v is None else f"{v:.1f} s"


def fmt_any(value: Any) -> str:
    if value is None:
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return fmt_int(value)
    if isinstance(value, float):
        return fmt_float(value, 4) if abs(value) < 1000 else fmt_int(value)
    return str(value)


# Column formatters for pruning records and summary extras, by key.
KEY_FORMAT = {
    "criterion_acc": fmt_acc, "val_acc": fmt_acc, "threshold": fmt_acc, "best_score": fmt_acc,
    "dense_acc": fmt_acc, "dense_test_acc": fmt_acc, "test_loss": fmt_float, "record": fmt_int, "stage": fmt_int,
    "epochs_total": fmt_int, "records": fmt_int, "best_epoch": fmt_int, "final_p": lambda v: f"{v:g}" if _num(v) is not None else fmt_any(v), "test_acc": fmt_acc, "target": fmt_acc, "accuracy": fmt_acc,
    "train_acc": fmt_acc,
    "sparsity": lambda v: fmt_pct(v, 1), "p": lambda v: f"{v:g}" if _num(v) is not None else fmt_any(v), "met": fmt_any,
    "weights": fmt_int, "nonzero_weights": fmt_int, "bops": fmt_int, "weight_bits": fmt_int, "macs": fmt_int,
    "epochs": fmt_int, "iteration": fmt_int, "epoch": fmt_int,
    "compression_measured": fmt_ratio, "compression_formula": fmt_ratio, "compression": fmt_ratio,
    "lr": lambda v: DASH if _num(v) is None else f"{_num(v):.3g}",
    "score": lambda v: fmt_float(v, 4), "wall_s": fmt_seconds, "seconds": fmt_seconds, "train_loss": fmt_float, "val_loss": fmt_float,
}
KEY_LABEL = {
    "criterion_acc": "criterion acc", "val_acc": "val acc", "test_acc": "test acc", "nonzero_weights": "non-zero",
    "weight_bits": "weight bits", "compression_measured": "compression", "compression_formula": "formula", "epochs_total": "epochs (total)",
    "threshold": "target", "judge_on": "criterion split", "final_checkpoint": "final checkpoint",
    "final_onnx": "final ONNX", "export_error": "export error", "best_epoch": "best epoch",
    "best_metric": "best metric", "best_score": "best score", "early_stopped": "early stopped",
    "test_acc_per_snr": "test acc per SNR", "test_loss": "test loss", "final_p": "final p",
    "wall_s": "wall", "met": "met", "record": "#", "records": "records", "train_loss": "train loss",
    "train_acc": "train acc", "val_loss": "val loss",
}


def fmt_key(key: str, value: Any) -> str:
    return KEY_FORMAT.get(key, fmt_any)(value)


# --------------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------------
def _ratio(final: float | None, dense: float | None) -> str:
    if final is None or not dense:
        return DASH
    return f"{final / dense:.3f}×"


def _pp(final: float | None, dense: float | None) -> str:
    if final is None or dense is None:
        return DASH
    return f"{100 * (final - dense):+.2f} pp"


def model_table(dense: ModelSummary | None, final: ModelSummary | None, judge_on: str | None = None) -> Table | None:
    """Dense vs final headline numbers; with one model, a single value column."""
    models = [m for m in (dense, final) if m is not None]
    if not models:
        return None
    both = dense is not None and final is not None
    dense_weights = dense.weights if dense is not None else None

    def compression(m: ModelSummary) -> float | None:
        total = dense_weights or m.weights
        if not total or not m.nonzero_weights:
            return None
        return total / m.nonzero_weights

    rows_spec = [
        ("accuracy (test)", lambda m: m.accuracy, fmt_pct, _pp),
        (f"accuracy ({judge_on or 'criterion'})", lambda m: m.criterion_acc, fmt_pct, _pp),
        ("BOPs", lambda m: m.bops, fmt_int, _ratio),
        ("weight bits", lambda m: m.weight_bits, fmt_int, _ratio),
        ("score (lower is better)", lambda m: m.score, lambda v: fmt_float(v, 4), _ratio),
        ("weights", lambda m: m.weights, fmt_int, _ratio),
        ("non-zero weights", lambda m: m.nonzero_weights, fmt_int, _ratio),
        ("sparsity (of the dense weights)", lambda m: m.sparsity, lambda v: fmt_pct(v, 1), _pp),
        ("compression (dense weights / non-zero)", compression, fmt_ratio, None),
    ]
    headers = ["", *[m.label for m in models]] + (["final vs dense"] if both else [])
    rows = []
    for label, get, fmt, change in rows_spec:
        values = [get(m) for m in models]
        if all(v is None for v in values):
            continue
        row = [label, *[fmt(v) for v in values]]
        if both:
            row.append(change(values[1], values[0]) if change else DASH)
        rows.append(row)
    extra_keys = []
    for m in models:
        extra_keys += [k for k in m.extra if k not in extra_keys]
    for key in extra_keys:
        row = [KEY_LABEL.get(key, key), *[fmt_key(key, m.extra.get(key)) for m in models]]
        if both:
            row.append("")
        rows.append(row)
    if not rows:
        return None
    return Table(headers=headers, rows=rows, numeric=[False] + [True] * (len(headers) - 1))


def cost_totals_table(dense: ModelSummary | None, final: ModelSummary | None) -> Table | None:
    """BOPs, weight bits and score of the dense and final models (when no cost file has them per layer)."""
    models = [m for m in (dense, final) if m is not None and any(v is not None for v in (m.bops, m.weight_bits, m.score))]
    if not models:
        return None
    rows = [
        ["BOPs", *[fmt_int(m.bops) for m in models]],
        ["weight bits", *[fmt_int(m.weight_bits) for m in models]],
        ["score (lower is better)", *[fmt_float(m.score, 4) for m in models]],
    ]
    return Table(headers=["", *[m.label for m in models]], rows=rows, numeric=[False] + [True] * len(models))


def run_table(data: ReportData) -> Table:
    rows = [
        ["run directory", str(data.run_dir)],
        ["kind", f"{data.kind} run"],
        ["data", data.data_path or DASH],
        ["data fingerprint", data.data_fingerprint or DASH],
    ]
    if data.source:
        rows.append(["started from", data.source])
    if data.criterion:
        rows.append(["criterion", data.criterion])
    order = {k: i for i, k in enumerate(SUMMARY_ORDER)}
    for key, value in sorted(data.summary_extra.items(), key=lambda kv: order.get(kv[0], len(order))):
        if data.criterion and key in ("threshold", "judge_on"):
            continue  # both are in the criterion row, with the option that set them
        label = {"met": "target met", "records": "records written"}.get(key) or KEY_LABEL.get(key, key.replace("_", " "))
        rows.append([label, fmt_key(key, value)])
    present = [name for name, ok in data.files.items() if ok]
    rows.append(["files", ", ".join(present) if present else DASH])
    return Table(headers=["", ""], rows=rows, numeric=[False, False])


SUMMARY_ORDER = (
    "judge_on", "threshold", "met", "records", "epochs_total", "wall_s", "final_checkpoint", "final_onnx", "export_error",
    "epochs", "best_epoch", "best_metric", "best_score", "early_stopped", "test_acc", "test_loss",
)
STAGE_ORDER = ("stage", "method", "criterion", "met", "iterations", "final_p", "reason")


def stages_table(stages: list[dict]) -> Table | None:
    if not stages:
        return None
    keys: list[str] = [k for k in STAGE_ORDER if any(k in st for st in stages)]
    for st in stages:
        keys += [k for k, v in st.items() if k not in keys and (v is None or isinstance(v, (str, int, float, bool)))]
    if not keys:
        return None
    rows = [[fmt_key(k, st.get(k)) for k in keys] for st in stages]
    return Table(headers=[KEY_LABEL.get(k, k.replace("_", " ")) for k in keys], rows=rows,
                 numeric=[k not in ("method", "criterion", "reason", "met") for k in keys], caption="Stages.")


TRAJECTORY_KEYS = (
    "record", "event", "stage", "method", "criterion", "iteration", "p", "epochs", "sparsity", "criterion_acc",
    "val_acc", "test_acc", "threshold", "target", "met", "weights", "nonzero_weights", "compression",
    "compression_measured", "compression_formula", "bops", "weight_bits", "score", "reason", "wall_s",
)
CONSTANT_TO_CAPTION = ("stage", "method", "criterion", "weights", "threshold", "target")


def trajectory_table(records: list[dict], criterion: str | None = None) -> Table | None:
    """The records as rows; a constant threshold goes into the caption as ``criterion`` (the option the user
    gave and the threshold it yields) when known."""
    if not records:
        return None
    keys = [k for k in TRAJECTORY_KEYS if any(r.get(k) is not None for r in records)]
    # Columns that never change (method, criterion, p, total weights) go into the caption instead.
    constant = [k for k in keys if k in CONSTANT_TO_CAPTION and len({repr(r.get(k)) for r in records}) == 1]
    keys = [k for k in keys if k not in constant]
    caption = ", ".join(
        f"criterion: {criterion}" if k == "threshold" and criterion else f"{KEY_LABEL.get(k, k)} = {fmt_key(k, records[0].get(k))}"
        for k in constant
    )
    short = {"bops": fmt_si, "weight_bits": fmt_si}
    rows = [[short.get(k, lambda v, k=k: fmt_key(k, v))(r.get(k)) for k in keys] for r in records]
    return Table(
        headers=[KEY_LABEL.get(k, k) for k in keys], rows=rows,
        numeric=[k not in ("event", "method", "criterion", "met", "reason") for k in keys], caption=caption,
    )


def snr_table(dense: EvalData | None, final: EvalData | None) -> Table | None:
    series = [(ev, label) for ev, label in ((dense, "dense"), (final, "final"))
              if ev is not None and ev.snrs and len(ev.acc_per_snr) == len(ev.snrs)]
    if not series:
        return None
    snrs = sorted({s for ev, _ in series for s in ev.snrs})
    lookups = [dict(zip(ev.snrs, ev.acc_per_snr)) for ev, _ in series]
    rows = [[str(s), *[fmt_pct(lk.get(s)) for lk in lookups]] for s in snrs]
    return Table(headers=["SNR (dB)", *[label for _, label in series]], rows=rows,
                 numeric=[True] * (1 + len(series)))


def layer_table(dense: CostData | None, final: CostData | None) -> Table | None:
    sources = [(c, label) for c, label in ((dense, "dense"), (final, "final")) if c is not None and c.per_layer]
    if not sources:
        return None
    names: list[str] = []
    ops: dict[str, str] = {}
    for cost, _ in sources:
        for layer in cost.per_layer:
            if layer.name not in names:
                names.append(layer.name)
            ops.setdefault(layer.name, layer.op)
    lookups = [{layer.name: layer for layer in cost.per_layer} for cost, _ in sources]
    dtypes: dict[str, tuple[str, str]] = {}
    for cost, _ in reversed(sources):  # the final model's datatypes win
        for layer in cost.per_layer:
            if layer.input_dtype or layer.weight_dtype:
                dtypes[layer.name] = (layer.input_dtype, layer.weight_dtype)
    headers = ["layer", "op", "MACs"]
    for attr, title in (("bops", "BOPs"), ("weight_bits", "weight bits"), ("nonzero_weights", "non-zero")):
        headers += [f"{title} ({label})" if len(sources) > 1 else title for _, label in sources]
    headers += ["input dtype", "weight dtype"]
    rows = []
    for name in names:
        macs = next((lk[name].macs for lk in lookups if name in lk and lk[name].macs is not None), None)
        row = [name, ops.get(name) or DASH, fmt_int(macs)]
        for attr in ("bops", "weight_bits", "nonzero_weights"):
            row += [fmt_int(getattr(lk[name], attr)) if name in lk else DASH for lk in lookups]
        in_dt, w_dt = dtypes.get(name, ("", ""))
        row += [in_dt or DASH, w_dt or DASH]
        rows.append(row)
    # Drop columns with no value at all.
    keep = [i for i in range(len(headers)) if i < 2 or any(row[i] != DASH for row in rows)]
    return Table(
        headers=[headers[i] for i in keep], rows=[[row[i] for i in keep] for row in rows],
        numeric=[2 <= i < len(headers) - 2 for i in keep],
    )


def metrics_table(metrics: list[dict], max_rows: int = 200) -> Table | None:
    if not metrics:
        return None
    preferred = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "lr", "seconds",
                 "wall_s")
    keys = [k for k in preferred if any(m.get(k) is not None for m in metrics)]
    if not keys:
        return None
    shown = metrics[-max_rows:]
    rows = [[fmt_key(k, m.get(k)) for k in keys] for m in shown]
    caption = f"last {max_rows} of {len(metrics)} epochs" if len(metrics) > max_rows else ""
    return Table(headers=[KEY_LABEL.get(k, k) for k in keys], rows=rows, numeric=[True] * len(keys), caption=caption)
