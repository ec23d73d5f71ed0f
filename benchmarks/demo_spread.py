"""The demo over several seeds and floating-point kernel sets: does pruning hold on every one?

Runs ``amcprune demo --preset quick --set seed=S`` (the README's main command with another seed) once per seed
and per kernel set, each as its own process, and prints one row per run and the spread (min / median / max)
of what the demo promises: the criterion met, the measured compression, the final score relative to the dense
score, and the wall time. ``--kernels avx2`` runs the demo as ``../shared/other-cpu`` does (torch, oneDNN and
MKL forced onto their AVX2 kernels), which changes floating-point rounding as another CPU would.

    python benchmarks/demo_spread.py --seeds 0 1 2 3 4 --kernels default avx2 --out /tmp/spread
    python benchmarks/demo_spread.py --seeds 0 1 2 --jobs 2 --threads 1 --out /tmp/spread   # two at a time

A run directory that already holds a finished demo is read, not run again, so an interrupted benchmark
continues where it stopped. ``--json FILE`` writes the rows. The bar (issue "Pruning that holds"): met,
compression >= 4x, score <= 0.3x dense, wall < 10 min on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

KERNELS = {
    "default": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "avx512": {"ATEN_CPU_CAPABILITY": "avx512", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE", "MKL_ENABLE_INSTRUCTIONS": "AVX512"},
}
BAR = {"compression": 4.0, "score_ratio": 0.3, "wall_s": 600.0}


def amcprune_cmd() -> list[str]:
    return [sys.executable, "-m", "amcprune"]


def run_one(root: Path, preset: str, seed: int, kernels: str, threads: int | None, extra: list[str]) -> dict:
    out = root / f"{kernels}-seed{seed}"
    trial = out / "trial.json"
    done = trial.is_file() and json.loads(trial.read_text()).get("status") == "done"
    wall = None
    if not done:
        cmd = [*amcprune_cmd(), "demo", "--preset", preset, "--out", str(out), "--quiet", "--set", f"seed={seed}"]
        if threads:
            cmd += ["--set", f"threads={threads}"]
        for item in extra:
            cmd += ["--set", item]
        env = {**os.environ, **KERNELS[kernels]}
        out.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        with open(out.with_suffix(".log"), "w") as log:
            rc = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
        wall = time.perf_counter() - t0
        if rc != 0:
            return {"seed": seed, "kernels": kernels, "error": f"exit {rc}, see {out.with_suffix('.log')}"}
    state = json.loads(trial.read_text())
    result = state["result"]
    summary = json.loads((out / "prune" / "summary.json").read_text())
    final = summary["final"]
    return {
        "seed": seed,
        "kernels": kernels,
        "dense_val": summary["dense_acc"],
        "threshold": summary["threshold"],
        "se": (summary.get("criterion_noise") or {}).get("se"),
        "final_val": final["criterion_acc"],
        "dense_test": result["dense_test_accuracy"],
        "final_test": result["test_accuracy"],
        "met": result["met"],
        "compression": result["compression"],
        "dense_score": result["dense_score"],
        "score": result["score"],
        "score_ratio": result["score"] / result["dense_score"],
        "prunes": len(final["ps"]),
        "wall_s": wall if wall is not None else state.get("last_run_s"),
        "stage_s": state.get("wall_s"),
    }


def fmt_row(r: dict) -> str:
    if "error" in r:
        return f"| {r['seed']} | {r['kernels']} | error: {r['error']} |"
    ok = r["met"] and r["compression"] >= BAR["compression"] and r["score_ratio"] <= BAR["score_ratio"]
    return (f"| {r['seed']} | {r['kernels']} | {r['dense_val']:.4f} | {r['threshold']:.4f} | {r['final_val']:.4f} | "
            f"{r['dense_test']:.4f} -> {r['final_test']:.4f} | {r['met']} | {r['compression']:.2f}x | "
            f"{r['score']:.6f} | {r['score_ratio']:.3f} | {r['prunes']} | {r['stage_s'] / 60:.1f} | "
            f"{'yes' if ok else 'NO'} |")


def spread(rows: list[dict], key: str, fmt: str) -> str:
    values = [r[key] for r in rows if "error" not in r and r.get(key) is not None]
    if not values:
        return "-"
    return f"{format(min(values), fmt)} / {format(statistics.median(values), fmt)} / {format(max(values), fmt)}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--kernels", nargs="+", default=["default", "avx2"], choices=sorted(KERNELS))
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--out", type=Path, default=Path("runs/demo-spread"))
    ap.add_argument("--jobs", type=int, default=1, help="demos run at once (give --threads 1 with 2 jobs on 2 cores)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads per demo")
    ap.add_argument("--set", dest="extra", action="append", default=[], help="extra trial override KEY=VALUE")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    runs = [(seed, k) for k in args.kernels for seed in args.seeds]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(lambda sk: run_one(args.out, args.preset, sk[0], sk[1], args.threads, args.extra), runs))

    print(f"demo preset {args.preset!r}, {len(rows)} runs, jobs {args.jobs}, threads {args.threads or 'default'}")
    print("| seed | kernels | dense val | threshold | final val | test dense -> final | met | compression | score "
          "| score/dense | prunes | stage min | bar |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(fmt_row(r))
    good = [r for r in rows if "error" not in r]
    print(f"\nmin / median / max over {len(good)} runs:")
    print(f"  compression  {spread(good, 'compression', '.2f')}")
    print(f"  score/dense  {spread(good, 'score_ratio', '.3f')}")
    print(f"  score        {spread(good, 'score', '.6f')}")
    print(f"  final test   {spread(good, 'final_test', '.4f')}   (dense {spread(good, 'dense_test', '.4f')})")
    print(f"  final val    {spread(good, 'final_val', '.4f')}")
    print(f"  stage min    {spread([{**r, 'm': r['stage_s'] / 60} for r in good], 'm', '.1f')}")
    met = sum(1 for r in good if r["met"])
    bar = sum(1 for r in good if r["met"] and r["compression"] >= BAR["compression"] and r["score_ratio"] <= BAR["score_ratio"])
    print(f"  criterion met in {met} of {len(rows)}; bar (met, >= 4x, <= 0.3x dense score) met in {bar} of {len(rows)}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0 if bar == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
