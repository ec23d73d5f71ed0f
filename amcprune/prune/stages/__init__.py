"""Stage kinds of a recipe: the registry and the built-in kinds (importing this package registers them)."""

from amcprune.prune.stages.base import StageKind, StageSpec, parse_stage, register_stage_kind, stage_kind, stage_kinds
from amcprune.prune.stages.allocate import AllocateStage, Allocation
from amcprune.prune.stages.bits import BitLowering, BitsStage
from amcprune.prune.stages.decay import DecayStage, DecayThreshold
from amcprune.prune.stages.gradual import GradualPruning, GradualStage
from amcprune.prune.stages.magnitude import MagnitudePruning, MagnitudeStage

__all__ = ["AllocateStage", "Allocation", "BitLowering", "BitsStage", "DecayStage", "DecayThreshold", "GradualPruning",
           "GradualStage",
           "MagnitudePruning", "MagnitudeStage", "StageKind", "StageSpec", "parse_stage", "register_stage_kind",
           "stage_kind", "stage_kinds"]
