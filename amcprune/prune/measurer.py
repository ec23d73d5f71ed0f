"""What the prune run needs from the stages after it: a score for a model and an exported, scored final model.

The prune stage sits before export and cost in the pipeline, so it does not import them; the caller (the CLI,
the pipeline) hands the run a :class:`Measurer` (``amcprune.pipeline.measure.QonnxMeasurer`` exports QONNX
and scores it with qonnx's inference cost). A run whose recipe sets ``cost: false`` and ``export: false``
needs none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from torch import nn


class Measurer(Protocol):
    def score(self, model: nn.Module) -> dict[str, Any]:
        """``bops``, ``weight_bits``, ``score`` of ``model`` and its cost ``warnings`` (a list, maybe empty)."""

    def weight_costs(self, model: nn.Module) -> dict[str, float]:
        """What one remaining weight of each prunable layer (by module name) adds to the score."""

    def export(self, checkpoint: Path, onnx_path: Path) -> dict[str, Any]:
        """Export the model in ``checkpoint`` to ``onnx_path`` and return the exported file's cost: ``bops``,
        ``weight_bits``, ``score``, ``weights``, ``nonzero_weights``, ``sparsity``, ``warnings``."""
