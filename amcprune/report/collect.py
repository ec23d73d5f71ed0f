"""Read a train or prune run directory into a typed :class:`ReportData`.

Every file is read through the records of :mod:`amcprune.outputs`, so the report reads exactly what the
stages write. A missing file leaves its section empty with a note; a file that exists but does not match
its record is a note naming the file and the bad field, and its section is left out. Only a missing
directory, or a directory with none of the run files in it, raises :class:`~amcprune.errors.AmcpruneError`.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from amcprune.errors import AmcpruneError
from amcprune.outputs import names as N
from amcprune.outputs.models import (
    CostFile,
    EvalFile,
    PruneRecord,
    PruneSummary,
    TrainMetrics,
    TrainSummary,
)
from amcprune.outputs.read import check, load_json, scan_jsonl

# Where the report looks for evaluations: the trial writes eval_dense/ and eval_final/; a user who evaluates
# a run's own model with `amcprune evaluate MODEL --out RUN/eval` gets eval/ (the final model of a prune run).
EVAL_DENSE_DIRS = (N.EVAL_DENSE_DIR,)
EVAL_FINAL_DIRS = (N.EVAL_FINAL_DIR, N.EVAL_DIR)

# Files whose presence marks a directory as a run directory, and those that mark a prune run.
RUN_MARKERS = (N.CONFIG_FILE, N.METRICS_FILE, N.RECORDS_FILE, N.SUMMARY_FILE)
PRUNE_MARKERS = (N.RECORDS_FILE, N.STATE_FILE, N.FINAL_CHECKPOINT, N.FINAL_ONNX)
# At most this many problem lines per JSON-lines file become notes (a wholly wrong file would flood the page).
MAX_LINE_NOTES = 3


# --------------------------------------------------------------------------------------------------
# Typed report data
# --------------------------------------------------------------------------------------------------
@dataclass
class ModelSummary:
    """Headline numbers of one model (dense or final); any of them may be unknown (None).

    ``accuracy`` is the test accuracy; ``criterion_acc`` the accuracy the pruning criterion judged (on the
    split named by ``ReportData.judge_on``). Accuracies are fractions.
    """

    label: str
    accuracy: float | None = None
    criterion_acc: float | None = None
    bops: float | None = None
    weight_bits: float | None = None
    score: float | None = None
    weights: float | None = None
    nonzero_weights: float | None = None
    sparsity: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # other scalars worth showing (iteration, checkpoint)

    def is_empty(self) -> bool:
        return all(getattr(self, name) is None for name in _NUMBERS)


_NUMBERS = ("accuracy", "criterion_acc", "bops", "weight_bits", "score", "weights", "nonzero_weights", "sparsity")


@dataclass
class EvalData:
    """One evaluation: accuracies are fractions in [0, 1]; missing cells are None."""

    source: str
    accuracy: float | None
    snrs: list[int]
    class_names: list[str]
    acc_per_snr: list[float | None]  # aligned with snrs; empty if unknown
    per_class_snr: list[list[float | None]] | None  # [class][snr]
    confusion: list[list[float]] | None  # [true][predicted] counts
    n_frames: int | None = None


@dataclass
class LayerCost:
    name: str
    op: str = ""
    macs: float | None = None
    bops: float | None = None
    weight_bits: float | None = None
    weights: float | None = None
    nonzero_weights: float | None = None
    input_dtype: str = ""
    weight_dtype: str = ""


@dataclass
class CostData:
    source: str
    bops: float | None
    weight_bits: float | None
    score: float | None
    weights: float | None
    nonzero_weights: float | None
    sparsity: float | None
    per_layer: list[LayerCost]
    warnings: list[str]


@dataclass
class ReportData:
    run_dir: Path
    kind: str  # "prune" or "train"
    config: dict[str, Any]
    config_text: str
    data_fingerprint: str | None
    data_path: str | None
    source: str | None  # prune: the checkpoint the run started from
    judge_on: str | None  # prune: the split the criterion accuracy is measured on
    summary_extra: dict[str, Any]  # other scalars of summary.json
    stages: list[dict[str, Any]]  # prune: per-stage results from summary.json
    dense: ModelSummary | None
    final: ModelSummary | None
    records: list[dict[str, Any]]  # PruneRecord dumps, in file order
    metrics: list[dict[str, Any]]  # TrainMetrics dumps, in file order
    eval_dense: EvalData | None
    eval_final: EvalData | None
    cost_dense: CostData | None
    cost_final: CostData | None
    files: dict[str, bool]  # file name -> present
    notes: list[str]  # why a section is empty or partial
    criterion: str | None = None  # prune: the criterion as the user gave it and the threshold it yields
    summary_cost: CostData | None = None  # prune: summary.json's final_cost (totals and warnings, no layers)
    warnings: list[str] = field(default_factory=list)  # things wrong with the run itself, shown at the top

    @property
    def title(self) -> str:
        return f"amcprune report: {self.run_dir.name}"


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------
def _num(value: Any) -> float | None:
    """A finite float, or None (missing, null, NaN, inf); used to format numbers, never to read files."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def pct(value: float | None) -> str:
    v = _num(value)
    return "–" if v is None else f"{100 * v:.2f} %"


