"""Compression recipes side by side: the same dense checkpoints, the same accuracy criterion.

1. Dense models: one synthetic data file (``amcprune data synth --preset quick``) and, per seed, the demo's
   dense model trained on it (``amcprune train`` with the demo preset's model and train settings: VGG10, 16
   filters, 64-wide dense layers, 4 bits, 8 epochs). ``--dense DIR...`` uses finished train runs (or demo trial
   directories, with ``train/`` and ``data/``) instead.
2. Per dense model and recipe, ``amcprune prune --recipe NAME|FILE`` with the criterion (``--criterion``, by
   default the demo's: at most 3 points below the dense validation accuracy) as its own process. Magnitude
   stages (imp, fmp, and the magnitude stage of a chained recipe) get the demo's budgets (``--budget``: p 0.3
   halved down to 0.075, one fine-tuning epoch per iteration, at most 12 prunes); other kinds keep their recipe's.
   A recipe may carry extra options after a colon: ``fmp:--distill-weight 0.5``.
3. Prints one row per run and, per recipe, the mean and min / max over the seeds of the final score (from the
   exported final.onnx), score / dense, measured compression, criterion (val) and test accuracy, epochs and wall
   time, with the ratio of each recipe's mean score to the baseline's (``--baseline``, ``imp-2021``) and per
   seed (a chained recipe also gets a row per stage prefix, ``fmp-bits[:1]`` is its fmp stage); writes a
   score-vs-test-accuracy plot (``--plot``). A run directory with a summary is read, not run again.

    python benchmarks/recipes.py --out /tmp/recipes --jobs 2          # the default: 3 seeds x 7 recipes
    python benchmarks/recipes.py --out /tmp/recipes-gpu --synth standard --filters 64 --dense-width 128 \\
        --epochs 20 --batch-size 1024 --threads 8 --jobs 1             # a GPU machine: the challenge's size
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

DEFAULT_RECIPES = ["imp-2021", "fmp-2021", "fmp", "gmp", "decay", "allocate", "fmp-bits"]
DEFAULT_CRITERION = "--max-drop 0.03 --judge-on val"
# The demo's prune stage (amcprune.pipeline.presets "quick"), for every magnitude stage.
DEFAULT_BUDGET = "--p 0.3 --p-min 0.075 --max-epochs 1 --patience 1 --max-iterations 12"
MAGNITUDE_KINDS = ("imp", "imp-converge", "fmp")


def amcprune(*args: str) -> list[str]:
    return [sys.executable, "-m", "amcprune", *args]


def run_logged(cmd: list[str], log: Path) -> float:
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        raise RuntimeError(f"exit {rc}: {' '.join(cmd)} (see {log})")
    return time.perf_counter() - t0


def dense_models(args: argparse.Namespace) -> list[tuple[str, Path, Path]]:
    """(name, train run, data file) per seed: trained here unless given with --dense."""
    if args.dense:
        out = []
        for d in args.dense:
            train = d / "train" if (d / "train").is_dir() else d
            data = next((d / "data").glob("*.h5"), None) if (d / "data").is_dir() else args.data
            if data is None:
                raise SystemExit(f"{d}: no data/*.h5 beside it; give --data")
            out.append((d.name, train, data))
        return out
    data = args.data or args.out / "data" / f"synth-{args.synth}.h5"
    if not data.is_file():
        print(f"generating {data} ...", flush=True)
        run_logged(amcprune("data", "synth", "--preset", args.synth, "--out", str(data), "--workers",
                            str(args.jobs * args.threads), "--quiet"), args.out / "logs" / "data.log")
    from amcprune.pipeline.presets import DEMO_PRESETS  # the demo's train settings, not a copy of them

    train = dict(DEMO_PRESETS["quick"]["train"])
    train.update(epochs=args.epochs, batch_size=args.batch_size)
    config = args.out / "dense-train.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps(train))  # JSON is YAML

    def train_one(seed: int) -> tuple[str, Path, Path]:
        out = args.out / f"dense-seed{seed}"
        if not (out / "summary.json").is_file():
            run_logged(amcprune("train", "--data", str(data), "--out", str(out), "--config", str(config),
                                "--arch", "vgg10", "--bits", str(args.bits), "--filters", str(args.filters),
                                "--dense", str(args.dense_width), "--seed", str(seed), "--threads", str(args.threads),
                                "--force", "--quiet"), args.out / "logs" / f"dense-seed{seed}.log")
        return f"seed{seed}", out, data

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        return list(pool.map(train_one, args.seeds))


def recipe_kinds(name: str) -> list[str]:
    from amcprune.prune.recipe import recipe_source

    return [str(stage.get("kind")) for stage in recipe_source(name).get("stages", [])]


def run_one(dense: tuple[str, Path, Path], recipe: str, args: argparse.Namespace) -> dict:
    trial, train, data = dense
    name, _, extra = recipe.partition(":")
    tag = recipe.replace(":", "_").replace(" ", "").replace("-", "_").replace("/", "_")
    out = args.out / "runs" / f"{trial}-{tag}"
    budget = shlex.split(args.budget) if any(k in MAGNITUDE_KINDS for k in recipe_kinds(name)) else []
    wall = None
    if not (out / "summary.json").is_file():
        if args.no_run:
            return [{"trial": trial, "recipe": recipe, "error": "not run (--no-run)"}]
        cmd = amcprune("prune", "--from", str(train), "--data", str(data), "--out", str(out), "--force",
                       "--recipe", name, *budget, *shlex.split(extra), *shlex.split(args.criterion),
                       "--threads", str(args.threads), "--quiet")
        try:
            wall = run_logged(cmd, args.out / "logs" / f"{out.name}.log")
        except RuntimeError as exc:
            return [{"trial": trial, "recipe": recipe, "error": str(exc)}]
    s = json.loads((out / "summary.json").read_text())
    final = s["final"]
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines() if line.strip()]
    dense_score = records[0].get("score")
    score = (s.get("final_cost") or {}).get("score", final["stats"].get("score"))
    row = {
        "trial": trial, "recipe": recipe, "met": s["met"], "dense_val": s["dense_acc"], "threshold": s["threshold"],
        "val": final["criterion_acc"], "test": final["test_acc"], "dense_test": s["dense_test_acc"],
        "compression": final["stats"]["compression"], "score": score, "dense_score": dense_score,
        "score_ratio": score / dense_score if score and dense_score else None, "epochs": s["epochs_total"],
        "wall_s": wall if wall is not None else s["wall_s"],
    }
    return [*stage_rows(row, records), row]


def stage_rows(row: dict, records: list[dict]) -> list[dict]:
    """For a chained recipe, the result of each stage but the last, from its stop record, as a row of its own
    (``RECIPE[:k]``): what the recipe made of its first k stages, as that shorter recipe would (same stages,
    options, start and seed). The score is the run's measurement of the in-memory model (the same graph the final
    export scores)."""
    stops = [r for r in records if r["event"] == "stop"]
    out = []
    for k, stop in enumerate(stops[:-1], start=1):
        epochs = max((r["epochs_total"] for r in records if r["stage"] < k), default=0)
        out.append({**row, "recipe": f"{row['recipe']}[:{k}]", "met": stop["met"], "val": stop["criterion_acc"],
                    "test": stop["test_acc"], "compression": stop["compression"], "score": stop["score"],
                    "score_ratio": stop["score"] / row["dense_score"] if row["dense_score"] else None,
                    "epochs": epochs, "wall_s": stop["wall_s"]})
    return out


def spread(rows: list[dict], key: str) -> tuple[float, float, float]:
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.fmean(values), min(values), max(values)


def pareto_plot(rows: list[dict], recipes: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    for i, recipe in enumerate(recipes):
        rs = [r for r in rows if r["recipe"] == recipe and "error" not in r]
        if not rs:
            continue
        color = f"C{i % 10}"
        ax.scatter([r["score"] for r in rs], [r["test"] for r in rs], color=color, alpha=0.45, s=22)
        mean_score, mean_test = spread(rs, "score")[0], spread(rs, "test")[0]
        ax.scatter([mean_score], [mean_test], color=color, marker="D", s=60, edgecolor="black", label=recipe)
    dense = [r for r in rows if "error" not in r]
    if dense:
        ax.scatter([r["dense_score"] for r in dense], [r["dense_test"] for r in dense], color="gray", marker="x",
                   s=30, label="dense")
    ax.set_xscale("log")
    ax.set_xlabel("score (inference cost / challenge baseline, from the exported QONNX)")
    ax.set_ylabel("test accuracy (all SNRs)")
    ax.set_title("recipes: each run (dots) and the mean per recipe (diamonds)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=4, fontsize=8, frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/recipes"))
    ap.add_argument("--recipes", nargs="+", default=DEFAULT_RECIPES, help="named recipes or files [:extra options]")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--dense", type=Path, nargs="+", default=None, help="finished train runs or demo trials to use")
    ap.add_argument("--data", type=Path, default=None, help="data file (default: generate --synth)")
    ap.add_argument("--synth", default="quick", help="synthetic preset to generate")
    ap.add_argument("--filters", type=int, default=16)
    ap.add_argument("--dense-width", type=int, default=64)
    ap.add_argument("--bits", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--baseline", default=None, help="recipe the ratios are taken to (default: the first)")
    ap.add_argument("--criterion", default=DEFAULT_CRITERION)
    ap.add_argument("--budget", default=DEFAULT_BUDGET, help="options of every magnitude stage")
    ap.add_argument("--jobs", type=int, default=2, help="runs at a time")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per run")
    ap.add_argument("--no-run", action="store_true", help="report the finished runs only; start nothing")
    ap.add_argument("--plot", type=Path, default=None, help="Pareto plot (default OUT/pareto.png)")
    ap.add_argument("--json", type=Path, default=None, help="rows as JSON (default OUT/rows.json)")
    args = ap.parse_args()
    t0 = time.perf_counter()

    dense = dense_models(args)
    # recipe by recipe (all seeds of one before the next), so a partial run already has spreads
    jobs = [(d, r) for r in args.recipes for d in dense]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        rows = [row for rows in pool.map(lambda job: run_one(job[0], job[1], args), jobs) for row in rows]
    names = list(dict.fromkeys(r["recipe"] for r in rows))  # with the stage prefixes of chained recipes

    print(f"criterion: {args.criterion}; magnitude stages: {args.budget}")
    print("| seed | recipe | met | val (threshold) | test (dense) | compression | score | score/dense | epochs | wall s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['trial']} | {r['recipe']} | error: {r['error']} |")
            continue
        print(f"| {r['trial']} | {r['recipe']} | {r['met']} | {r['val']:.4f} ({r['threshold']:.4f}) | "
              f"{r['test']:.4f} ({r['dense_test']:.4f}) | {r['compression']:.2f}x | {r['score']:.6f} | "
              f"{r['score_ratio']:.3f} | {r['epochs']} | {r['wall_s']:.0f} |")
    first = args.baseline or args.recipes[0]
    base = {r["trial"]: r["score"] for r in rows if r["recipe"] == first and "error" not in r}
    base_rows = [r for r in rows if r["recipe"] == first and "error" not in r]
    mean_first = spread(base_rows, "score")[0] if base_rows else None
    print(f"\nper recipe, mean (min .. max) over the seeds; x {first}: the ratio of the mean scores, and per seed:")
    print(f"| recipe | runs | met | score | score/dense | compression | val acc | test acc | epochs | wall s | "
          f"x {first} | x {first} per seed |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for recipe in names:
        rs = [r for r in rows if r["recipe"] == recipe and "error" not in r]
        if not rs:
            continue
        cells = []
        for key, fmt in (("score", ".5f"), ("score_ratio", ".3f"), ("compression", ".2f"), ("val", ".4f"),
                         ("test", ".4f"), ("epochs", ".0f"), ("wall_s", ".0f")):
            mean, lo, hi = spread(rs, key)
            cells.append(f"{mean:{fmt}} ({lo:{fmt}} .. {hi:{fmt}})")
        mean_score = spread(rs, "score")[0]
        ratio = f"{mean_score / mean_first:.2f}" if mean_first else "-"
        per_seed = " ".join(f"{r['score'] / base[r['trial']]:.2f}" for r in rs if base.get(r["trial"]))
        met = sum(1 for r in rs if r["met"])
        print(f"| {recipe} | {len(rs)} | {met} | " + " | ".join(cells) + f" | {ratio} | "
              f"{per_seed} |")
    plot = args.plot or args.out / "pareto.png"
    pareto_plot(rows, names, plot)
    (args.json or args.out / "rows.json").write_text(json.dumps(rows, indent=1))
    print(f"\nplot: {plot}; total wall time {(time.perf_counter() - t0) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
