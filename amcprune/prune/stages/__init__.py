"""Stage kinds of a recipe: the registry and the built-in kinds (importing this package registers them)."""

from amcprune.prune.stages.base import StageKind, StageSpec, parse_stage, register_stage_kind, stage_kind, stage_kinds
from amcprune.prune.stages.magnitude import MagnitudePruning, MagnitudeStage

__all__ = ["MagnitudePruning", "MagnitudeStage", "StageKind", "StageSpec", "parse_stage", "register_stage_kind",
           "stage_kind", "stage_kinds"]
