"""The prune stage: magnitude-pruning criteria (through ``torch.nn.utils.prune``), structured shrinking, and the
``imp``, ``imp-converge`` and ``fmp`` schedules under an accuracy criterion, resumable epoch by epoch.

See ``docs/pruning.md``.
"""

from amcprune.prune.config import P_MIN_STRUCTURED, P_MIN_UNSTRUCTURED, PruneConfig
from amcprune.prune.criteria import (
    CRITERIA,
    PruneReport,
    canonical_criterion,
    mask_channel,
    mask_summary,
    masked_parameters,
    prune_model,
    remove_masks,
)
from amcprune.prune.engine import PruneRun, load_data, prune_run, read_records, remap_optimizer_state
from amcprune.prune.records import RecordLog, quantized_weight, weight_counts
from amcprune.prune.schedule import (
    METHODS,
    Decision,
    ScheduleState,
    StageSettings,
    decide,
    formula_ratio,
    initial_state,
    p_sequence,
    simulate,
)
from amcprune.prune.shrink import ShrinkResult, alive_channels, shrink_model, shrink_with_spec, spec_with_widths

__all__ = [
    "CRITERIA",
    "METHODS",
    "P_MIN_STRUCTURED",
    "P_MIN_UNSTRUCTURED",
    "Decision",
    "PruneConfig",
    "PruneReport",
    "PruneRun",
    "RecordLog",
    "ScheduleState",
    "ShrinkResult",
    "StageSettings",
    "alive_channels",
    "canonical_criterion",
    "decide",
    "formula_ratio",
    "initial_state",
    "load_data",
    "mask_channel",
    "mask_summary",
    "masked_parameters",
    "p_sequence",
    "prune_model",
    "prune_run",
    "quantized_weight",
    "read_records",
    "remap_optimizer_state",
    "remove_masks",
    "shrink_model",
    "shrink_with_spec",
    "simulate",
    "spec_with_widths",
    "weight_counts",
]
