"""The sweep's results: ``results.csv``, ``results.md`` (a table like the published FMP table) and ``pareto.png``.

Rows come from the trial directories (``trial.json``), so the table can be rebuilt at any time with
:func:`collect_rows` + :func:`write_table`, also while a sweep is still running.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from amcprune.pipeline.trial import read_trial
from amcprune.sweep.grid import TRIALS_DIR
from amcprune.utils.atomic import atomic_path, write_text_atomic

CSV_NAME = "results.csv"
MD_NAME = "results.md"
PLOT_NAME = "pareto.png"

# (key, CSV header, Markdown header, format)
COLUMNS: list[tuple[str, str, str, str]] = [
    ("trial", "trial", "Trial", "s"),
    ("status", "status", "Status", "s"),
    ("arch", "arch", "Arch", "s"),
    ("seed", "seed", "Seed", "s"),
    ("bits", "bits", "Bits", "s"),
    ("method", "method", "Method", "s"),
    ("compression", "compression", "Compression (measured)", ".2f"),
    ("bops", "bops", "BOPs", ",.0f"),
    ("weight_bits", "weight_bits", "Weight bits", ",.0f"),
    ("score", "score", "Score", ".6f"),
    ("accuracy", "accuracy", "Accuracy", ".4f"),
    ("test_accuracy", "test_accuracy", "Test accuracy", ".4f"),
    ("sparsity", "sparsity", "Sparsity", ".4f"),
    ("dense_test_accuracy", "dense_test_accuracy", "Dense test acc.", ".4f"),
    ("threshold", "threshold", "Threshold", ".4f"),
    ("pareto", "pareto", "Pareto", "s"),
    ("error", "error", "Error", "s"),
]


def row_from_state(name: str, state: dict[str, Any] | None, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """One table row from a trial's ``trial.json`` (``state``)."""
    state = state or {}
    row: dict[str, Any] = {"trial": name, "status": state.get("status") or "pending"}
    label = dict(state.get("label") or {})
    row.update(label)
    for path, value in (params or state.get("params") or {}).items():
        key = path.split(".")[-1]
        if key not in row or row[key] is None:
            row[key] = value
    result = state.get("result") or {}
    if row["status"] == "done":
        row.update({k: v for k, v in result.items() if k not in ("report",)})
    if state.get("status") in ("failed", "interrupted"):
        row["error"] = state.get("error")
    return row


def collect_rows(sweep_dir: str | Path, names: list[str] | None = None) -> list[dict[str, Any]]:
    """Rows of the trials under ``sweep_dir/trials`` (in ``names`` order when given)."""
    root = Path(sweep_dir) / TRIALS_DIR
    if names is None:
        names = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    return [row_from_state(n, read_trial(root / n)) for n in names]


def _num(x: Any) -> float | None:
    if isinstance(x, bool) or x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def pareto_front(rows: list[dict[str, Any]], acc_key: str = "test_accuracy") -> list[int]:
    """Indices of the finished rows no other row beats on both score (lower) and accuracy (higher)."""
    pts = [(i, _num(r.get("score")), _num(r.get(acc_key))) for i, r in enumerate(rows)]
    pts = [(i, s, a) for i, s, a in pts if s is not None and a is not None]
    front = []
    for i, s, a in pts:
        dominated = any((s2 <= s and a2 >= a) and (s2 < s or a2 > a) for j, s2, a2 in pts if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: _num(rows[i]["score"]))


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if fmt != "s":
        v = _num(value)
        return "" if v is None else format(v, fmt)
    text = str(value)
    return text


