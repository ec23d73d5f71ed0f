"""Prune methods side by side, from the same dense checkpoints, under the same criterion.

Each dense checkpoint is a finished demo trial directory (its ``train/`` run and its ``data/`` file, e.g. the
ones ``benchmarks/demo_spread.py`` leaves behind). For every trial and every named method the prune stage runs
as its own process (``amcprune prune --recipe NAME`` plus the common options), then the script prints one row
per run and, per method, the mean and the min / max over the trials of the final score, the score relative
to the dense model, the measured compression, the criterion (val) and test accuracies and the wall time, and
the ratio of each method's mean score to the first method's.

    python benchmarks/prune_methods.py --trials /tmp/spread/default-seed{0,1,2} --out /tmp/methods --jobs 2

``--methods`` takes named recipes (``amcprune/prune/recipes``) with optional extra options after a colon,
e.g. ``fmp-2021`` or ``fmp:--max-epochs 2``; ``imp`` is the defaults with the imp schedule; ``demo`` reads the
trial's own prune stage instead of running one (with the default ``--common`` it is the ``fmp`` run: the same
options, the same dense checkpoint). ``--common`` holds the options every run gets (the criterion and the
budgets); the default is the demo's prune stage. A run directory with a summary is read, not run again.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

DEFAULT_METHODS = ["imp-2021", "fmp-2021", "imp", "demo"]
# The demo's prune stage (amcprune.pipeline.presets "quick"): the same criterion and budgets for every method.
DEFAULT_COMMON = ("--max-drop 0.03 --judge-on val --p 0.3 --p-min 0.075 --max-epochs 1 --patience 1 "
                  "--max-iterations 12 --threads 1 --quiet")


def method_args(method: str) -> tuple[str, list[str]]:
    name, _, extra = method.partition(":")
    args = ["--recipe", name]
    return name, args + shlex.split(extra)


def run_one(trial: Path, method: str, out_root: Path, common: list[str]) -> dict:
    name, args = method_args(method)
    out = out_root / f"{trial.name}-{method.replace(':', '_').replace(' ', '').replace('-', '_')}"
    if method == "demo":
        out = trial / "prune"
    summary_path = out / "summary.json"
    wall = None
    if not summary_path.is_file():
        data = next((trial / "data").glob("*.h5"))
        cmd = [sys.executable, "-m", "amcprune", "prune", "--from", str(trial / "train"), "--data", str(data),
               "--out", str(out), "--force", *args, *common]
        t0 = time.perf_counter()
        log = out_root / f"{out.name}.log"
        out_root.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as fh:
            rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT).returncode
        wall = time.perf_counter() - t0
        if rc != 0:
            return {"trial": trial.name, "method": method, "error": f"exit {rc}, see {log}"}
    s = json.loads(summary_path.read_text())
    final = s["final"]
    stats = final["stats"]
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines() if line.strip()]
    dense_score = records[0].get("score")
    score = (s.get("final_cost") or {}).get("score", stats.get("score"))
    return {
        "trial": trial.name, "method": method, "met": s["met"], "dense_val": s["dense_acc"],
        "threshold": s["threshold"], "val": final["criterion_acc"], "test": final["test_acc"],
        "dense_test": s["dense_test_acc"], "compression": stats["compression"], "score": score,
        "score_ratio": score / dense_score if score and dense_score else None, "prunes": len(final["ps"]),
        "epochs": s["epochs_total"], "wall_s": wall if wall is not None else s["wall_s"],
    }


def agg(rows: list[dict], key: str) -> tuple[float, float, float]:
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.fmean(values), min(values), max(values)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=Path, nargs="+", required=True, help="finished demo trial directories")
    ap.add_argument("--methods", nargs="+", default=DEFAULT_METHODS)
    ap.add_argument("--common", default=DEFAULT_COMMON, help="options every prune run gets")
    ap.add_argument("--out", type=Path, default=Path("runs/prune-methods"))
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    common = shlex.split(args.common)

    jobs = [(t, m) for t in args.trials for m in args.methods]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(lambda tm: run_one(tm[0], tm[1], args.out, common), jobs))

    print(f"common options: {args.common}")
    print("| trial | method | met | val (threshold) | test (dense) | compression | score | score/dense | prunes | epochs | wall s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['trial']} | {r['method']} | error: {r['error']} |")
            continue
        print(f"| {r['trial']} | {r['method']} | {r['met']} | {r['val']:.4f} ({r['threshold']:.4f}) | "
              f"{r['test']:.4f} ({r['dense_test']:.4f}) | {r['compression']:.2f}x | {r['score']:.6f} | "
              f"{r['score_ratio']:.3f} | {r['prunes']} | {r['epochs']} | {r['wall_s']:.0f} |")
    print("\nper method, mean (min .. max) over the trials:")
    print("| method | runs | met | score | score/dense | compression | val acc | test acc | wall s | mean score / first |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    first = None
    for m in args.methods:
        rs = [r for r in rows if r["method"] == m and "error" not in r]
        if not rs:
            continue
        cells = []
        for key, fmt in (("score", ".5f"), ("score_ratio", ".3f"), ("compression", ".2f"), ("val", ".4f"),
                         ("test", ".4f"), ("wall_s", ".0f")):
            mean, lo, hi = agg(rs, key)
            cells.append(f"{mean:{fmt}} ({lo:{fmt}} .. {hi:{fmt}})")
        mean_score = agg(rs, "score")[0]
        first = first if first is not None else mean_score
        met = sum(1 for r in rs if r["met"])
        print(f"| {m} | {len(rs)} | {met} | " + " | ".join(cells) + f" | {mean_score / first:.2f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
