"""Build realistic fake train and prune run directories for the report tests.

The files mirror what the other stages write (amcprune.train.run, amcprune.prune.engine,
amcprune.train.evaluate.EvalResult.to_json, amcprune.cost.CostResult.to_dict), with small numbers, so
the report tests do not depend on those stages running.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import yaml

from amcprune.data.classes import CLASSES, SNRS_DB
from amcprune import outputs as C

BASELINE = {"name": "challenge VGG10 (ITU-ML5G-PS-007)", "bops": 807699904, "weight_bits": 1244936}
# (name, op, MACs, weights) of a small VGG10-like network.
LAYERS = [
    ("Conv_0", "Conv", 64 * 2 * 3 * 1024, 64 * 2 * 3), ("Conv_1", "Conv", 64 * 64 * 3 * 512, 64 * 64 * 3),
    ("Conv_2", "Conv", 64 * 64 * 3 * 256, 64 * 64 * 3), ("Conv_3", "Conv", 64 * 64 * 3 * 128, 64 * 64 * 3),
    ("Conv_4", "Conv", 64 * 64 * 3 * 64, 64 * 64 * 3), ("Conv_5", "Conv", 64 * 64 * 3 * 32, 64 * 64 * 3),
    ("Conv_6", "Conv", 64 * 64 * 3 * 16, 64 * 64 * 3), ("MatMul_0", "MatMul", 512 * 128, 512 * 128),
    ("MatMul_1", "MatMul", 128 * 128, 128 * 128), ("MatMul_2", "MatMul", 128 * 24, 128 * 24),
]


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def fake_eval(n_classes: int = 24, snrs=SNRS_DB, quality: float = 1.0, seed: int = 0, frames: int = 20) -> dict:
    """An eval.json object in the EvalResult.to_json layout, derived from counts[snr][true][pred]."""
    rng = np.random.default_rng(seed)
    snrs = [int(s) for s in snrs]
    names = list(CLASSES[:n_classes]) if n_classes <= len(CLASSES) else [f"c{i}" for i in range(n_classes)]
    counts = np.zeros((len(snrs), n_classes, n_classes), dtype=np.int64)
    for c in range(n_classes):
        center = rng.uniform(-12, 8)
        ceiling = min(1.0, quality * rng.uniform(0.7, 1.0))
        confusers = rng.choice([k for k in range(n_classes) if k != c], size=min(3, n_classes - 1), replace=False)
        for j, s in enumerate(snrs):
            p = 1.0 / n_classes + (ceiling - 1.0 / n_classes) / (1 + math.exp(-(s - center) / 2.5))
            correct = int(round(p * frames))
            counts[j, c, c] = correct
            for k, part in zip(confusers, np.array_split(np.arange(frames - correct), len(confusers))):
                counts[j, c, k] += len(part)
    diag = np.diagonal(counts, axis1=1, axis2=2)
    conf = counts.sum(axis=0)
    acc_class_snr = (diag / counts.sum(axis=2)).T
    return {
        "split": "test",
        "n": int(counts.sum()),
        "accuracy": float(np.trace(conf) / conf.sum()),
        "loss": 1.23,
        "class_names": names,
        "snrs": snrs,
        "n_per_snr": [int(v) for v in counts.sum(axis=(1, 2))],
        "acc_per_snr": {str(s): float(diag[j].sum() / counts[j].sum()) for j, s in enumerate(snrs)},
        "acc_per_class": {n: float(conf[i, i] / conf[i].sum()) for i, n in enumerate(names)},
        "acc_class_snr": acc_class_snr.tolist(),
        "confusion": conf.tolist(),
        "confusion_by_snr": {str(snrs[-1]): counts[-1].tolist()},
        "counts": counts.tolist(),
    }


def fake_cost(sparsity: float = 0.0, bits: int = 4) -> dict:
    """A cost JSON object in the CostResult.to_dict layout (what `amcprune cost --json` prints)."""
    per_layer = []
    for i, (name, op, macs, weights) in enumerate(LAYERS):
        nonzero = int(weights * (1 - sparsity))
        in_bits = 8 if i == 0 else bits
        per_layer.append({
            "name": name, "op": op, "macs": macs, "input_dtype": "INT8" if i == 0 else f"UINT{bits}",
            "weight_dtype": f"INT{bits}", "bops": int(macs * bits * in_bits * (1 - sparsity)),
            "weight_bits": nonzero * bits, "weights": weights, "nonzero": nonzero,
        })
    weights = sum(layer["weights"] for layer in per_layer)
    nonzero = sum(layer["nonzero"] for layer in per_layer)
    bops = sum(layer["bops"] for layer in per_layer)
    wbits = sum(layer["weight_bits"] for layer in per_layer)
    return {
        "bops": bops, "weight_bits": wbits,
        "score": 0.5 * bops / BASELINE["bops"] + 0.5 * wbits / BASELINE["weight_bits"],
        "weights": weights, "nonzero_weights": nonzero, "sparsity": 1 - nonzero / weights,
        "per_layer": per_layer, "macs": sum(layer["macs"] for layer in per_layer), "baseline": BASELINE,
        "warnings": ["MatMul_0 (MatMul): its input is not quantized (FLOAT32); its MACs are billed at 32 bits"],
        "key": "0123abcd", "model": "final.onnx",
    }


def fake_records() -> list[dict]:
    """records.jsonl of an fmp run (amcprune.prune.engine): met, a failed iteration, a rewind, a stop."""
    # (event, iteration, rates applied, criterion acc, epochs, reason)
    plan = [
        ("met", 0, [], 0.600, 0, None),
        ("met", 1, [0.2], 0.598, 4, None),
        ("met", 2, [0.2, 0.2], 0.594, 5, None),
        ("met", 3, [0.2, 0.2, 0.2], 0.587, 6, None),
        ("failed", 4, [0.2, 0.2, 0.2, 0.2], 0.551, 10, "budget"),
        ("rewind", 4, [0.2, 0.2, 0.2], 0.587, 0, None),
        ("met", 5, [0.2, 0.2, 0.2, 0.1], 0.571, 7, None),
        ("stop", 5, [0.2, 0.2, 0.2, 0.1], 0.571, 0, "p below p_min"),
    ]
    dense = fake_cost()
    records, last_ckpt = [], None
    for i, (event, it, ps, acc, epochs, reason) in enumerate(plan):
        sparsity = 1 - float(np.prod([1 - p for p in ps])) if ps else 0.0
        cost = fake_cost(sparsity)
        if event == "met":
            last_ckpt = f"iterations/s0-i{it:03d}.pt"
        rec = {
            "record": i, "event": event, "stage": 0, "method": "fmp", "criterion": "global", "iteration": it,
            "p": 0.1 if i >= 5 else 0.2, "epochs_total": 5 * i, "judge_on": "val", "criterion_acc": acc,
            "test_acc": acc - 0.004, "threshold": 0.56, "met": event != "failed", "ps": ps,
            "weights": dense["weights"], "nonzero_weights": cost["nonzero_weights"],
            "unmasked_weights": cost["nonzero_weights"], "sparsity": sparsity,
            "compression": dense["weights"] / cost["nonzero_weights"],
            "compression_formula": float(np.prod([1 / (1 - p) for p in ps])) if ps else 1.0,
            "widths": [64] * 7 + [128, 128, 24], "bops": cost["bops"], "weight_bits": cost["weight_bits"],
            "score": cost["score"], "epochs": epochs, "p_applied": None, "wall_s": 11.0 * i,
        }
        if event != "failed":
            rec["checkpoint"] = last_ckpt
        if reason:
            rec["reason"] = reason
        records.append(rec)
    return records


def fake_config(kind: str = "prune") -> dict:
    config = {
        "model": {"arch": "vgg10", "quantized": True, "weight_bits": 4, "act_bits": 4, "input_bits": 8,
                  "num_classes": 24, "input_length": 1024},
        "train": {"optimizer": "adam", "lr": 0.001, "weight_decay": 0.0, "scheduler": "cosine-restarts",
                  "epochs": 5, "batch_size": 256, "patience": 3, "seed": 0, "val_fraction": 0.1},
        "data": {"path": "/data/synth-tiny.h5", "fingerprint": "3f2a9c1be07d44aa0c8e"},
    }
    if kind == "prune":
        config = {
            "prune": {"methods": ["fmp"], "criteria": ["global"], "p": [0.2], "divisor": 2.0, "target": 0.56,
                      "judge_on": "val", "max_epochs": 10},
            "train": config["train"], "source": "runs/train/checkpoints/best.pt", "data": config["data"],
            "model": config["model"],
        }
    return config


def make_prune_run(
    root: Path, *, n_classes: int = 24, snrs=SNRS_DB, evals: bool = True, costs: bool = True,
    summary: bool = True, records: bool = True, final_eval_dir: str = "eval_final",
) -> Path:
    """A prune run directory with every file the report reads (each part can be left out)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / C.CONFIG_FILE).write_text(yaml.safe_dump(fake_config("prune"), sort_keys=False))
    recs = fake_records()
    if records:
        (root / C.RECORDS_FILE).write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in recs))
    final_rec = recs[6]
    dense_cost, final_cost = fake_cost(), fake_cost(final_rec["sparsity"])
    dense_eval = fake_eval(n_classes, snrs, quality=1.0, seed=1)
    final_eval = fake_eval(n_classes, snrs, quality=0.96, seed=1)
    if summary:
        stats = {k: final_rec[k] for k in ("weights", "nonzero_weights", "unmasked_weights", "sparsity", "compression",
                                           "compression_formula", "widths", "bops", "weight_bits", "score")}
        _write_json(root / C.SUMMARY_FILE, {
            "out_dir": str(root), "met": True, "judge_on": "val", "threshold": 0.56,
            "dense_acc": 0.600, "dense_test_acc": dense_eval["accuracy"], "dense_weights": dense_cost["weights"],
            "final": {"path": final_rec["checkpoint"], "ps": final_rec["ps"], "criterion_acc": 0.571,
                      "test_acc": final_eval["accuracy"], "stats": stats, "stage": 0, "iteration": 5},
            "final_checkpoint": "final.pt", "final_onnx": "final.onnx",
            "final_cost": {k: final_cost[k] for k in ("bops", "weight_bits", "score", "weights", "nonzero_weights",
                                                      "sparsity", "warnings")},
            "stages": [{"stage": 0, "method": "fmp", "criterion": "global", "met": True, "reason": "p below p_min",
                        "iterations": 5, "final_p": 0.1, "checkpoint": final_rec["checkpoint"], "criterion_acc": 0.571,
                        "test_acc": final_eval["accuracy"], "nonzero_weights": final_rec["nonzero_weights"],
                        "compression": final_rec["compression"]}],
            "records": len(recs), "epochs_total": 42, "wall_s": 88.0,
            "fixes": ["optimizer and scheduler rebuilt on the rewound parameters after every rewind"],
        })
    (root / C.FINAL_CHECKPOINT).write_bytes(b"fake checkpoint")
    (root / C.FINAL_ONNX).write_bytes(b"fake onnx")
    if evals:
        _write_json(root / C.EVAL_DENSE_DIR / C.EVAL_FILE, dense_eval)
        _write_json(root / final_eval_dir / C.EVAL_FILE, final_eval)
    if costs:
        _write_json(root / C.COST_DENSE_FILE, dense_cost)
        _write_json(root / C.COST_FINAL_FILE, final_cost)
    return root


