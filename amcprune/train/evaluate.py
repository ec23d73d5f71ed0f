"""Accuracy overall, per SNR, per class and SNR, and confusion matrices.

``evaluate_model`` runs the model once over the frames (``torch.inference_mode``, eval mode, batches of
``batch_size``) and derives every figure from one count tensor ``counts[snr, true, pred]``, so they are
consistent by construction: the per-SNR accuracies weighted by their frame counts give the overall one.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from amcprune.data import radioml
from amcprune.data.classes import CLASSES
from amcprune.errors import AmcpruneError
from amcprune.models import load_model
from amcprune.train.config import TrainConfig, default_eval_batch_size, resolve_device
from amcprune.train.data import InMemoryData, to_model_layout
from amcprune.train.fasteval import fast_eval
from amcprune.utils.atomic import write_json_atomic

DEFAULT_CONFUSION_SNRS = (-10, 0, 10, 30)


@dataclass
class EvalResult:
    """Counts and accuracies of one evaluation. ``counts[i, t, p]``: frames at ``snrs[i]`` of class ``t``
    predicted as ``p``."""

    class_names: list[str]
    snrs: list[int]
    counts: np.ndarray  # (n_snrs, n_classes, n_classes) int64
    loss: float | None = None
    split: str | None = None
    confusion_snrs: list[int] = field(default_factory=list)

    # --- derived figures ----------------------------------------------------------------------
    @property
    def n(self) -> int:
        return int(self.counts.sum())

    @property
    def correct(self) -> int:
        return int(np.trace(self.counts, axis1=1, axis2=2).sum())

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else float("nan")

    @property
    def n_per_snr(self) -> list[int]:
        return [int(v) for v in self.counts.sum(axis=(1, 2))]

    @property
    def acc_per_snr(self) -> dict[int, float]:
        correct = np.trace(self.counts, axis1=1, axis2=2)
        totals = self.counts.sum(axis=(1, 2))
        return {int(s): float(c / t) for s, c, t in zip(self.snrs, correct, totals) if t > 0}

    @property
    def acc_class_snr(self) -> np.ndarray:
        """(n_classes, n_snrs) accuracy, NaN where a class has no frames at that SNR."""
        diag = np.diagonal(self.counts, axis1=1, axis2=2).T.astype(float)  # (classes, snrs)
        totals = self.counts.sum(axis=2).T.astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(totals > 0, diag / np.maximum(totals, 1), np.nan)

    @property
    def acc_per_class(self) -> dict[str, float]:
        conf = self.confusion()
        totals = conf.sum(axis=1)
        return {c: float(conf[i, i] / totals[i]) for i, c in enumerate(self.class_names) if totals[i] > 0}

    def confusion(self, snr: int | None = None) -> np.ndarray:
        """Confusion matrix (true x predicted counts) over all SNRs, or at one SNR."""
        if snr is None:
            return self.counts.sum(axis=0)
        if snr not in self.snrs:
            raise AmcpruneError(f"no frames at SNR {snr} dB (have {self.snrs})")
        return self.counts[self.snrs.index(snr)]

    # --- serialisation -----------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        acs = self.acc_class_snr
        return {
            "split": self.split,
            "n": self.n,
            "accuracy": self.accuracy,
            "loss": self.loss,
            "class_names": list(self.class_names),
            "snrs": list(self.snrs),
            "n_per_snr": self.n_per_snr,
            "acc_per_snr": {str(k): v for k, v in self.acc_per_snr.items()},
            "acc_per_class": self.acc_per_class,
            "acc_class_snr": [[None if np.isnan(v) else float(v) for v in row] for row in acs],
            "confusion": self.confusion().tolist(),
            "confusion_by_snr": {str(s): self.confusion(s).tolist() for s in self.confusion_snrs if s in self.snrs},
            "counts": self.counts.tolist(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "EvalResult":
        return cls(
            class_names=list(data["class_names"]),
            snrs=[int(s) for s in data["snrs"]],
            counts=np.asarray(data["counts"], dtype=np.int64),
            loss=data.get("loss"),
            split=data.get("split"),
            confusion_snrs=[int(s) for s in data.get("confusion_by_snr", {})],
        )

    def table(self) -> str:
        """Overall accuracy and a compact per-SNR table (four columns of SNR / accuracy / frames)."""
        lines = [f"accuracy {self.accuracy:.4f} on {self.n} frames" + (f" ({self.split})" if self.split else "")]
        acc = self.acc_per_snr
        rows = [f"{s:>4d} dB {acc[s]:6.4f} {n:>7d}" for s, n in zip(self.snrs, self.n_per_snr) if n]
        if not rows:
            return lines[0]
        per_col = -(-len(rows) // 4)
        cols = [rows[i : i + per_col] for i in range(0, len(rows), per_col)]
        width = len(rows[0])
        header = f"{'SNR':>4}   {'acc':>7} {'frames':>7}"
        lines.append("   ".join([header] * len(cols)).rstrip())
        for r in range(per_col):
            lines.append("   ".join(col[r] if r < len(col) else " " * width for col in cols).rstrip())
        return "\n".join(lines)


def result_from_predictions(
    preds: Any,
    labels: Any,
    snrs: Any,
    class_names: Sequence[str],
    *,
    loss: float | None = None,
    split: str | None = None,
    confusion_snrs: Iterable[int] | None = None,
) -> EvalResult:
    preds = torch.as_tensor(np.asarray(preds) if not isinstance(preds, torch.Tensor) else preds).long().cpu()
    labels = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels).long().cpu()
    snrs_t = torch.as_tensor(np.asarray(snrs) if not isinstance(snrs, torch.Tensor) else snrs).long().cpu().reshape(-1)
    nc = len(class_names)
    if len(labels) and (int(labels.max()) >= nc or int(preds.max()) >= nc):
        raise AmcpruneError(f"labels or predictions exceed the {nc} class names")
    snr_values = sorted(int(s) for s in torch.unique(snrs_t).tolist())
    lut = {s: i for i, s in enumerate(snr_values)}
    snr_idx = torch.tensor([lut[int(s)] for s in snrs_t.tolist()], dtype=torch.long) if len(snrs_t) else snrs_t
    flat = (snr_idx * nc + labels) * nc + preds
    counts = torch.bincount(flat, minlength=len(snr_values) * nc * nc).reshape(len(snr_values), nc, nc)
    chosen = list(DEFAULT_CONFUSION_SNRS if confusion_snrs is None else confusion_snrs)
    return EvalResult(
        class_names=list(class_names),
        snrs=snr_values,
        counts=counts.numpy().astype(np.int64),
        loss=loss,
        split=split,
        confusion_snrs=[int(s) for s in chosen if int(s) in snr_values],
    )


@contextlib.contextmanager
def eval_mode(model: nn.Module):
    """Eval mode for the duration, restoring the previous training flag afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def _logits(out: Any) -> torch.Tensor:
    # A Brevitas QuantTensor (return_quant_tensor=True on the last layer) carries its values in `.value`.
    return out.value if hasattr(out, "value") and not isinstance(out, torch.Tensor) else out