def write_table(rows: list[dict[str, Any]], out_dir: str | Path, target: float | None = None,
                title: str = "Sweep results") -> tuple[Path, Path, Path | None]:
    """Write ``results.csv``, ``results.md`` and (with at least one finished trial) ``pareto.png``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = [dict(r) for r in rows]
    for i in pareto_front(rows):
        rows[i]["pareto"] = True
    for r in rows:
        if r.get("status") == "done":
            r.setdefault("pareto", False)

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([c[1] for c in COLUMNS])
    for r in rows:
        writer.writerow(["" if r.get(k) is None else r.get(k) for k, *_ in COLUMNS])
    csv_path = out / CSV_NAME
    write_text_atomic(csv_path, buf.getvalue())

    md = [f"# {title}", ""]
    n_done = sum(r.get("status") == "done" for r in rows)
    n_failed = sum(r.get("status") == "failed" for r in rows)
    md.append(f"{len(rows)} trials: {n_done} done, {n_failed} failed, {len(rows) - n_done - n_failed} other. "
              "Compression is measured (dense weights / non-zero quantized weights); BOPs, weight bits and score "
              "are qonnx `inference_cost` of the exported QONNX, normalised to the challenge baseline; accuracy is "
              "the judged (criterion) accuracy of the final model, test accuracy on the whole test split.")
    md.append("")
    cols = [c for c in COLUMNS if c[0] != "error" or any(r.get("error") for r in rows)]
    md.append("| " + " | ".join(c[2] for c in cols) + " |")
    md.append("|" + "|".join("---:" if c[3] != "s" else "---" for c in cols) + "|")
    for r in rows:
        cells = [_cell(r.get(k), fmt).replace("|", "\\|").replace("\n", " ") for k, _, _, fmt in cols]
        md.append("| " + " | ".join(cells) + " |")
    plot_path = None
    if n_done:
        plot_path = plot_pareto(rows, out / PLOT_NAME, target)
        md += ["", f"![Pareto plot: score vs test accuracy]({PLOT_NAME})"]
    md_path = out / MD_NAME
    write_text_atomic(md_path, "\n".join(md) + "\n")
    return csv_path, md_path, plot_path


def plot_pareto(rows: list[dict[str, Any]], path: str | Path, target: float | None = None,
                acc_key: str = "test_accuracy") -> Path | None:
    """Score (log scale) against test accuracy; the Pareto front as a step line, the accuracy target as a
    vertical line (``target``, else the trials' thresholds: one line if they agree, else their range)."""
    import matplotlib  # local: matplotlib is slow to load and only the Pareto plot needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # local: pyplot must load after the Agg backend is chosen

    pts = [(r, _num(r.get(acc_key)), _num(r.get("score"))) for r in rows]
    pts = [(r, a, s) for r, a, s in pts if a is not None and s is not None]
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 5), dpi=110)
    groups: dict[str, list] = {}
    for r, a, s in pts:
        groups.setdefault(f"{r.get('arch', '')} {r.get('method', '')}".strip(), []).append((r, a, s))
    markers = "osD^v<>P*X"
    for k, (label, items) in enumerate(sorted(groups.items())):
        ax.scatter([a for _, a, _ in items], [s for _, _, s in items], marker=markers[k % len(markers)], s=46,
                   alpha=0.85, label=label or "trials", zorder=3)
        for r, a, s in items:
            ax.annotate(str(r.get("bits", "")) + "b", (a, s), textcoords="offset points", xytext=(4, 4), fontsize=7)
    front = [(a, s) for r, a, s in pts if r.get("pareto")]
    front.sort(key=lambda t: t[1])
    if front:
        xs, ys = [a for a, _ in front], [s for _, s in front]
        ax.step(xs, ys, where="post", color="black", lw=1.2, alpha=0.7, zorder=2)
        ax.scatter(xs, ys, facecolors="none", edgecolors="black", s=140, lw=1.2, label="Pareto front", zorder=4)
    thresholds = sorted({round(t, 6) for t in (_num(r.get("threshold")) for r, _, _ in pts) if t is not None and t > 0})
    if target is not None:
        ax.axvline(target, color="tab:red", ls="--", lw=1.2, label=f"target {target:.4f}")
    elif len(thresholds) == 1:
        ax.axvline(thresholds[0], color="tab:red", ls="--", lw=1.2, label=f"threshold {thresholds[0]:.4f}")
    elif thresholds:
        ax.axvspan(thresholds[0], thresholds[-1], color="tab:red", alpha=0.08,
                   label=f"thresholds {thresholds[0]:.3f}-{thresholds[-1]:.3f}")
    if all(s > 0 for _, _, s in pts):
        ax.set_yscale("log")
    ax.set_xlabel("test accuracy (final model)")
    ax.set_ylabel("score (normalised inference cost, lower is better)")
    ax.set_title("Score vs accuracy")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