def make_train_run(root: Path, *, epochs: int = 5, with_eval: bool = False, with_summary: bool = True) -> Path:
    """A train run directory (amcprune.train.run): config.yaml, metrics.jsonl, checkpoints/, summary.json."""
    root = Path(root)
    (root / "checkpoints").mkdir(parents=True, exist_ok=True)
    (root / C.CONFIG_FILE).write_text(yaml.safe_dump(fake_config("train"), sort_keys=False))
    metrics = []
    for e in range(1, epochs + 1):
        metrics.append({
            "epoch": e, "train_loss": 2.5 - 0.3 * e, "train_acc": 0.2 + 0.08 * e, "lr": 1e-3 * 0.9 ** e,
            "samples_per_s": 5000.0, "train_seconds": 3.0, "val_acc": 0.18 + 0.08 * e, "val_loss": 2.6 - 0.28 * e,
            "seconds": 3.2,
        })
    (root / C.METRICS_FILE).write_text("".join(json.dumps(m, sort_keys=True) + "\n" for m in metrics))
    (root / C.BEST_CHECKPOINT).write_bytes(b"fake checkpoint")
    (root / C.LAST_CHECKPOINT).write_bytes(b"fake checkpoint")
    if with_summary:
        _write_json(root / C.SUMMARY_FILE, {
            "run_dir": str(root), "epochs": epochs, "best_epoch": epochs, "best_metric": "val_acc",
            "best_score": metrics[-1]["val_acc"], "early_stopped": False, "last": metrics[-1], "test_acc": 0.571,
            "test_loss": 1.31, "test_acc_per_snr": {str(s): 0.04 + 0.9 / (1 + math.exp(-s / 4)) for s in SNRS_DB},
        })
    if with_eval:
        _write_json(root / "eval" / C.EVAL_FILE, fake_eval(8, SNRS_DB[::3], seed=2))
    return root
