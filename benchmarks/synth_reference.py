"""A small reference classifier on synthetic files: accuracy per SNR and top confusions, side by side.

    python benchmarks/synth_reference.py --file v1=/tmp/v1_quick.h5 --file v2=/tmp/v2_quick.h5 \
        --work /tmp/synth_ref

For every ``LABEL=FILE`` it trains the same small float VGG10 (16 filters, dense 32) with the ``amcprune
train`` CLI, evaluates it on the file's prescribed test split with ``amcprune evaluate``, and prints markdown
tables for docs/data.md: test accuracy per SNR and the most frequent confusions at high SNR (where they say
something about the classes rather than about the noise). Runs already finished under ``--work`` are reused,
so the files can be trained one at a time (one heavy job at a time on a shared machine) and tabled together.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def train_and_evaluate(label: str, data: Path, work: Path, args) -> dict:
    run = work / label
    ev = run / "eval" / "eval.json"
    if ev.exists() and not args.retrain:
        return json.loads(ev.read_text())
    py = [sys.executable, "-m", "amcprune"]
    train = [*py, "train", "--data", str(data), "--out", str(run), "--arch", "vgg10", "--float",
             "--filters", str(args.filters), "--dense", str(args.dense), "--epochs", str(args.epochs),
             "--batch-size", "256", "--lr", "0.01", "--seed", str(args.seed), "--threads", str(args.threads),
             "--device", "cpu", "--quiet", "--force"]
    print("$", " ".join(train), flush=True)
    subprocess.run(train, check=True)
    evaluate = [*py, "evaluate", str(run), "--out", str(run / "eval"), "--device", "cpu", "--quiet", "--force"]
    print("$", " ".join(evaluate), flush=True)
    subprocess.run(evaluate, check=True)
    return json.loads(ev.read_text())


def table_per_snr(results: dict[str, dict]) -> str:
    labels = list(results)
    snrs = results[labels[0]]["snrs"]
    lines = ["| SNR (dB) | " + " | ".join(labels) + " |", "|---:|" + "---:|" * len(labels)]
    for s in snrs:
        cells = [f"{100 * r['acc_per_snr'][str(s)]:.1f}" if str(s) in r["acc_per_snr"] else "-"
                 for r in results.values()]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    lines.append("| all | " + " | ".join(f"{100 * r['accuracy']:.1f}" for r in results.values()) + " |")
    return "\n".join(lines)


def top_confusions(result: dict, snr_min: int, top: int) -> list[tuple[str, str, float, int, int]]:
    """(true, predicted, share of the true class's frames, count, frames of the class) at SNR >= snr_min."""
    names = result["class_names"]
    k = len(names)
    counts = [[0] * k for _ in range(k)]
    for s, m in zip(result["snrs"], result["counts"]):
        if s >= snr_min:
            for i in range(k):
                for j in range(k):
                    counts[i][j] += m[i][j]
    out = []
    for i in range(k):
        n = sum(counts[i])
        for j in range(k):
            if i != j and counts[i][j] and n:
                out.append((names[i], names[j], counts[i][j] / n, counts[i][j], n))
    out.sort(key=lambda t: (-t[2], t[0], t[1]))
    return out[:top]


def class_accuracy(result: dict, snr_min: int) -> dict[str, float]:
    names = result["class_names"]
    acc = {}
    for i, name in enumerate(names):
        hit = tot = 0
        for s, m in zip(result["snrs"], result["counts"]):
            if s >= snr_min:
                hit += m[i][i]
                tot += sum(m[i])
        acc[name] = hit / tot if tot else float("nan")
    return acc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", action="append", required=True, help="LABEL=FILE (repeatable)")
    ap.add_argument("--work", default="/tmp/amcprune_synth_reference")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--filters", type=int, default=16)
    ap.add_argument("--dense", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--snr-min", type=int, default=10, help="confusions and per-class accuracy at SNR >= this")
    ap.add_argument("--top", type=int, default=8)
    ap.add_argument("--retrain", action="store_true", help="train again even if a finished run exists")
    ap.add_argument("--train-only", action="store_true", help="train/evaluate, print no tables")
    args = ap.parse_args(argv)

    work = Path(args.work)
    results: dict[str, dict] = {}
    for item in args.file:
        label, _, path = item.partition("=")
        if not path:
            ap.error(f"--file needs LABEL=FILE, got {item!r}")
        results[label] = train_and_evaluate(label, Path(path), work, args)
    if args.train_only:
        return 0

    print("\nTest accuracy (%) per SNR\n")
    print(table_per_snr(results))
    print(f"\nPer-class test accuracy (%) at SNR >= {args.snr_min} dB\n")
    labels = list(results)
    accs = {lab: class_accuracy(r, args.snr_min) for lab, r in results.items()}
    print("| class | " + " | ".join(labels) + " |")
    print("|---|" + "---:|" * len(labels))
    for name in results[labels[0]]["class_names"]:
        print(f"| {name} | " + " | ".join(f"{100 * accs[lab][name]:.0f}" for lab in labels) + " |")
    for lab, r in results.items():
        print(f"\nTop confusions of {lab} at SNR >= {args.snr_min} dB (share of the true class's test frames)\n")
        print("| true | predicted as | share | frames |")
        print("|---|---|---:|---:|")
        for true, pred, share, c, n in top_confusions(r, args.snr_min, args.top):
            print(f"| {true} | {pred} | {100 * share:.0f} % | {c} / {n} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