@torch.no_grad()
def predict_batches(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
                    fast: bool = True):
    """Run ``model`` over ``(x, y, snr)`` batches; returns (preds, labels, snrs, mean loss) on the CPU.

    ``fast``: under Brevitas' ``quant_inference_mode`` (:func:`amcprune.train.fasteval.fast_eval`), the same
    logits bit for bit."""
    preds, labels, snrs = [], [], []
    loss_sum, n = 0.0, 0
    with eval_mode(model), torch.inference_mode(), fast_eval(model, enabled=fast):
        for xb, yb, sb in batches:
            logits = _logits(model(xb))
            loss_sum += float(F.cross_entropy(logits.float(), yb, reduction="sum"))
            n += len(yb)
            preds.append(logits.argmax(dim=1).cpu())
            labels.append(yb.cpu())
            snrs.append(sb.cpu())
    if not preds:
        empty = torch.empty(0, dtype=torch.long)
        return empty, empty, empty, None
    return torch.cat(preds), torch.cat(labels), torch.cat(snrs), loss_sum / max(n, 1)


def evaluate_model(
    model: nn.Module,
    data: Any,
    labels: Any = None,
    snrs: Any = None,
    class_names: Sequence[str] | None = None,
    *,
    split: str = "test",
    batch_size: int | None = None,
    device: str | torch.device | None = None,
    confusion_snrs: Iterable[int] | None = None,
    fast: bool = True,
) -> EvalResult:
    """Evaluate ``model`` on an ``InMemoryData`` split (``data`` with ``split``) or on frames.

    Frames: ``data`` (n, 1024, 2) or (n, 2, 1024) float array/tensor with ``labels`` (n,) and ``snrs`` (n,).
    ``fast`` (default): Brevitas' ``quant_inference_mode``, the same predictions several times faster.
    """
    if isinstance(data, InMemoryData):
        names = class_names or data.class_names
        batches = data.batches(split, batch_size or default_eval_batch_size(data.device))
    else:
        if labels is None or snrs is None:
            raise AmcpruneError("evaluate_model on frames needs labels and snrs")
        if device is None:
            p = next(model.parameters(), None)
            device = p.device if p is not None else torch.device("cpu")
        x = to_model_layout(data)
        y = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels).long()
        s = torch.as_tensor(np.asarray(snrs) if not isinstance(snrs, torch.Tensor) else snrs).long().reshape(-1)
        if not (len(x) == len(y) == len(s)):
            raise AmcpruneError(f"frames ({len(x)}), labels ({len(y)}) and snrs ({len(s)}) differ in length")
        if class_names is None:
            class_names = list(CLASSES)
        names = class_names
        dev = torch.device(device)
        batch_size = batch_size or default_eval_batch_size(dev)
        batches = (
            (x[i : i + batch_size].to(dev), y[i : i + batch_size].to(dev), s[i : i + batch_size])
            for i in range(0, len(x), batch_size)
        )
    preds, ys, ss, loss = predict_batches(model, batches, fast=fast)
    return result_from_predictions(preds, ys, ss, names, loss=loss, split=split, confusion_snrs=confusion_snrs)