# --------------------------------------------------------------------------------------------------
# From output records to report data
# --------------------------------------------------------------------------------------------------
def eval_data(source: str, ev: EvalFile) -> EvalData:
    return EvalData(
        source=source, accuracy=ev.accuracy, snrs=list(ev.snrs), class_names=list(ev.class_names),
        acc_per_snr=[ev.acc_per_snr.get(str(s)) for s in ev.snrs], per_class_snr=ev.acc_class_snr,
        confusion=[[float(v) for v in row] for row in ev.confusion], n_frames=ev.n,
    )


def parse_eval(source: str, raw: Any) -> EvalData:
    """An ``eval.json`` object as :class:`EvalData`; AmcpruneError when it is not what ``write_eval`` writes."""
    return eval_data(source, check(EvalFile, raw, source))


def cost_data(source: str, cost: CostFile) -> CostData:
    layers = [LayerCost(name=layer.name, op=layer.op, macs=layer.macs, bops=layer.bops, weight_bits=layer.weight_bits,
                        weights=layer.weights, nonzero_weights=layer.nonzero, input_dtype=layer.input_dtype,
                        weight_dtype=layer.weight_dtype) for layer in cost.per_layer]
    return CostData(source=source, bops=cost.bops, weight_bits=cost.weight_bits, score=cost.score,
                    weights=cost.weights, nonzero_weights=cost.nonzero_weights, sparsity=cost.sparsity,
                    per_layer=layers, warnings=list(cost.warnings))


def parse_cost(source: str, raw: Any) -> CostData:
    """A cost JSON object as :class:`CostData`; AmcpruneError when it is not ``CostResult.to_dict()``."""
    return cost_data(source, check(CostFile, raw, source))


def _fill(target: ModelSummary | None, label: str, *sources: ModelSummary | CostData | None) -> ModelSummary:
    """Fill the numbers ``target`` lacks from ``sources``, in order."""
    out = target or ModelSummary(label=label)
    for src in sources:
        if src is None:
            continue
        for name in _NUMBERS:
            if getattr(out, name) is None and getattr(src, name, None) is not None:
                setattr(out, name, getattr(src, name))
    return out


def _record_model(label: str, r: PruneRecord) -> ModelSummary:
    return ModelSummary(label=label, accuracy=r.test_acc, criterion_acc=r.criterion_acc, bops=r.bops,
                        weight_bits=r.weight_bits, score=r.score, weights=r.weights, nonzero_weights=r.nonzero_weights,
                        sparsity=r.sparsity)


def _dense_record(records: list[PruneRecord]) -> PruneRecord | None:
    """The record measured on the starting model: no pruning rate applied yet."""
    return next((r for r in records if r.ps == []), None)


def _final_record(records: list[PruneRecord]) -> PruneRecord | None:
    """The last record of a model that met the criterion (else the last record)."""
    met = [r for r in records if r.met and r.event != "failed"]
    return (met or records or [None])[-1]


def record_group(record: dict) -> str:
    """A label for the line a pruning record belongs to (e.g. ``stage 0: imp/l1``)."""
    method = "/".join(str(record[k]) for k in ("method", "criterion") if record.get(k) is not None)
    stage = record.get("stage")
    if stage is not None:
        return f"stage {stage}: {method}" if method else f"stage {stage}"
    return method


