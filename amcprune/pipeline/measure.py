"""The measurer the CLI and the pipeline hand a prune run: QONNX export and qonnx's inference cost.

It lives here, after the prune stage, because it joins the stages that come after pruning (export, cost) to
it; the prune run only knows the :class:`~amcprune.prune.measurer.Measurer` protocol.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from amcprune.cost import CHALLENGE_BASELINE, model_cost
from amcprune.errors import AmcpruneError
from amcprune.export import export_qonnx
from amcprune.models import load_model


class QonnxMeasurer:
    """Scores a model from its exported QONNX graph (cached by content) and exports the final model."""

    def score(self, model: nn.Module) -> dict[str, Any]:
        cost = model_cost(model)
        return {"bops": cost.bops, "weight_bits": cost.weight_bits, "score": cost.score,
                "warnings": list(cost.warnings)}

    def weight_costs(self, model: nn.Module) -> dict[str, float]:
        """Per prunable layer, the score of one of its remaining weights: its MACs x input bits x weight bits
        (the layer's bops per non-zero weight) and its weight bits, each over the challenge baseline's total,
        as the score formula weighs them. Read from the exported graph's per-layer cost."""
        res = model_cost(model)
        out: dict[str, float] = {}
        for layer in res.per_layer:
            if "module" not in layer:
                raise AmcpruneError("the exported graph's MAC layers do not line up with the model's prunable layers: "
                                    "cannot cost them per weight")
            nz = layer["nonzero"]
            out[layer["module"]] = (0.5 * layer["bops"] / nz / CHALLENGE_BASELINE.bops
                                    + 0.5 * layer["weight_bits"] / nz / CHALLENGE_BASELINE.weight_bits) if nz else \
                float("inf")
        return out

    def export(self, checkpoint: Path, onnx_path: Path) -> dict[str, Any]:
        model, _, _ = load_model(checkpoint)
        export_qonnx(model, onnx_path)
        cost = model_cost(onnx_path)
        return {"bops": cost.bops, "weight_bits": cost.weight_bits, "score": cost.score, "weights": cost.weights,
                "nonzero_weights": cost.nonzero_weights, "sparsity": cost.sparsity, "warnings": list(cost.warnings)}
