"""Report figures as PNG bytes.

Figures are built with :class:`matplotlib.figure.Figure` and the Agg canvas directly, never through
``pyplot``: nothing global is touched, so no figure is left open and no display is needed. Every function
returns ``None`` when it has no data to draw.
"""

from __future__ import annotations

import io
import math
from typing import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from amcprune.report.collect import CostData, EvalData, _num, record_group

DPI = 100
DENSE_COLOR = "#1f77b4"
FINAL_COLOR = "#d62728"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    fig.clear()
    return buf.getvalue()


def _arr(values: Sequence[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=float)


def _has(values: Sequence[float | None]) -> bool:
    return any(v is not None for v in values)


def legend_below(ax, handles=None, labels=None, ncols: int = 2) -> None:
    """A legend under the axes, never over them: a legend inside the axes hid data points (the trajectory's
    "target missed" crosses). Constrained layout makes room for it."""
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    if unique:
        ax.legend(list(unique.values()), list(unique.keys()), fontsize=8, loc="upper center",
                  bbox_to_anchor=(0.5, -0.2), ncols=min(ncols, len(unique)), frameon=False)


# --------------------------------------------------------------------------------------------------
def accuracy_vs_snr(dense: EvalData | None, final: EvalData | None) -> bytes | None:
    """Accuracy per SNR, dense and final on one axis."""
    series = [
        (ev, label, color)
        for ev, label, color in ((dense, "dense", DENSE_COLOR), (final, "final", FINAL_COLOR))
        if ev is not None and ev.snrs and len(ev.acc_per_snr) == len(ev.snrs) and _has(ev.acc_per_snr)
    ]
    if not series:
        return None
    fig = _new_figure(8, 4.2)
    ax = fig.add_subplot()
    for ev, label, color in series:
        overall = f" (overall {100 * ev.accuracy:.2f} %)" if ev.accuracy is not None else ""
        ax.plot(ev.snrs, 100 * _arr(ev.acc_per_snr), marker="o", ms=4, color=color, label=label + overall)
    ax.set_xlabel("SNR (dB)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 101)
    ax.grid(alpha=0.3)
    legend_below(ax)
    return _png(fig)


def class_snr_heatmaps(dense: EvalData | None, final: EvalData | None) -> bytes | None:
    """Per-class accuracy over SNR: classes on rows, SNRs on columns; dense and final side by side."""
    panels = []
    for ev, label in ((dense, "dense"), (final, "final")):
        if ev is None or not ev.per_class_snr:
            continue
        data = np.array([_arr(row) for row in ev.per_class_snr]) * 100
        if not np.all(np.isnan(data)):
            panels.append((ev, label, data))
    if not panels:
        return None
    n_classes = max(p[2].shape[0] for p in panels)
    n_snrs = max(p[2].shape[1] for p in panels)
    width = min(13.0, 1.6 + len(panels) * max(4.5, 1.0 + 0.22 * n_snrs))
    fig = _new_figure(width, 1.5 + 0.24 * n_classes)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    image = None
    for k, (ax, (ev, label, data)) in enumerate(zip(axes, panels)):
        rows, cols = data.shape
        names = ev.class_names if len(ev.class_names) == rows else [str(i) for i in range(rows)]
        snrs = ev.snrs if len(ev.snrs) == cols else list(range(cols))
        image = ax.imshow(np.ma.masked_invalid(data), aspect="auto", cmap="viridis", vmin=0, vmax=100,
                          interpolation="nearest")
        step = 1 if cols <= 14 else 2
        ax.set_xticks(range(0, cols, step), [str(s) for s in snrs[::step]], fontsize=8)
        if k == 0 or names != (panels[0][0].class_names):
            ax.set_yticks(range(rows), names, fontsize=8)
        else:
            ax.set_yticks(range(rows), [""] * rows)
        ax.set_xlabel("SNR (dB)")
        overall = f" ({100 * ev.accuracy:.2f} %)" if ev.accuracy is not None else ""
        ax.set_title(f"{label} model{overall}")
        if rows * cols <= 120:
            for i in range(rows):
                for j in range(cols):
                    if not np.isnan(data[i, j]):
                        ax.text(j, i, f"{data[i, j]:.0f}", ha="center", va="center", fontsize=7,
                                color="white" if data[i, j] < 60 else "black")
    fig.colorbar(image, ax=list(axes), label="accuracy (%)", fraction=0.03)
    return _png(fig)


def _row_normalized(matrix: list[list[float]]) -> np.ndarray:
    m = np.array(matrix, dtype=float)
    sums = m.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(sums > 0, m / np.where(sums > 0, sums, 1), np.nan)
    return out * 100


def confusion_matrices(dense: EvalData | None, final: EvalData | None) -> bytes | None:
    """Row-normalized confusion matrices (all SNRs), dense and final side by side."""
    panels = [(ev, label) for ev, label in ((dense, "dense"), (final, "final")) if ev is not None and ev.confusion]
    if not panels:
        return None
    n = max(len(ev.confusion) for ev, _ in panels)
    side = min(6.5, 2.5 + 0.2 * n)
    fig = _new_figure(side * len(panels) + 1.0, side)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    image = None
    for ax, (ev, label) in zip(axes, panels):
        data = _row_normalized(ev.confusion)
        k = data.shape[0]
        names = ev.class_names if len(ev.class_names) == k else [str(i) for i in range(k)]
        image = ax.imshow(np.ma.masked_invalid(data), cmap="Blues", vmin=0, vmax=100, interpolation="nearest")
        fontsize = 8 if k <= 12 else 6
        ax.set_xticks(range(k), names, rotation=90, fontsize=fontsize)
        ax.set_yticks(range(k), names, fontsize=fontsize)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        overall = f" ({100 * ev.accuracy:.2f} %)" if ev.accuracy is not None else ""
        ax.set_title(label + overall)
        if k <= 12:
            for i in range(k):
                for j in range(k):
                    if not np.isnan(data[i, j]) and data[i, j] >= 0.5:
                        ax.text(j, i, f"{data[i, j]:.0f}", ha="center", va="center", fontsize=7,
                                color="white" if data[i, j] > 60 else "black")
    fig.colorbar(image, ax=list(axes), label="% of true class", fraction=0.03)
    return _png(fig)


# --------------------------------------------------------------------------------------------------
def _x_axis(records: list[dict]) -> tuple[list[float], str]:
    """Iterations when they increase strictly over the run, else the record index."""
    its = [_num(r.get("iteration")) for r in records]
    if all(i is not None for i in its) and all(b > a for a, b in zip(its, its[1:])):
        return its, "iteration"
    idx = [_num(r.get("record")) for r in records]
    if all(i is not None for i in idx):
        return idx, "record"
    return [float(i) for i in range(len(records))], "record"


def _final_index(records: list[dict], final: dict | None) -> int | None:
    """Index of the record of the model kept as final (matched by checkpoint, else stage and iteration)."""
    if not final:
        return None
    ckpt = final.get("checkpoint")
    if ckpt:
        for i, r in enumerate(records):
            if r.get("checkpoint") == ckpt:
                return i
    if final.get("iteration") is not None:
        for i, r in enumerate(records):
            if (r.get("iteration") == final.get("iteration") and r.get("stage") == final.get("stage")
                    and r.get("met") is not False):
                return i
    return None


def trajectory(records: list[dict], final: dict | None = None) -> tuple[bytes | None, bool]:
    """Sparsity, accuracy against target, and score per record (one line per stage / method).

    ``final`` (``checkpoint`` or ``stage`` and ``iteration`` of the final model) is marked with a vertical
    line. Returns the PNG (None without data) and whether the final model was marked.
    """
    fig, marked = trajectory_figure(records, final)
    return (None, False) if fig is None else (_png(fig), marked)


def trajectory_figure(records: list[dict], final: dict | None = None) -> tuple[Figure | None, bool]:
    """The figure of :func:`trajectory`, not yet rendered."""
    if not records:
        return None, False
    xs, xlabel = _x_axis(records)
    groups: dict[str, list[tuple[float, dict]]] = {}
    for x, record in zip(xs, records):
        groups.setdefault(record_group(record), []).append((x, record))
    fig = _new_figure(13, 3.8)
    ax_sp, ax_acc, ax_score = fig.subplots(1, 3)
    colors = [f"C{i}" for i in range(10)]
    drew = {"sp": False, "acc": False, "score": False}
    multi = len(groups) > 1
    for g, (label, items) in enumerate(groups.items()):
        color = colors[g % len(colors)]
        x = np.array([it for it, _ in items])
        name = label or None
        sparsity = [_num(r.get("sparsity")) for _, r in items]
        if _has(sparsity):
            ax_sp.plot(x, 100 * _arr(sparsity), marker="o", ms=3, color=color, label=name)
            drew["sp"] = True
        crit = [_num(r.get("criterion_acc")) for _, r in items]
        test = [_num(r.get("test_acc")) for _, r in items]
        target = [_num(r.get("threshold")) for _, r in items]
        prefix = f"{label}: " if multi and label else ""
        if _has(crit):
            ax_acc.plot(x, 100 * _arr(crit), marker="o", ms=3, color=color, label=prefix + "criterion acc")
            missed = [i for i, (_, r) in enumerate(items) if r.get("met") is False and crit[i] is not None]
            if missed:
                ax_acc.plot(x[missed], 100 * _arr([crit[i] for i in missed]), "x", color="black", ms=7,
                            label="target missed")
            drew["acc"] = True
        if _has(test):
            ax_acc.plot(x, 100 * _arr(test), marker="s", ms=3, ls="--", color=color, alpha=0.7,
                        label=prefix + "test acc")
            drew["acc"] = True
        if _has(target):
            ax_acc.step(x, 100 * _arr(target), where="mid", ls=":", color="grey", label="target")
        score = [_num(r.get("score")) for _, r in items]
        if _has(score):
            ax_score.plot(x, _arr(score), marker="o", ms=3, color=color, label=name)
            drew["score"] = True
    if not any(drew.values()):
        fig.clear()
        return None, False
    final_i = _final_index(records, final)
    for ax, ylabel, key in ((ax_sp, "sparsity (%)", "sp"), (ax_acc, "accuracy (%)", "acc"), (ax_score, "score", "score")):
        if final_i is not None:
            ax.axvline(xs[final_i], color="green", lw=1.2, alpha=0.6, label="final model")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if not drew[key]:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")
    ax_sp.set_title("sparsity")
    ax_acc.set_title("accuracy vs target")
    ax_score.set_title("score (lower is better)")
    if drew["acc"]:
        legend_below(ax_acc)
    if multi and drew["sp"]:
        legend_below(ax_sp, ncols=1)
    return fig, final_i is not None


def layer_costs(dense: CostData | None, final: CostData | None) -> bytes | None:
    """Per-layer BOPs and weight bits as horizontal bars, dense and final side by side."""
    sources = [(c, label, color) for c, label, color in ((dense, "dense", DENSE_COLOR), (final, "final", FINAL_COLOR))
               if c is not None and c.per_layer]
    if not sources:
        return None
    names: list[str] = []
    for cost, _, _ in sources:
        for layer in cost.per_layer:
            if layer.name not in names:
                names.append(layer.name)
    n = len(names)
    fig = _new_figure(12, 1.4 + 0.2 * n * len(sources))
    axes = fig.subplots(1, 2, sharey=True)
    y = np.arange(n)
    height = 0.8 / len(sources)
    for ax, attr, xlabel in ((axes[0], "bops", "BOPs"), (axes[1], "weight_bits", "weight bits")):
        any_value = False
        for k, (cost, label, color) in enumerate(sources):
            lookup = {layer.name: getattr(layer, attr) for layer in cost.per_layer}
            values = _arr([lookup.get(name) for name in names])
            if np.all(np.isnan(values)):
                continue
            any_value = True
            offset = (k - (len(sources) - 1) / 2) * height
            ax.barh(y + offset, np.nan_to_num(values), height=height, color=color, label=label)
        ax.set_xlabel(xlabel)
        ax.grid(axis="x", alpha=0.3)
        if any_value:
            ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4))
            legend_below(ax)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")
    axes[0].set_yticks(y, names, fontsize=8)
    axes[0].invert_yaxis()
    axes[0].set_title("BOPs per layer")
    axes[1].set_title("weight bits per layer")
    return _png(fig)


def training_history(metrics: list[dict]) -> bytes | None:
    """Accuracy and loss per epoch from a train run's metrics.jsonl."""
    if not metrics:
        return None
    x = _arr([m.get("epoch", i) for i, m in enumerate(metrics)])
    acc_keys = [k for k in ("train_acc", "val_acc", "test_acc") if any(_num_ok(m.get(k)) for m in metrics)]
    loss_keys = [k for k in ("train_loss", "val_loss", "test_loss") if any(_num_ok(m.get(k)) for m in metrics)]
    if not acc_keys and not loss_keys:
        return None
    fig = _new_figure(12, 3.6)
    ax_acc, ax_loss = fig.subplots(1, 2)
    for key in acc_keys:
        ax_acc.plot(x, 100 * _arr([_num(m.get(key)) for m in metrics]), marker="o", ms=3, label=key)
    for key in loss_keys:
        ax_loss.plot(x, _arr([_num(m.get(key)) for m in metrics]), marker="o", ms=3, label=key)
    for ax, ylabel, keys in ((ax_acc, "accuracy (%)", acc_keys), (ax_loss, "loss", loss_keys)):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if keys:
            legend_below(ax, ncols=3)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")
    return _png(fig)


def _num_ok(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
