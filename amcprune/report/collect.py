"""Read a train or prune run directory into a typed :class:`ReportData`.

Every file name and JSON key the report depends on is defined in the constants below, so that aligning
the report with the other stages is a change in one place. Parsing is tolerant: a missing or unreadable
file leaves its section empty and adds a note; it never raises. Only a missing directory, or a directory
with none of the run files in it, raises :class:`~amcprune.errors.AmcpruneError`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from amcprune.errors import AmcpruneError
from amcprune.utils.atomic import read_jsonl

# --------------------------------------------------------------------------------------------------
# File names inside a run directory (the one place to align with the train, prune, evaluate and cost
# stages).
# --------------------------------------------------------------------------------------------------
CONFIG_FILE = "config.yaml"  # train and prune runs
METRICS_FILE = "metrics.jsonl"  # train run: one record per finished epoch
BEST_CHECKPOINT = "checkpoints/best.pt"  # train run
LAST_CHECKPOINT = "checkpoints/last.pt"  # train run
SUMMARY_FILE = "summary.json"  # train run (test accuracy of best.pt) and prune run (dense and final)
RECORDS_FILE = "records.jsonl"  # prune run: one record per iteration end, rewind and stage end
STATE_FILE = "state.pt"  # prune run: resume point
FINAL_CHECKPOINT = "final.pt"  # prune run
FINAL_ONNX = "final.onnx"  # prune run
EVAL_FILE = "eval.json"  # written by `amcprune evaluate ... --out DIR` (EvalResult.to_json)
EVAL_DENSE_DIRS = ("eval_dense",)  # first one found wins
EVAL_FINAL_DIRS = ("eval_final", "eval")  # first one found wins
COST_DENSE_FILE = "cost_dense.json"  # `amcprune cost --json` of the dense model (CostResult.to_dict)
COST_FINAL_FILE = "cost_final.json"  # `amcprune cost --json` of the final model
COST_FILE = "cost.json"  # accepted for the final model (a train run's only model) when cost_final.json is absent

# Files whose presence marks a directory as a run directory, and those that mark a prune run.
RUN_MARKERS = (CONFIG_FILE, METRICS_FILE, RECORDS_FILE, SUMMARY_FILE)
PRUNE_MARKERS = (RECORDS_FILE, STATE_FILE, FINAL_CHECKPOINT, FINAL_ONNX)

# --------------------------------------------------------------------------------------------------
# JSON keys. Each tuple lists accepted spellings, first match wins.
# --------------------------------------------------------------------------------------------------
# summary.json of a prune run (amcprune.prune.engine): flat dense_* keys, "final" (a SavedModel dump:
# criterion_acc, test_acc, stats {weights, nonzero_weights, sparsity, compression, bops, ...}, stage,
# iteration, path) and "final_cost" (the cost of final.onnx). Sections "dense" / "final" holding the
# numbers directly are accepted as well.
SUMMARY_DENSE_KEYS = ("dense",)
SUMMARY_FINAL_KEYS = ("final",)
SUMMARY_FINAL_COST_KEYS = ("final_cost",)
SUMMARY_STATS_KEY = "stats"  # inside "final": the measured numbers
SUMMARY_DENSE_FLAT = {"dense_test_acc": "test_acc", "dense_acc": "criterion_acc", "dense_weights": "weights"}
SUMMARY_STAGES_KEY = "stages"  # prune: list of per-stage results
# summary.json of a train run (amcprune.train.run): test accuracy of best.pt and per SNR.
SUMMARY_TRAIN_ACC_KEYS = ("test_acc",)
SUMMARY_TRAIN_PER_SNR_KEYS = ("test_acc_per_snr",)
# Top-level summary keys the report shows elsewhere or not at all.
SUMMARY_HIDDEN_KEYS = ("out_dir", "run_dir", "last")
# Model metrics, in summary.json sections, cost JSON and records.
ACCURACY_KEYS = ("accuracy", "test_acc", "overall_accuracy")
CRITERION_ACC_KEYS = ("criterion_acc", "val_acc")
BOPS_KEYS = ("bops",)
WEIGHT_BITS_KEYS = ("weight_bits",)
SCORE_KEYS = ("score",)
WEIGHTS_KEYS = ("weights", "total_weights")
NONZERO_KEYS = ("nonzero_weights", "nonzero")
SPARSITY_KEYS = ("sparsity",)
# eval.json (amcprune.train.evaluate.EvalResult.to_json): accuracy, n, class_names, snrs,
# acc_per_snr {snr: acc}, acc_class_snr [class][snr], confusion [true][pred] (all SNRs),
# counts [snr][true][pred].
EVAL_ACCURACY_KEYS = ("accuracy", "overall_accuracy", "overall")
EVAL_SNRS_KEYS = ("snrs", "snrs_db", "snr_list")
EVAL_CLASSES_KEYS = ("class_names", "classes")
EVAL_PER_SNR_KEYS = ("acc_per_snr", "accuracy_per_snr", "per_snr")
EVAL_PER_CLASS_SNR_KEYS = ("acc_class_snr", "accuracy_per_class_snr", "per_class_snr", "acc_per_class_snr")
EVAL_CONFUSION_KEYS = ("confusion", "confusion_matrix")
EVAL_COUNTS_KEYS = ("counts",)
EVAL_N_KEYS = ("n", "n_frames")
# cost JSON (amcprune.cost.CostResult.to_dict): bops, weight_bits, score, weights, nonzero_weights,
# sparsity, macs, per_layer [{name, op, macs, input_dtype, weight_dtype, bops, weight_bits, weights,
# nonzero}], warnings, baseline.
COST_PER_LAYER_KEYS = ("per_layer",)
COST_WARNINGS_KEYS = ("warnings",)
# config.yaml: data: {path, fingerprint} (train and prune); flat data_path / data_fingerprint accepted.
CONFIG_DATA_KEY = "data"
DATA_PATH_KEYS = ("path", "data_path")
FINGERPRINT_KEYS = ("fingerprint", "data_fingerprint")
CONFIG_SOURCE_KEY = "source"  # prune: the checkpoint the run started from
# records.jsonl (amcprune.prune.engine): record, event (met | failed | rewind | stop), stage, method,
# criterion, iteration, p, epochs, criterion_acc, test_acc, threshold, met, weights, nonzero_weights,
# sparsity, compression, compression_formula, bops, weight_bits, score, reason, wall_s, ...
RECORD_INDEX_KEYS = ("record",)
RECORD_ITERATION_KEYS = ("iteration",)
RECORD_CRITERION_ACC_KEYS = ("criterion_acc", "val_acc")
RECORD_TEST_ACC_KEYS = ("test_acc",)
RECORD_TARGET_KEYS = ("threshold", "target")
RECORD_RATES_KEY = "ps"  # rates applied so far: [] for the starting (dense) model
RECORD_GROUP_KEYS = ("stage", "method", "criterion")  # records differing in these are drawn as separate lines
# metrics.jsonl (amcprune.train.run): epoch, train_loss, train_acc, val_acc, val_loss, test_acc, lr, seconds.
METRIC_EPOCH_KEYS = ("epoch",)


# --------------------------------------------------------------------------------------------------
# Typed report data
# --------------------------------------------------------------------------------------------------
@dataclass
class ModelSummary:
    """Headline numbers of one model (dense or final); any of them may be unknown (None).

    ``accuracy`` is the test accuracy; ``criterion_acc`` the accuracy the pruning criterion judged (on the
    split named by ``ReportData.judge_on``).
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
        return all(
            getattr(self, name) is None
            for name in ("accuracy", "criterion_acc", "bops", "weight_bits", "score", "weights", "nonzero_weights",
                         "sparsity")
        )


