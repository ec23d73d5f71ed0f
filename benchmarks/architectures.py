"""Architecture as a dimension of the benchmark: dense and pruned score and accuracy per architecture.

Each (architecture, seed) is one demo trial (``amcprune demo --preset quick``: the same synthetic data, the same
dense training recipe, the same prune recipe (the demo's: FMP, then per-layer bit lowering) and accuracy
criterion) with the model replaced, run as its
own process. The script prints one row per run and, per architecture, the mean and min .. max over the seeds of
the dense and pruned score (measured by the cost tool on the exported QONNX), test accuracy, measured
compression and wall time.

    python benchmarks/architectures.py --out /tmp/arch --jobs 2              # defaults: 3 archs x seeds 0 1 2
    python benchmarks/architectures.py --archs vgg10 compact-winner --seeds 0 1 2 3 4 --preset gpu  # a GPU box
    python benchmarks/architectures.py --costs --archs vgg10 vgg10-stem compact compact-winner   # no training

``--costs`` only builds each architecture (seed 0 initialisation, at the trial's model spec) and prints what the
cost tool bills for it, quantized and as a float model: seconds, no data.

``--epochs`` and ``--max-iterations`` cut the demo's budgets (8 training epochs, at most 12 prunes and 8 bit steps)
to 4 epochs and at most 4 prunes and 4 bit steps by
default, so that the default run fits a busy 2-core machine; 0 keeps the preset's (use that on a GPU machine).
``--archs`` takes names of ``ARCHS`` below (each is trial overrides: an architecture or model preset, its
bits and widths); ``--criterion structured`` prunes whole channels and shrinks the model (the stage's default
is ``global``, unstructured); ``--set KEY=VALUE`` adds trial overrides to every run (e.g. ``train.epochs=20``,
``model.input_length=...``). ``--data FILE`` gives every trial the same existing file (e.g. the synthetic file
the first trial wrote, or the real RadioML 2018.01A file) instead of generating one per trial. A run directory
that holds a finished trial is read, not run again.
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

# name -> trial overrides (KEY=VALUE as for ``amcprune demo --set``). ``model={}`` drops the demo's VGG10 widths.
ARCHS: dict[str, list[str]] = {
    # the demo's own model: 4-bit VGG10, 16 filters, 64-wide dense layers
    "vgg10": ["arch=vgg10", "bits=4", "model={conv_filters: 16, dense_width: 64}"],
    # the same with a cheap stem: conv0 strided by 2 (every later layer sees half the samples)
    "vgg10-stem": ["arch=vgg10", "bits=4", "model={conv_filters: 16, dense_width: 64, stem_stride: 2}"],
    # the challenge VGG10 (64 filters) at the 4 bits of the 2021 runner-up
    "vgg10-full": ["arch=vgg10", "bits=4", "model={}"],
    # the 2021 winner's topology at its 6 bits (amcprune.models.spec.MODEL_PRESETS)
    "compact-winner": ["arch=compact-winner", "bits=6", "model={}"],
    "compact-winner-4bit": ["arch=compact-winner", "bits=4", "model={}"],
    # the winner with a pooled, narrower first block
    "compact-winner-stem": ["arch=compact-winner-stem", "bits=6", "model={}"],
    # amcprune's default compact blocks at the demo's 4 bits
    "compact": ["arch=compact", "bits=4", "model={}"],
}
DEFAULT_ARCHS = ["vgg10", "compact-winner-stem", "compact-winner"]


def run_one(root: Path, preset: str, arch: str, seed: int, threads: int | None, extra: list[str],
            data: Path | None = None) -> dict:
    out = root / f"{arch}-seed{seed}"
    trial = out / "trial.json"
    done = trial.is_file() and json.loads(trial.read_text()).get("status") == "done"
    wall = None
    if not done:
        cmd = [sys.executable, "-m", "amcprune", "demo", "--preset", preset, "--out", str(out), "--quiet",
               "--set", f"seed={seed}"]
        if threads:
            cmd += ["--set", f"threads={threads}"]
        if data is not None:
            cmd += ["--data", str(data)]
        for item in [*ARCHS[arch], *extra]:
            cmd += ["--set", item]
        out.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        with open(out.with_suffix(".log"), "w") as log:
            log.write(" ".join(cmd) + "\n")
            log.flush()
            rc = subprocess.run(cmd, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT).returncode
        wall = time.perf_counter() - t0
        if rc != 0:
            return {"arch": arch, "seed": seed, "error": f"exit {rc}, see {out.with_suffix('.log')}"}
    state = json.loads(trial.read_text())
    result = state["result"]
    summary = json.loads((out / "prune" / "summary.json").read_text())
    return {
        "arch": arch, "seed": seed, "met": result["met"],
        "dense_score": result["dense_score"], "score": result["score"],
        "dense_test": result["dense_test_accuracy"], "test": result["test_accuracy"],
        "compression": result["compression"], "weights": summary["final"]["stats"]["weights"],
        "prunes": len(summary["final"]["ps"]),
        "wall_s": wall if wall is not None else state.get("last_run_s"), "stage_s": state.get("wall_s"),
    }


def untrained_costs(archs: list[str], preset: str) -> None:
    import torch

    from amcprune.cost import model_cost
    from amcprune.models import build_model
    from amcprune.pipeline.presets import demo_config, parse_overrides

    print("| arch | bits (w/a/input) | weights | bops | weight bits | score | score as float | cost warnings |")
    print("|---|---|---|---|---|---|---|---|")
    for arch in archs:
        spec = demo_config(preset, overrides=parse_overrides(ARCHS[arch])).model_spec(num_classes=24)
        torch.manual_seed(0)
        cost = model_cost(build_model(spec))
        float_cost = model_cost(build_model(spec.model_copy(update={"quantized": False})))
        print(f"| {arch} | {spec.weight_bits}/{spec.act_bits}/{spec.input_bits} | {cost.weights:,} | {cost.bops:,.0f} | "
              f"{cost.weight_bits:,.0f} | {cost.score:.5f} | {float_cost.score:.4f} | {len(cost.warnings)} |")


def agg(rows: list[dict], key: str, fmt: str) -> str:
    values = [r[key] for r in rows if r.get(key) is not None]
    if not values:
        return "-"
    return f"{format(statistics.fmean(values), fmt)} ({format(min(values), fmt)} .. {format(max(values), fmt)})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--archs", nargs="+", default=DEFAULT_ARCHS, choices=sorted(ARCHS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--preset", default="quick", help="demo preset: quick (2 cores) or gpu (data, model and budgets)")
    ap.add_argument("--criterion", default=None, help="prune criterion (default: the preset's, global)")
    ap.add_argument("--out", type=Path, default=Path("runs/architectures"))
    ap.add_argument("--jobs", type=int, default=1, help="trials at once (give --threads 1 with 2 jobs on 2 cores)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads per trial")
    ap.add_argument("--set", dest="extra", action="append", default=[], help="extra trial override KEY=VALUE")
    ap.add_argument("--epochs", type=int, default=4, help="dense training epochs (0: the preset's)")
    ap.add_argument("--max-iterations", type=int, default=4, help="most prunes, and most bit steps, per trial (0: the preset's)")
    ap.add_argument("--data", type=Path, default=None, help="an existing RadioML-layout file for every trial")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--costs", action="store_true", help="only print each architecture's untrained cost")
    args = ap.parse_args()
    if args.costs:
        untrained_costs(args.archs, args.preset)
        return 0
    extra = [f"criterion={args.criterion}"] if args.criterion else []
    if args.epochs:
        extra += [f"train.epochs={args.epochs}", f"train.t0={args.epochs}"]  # one cosine cycle, as in the demo
    if args.max_iterations:
        extra += [f"prune.max_iterations={args.max_iterations}"]
    extra += args.extra

    runs = [(a, s) for s in args.seeds for a in args.archs]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(lambda r: run_one(args.out, args.preset, r[0], r[1], args.threads, extra, args.data), runs))

    print(f"demo preset {args.preset!r}, overrides {extra or 'none'}, jobs {args.jobs}, threads {args.threads or 'default'}")
    print("| arch | seed | met | dense score | pruned score | test dense -> pruned | compression | weights | prunes | min |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['arch']} | {r['seed']} | error: {r['error']} |")
            continue
        print(f"| {r['arch']} | {r['seed']} | {r['met']} | {r['dense_score']:.5f} | {r['score']:.5f} | "
              f"{r['dense_test']:.4f} -> {r['test']:.4f} | {r['compression']:.2f}x | {r['weights']} | {r['prunes']} | "
              f"{r['stage_s'] / 60:.1f} |")
    print("\nper architecture, mean (min .. max) over the seeds:")
    print("| arch | runs | met | dense score | pruned score | dense test acc | pruned test acc | compression | min |")
    print("|---|---|---|---|---|---|---|---|---|")
    for a in args.archs:
        rs = [r for r in rows if r["arch"] == a and "error" not in r]
        if not rs:
            continue
        rs = [{**r, "minutes": r["stage_s"] / 60} for r in rs]
        cells = [agg(rs, k, f) for k, f in (("dense_score", ".5f"), ("score", ".5f"), ("dense_test", ".4f"),
                                            ("test", ".4f"), ("compression", ".2f"), ("minutes", ".1f"))]
        print(f"| {a} | {len(rs)} | {sum(1 for r in rs if r['met'])} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
