"""CLI for the prune stage: ``amcprune prune``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from amcprune.errors import AmcpruneError

# The named recipes, read from the package's files without importing the prune package (torch, Brevitas):
# the help text must not go stale when a recipe is added.
_RECIPE_NAMES = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "prune" / "recipes").glob("*.yaml"))


def _floats(text: str | None, what: str) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise AmcpruneError(f"{what}: expected comma-separated numbers, got {text!r}") from None


def _names(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    out: list[str] = []
    for v in values:
        out.extend(x.strip() for x in v.split(",") if x.strip())
    return out


def _layer_rates(values: list[str] | None) -> dict[str, float] | None:
    if not values:
        return None
    rates: dict[str, float] = {}
    for item in values:
        for part in item.split(","):
            part = part.strip()
            if not part:
                continue
            name, sep, rate = part.partition("=")
            if not sep:
                raise AmcpruneError(f"--layer-rate: expected NAME=RATE, got {part!r}")
            try:
                rates[name.strip()] = float(rate)
            except ValueError:
                raise AmcpruneError(f"--layer-rate: {rate!r} is not a number") from None
    return rates


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""

    @app.command("prune")
    def prune_cmd(
        source: Optional[Path] = typer.Option(None, "--from", help="Checkpoint or run directory of the model to prune."),
        data: Optional[Path] = typer.Option(None, "--data", help="RadioML-layout HDF5 file."),
        out: Path = typer.Option(..., "--out", help="Output directory of the prune run."),
        method: Optional[str] = typer.Option(
            None, "--method", help="imp, imp-converge or fmp; a comma list runs stages in series. [default: fmp]"
        ),
        criterion: Optional[str] = typer.Option(
            None, "--criterion",
            help="global (global L1 unstructured), layer (layer-wise L1) or structured (L1 filters/neurons, "
                 "physically removed); a comma list runs stages in series, e.g. structured,global. [default: global]",
        ),
        p: Optional[str] = typer.Option(None, "--p", help="Fraction of the remaining weights pruned per iteration "
                                                          "(comma list: one per stage). [default: 0.2]"),
        divisor: Optional[float] = typer.Option(None, "--divisor", "-n", help="fmp: p is divided by this after a failure. [default: 2]"),
        p_min: Optional[str] = typer.Option(None, "--p-min", help="fmp: stop when p falls below this "
                                                                  "[default: 0.05 unstructured, 0.01 structured]."),
        target: Optional[float] = typer.Option(None, "--target", help="Absolute accuracy criterion, e.g. 0.56."),
        max_drop: Optional[float] = typer.Option(
            None, "--max-drop", help="Relative criterion: at most this far below the dense model's accuracy (e.g. 0.035)."
        ),
        judge_on: Optional[str] = typer.Option(
            None, "--judge-on", help="Split the criterion is judged on: val (carved from train) or test. [default: val]"
        ),
        max_epochs: Optional[int] = typer.Option(None, "--max-epochs", help="Training (fine-tuning) epochs per iteration. [default: 3]"),
        patience: Optional[int] = typer.Option(
            None, "--patience", help="--judge-at epoch and imp-converge: epochs without a better judged accuracy that end an iteration (0: off). [default: 3]"
        ),
        max_iterations: Optional[int] = typer.Option(None, "--max-iterations", help="Most prunes per stage."),
        prune_at_start: Optional[bool] = typer.Option(
            None, "--prune-at-start/--no-prune-at-start", help="Prune a starting model that already meets the criterion."
        ),
        judge_at: Optional[str] = typer.Option(
            None, "--judge-at", help="imp/fmp: decide an iteration at the end of its budget (end) or as soon as one "
                                     "epoch meets the criterion (epoch, the 2021 scripts). [default: end]"
        ),
        finetune: Optional[str] = typer.Option(
            None, "--finetune", help="Fine-tuning of each iteration: cosine (fresh optimizer at --finetune-lr, decayed "
                                     "to zero over the iteration), constant, or train (the dense run's optimizer and "
                                     "scheduler, the 2021 scripts). [default: cosine]"
        ),
        finetune_lr: Optional[float] = typer.Option(
            None, "--finetune-lr", help="Fine-tuning rate [default: --finetune-lr-scale x the train lr]."
        ),
        finetune_lr_scale: Optional[float] = typer.Option(
            None, "--finetune-lr-scale", help="Fine-tuning rate as a fraction of the train lr. [default: 0.3]"
        ),
        lr_rewind: Optional[bool] = typer.Option(
            None, "--lr-rewind/--no-lr-rewind", help="--finetune train: fresh optimizer and scheduler after each prune "
                                                     "[default: on for imp-converge, off otherwise]."
        ),
        recipe: Optional[str] = typer.Option(
            None, "--recipe", help=f"Recipe to run: a YAML file or a named recipe ({', '.join(_RECIPE_NAMES)}); "
                                   "options given here override it in every stage. [default: the options alone]"
        ),
        settings: Optional[str] = typer.Option(None, "--settings", help="The same as --recipe (older name)."),
        dump_recipe: bool = typer.Option(False, "--dump-recipe", help="Print the recipe these options make and exit."),
        exclude: Optional[list[str]] = typer.Option(
            None, "--exclude", help="Layers never pruned: module names, conv0..conv6/dense0..dense2, first, last, globs."
        ),
        layer_rate: Optional[list[str]] = typer.Option(
            None, "--layer-rate", help="NAME=RATE: a layer pruned at its own rate (0 keeps it dense), e.g. last=0."
        ),
        importance: Optional[str] = typer.Option(
            None, "--importance", help="Global ranking: l1 (magnitude) or cost (magnitude / the score one weight of "
                                       "its layer costs, from the exported graph). [default: l1]"
        ),
        cost_power: Optional[float] = typer.Option(
            None, "--cost-power", help="--importance cost: divide by the weight's cost to this power. [default: 1]"
        ),
        distill_weight: Optional[float] = typer.Option(
            None, "--distill-weight", help="Fine-tune on (1 - w) x cross-entropy + w x distillation from the dense "
                                           "model (Hinton et al.). [default: 0, off]"
        ),
        distill_temperature: Optional[float] = typer.Option(
            None, "--distill-temperature", help="Temperature of the distillation term. [default: 4]"
        ),
        no_cost: bool = typer.Option(False, "--no-cost", help="Do not score every recorded model (faster)."),
        no_export: bool = typer.Option(False, "--no-export", help="Do not export and score final.onnx."),
        config: Optional[Path] = typer.Option(
            None, "--config", help="YAML prune config in the flat form of these options (options given here override it)."
        ),
        train_config: Optional[Path] = typer.Option(
            None, "--train-config", help="YAML train config [default: the one the model was trained with]."
        ),
        lr: Optional[float] = typer.Option(None, "--lr", help="Learning rate (overrides the train config)."),
        batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Batch size (overrides the train config)."),
        val_fraction: Optional[float] = typer.Option(None, "--val-fraction", help="Validation carve from train."),
        seed: Optional[int] = typer.Option(None, "--seed", help="Seed of batch order and validation carve."),
        device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda or auto."),
        threads: Optional[int] = typer.Option(None, "--threads", help="torch threads."),
        resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last finished epoch."),
        force: bool = typer.Option(False, "--force", help="Start over in an existing run directory."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bars or messages."),
    ) -> None:
        """Prune a trained model under an accuracy criterion: a recipe of IMP, IMP-to-convergence or FMP stages."""
        # Here, not at the top: torch and Brevitas take seconds to load, and `amcprune --help` needs neither.
        from amcprune.pipeline.measure import QonnxMeasurer
        from amcprune.prune.config import PruneConfig
        from amcprune.prune.engine import prune_run
        from amcprune.prune.recipe import recipe_source, recipe_with_options
        from amcprune.train.config import TrainConfig

        options: dict[str, Any] = {
            "methods": _names([method]) if method else None,
            "criteria": _names([criterion]) if criterion else None,
            "p": _floats(p, "--p"),
            "divisor": divisor,
            "p_min": _floats(p_min, "--p-min"),
            "target": target,
            "max_drop": max_drop,
            "judge_on": judge_on,
            "max_epochs": max_epochs,
            "max_iterations": max_iterations,
            "prune_at_start": prune_at_start,
            "judge_at": judge_at,
            "finetune": finetune,
            "finetune_lr": finetune_lr,
            "finetune_lr_scale": finetune_lr_scale,
            "lr_rewind": lr_rewind,
            "exclude": _names(exclude),
            "layer_rates": _layer_rates(layer_rate),
            "importance": importance,
            "cost_power": cost_power,
            "distill_weight": distill_weight,
            "distill_temperature": distill_temperature,
        }
        if no_cost:
            options["cost"] = False
        if no_export:
            options["export"] = False
        given = {k: v for k, v in options.items() if v is not None}
        if patience is not None:
            given["patience"] = None if patience == 0 else patience
        if settings is not None:
            if recipe is not None and recipe != settings:
                raise AmcpruneError("--settings is another name for --recipe: give one of them")
            recipe = settings

        if resume:
            if given or config is not None or train_config is not None or recipe is not None or dump_recipe:
                raise AmcpruneError("--resume continues the run with its stored options; give only --out (and --data)")
            run_recipe = None
            tcfg = None
        else:
            if recipe is not None and config is not None:
                raise AmcpruneError("give a recipe (--recipe) or a flat prune config (--config), not both")
            if recipe is not None:
                run_recipe = recipe_with_options(recipe_source(recipe), given, source=f"recipe {recipe}")
            else:
                base = PruneConfig.from_yaml(config).model_dump(exclude_unset=True) if config is not None else {}
                if "target" in given or "max_drop" in given:
                    base.pop("target", None)
                    base.pop("max_drop", None)
                run_recipe = PruneConfig.from_dict({**base, **given}).to_recipe()
            if dump_recipe:
                typer.echo(run_recipe.to_yaml(), nl=False)
                return
            tcfg = TrainConfig.from_yaml(train_config) if train_config is not None else None
        overrides = {"lr": lr, "batch_size": batch_size, "val_fraction": val_fraction, "seed": seed,
                     "device": device, "threads": threads}
        if resume and any(v is not None for k, v in overrides.items() if k not in ("device", "threads")):
            raise AmcpruneError("--resume keeps the run's train options (only --device and --threads may change)")
        summary = prune_run(
            run_recipe, source, data, out, train_config=tcfg, train_overrides=overrides, measurer=QonnxMeasurer(),
            resume=resume, force=force, quiet=quiet,
        )
        final = summary.get("final") or {}
        stats = final.get("stats") or {}
        line = {
            "out": str(out),
            "met": summary.get("met"),
            "threshold": summary.get("threshold"),
            "criterion_acc": final.get("criterion_acc"),
            "test_acc": final.get("test_acc"),
            "nonzero_weights": stats.get("nonzero_weights"),
            "compression": stats.get("compression"),
            "score": (summary.get("final_cost") or {}).get("score"),
        }
        typer.echo(json.dumps(line))