@dataclass
class EvalData:
    """One evaluation, normalized: accuracies are fractions in [0, 1]; missing cells are None."""

    source: str
    accuracy: float | None
    snrs: list[int]
    class_names: list[str]
    acc_per_snr: list[float | None]  # aligned with snrs; empty if unknown
    per_class_snr: list[list[float | None]] | None  # [class][snr]
    confusion: list[list[float]] | None  # [true][predicted], counts or fractions
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
    records: list[dict[str, Any]]
    metrics: list[dict[str, Any]]
    eval_dense: EvalData | None
    eval_final: EvalData | None
    cost_dense: CostData | None
    cost_final: CostData | None
    files: dict[str, bool]  # file name -> present
    notes: list[str]  # why a section is empty or partial

    @property
    def title(self) -> str:
        return f"amcprune report: {self.run_dir.name}"


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------
def _first(d: Any, keys: tuple[str, ...], default: Any = None) -> Any:
    if isinstance(d, dict):
        for key in keys:
            if d.get(key) is not None:
                return d[key]
    return default


def _num(value: Any) -> float | None:
    """A finite float, or None for anything else (missing, null, NaN, inf, text)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _first_num(d: Any, keys: tuple[str, ...]) -> float | None:
    if isinstance(d, dict):
        for key in keys:
            value = _num(d.get(key))
            if value is not None:
                return value
    return None


def _frac(value: float | None) -> float | None:
    """Accuracies are fractions; a value in (1, 100] is taken as a percentage."""
    if value is None:
        return None
    return value / 100.0 if 1.0 < value <= 100.0 else value


def _read_json(path: Path, notes: list[str]) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        notes.append(f"{path.name} could not be read ({type(exc).__name__}: {exc}); its section is left out.")
        return None


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _scalar_items(d: dict, skip: set[str] | tuple = ()) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in skip and _is_scalar(v)}


# --------------------------------------------------------------------------------------------------
# Parsers for each file kind
# --------------------------------------------------------------------------------------------------
_MODEL_KEYS = {
    "accuracy": ACCURACY_KEYS, "criterion_acc": CRITERION_ACC_KEYS, "bops": BOPS_KEYS,
    "weight_bits": WEIGHT_BITS_KEYS, "score": SCORE_KEYS, "weights": WEIGHTS_KEYS, "nonzero_weights": NONZERO_KEYS,
    "sparsity": SPARSITY_KEYS,
}


def parse_model_summary(label: str, d: dict, extra_keys: tuple[str, ...] = ()) -> ModelSummary:
    values = {name: _first_num(d, keys) for name, keys in _MODEL_KEYS.items()}
    values["accuracy"] = _frac(values["accuracy"])
    values["criterion_acc"] = _frac(values["criterion_acc"])
    extra = {k: d[k] for k in extra_keys if _is_scalar(d.get(k)) and d.get(k) is not None}
    return ModelSummary(label=label, extra=extra, **values)


def _align_per_snr(raw: Any, snrs: list[int]) -> tuple[list[int], list[float | None]]:
    """Per-SNR accuracies as a list aligned with ``snrs``. Accepts a list, {snr: acc} or [{snr, accuracy}]."""
    if isinstance(raw, dict):
        pairs = []
        for k, v in raw.items():
            snr = _num(k)
            if snr is None:
                continue
            if isinstance(v, dict):
                v = _first(v, EVAL_ACCURACY_KEYS)
            pairs.append((int(round(snr)), _frac(_num(v))))
        pairs.sort()
        if not snrs:
            snrs = [s for s, _ in pairs]
        lookup = dict(pairs)
        return snrs, [lookup.get(s) for s in snrs]
    if isinstance(raw, list) and raw and isinstance(raw[0], dict):
        as_dict = {}
        for item in raw:
            snr = _num(_first(item, EVAL_SNRS_KEYS + ("snr", "snr_db")))
            if snr is not None:
                as_dict[str(int(round(snr)))] = _first(item, EVAL_ACCURACY_KEYS)
        return _align_per_snr(as_dict, snrs)
    if isinstance(raw, list):
        values = [_frac(_num(v)) for v in raw]
        if snrs and len(values) != len(snrs):
            return snrs, []
        return snrs, values
    return snrs, []


def _matrix(raw: Any) -> list[list[float | None]] | None:
    if not isinstance(raw, list) or not raw or not all(isinstance(row, list) for row in raw):
        return None
    width = len(raw[0])
    if width == 0 or any(len(row) != width for row in raw):
        return None
    return [[_num(v) for v in row] for row in raw]


def _from_counts(raw: Any) -> tuple[list[float | None], list[list[float | None]], list[list[float]]] | None:
    """Per-SNR accuracy, per-class per-SNR accuracy and confusion from counts[snr][true][pred]."""
    if not isinstance(raw, list) or not raw:
        return None
    try:
        counts = np.asarray(raw, dtype=float)
    except (TypeError, ValueError):
        return None
    if counts.ndim != 3 or counts.shape[1] != counts.shape[2] or not np.all(np.isfinite(counts)):
        return None
    diag = np.diagonal(counts, axis1=1, axis2=2)  # (snrs, classes)
    per_snr_tot = counts.sum(axis=(1, 2))
    class_tot = counts.sum(axis=2)  # (snrs, classes)
    per_snr = [float(c / t) if t > 0 else None for c, t in zip(diag.sum(axis=1), per_snr_tot)]
    per_class = [[float(diag[j, i] / class_tot[j, i]) if class_tot[j, i] > 0 else None
                  for j in range(counts.shape[0])] for i in range(counts.shape[1])]
    return per_snr, per_class, counts.sum(axis=0).tolist()


def parse_eval(source: str, d: dict) -> EvalData:
    snrs_raw = _first(d, EVAL_SNRS_KEYS, [])
    snrs = [int(round(v)) for v in (_num(x) for x in snrs_raw) if v is not None] if isinstance(snrs_raw, list) else []
    names_raw = _first(d, EVAL_CLASSES_KEYS)
    class_names = [str(c) for c in names_raw] if isinstance(names_raw, list) else []

    snrs, acc_per_snr = _align_per_snr(_first(d, EVAL_PER_SNR_KEYS), snrs)

    per_class_snr = None
    raw_pcs = _first(d, EVAL_PER_CLASS_SNR_KEYS)
    if isinstance(raw_pcs, dict):  # {class_name: per-SNR (list or dict)}
        names = class_names or [str(n) for n in raw_pcs]
        rows = []
        for name in names:
            _, row = _align_per_snr(raw_pcs.get(name), snrs)
            rows.append(row if row else [None] * len(snrs))
        class_names = names
        per_class_snr = rows if snrs else None
    else:
        m = _matrix(raw_pcs)
        if m is not None:
            if snrs and len(m) == len(snrs) and len(m[0]) != len(snrs):
                m = [list(col) for col in zip(*m)]  # stored [snr][class]: transpose
            if not snrs or len(m[0]) == len(snrs):
                per_class_snr = [[_frac(v) for v in row] for row in m]

    raw_conf = _first(d, EVAL_CONFUSION_KEYS)
    if isinstance(raw_conf, dict):  # e.g. {"all": [[...]], "per_snr": {...}}
        raw_conf = _first(raw_conf, ("all", "overall", "matrix"))
    confusion = _matrix(raw_conf)
    if confusion is not None and len(confusion) != len(confusion[0]):
        confusion = None
    if confusion is not None:
        confusion = [[v if v is not None else 0.0 for v in row] for row in confusion]

    # Whatever is missing, derived from the raw counts when the file has them.
    derived = _from_counts(_first(d, EVAL_COUNTS_KEYS))
    if derived is not None and (not snrs or len(snrs) == len(derived[0])):
        if not snrs:
            snrs = list(range(len(derived[0])))
        if not acc_per_snr:
            acc_per_snr = derived[0]
        if per_class_snr is None:
            per_class_snr = derived[1]
        if confusion is None:
            confusion = derived[2]

    n_classes = len(per_class_snr) if per_class_snr else len(confusion) if confusion else 0
    if n_classes and len(class_names) != n_classes:
        class_names = [str(i) for i in range(n_classes)]

    accuracy = _frac(_first_num(d, EVAL_ACCURACY_KEYS))
    if accuracy is None and confusion is not None:
        total = sum(sum(row) for row in confusion)
        if total > 0:
            accuracy = sum(confusion[i][i] for i in range(len(confusion))) / total
    n = _first_num(d, EVAL_N_KEYS)
    return EvalData(
        source=source, accuracy=accuracy, snrs=snrs, class_names=class_names, acc_per_snr=acc_per_snr,
        per_class_snr=per_class_snr, confusion=confusion, n_frames=int(n) if n is not None else None,
    )


def parse_cost(source: str, d: dict) -> CostData:
    layers = []
    raw_layers = _first(d, COST_PER_LAYER_KEYS, [])
    if isinstance(raw_layers, dict):  # {name: {...}}
        raw_layers = [{"name": k, **v} for k, v in raw_layers.items() if isinstance(v, dict)]
    for i, item in enumerate(raw_layers if isinstance(raw_layers, list) else []):
        if not isinstance(item, dict):
            continue
        layers.append(LayerCost(
            name=str(item.get("name", f"layer{i}")),
            op=str(item.get("op", item.get("op_type", "")) or ""),
            macs=_num(item.get("macs")),
            bops=_num(item.get("bops")),
            weight_bits=_num(item.get("weight_bits")),
            weights=_first_num(item, WEIGHTS_KEYS),
            nonzero_weights=_first_num(item, NONZERO_KEYS),
            input_dtype=str(item.get("input_dtype") or ""),
            weight_dtype=str(item.get("weight_dtype") or ""),
        ))
    warnings = _first(d, COST_WARNINGS_KEYS, [])
    weights, nonzero = _first_num(d, WEIGHTS_KEYS), _first_num(d, NONZERO_KEYS)
    sparsity = _first_num(d, SPARSITY_KEYS)
    if sparsity is None and weights and nonzero is not None:
        sparsity = 1.0 - nonzero / weights
    return CostData(
        source=source, bops=_first_num(d, BOPS_KEYS), weight_bits=_first_num(d, WEIGHT_BITS_KEYS),
        score=_first_num(d, SCORE_KEYS), weights=weights, nonzero_weights=nonzero, sparsity=sparsity,
        per_layer=layers,
        warnings=[str(w) for w in warnings] if isinstance(warnings, list) else [str(warnings)],
    )


def _fill(target: ModelSummary | None, label: str, *sources: ModelSummary | CostData | None) -> ModelSummary:
    """Fill the numbers ``target`` lacks from ``sources``, in order."""
    out = target or ModelSummary(label=label)
    for src in sources:
        if src is None:
            continue
        for name in ("accuracy", "criterion_acc", "bops", "weight_bits", "score", "weights", "nonzero_weights",
                     "sparsity"):
            if getattr(out, name) is None and getattr(src, name, None) is not None:
                setattr(out, name, getattr(src, name))
    return out


def _dense_record(records: list[dict]) -> dict | None:
    """The record measured on the starting model: no pruning rate applied yet."""
    for r in records:
        rates = r.get(RECORD_RATES_KEY)
        if rates == [] or (rates is None and r.get("iteration") == 0 and not _num(r.get("sparsity"))):
            return r
    return None


def _final_record(records: list[dict]) -> dict | None:
    """The last record of a model that met the criterion (else the last record)."""
    met = [r for r in records if r.get("met") is True and r.get("event") != "failed"]
    return (met or records or [None])[-1]


def _best_epoch(metrics: list[dict]) -> dict | None:
    """The epoch record with the highest validation accuracy (None without one)."""
    scored = [(m, _first_num(m, RECORD_CRITERION_ACC_KEYS)) for m in metrics]
    scored = [(m, acc) for m, acc in scored if acc is not None]
    return max(scored, key=lambda item: item[1])[0] if scored else None


def record_group(record: dict) -> str:
    """A label for the line a pruning record belongs to (e.g. ``stage 0: imp/l1``)."""
    stage = record.get("stage")
    method = "/".join(str(record[k]) for k in ("method", "criterion") if record.get(k) is not None)
    if stage is not None:
        return f"stage {stage}: {method}" if method else f"stage {stage}"
    return method


def _data_info(config: dict) -> tuple[str | None, str | None]:
    section = config.get(CONFIG_DATA_KEY)
    if isinstance(section, dict):
        path, fp = _first(section, DATA_PATH_KEYS), _first(section, FINGERPRINT_KEYS)
    else:
        path = section if isinstance(section, str) else _first(config, DATA_PATH_KEYS)
        fp = _first(config, FINGERPRINT_KEYS)
    return (str(path) if _is_scalar(path) and path is not None else None,
            str(fp) if _is_scalar(fp) and fp is not None else None)


def _summary_models(summary: dict) -> tuple[ModelSummary | None, ModelSummary | None]:
    """Dense and final numbers from a prune summary.json (flat dense_* keys, final SavedModel, final_cost)."""
    dense_raw: dict[str, Any] = {}
    section = _first(summary, SUMMARY_DENSE_KEYS)
    if isinstance(section, dict):
        dense_raw.update(section)
    for flat, key in SUMMARY_DENSE_FLAT.items():
        if summary.get(flat) is not None:
            dense_raw.setdefault(key, summary[flat])
    dense = parse_model_summary("dense", dense_raw) if dense_raw else None

    final = None
    section = _first(summary, SUMMARY_FINAL_KEYS)
    if isinstance(section, dict):
        stats = section.get(SUMMARY_STATS_KEY)
        flat = {**(stats if isinstance(stats, dict) else {}), **section}
        cost = _first(summary, SUMMARY_FINAL_COST_KEYS)
        if isinstance(cost, dict):  # the cost of the exported final.onnx wins over the in-training measure
            flat.update({k: v for k, v in cost.items() if k in BOPS_KEYS + WEIGHT_BITS_KEYS + SCORE_KEYS + WEIGHTS_KEYS
                         + NONZERO_KEYS and v is not None})
        final = parse_model_summary("final", flat, extra_keys=("stage", "iteration", "path"))
        if "path" in final.extra:
            final.extra["checkpoint"] = final.extra.pop("path")
    return dense, final


def _summary_extra(summary: dict) -> dict[str, Any]:
    skip = set(SUMMARY_DENSE_KEYS + SUMMARY_FINAL_KEYS + SUMMARY_FINAL_COST_KEYS + SUMMARY_HIDDEN_KEYS
               + SUMMARY_TRAIN_PER_SNR_KEYS) | set(SUMMARY_DENSE_FLAT) | {SUMMARY_STAGES_KEY}
    out = {}
    for key, value in summary.items():
        if key in skip:
            continue
        if _is_scalar(value):
            out[key] = value
        elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            out[key] = "; ".join(value)
    return out


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
    eval_dense_dir = next((run_dir / d for d in EVAL_DENSE_DIRS if (run_dir / d / EVAL_FILE).is_file()), None)
    eval_final_dir = next((run_dir / d for d in EVAL_FINAL_DIRS if (run_dir / d / EVAL_FILE).is_file()), None)
    if not any((run_dir / m).exists() for m in RUN_MARKERS) and eval_dense_dir is None and eval_final_dir is None:
        raise AmcpruneError(
            f"{run_dir} is not an amcprune run directory (none of {', '.join(RUN_MARKERS)} found)"
        )

    notes: list[str] = []
    names = [CONFIG_FILE, METRICS_FILE, BEST_CHECKPOINT, SUMMARY_FILE, RECORDS_FILE, FINAL_CHECKPOINT, FINAL_ONNX,
             COST_DENSE_FILE, COST_FINAL_FILE, COST_FILE]
    names += [f"{d}/{EVAL_FILE}" for d in EVAL_DENSE_DIRS + EVAL_FINAL_DIRS]
    files = {name: (run_dir / name).exists() for name in names}

    # config.yaml
    config: dict[str, Any] = {}
    config_text = ""
    if files[CONFIG_FILE]:
        try:
            config_text = (run_dir / CONFIG_FILE).read_text()
            loaded = yaml.safe_load(config_text)
            config = loaded if isinstance(loaded, dict) else {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            notes.append(f"{CONFIG_FILE} could not be parsed ({type(exc).__name__}); shown as text only.")
    else:
        notes.append(f"No {CONFIG_FILE}: the configuration is not shown.")
    data_path, fingerprint = _data_info(config)
    source = config.get(CONFIG_SOURCE_KEY)
    source = str(source) if _is_scalar(source) and source is not None else None

    records = [r for r in read_jsonl(run_dir / RECORDS_FILE) if isinstance(r, dict)] if files[RECORDS_FILE] else []
    metrics = [r for r in read_jsonl(run_dir / METRICS_FILE) if isinstance(r, dict)] if files[METRICS_FILE] else []
    summary = _read_json(run_dir / SUMMARY_FILE, notes)
    summary = summary if isinstance(summary, dict) else {}
    is_prune = (
        any((run_dir / m).exists() for m in PRUNE_MARKERS)
        or any(k in summary for k in SUMMARY_DENSE_KEYS + SUMMARY_FINAL_KEYS + tuple(SUMMARY_DENSE_FLAT))
        or isinstance(config.get("prune"), dict)
    )
    kind = "prune" if is_prune else "train"

    def load_eval(directory: Path | None) -> EvalData | None:
        if directory is None:
            return None
        raw = _read_json(directory / EVAL_FILE, notes)
        if not isinstance(raw, dict):
            return None
        return parse_eval(f"{directory.name}/{EVAL_FILE}", raw)

    def load_cost(name: str) -> CostData | None:
        raw = _read_json(run_dir / name, notes)
        return parse_cost(name, raw) if isinstance(raw, dict) else None

    eval_dense = load_eval(eval_dense_dir)
    eval_final = load_eval(eval_final_dir)
    cost_dense = load_cost(COST_DENSE_FILE)
    cost_final = load_cost(COST_FINAL_FILE) if files[COST_FINAL_FILE] else load_cost(COST_FILE)

    judge_on: Any = None
    if kind == "prune":
        dense, final = _summary_models(summary)
        dense_rec, final_rec = _dense_record(records), _final_record(records)
        dense = _fill(dense, "dense",
                      cost_dense, parse_model_summary("dense", dense_rec) if dense_rec else None,
                      ModelSummary("dense", accuracy=eval_dense.accuracy) if eval_dense else None)
        final = _fill(final, "final",
                      cost_final, parse_model_summary("final", final_rec) if final_rec else None,
                      ModelSummary("final", accuracy=eval_final.accuracy) if eval_final else None)
        if not final.extra and final_rec is not None and summary.get("final") is None:
            final.extra = {k: final_rec[k] for k in ("stage", "iteration") if _is_scalar(final_rec.get(k))}
        # Sparsity against the dense model's weights (a structured-pruned final model has fewer weights).
        if dense.weights and final.nonzero_weights is not None:
            final.sparsity = 1.0 - final.nonzero_weights / dense.weights
        if dense.sparsity is None and dense.weights and dense.nonzero_weights is not None:
            dense.sparsity = 1.0 - dense.nonzero_weights / dense.weights
    else:
        # A train run has one model, the dense one: best.pt, with its test accuracy in summary.json.
        if eval_dense is None:
            eval_dense, eval_final = eval_final, None
        if cost_dense is None:
            cost_dense, cost_final = cost_final, None
        per_snr = _first(summary, SUMMARY_TRAIN_PER_SNR_KEYS)
        if eval_dense is None and isinstance(per_snr, dict) and per_snr:
            eval_dense = parse_eval(SUMMARY_FILE, {"acc_per_snr": per_snr,
                                                   "accuracy": _first(summary, SUMMARY_TRAIN_ACC_KEYS)})
        dense = ModelSummary("dense", accuracy=_frac(_first_num(summary, SUMMARY_TRAIN_ACC_KEYS)))
        dense = _fill(dense, "dense", cost_dense,
                      ModelSummary("dense", accuracy=eval_dense.accuracy) if eval_dense else None)
        final = None
        best = _best_epoch(metrics)
        if best is not None:
            dense.criterion_acc = _frac(_first_num(best, RECORD_CRITERION_ACC_KEYS))
            judge_on = "val, best epoch"
            if best.get("epoch") is not None:
                dense.extra["best epoch"] = best["epoch"]
        if dense.sparsity is None and dense.weights and dense.nonzero_weights is not None:
            dense.sparsity = 1.0 - dense.nonzero_weights / dense.weights
    dense = None if dense.is_empty() and not dense.extra else dense
    final = None if final is None or (final.is_empty() and not final.extra) else final

    stages = [s for s in summary.get(SUMMARY_STAGES_KEY) or [] if isinstance(s, dict)] \
        if isinstance(summary.get(SUMMARY_STAGES_KEY), list) else []
    if kind == "prune":
        judge_on = summary.get("judge_on") or _first(config.get("prune"), ("judge_on",))

    # Notes for empty sections.
    if dense is None and final is None:
        notes.append(f"No model numbers found (no {SUMMARY_FILE}, cost or eval JSON).")
    if eval_dense is None and eval_final is None:
        notes.append(
            f"No evaluation found ({' or '.join(f'{d}/{EVAL_FILE}' for d in EVAL_DENSE_DIRS + EVAL_FINAL_DIRS)}): "
            "the per-class heat map and the confusion matrix are left out."
        )
    if kind == "prune" and not records:
        notes.append(f"No {RECORDS_FILE} records: the pruning trajectory is left out.")
    if cost_dense is None and cost_final is None:
        notes.append(f"No {COST_DENSE_FILE} or {COST_FINAL_FILE}: the per-layer cost is left out.")

    return ReportData(
        run_dir=run_dir.resolve(), kind=kind, config=config, config_text=config_text,
        data_fingerprint=fingerprint, data_path=data_path, source=source,
        judge_on=str(judge_on) if isinstance(judge_on, str) else None,
        summary_extra=_summary_extra(summary), stages=stages, dense=dense, final=final, records=records,
        metrics=metrics, eval_dense=eval_dense, eval_final=eval_final, cost_dense=cost_dense,
        cost_final=cost_final, files=files, notes=notes,
    )