EVAL_OUTPUTS = ("eval.json", "acc_vs_snr.png", "acc_class_snr.png", "confusion.png", "confusion_snr*.png")


def check_eval_out(out_dir: str | os.PathLike, overwrite: bool = False) -> Path:
    """Refuse an ``out_dir`` that is a file, or (unless ``overwrite``) one that already holds an evaluation."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise AmcpruneError(f"{out}: exists and is not a directory; --out takes a directory for eval.json and plots")
    if out.is_dir() and not overwrite:
        found = sorted({p.name for pattern in EVAL_OUTPUTS for p in out.glob(pattern)})
        if found:
            raise AmcpruneError(f"{out}: already holds an evaluation ({', '.join(found[:3])}); use --force to replace it")
    return out


def write_eval(result: EvalResult, out_dir: str | os.PathLike, *, plots: bool = True) -> dict[str, Path]:
    """Write ``eval.json`` and (with ``plots``) ``acc_vs_snr.png``, ``acc_class_snr.png``, ``confusion.png``
    and ``confusion_snr<S>.png`` for each chosen SNR. Returns the written paths."""
    out = check_eval_out(out_dir, overwrite=True)
    out.mkdir(parents=True, exist_ok=True)
    written = {"json": out / "eval.json"}
    write_json_atomic(written["json"], result.to_json())
    if plots:
        from amcprune.train import plots as P  # local: matplotlib is slow to load and only the plots need it

        written.update(P.plot_all(result, out))
    return written


def load_trained(path: str | os.PathLike):
    """``(model, spec, checkpoint)`` from an amcprune checkpoint or a run directory (best.pt, else last.pt)."""
    return load_model(path)


def evaluate_checkpoint(
    path: str | os.PathLike,
    data_path: str | os.PathLike | None = None,
    *,
    split: str = "test",
    out_dir: str | os.PathLike | None = None,
    confusion_snrs: Iterable[int] | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    limit: int | None = None,
    quiet: bool = False,
    warn=None,
    overwrite: bool = False,
) -> EvalResult:
    """The ``amcprune evaluate`` job: load a checkpoint (or run), read ``split`` of the data, evaluate.

    ``split``: "test" (the whole prescribed test split), "val" (the run's validation carve, with its SNR
    filter; needs a checkpoint written by ``amcprune train``) or "all" (every frame of the file). ``limit``
    evaluates a seeded random subset of that many frames. ``confusion_snrs`` must be SNRs of the evaluated
    frames. All of Y is checked (one-hot, consistent with the layout), as training does. An ``out_dir``
    that already holds an evaluation is refused unless ``overwrite``.
    """
    if batch_size is not None and batch_size < 1:
        raise AmcpruneError(f"--batch-size must be at least 1, got {batch_size}")
    if limit is not None and limit < 1:
        raise AmcpruneError(f"--limit must be at least 1 frame, got {limit}")
    if out_dir is not None:
        check_eval_out(out_dir, overwrite)
    model, spec, ckpt = load_trained(path)
    if data_path is None:
        data_path = ckpt.get("data_path")
        if not data_path:
            raise AmcpruneError(f"{path}: the checkpoint names no data file; pass --data")
    data_path = Path(data_path)
    stored_fp = ckpt.get("data_fingerprint")
    if stored_fp and warn is not None:
        fp = radioml.data_fingerprint(data_path)
        if fp != stored_fp:
            warn(f"warning: {data_path} is not the file this model was trained on (fingerprint differs): "
                 "its test split may overlap the frames the model was trained on")
    if split == "test":
        idx = radioml.load_splits(data_path).test
    elif split == "val":
        cfg_data = ckpt.get("train_config")
        if not cfg_data:
            raise AmcpruneError(f"{path}: no train config in the checkpoint, so its val split is unknown")
        cfg = TrainConfig.from_dict(cfg_data)
        idx = radioml.load_splits(data_path, val_fraction=cfg.val_fraction, val_seed=cfg.seed,
                                  snr_min=cfg.train_snr_min, snr_max=cfg.train_snr_max).val
        if idx.size == 0:
            raise AmcpruneError(f"{path}: the run had no validation split (val_fraction 0)")
    elif split == "all":
        idx = np.arange(radioml.RadioMLFile(data_path).n_frames, dtype=np.int64)
    else:
        raise AmcpruneError(f"unknown split {split!r} (test, val or all)")
    rf = radioml.RadioMLFile(data_path)
    radioml.check_all_labels(rf, quiet=quiet)  # the frames evaluated are checked anyway; train checks all
    if limit is not None and limit < idx.size:
        rng = np.random.default_rng(0)
        idx = np.sort(rng.choice(idx, size=limit, replace=False))
    if confusion_snrs is not None:
        present = sorted({int(s) for s in np.unique(rf.snrs_of(idx))})
        missing = [int(s) for s in confusion_snrs if int(s) not in present]
        if missing:
            raise AmcpruneError(
                f"--snr {missing[0]}: no {split} frames at {missing[0]} dB in {data_path} "
                f"(SNRs: {', '.join(str(s) for s in present)})"
            )
    dev = resolve_device(device)
    data = InMemoryData.from_file(data_path, {split: idx}, spec=spec, device=dev, quiet=quiet)
    model.to(dev)
    result = evaluate_model(model, data, split=split, batch_size=batch_size, confusion_snrs=confusion_snrs)
    if out_dir is not None:
        write_eval(result, out_dir)
    return result
