"""One typed home for run outputs: the file names of every run directory and records of what is written.

``amcprune.outputs.names`` holds the file names (re-exported here), ``amcprune.outputs.models`` the pydantic
records (prune record, epoch line and summary; train metrics line and summary; eval and cost files; trial
state) and ``amcprune.outputs.read`` the readers. Producers write under these names and may validate with
these models; the report and the pipeline read through them. Nothing here imports a stage, so every stage
can import this package.
"""

from amcprune.outputs.models import (
    CostFile,
    CostLayer,
    CriterionNoise,
    EvalFile,
    FinalCost,
    ModelStats,
    PruneEpoch,
    PruneRecord,
    PruneSummary,
    SavedModelInfo,
    StageResult,
    TrainMetrics,
    TrainSummary,
    TrialStage,
    TrialState,
)
from amcprune.outputs.names import *  # noqa: F401,F403  (the file names are the package's vocabulary)
from amcprune.outputs.names import __all__ as _NAMES
from amcprune.outputs.read import (
    check,
    describe_error,
    load_json,
    read_cost,
    read_epochs,
    read_eval,
    read_json,
    read_jsonl,
    read_metrics,
    read_prune_summary,
    read_records,
    read_train_summary,
    read_trial_state,
    scan_jsonl,
)

__all__ = [
    *_NAMES,
    "CostFile", "CostLayer", "CriterionNoise", "EvalFile", "FinalCost", "ModelStats", "PruneEpoch", "PruneRecord",
    "PruneSummary", "SavedModelInfo", "StageResult", "TrainMetrics", "TrainSummary", "TrialStage", "TrialState",
    "check", "describe_error", "load_json", "read_cost", "read_epochs", "read_eval", "read_json", "read_jsonl",
    "read_metrics", "read_prune_summary", "read_records", "read_train_summary", "read_trial_state", "scan_jsonl",
]
