"""The cost stage: the challenge's inference cost (qonnx bops and weight bits), cached by content."""

from amcprune.cost.core import (
    CHALLENGE_BASELINE,
    Baseline,
    CostResult,
    baseline_from,
    cache_dir,
    clear_memory_cache,
    model_cost,
    module_cost,
    onnx_cost,
)

__all__ = [
    "CHALLENGE_BASELINE",
    "Baseline",
    "CostResult",
    "baseline_from",
    "cache_dir",
    "clear_memory_cache",
    "model_cost",
    "module_cost",
    "onnx_cost",
]
