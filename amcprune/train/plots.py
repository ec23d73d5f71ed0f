"""PNG plots of an ``EvalResult`` (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

from amcprune.utils.atomic import atomic_path


def _plt():
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt  # local: pyplot must load after the Agg backend is chosen

    return plt


def _save(fig, path: Path) -> Path:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    _plt().close(fig)
    return path


def plot_acc_vs_snr(result, path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    acc = result.acc_per_snr
    ax.plot(list(acc), list(acc.values()), marker="o")
    ax.axhline(result.accuracy, color="grey", ls="--", lw=1, label=f"overall {result.accuracy:.4f}")
    ax.set_xlabel("SNR (dB)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title("Accuracy vs SNR")
    return _save(fig, path)


def plot_class_snr(result, path: Path) -> Path:
    plt = _plt()
    acs = result.acc_class_snr
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(result.snrs) + 2), max(4, 0.3 * len(result.class_names) + 1)))
    im = ax.imshow(np.ma.masked_invalid(acs), vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(result.snrs)), [str(s) for s in result.snrs], rotation=90, fontsize=7)
    ax.set_yticks(range(len(result.class_names)), result.class_names, fontsize=7)
    ax.set_xlabel("SNR (dB)")
    ax.set_title("Accuracy per class and SNR")
    fig.colorbar(im, ax=ax, fraction=0.04)
    return _save(fig, path)


def plot_confusion(result, path: Path, snr: int | None = None) -> Path:
    plt = _plt()
    conf = result.confusion(snr).astype(float)
    rows = conf.sum(axis=1, keepdims=True)
    norm = np.divide(conf, rows, out=np.zeros_like(conf), where=rows > 0)
    n = len(result.class_names)
    fig, ax = plt.subplots(figsize=(max(5, 0.3 * n + 2), max(4.5, 0.3 * n + 1.5)))
    im = ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
    ax.set_xticks(range(n), result.class_names, rotation=90, fontsize=7)
    ax.set_yticks(range(n), result.class_names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix" + (f" at {snr} dB" if snr is not None else " (all SNRs)"))
    fig.colorbar(im, ax=ax, fraction=0.04)
    return _save(fig, path)


def plot_all(result, out_dir: Path) -> dict[str, Path]:
    out = Path(out_dir)
    written = {
        "acc_vs_snr": plot_acc_vs_snr(result, out / "acc_vs_snr.png"),
        "acc_class_snr": plot_class_snr(result, out / "acc_class_snr.png"),
        "confusion": plot_confusion(result, out / "confusion.png"),
    }
    for s in result.confusion_snrs:
        if s in result.snrs:
            written[f"confusion_snr{s}"] = plot_confusion(result, out / f"confusion_snr{s}.png", snr=s)
    return written