def _summary_models(summary: PruneSummary) -> tuple[ModelSummary, ModelSummary]:
    dense = ModelSummary("dense", accuracy=summary.dense_test_acc, criterion_acc=summary.dense_acc,
                         weights=summary.dense_weights)
    final, stats = summary.final, summary.final.stats
    out = ModelSummary("final", accuracy=final.test_acc, criterion_acc=final.criterion_acc, bops=stats.bops,
                       weight_bits=stats.weight_bits, score=stats.score, weights=stats.weights,
                       nonzero_weights=stats.nonzero_weights, sparsity=stats.sparsity,
                       extra={"stage": final.stage, "iteration": final.iteration, "checkpoint": final.path})
    cost = summary.final_cost
    if cost is not None:  # the cost of the exported final.onnx wins over the in-training measure
        out.bops, out.weight_bits, out.score = cost.bops, cost.weight_bits, cost.score
        out.weights, out.nonzero_weights = cost.weights, cost.nonzero_weights
    return dense, out


def _summary_extra(summary: dict[str, Any], hidden: set[str]) -> dict[str, Any]:
    out = {}
    for key, value in summary.items():
        if key in hidden:
            continue
        if _is_scalar(value):
            out[key] = value
        elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            out[key] = "; ".join(value)
    return out


# What summary.json holds that the report shows elsewhere (the model table, the stages table) or not at all.
PRUNE_SUMMARY_HIDDEN = {"out_dir", "final", "final_cost", "stages", "criterion_noise", "dense_acc", "dense_test_acc",
                        "dense_weights"}
TRAIN_SUMMARY_HIDDEN = {"run_dir", "last", "test_acc_per_snr"}


def prune_section(config: dict[str, Any]) -> dict[str, Any]:
    """The prune options of a prune run's config.yaml: ``prune`` (PruneConfig) in runs of the schedule engine,
    ``recipe`` (Recipe) in runs of the recipe engine; both hold ``target``, ``max_drop`` and ``judge_on``."""
    for key in ("recipe", "prune"):
        if isinstance(config.get(key), dict):
            return config[key]
    return {}


def criterion_text(config: dict[str, Any], judge_on: str | None, threshold: float | None,
                   dense_acc: float | None) -> str | None:
    """The criterion as the user gave it (``--target`` or ``--max-drop`` of config.yaml) and its threshold."""
    prune = prune_section(config)
    target, max_drop = prune.get("target"), prune.get("max_drop")
    split = f"{judge_on} accuracy" if judge_on else "accuracy"
    if target is not None:
        return f"{split} ≥ {pct(threshold if threshold is not None else target)} (--target {target:g})"
    if max_drop is not None:
        dense = f"the dense model's {pct(dense_acc)}" if dense_acc is not None else "the dense model's accuracy"
        return (f"{split} ≥ {pct(threshold)} (--max-drop {max_drop:g}: {dense} minus {100 * max_drop:g} "
                "points)")
    return f"{split} ≥ {pct(threshold)}" if threshold is not None else None


def duplicated_records(records: list[PruneRecord]) -> list[int]:
    counts = Counter(r.record for r in records)
    return sorted(k for k, n in counts.items() if n > 1)


