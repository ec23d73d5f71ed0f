"""Typed records of what the stages write into run directories (pydantic v2).

Each model was derived from its producer and checked against the files of real tiny runs; the producer is
named on every class. Models forbid unknown keys and are strict (no "0.5" read as 0.5): a file that does not
match is a producer/reader disagreement to fix in one place, never something to guess around. Accuracies are
fractions in [0, 1] everywhere. Fields that older runs lack (added to the producers later) have defaults;
keys a producer writes only in some cases (a val split, a cost failure) are optional.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator


class OutputModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# --------------------------------------------------------------------------------------------------
# prune run (amcprune.prune.engine)
# --------------------------------------------------------------------------------------------------
class ModelStats(OutputModel):
    """``PruneRun._measure``: weight counts measured on the model and, with ``cost: true``, its score."""

    weights: int
    nonzero_weights: int  # after the weight quantizer
    unmasked_weights: int
    sparsity: float  # of the dense model's weights
    # dense weights / non-zero weights. An all-zero model's is inf: Infinity in records.jsonl, but null in
    # summary.json, whose SavedModel is dumped with pydantic's JSON mode (it writes inf as null).
    compression: float | None
    compression_formula: float  # prod 1/(1-p) over the rates applied
    widths: list[int]
    bops: float | None
    weight_bits: float | None
    score: float | None
    cost_warnings: list[str] | None = None  # only when the cost module warned
    cost_error: str | None = None  # only when scoring failed


PruneEvent = Literal["met", "failed", "rewind", "stop"]


class PruneRecord(ModelStats):
    """One line of ``records.jsonl`` (``PruneRun._record`` with ``RecordLog.append``'s ``record`` index)."""

    record: int
    event: PruneEvent
    stage: int
    method: str
    criterion: str | None  # None for a stage kind that ranks no weights
    iteration: int
    p: float | None  # None for a stage kind without a pruning rate
    epochs_total: int
    judge_on: str
    criterion_acc: float | None
    test_acc: float | None
    threshold: float | None
    met: bool
    criterion_n: int | None = None
    criterion_se: float | None = None
    ps: list[float]  # rates applied to this model's lineage ([] for the starting model)
    epochs: int
    p_applied: float | None
    checkpoint: str | None = None  # absent on "failed" (the model is not kept)
    reason: str | None = None
    old_p: float | None = None  # "rewind" only: the rate that failed
    wall_s: float


class PruneEpoch(OutputModel):
    """One line of ``epochs.jsonl`` (``PruneRun._epoch``)."""

    stage: int
    method: str
    criterion: str | None
    iteration: int
    epoch: int
    epochs_total: int
    p: float | None
    train_loss: float
    train_acc: float
    lr: float
    lr_end: float | None
    criterion_acc: float
    met: bool
    criterion_n: int | None = None
    criterion_se: float | None = None
    unmasked_fraction: float | None


class SavedModelInfo(OutputModel):
    """``engine.SavedModel`` as dumped into ``summary.json`` (``final``): a kept model and its measures."""

    path: str  # relative to the run directory
    ps: list[float]
    criterion_acc: float | None
    test_acc: float | None
    stats: ModelStats
    stage: int
    iteration: int


class CriterionNoise(OutputModel):
    """``records.criterion_noise`` of the dense judgment."""

    n: int
    se: float
    margin: float
    margin_in_se: float
    noisy: bool


class FinalCost(OutputModel):
    """``summary.json`` ``final_cost``: the cost of ``final.onnx`` (a subset of ``CostResult``)."""

    bops: float
    weight_bits: float
    score: float
    weights: int
    nonzero_weights: int
    sparsity: float
    warnings: list[str]


class StageResult(OutputModel):
    """One entry of ``summary.json`` ``stages`` (``PruneRun.end_stage``)."""

    stage: int
    method: str
    criterion: str | None
    met: bool
    reason: str | None
    iterations: int
    final_p: float | None  # None for a stage kind without a pruning rate
    checkpoint: str
    criterion_acc: float | None
    test_acc: float | None
    nonzero_weights: int | None
    compression: float | None


class PruneSummary(OutputModel):
    """``summary.json`` of a prune run (``PruneRun.finish``)."""

    out_dir: str
    met: bool  # some model met the criterion (else final is the starting model)
    judge_on: str
    threshold: float
    criterion_noise: CriterionNoise | None = None
    dense_acc: float
    dense_test_acc: float | None
    dense_weights: int
    final: SavedModelInfo
    final_checkpoint: str
    final_onnx: str | None  # None with export: false or a failed export
    final_cost: FinalCost | None
    stages: list[StageResult]
    records: int
    epochs_total: int
    wall_s: float
    fixes: list[str] = []  # what the run does unlike the 2021 scripts; written by runs before the recipe engine
    export_error: str | None = None  # only when export or cost of final.pt failed


# --------------------------------------------------------------------------------------------------
# train run (amcprune.train.run)
# --------------------------------------------------------------------------------------------------
class TrainMetrics(OutputModel):
    """One line of ``metrics.jsonl`` (the epoch record of ``train_run``)."""

    epoch: int
    train_loss: float
    train_acc: float
    lr: float
    samples_per_s: float
    train_seconds: float
    val_acc: float | None = None  # with a val split only
    val_loss: float | None = None
    test_acc: float | None = None  # with eval_test_each_epoch only
    test_loss: float | None = None
    seconds: float


class TrainSummary(OutputModel):
    """``summary.json`` of a train run (``train.run._summary``)."""

    run_dir: str
    epochs: int
    best_epoch: int | None
    best_metric: Literal["val_acc", "train_acc"]
    best_score: float | None
    early_stopped: bool
    last: TrainMetrics | None
    test_acc: float | None
    test_loss: float | None = None  # with a test split only
    test_acc_per_snr: dict[str, float] | None = None  # with a test split only; keys are SNRs in dB


# --------------------------------------------------------------------------------------------------
# evaluate and cost
# --------------------------------------------------------------------------------------------------
class EvalFile(OutputModel):
    """``eval.json`` (``train.evaluate.EvalResult.to_json``). ``counts[snr][true][pred]`` is the source of the
    rest; the matrices are checked to be rectangular and consistent with the class and SNR lists."""

    split: str | None
    n: int
    accuracy: float
    loss: float | None
    class_names: list[str]
    snrs: list[int]
    n_per_snr: list[int]
    acc_per_snr: dict[str, float]  # keys are SNRs in dB; SNRs without frames are left out
    acc_per_class: dict[str, float]
    acc_class_snr: list[list[float | None]]  # [class][snr], None where a class has no frames
    confusion: list[list[int]]  # [true][pred], all SNRs
    confusion_by_snr: dict[str, list[list[int]]]
    counts: list[list[list[int]]]  # [snr][true][pred]

    @model_validator(mode="after")
    def _shapes(self) -> "EvalFile":
        k, s = len(self.class_names), len(self.snrs)
        if len(self.acc_class_snr) != k or any(len(row) != s for row in self.acc_class_snr):
            raise ValueError(f"acc_class_snr is not {k} classes x {s} SNRs")
        if len(self.confusion) != k or any(len(row) != k for row in self.confusion):
            raise ValueError(f"confusion is not {k} x {k}")
        if len(self.counts) != s or any(len(m) != k or any(len(r) != k for r in m) for m in self.counts):
            raise ValueError(f"counts is not {s} SNRs x {k} x {k}")
        if len(self.n_per_snr) != s:
            raise ValueError(f"n_per_snr has {len(self.n_per_snr)} entries for {s} SNRs")
        return self


class CostLayer(OutputModel):
    """One ``per_layer`` entry of a cost (``cost.core``)."""

    name: str
    op: str
    macs: float
    input_dtype: str
    weight_dtype: str
    bops: float
    weight_bits: float
    weights: int
    nonzero: int
    module: str | None = None  # the PyTorch layer name, when a model (not an ONNX file) lines up with the graph


class CostBaseline(OutputModel):
    name: str
    bops: float
    weight_bits: float


class CostFile(FinalCost):
    """A cost JSON file: ``CostResult.to_dict()`` (``cost_dense.json``, ``cost_final.json``, ``cost.json``): the
    totals of ``FinalCost`` and the per-layer table."""

    per_layer: list[CostLayer]
    macs: float
    baseline: CostBaseline
    key: str
    model: str | None = None  # added by `amcprune cost --json`: the model argument


# --------------------------------------------------------------------------------------------------
# trial (amcprune.pipeline.trial)
# --------------------------------------------------------------------------------------------------
TrialStatus = Literal["pending", "running", "done", "failed", "interrupted"]


class TrialStage(OutputModel):
    status: Literal["running", "done", "failed", "interrupted"]
    started: str
    wall_s: float
    finished: str | None = None
    info: dict[str, Any] | None = None  # what the stage returned: a few headline values, different per stage


class TrialState(OutputModel):
    """``trial.json``: the trial's config, status and per-stage status (``run_trial``, ``write_failed``)."""

    name: str
    status: TrialStatus
    params: dict[str, Any]  # the sweep's grid values for this trial (any trial field path)
    config: dict[str, Any] | None  # TrialConfig dump (None when the config itself was invalid)
    stages: dict[str, TrialStage]
    result: dict[str, Any] | None  # collect_result's row: the label's keys plus the headline numbers
    error: str | None
    label: dict[str, Any] | None = None  # TrialConfig.label(); absent when the trial never started
    stage: str | None = None
    data_path: str | None = None
    model: dict[str, Any] | None = None  # the resolved ModelSpec dump
    wall_s: float | None = None
    last_run_s: float | None = None
