"""The prune stage: a recipe (an accuracy criterion and a list of stages, :mod:`amcprune.prune.recipe`) run
resumably epoch by epoch. Stage kinds register themselves (:mod:`amcprune.prune.stages`); the built-in ones are
magnitude pruning (criteria through ``torch.nn.utils.prune``, structured shrinking) with the ``imp``,
``imp-converge`` and ``fmp`` schedules.

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
from amcprune.prune.engine import PruneRun, prune_run, read_records, remap_optimizer_state
from amcprune.prune.measurer import Measurer
from amcprune.prune.recipe import Recipe, named_recipe, named_recipes, recipe_source, recipe_with_options
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
from amcprune.prune.stages import StageKind, StageSpec, register_stage_kind, stage_kind, stage_kinds

__all__ = [
    "CRITERIA",
    "METHODS",
    "P_MIN_STRUCTURED",
    "P_MIN_UNSTRUCTURED",
    "Decision",
    "Measurer",
    "PruneConfig",
    "PruneReport",
    "PruneRun",
    "Recipe",
    "RecordLog",
    "ScheduleState",
    "ShrinkResult",
    "StageKind",
    "StageSettings",
    "StageSpec",
    "alive_channels",
    "canonical_criterion",
    "decide",
    "formula_ratio",
    "initial_state",
    "mask_channel",
    "mask_summary",
    "named_recipe",
    "named_recipes",
    "masked_parameters",
    "p_sequence",
    "prune_model",
    "prune_run",
    "quantized_weight",
    "read_records",
    "recipe_source",
    "recipe_with_options",
    "register_stage_kind",
    "remap_optimizer_state",
    "remove_masks",
    "shrink_model",
    "shrink_with_spec",
    "simulate",
    "spec_with_widths",
    "stage_kind",
    "stage_kinds",
    "weight_counts",
]