# --------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------
def collect_report_data(run_dir: str | Path) -> ReportData:
    """Read everything the report shows from ``run_dir``; raise AmcpruneError if it is not a run dir."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise AmcpruneError(f"run directory not found: {run_dir}")
    if not run_dir.is_dir():
        raise AmcpruneError(f"not a directory: {run_dir}")
    eval_dense_dir = next((run_dir / d for d in EVAL_DENSE_DIRS if (run_dir / d / N.EVAL_FILE).is_file()), None)
    eval_final_dir = next((run_dir / d for d in EVAL_FINAL_DIRS if (run_dir / d / N.EVAL_FILE).is_file()), None)
    if not any((run_dir / m).exists() for m in RUN_MARKERS) and eval_dense_dir is None and eval_final_dir is None:
        raise AmcpruneError(
            f"{run_dir} is not an amcprune run directory (none of {', '.join(RUN_MARKERS)} found)"
        )

    notes: list[str] = []
    warnings: list[str] = []
    names = [N.CONFIG_FILE, N.METRICS_FILE, N.BEST_CHECKPOINT, N.SUMMARY_FILE, N.RECORDS_FILE, N.FINAL_CHECKPOINT,
             N.FINAL_ONNX, N.COST_DENSE_FILE, N.COST_FINAL_FILE, N.COST_FILE]
    names += [f"{d}/{N.EVAL_FILE}" for d in EVAL_DENSE_DIRS + EVAL_FINAL_DIRS]
    files = {name: (run_dir / name).exists() for name in names}

    def note_problem(problem: str | None) -> None:
        if problem is not None:
            notes.append(f"{problem.replace(str(run_dir) + '/', '')}; its section is left out.")

    # config.yaml: validated by the stage's own config classes when it was written; shown as it is.
    config: dict[str, Any] = {}
    config_text = ""
    if files[N.CONFIG_FILE]:
        try:
            config_text = (run_dir / N.CONFIG_FILE).read_text()
            loaded = yaml.safe_load(config_text)
            config = loaded if isinstance(loaded, dict) else {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            notes.append(f"{N.CONFIG_FILE} could not be parsed ({type(exc).__name__}); shown as text only.")
    else:
        notes.append(f"No {N.CONFIG_FILE}: the configuration is not shown.")
    data_section = config.get("data") if isinstance(config.get("data"), dict) else {}
    data_path = data_section.get("path")
    fingerprint = data_section.get("fingerprint")
    source = config.get("source")

    prune_cfg = prune_section(config)
    is_prune = any((run_dir / m).exists() for m in PRUNE_MARKERS) or bool(prune_cfg)
    kind = "prune" if is_prune else "train"

    records: list[PruneRecord] = []
    metrics: list[TrainMetrics] = []
    for name, model, sink in ((N.RECORDS_FILE, PruneRecord, records), (N.METRICS_FILE, TrainMetrics, metrics)):
        rows, problems = scan_jsonl(run_dir / name, model)
        sink.extend(rows)
        for problem in problems[:MAX_LINE_NOTES]:
            notes.append(f"{problem.replace(str(run_dir) + '/', '')}; the line is left out.")
        if len(problems) > MAX_LINE_NOTES:
            notes.append(f"{name}: {len(problems) - MAX_LINE_NOTES} more lines do not match and are left out.")

    summary_prune: PruneSummary | None = None
    summary_train: TrainSummary | None = None
    if files[N.SUMMARY_FILE]:
        parsed, problem = load_json(run_dir / N.SUMMARY_FILE, PruneSummary if kind == "prune" else TrainSummary)
        note_problem(problem)
        summary_prune = parsed if kind == "prune" else None
        summary_train = parsed if kind == "train" else None

    def load_eval(directory: Path | None) -> EvalData | None:
        if directory is None:
            return None
        ev, problem = load_json(directory / N.EVAL_FILE, EvalFile)
        note_problem(problem)
        return eval_data(f"{directory.name}/{N.EVAL_FILE}", ev) if ev is not None else None

    def load_cost(name: str) -> CostData | None:
        if not files[name]:
            return None
        cost, problem = load_json(run_dir / name, CostFile)
        note_problem(problem)
        return cost_data(name, cost) if cost is not None else None

    eval_dense = load_eval(eval_dense_dir)
    eval_final = load_eval(eval_final_dir)
    cost_dense = load_cost(N.COST_DENSE_FILE)
    cost_final = load_cost(N.COST_FINAL_FILE) if files[N.COST_FINAL_FILE] else load_cost(N.COST_FILE)

    judge_on: str | None = None
    criterion: str | None = None
    summary_cost: CostData | None = None
    stages: list[dict[str, Any]] = []
    summary_extra: dict[str, Any] = {}
    if kind == "prune":
        dense_rec, final_rec = _dense_record(records), _final_record(records)
        dense = final = None
        if summary_prune is not None:
            dense, final = _summary_models(summary_prune)
            stages = [s.model_dump() for s in summary_prune.stages]
            summary_extra = _summary_extra(summary_prune.model_dump(), PRUNE_SUMMARY_HIDDEN)
            judge_on = summary_prune.judge_on
            if summary_prune.final_cost is not None:
                fc = summary_prune.final_cost
                summary_cost = CostData(source=f"{N.SUMMARY_FILE} (final_cost)", bops=fc.bops,
                                        weight_bits=fc.weight_bits, score=fc.score, weights=fc.weights,
                                        nonzero_weights=fc.nonzero_weights, sparsity=fc.sparsity, per_layer=[],
                                        warnings=list(fc.warnings))
        dense = _fill(dense, "dense", cost_dense, _record_model("dense", dense_rec) if dense_rec else None,
                      ModelSummary("dense", accuracy=eval_dense.accuracy) if eval_dense else None)
        final = _fill(final, "final", cost_final, _record_model("final", final_rec) if final_rec else None,
                      ModelSummary("final", accuracy=eval_final.accuracy) if eval_final else None)
        if summary_prune is None and final_rec is not None:
            final.extra = {"stage": final_rec.stage, "iteration": final_rec.iteration}
            if final_rec.checkpoint:
                final.extra["checkpoint"] = final_rec.checkpoint
        # Sparsity against the dense model's weights (a structured-pruned final model has fewer weights).
        if dense.weights and final.nonzero_weights is not None:
            final.sparsity = 1.0 - final.nonzero_weights / dense.weights
        if dense.sparsity is None and dense.weights and dense.nonzero_weights is not None:
            dense.sparsity = 1.0 - dense.nonzero_weights / dense.weights
        judge_on = judge_on or (records[0].judge_on if records else None) or prune_cfg.get("judge_on")
        threshold = summary_prune.threshold if summary_prune is not None else (records[0].threshold if records else None)
        criterion = criterion_text(config, judge_on, threshold, dense.criterion_acc)
        dups = duplicated_records(records)
        if dups:
            warnings.append(
                f"{N.RECORDS_FILE} has duplicated record numbers ({', '.join(map(str, dups[:10]))}"
                f"{', ...' if len(dups) > 10 else ''}): rows were written twice, e.g. by two runs or a resume "
                "into the same directory; the trajectory shows every row as written."
            )
    else:
        # A train run has one model, the dense one: best.pt, with its test accuracy in summary.json.
        if eval_dense is None:
            eval_dense, eval_final = eval_final, None
        if cost_dense is None:
            cost_dense, cost_final = cost_final, None
        dense = ModelSummary("dense")
        if summary_train is not None:
            dense.accuracy = summary_train.test_acc
            summary_extra = _summary_extra(summary_train.model_dump(), TRAIN_SUMMARY_HIDDEN)
            per_snr = summary_train.test_acc_per_snr
            if eval_dense is None and per_snr:
                snrs = sorted(int(k) for k in per_snr)
                eval_dense = EvalData(source=N.SUMMARY_FILE, accuracy=summary_train.test_acc, snrs=snrs,
                                      class_names=[], acc_per_snr=[per_snr[str(s)] for s in snrs],
                                      per_class_snr=None, confusion=None)
        dense = _fill(dense, "dense", cost_dense,
                      ModelSummary("dense", accuracy=eval_dense.accuracy) if eval_dense else None)
        final = None
        scored = [m for m in metrics if m.val_acc is not None]
        if scored:
            best = max(scored, key=lambda m: m.val_acc)
            dense.criterion_acc = best.val_acc
            judge_on = "val, best epoch"
            dense.extra["best epoch"] = best.epoch
        if dense.sparsity is None and dense.weights and dense.nonzero_weights is not None:
            dense.sparsity = 1.0 - dense.nonzero_weights / dense.weights
    dense = None if dense.is_empty() and not dense.extra else dense
    final = None if final is None or (final.is_empty() and not final.extra) else final

    # Notes for empty sections.
    if dense is None and final is None:
        notes.append(f"No model numbers found (no {N.SUMMARY_FILE}, cost or eval JSON).")
    if eval_dense is None and eval_final is None:
        notes.append(
            f"No evaluation found ({' or '.join(f'{d}/{N.EVAL_FILE}' for d in EVAL_DENSE_DIRS + EVAL_FINAL_DIRS)}): "
            "the per-class heat map and the confusion matrix are left out."
        )
    if kind == "prune" and not records:
        notes.append(f"No {N.RECORDS_FILE} records: the pruning trajectory is left out.")
    if cost_dense is None and cost_final is None:
        notes.append(f"No {N.COST_DENSE_FILE} or {N.COST_FINAL_FILE}: the per-layer cost is left out.")

    return ReportData(
        run_dir=run_dir.resolve(), kind=kind, config=config, config_text=config_text,
        data_fingerprint=str(fingerprint) if _is_scalar(fingerprint) and fingerprint is not None else None,
        data_path=str(data_path) if _is_scalar(data_path) and data_path is not None else None,
        source=str(source) if _is_scalar(source) and source is not None else None,
        judge_on=judge_on, summary_extra=summary_extra, stages=stages, dense=dense, final=final,
        records=[r.model_dump(exclude_unset=True) for r in records],
        metrics=[m.model_dump(exclude_unset=True) for m in metrics], eval_dense=eval_dense, eval_final=eval_final,
        cost_dense=cost_dense, cost_final=cost_final, files=files, notes=notes, criterion=criterion,
        summary_cost=summary_cost, warnings=warnings,
    )
