"""The measurer the CLI and the pipeline give a prune run: per-layer weight costs from the exported graph."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "prune"))
from prune_helpers import tiny_spec  # noqa: E402

from amcprune.cost import CHALLENGE_BASELINE, model_cost  # noqa: E402
from amcprune.models import build_model  # noqa: E402
from amcprune.pipeline.measure import QonnxMeasurer  # noqa: E402
from amcprune.prune.criteria import prunable_layers  # noqa: E402


def test_weight_costs_follow_the_score_formula_and_bill_the_first_conv_highest():
    torch.manual_seed(0)
    model = build_model(tiny_spec(input_length=1024, weight_bits=4, act_bits=4))
    model.eval()
    costs = QonnxMeasurer().weight_costs(model)
    names = [n for n, _ in prunable_layers(model)]
    assert list(costs) == names
    per_layer = {layer["module"]: layer for layer in model_cost(model).per_layer}
    for name, cost in costs.items():
        layer = per_layer[name]
        expected = 0.5 * layer["bops"] / layer["nonzero"] / CHALLENGE_BASELINE.bops + \
            0.5 * layer["weight_bits"] / layer["nonzero"] / CHALLENGE_BASELINE.weight_bits
        assert cost == pytest.approx(expected)
    # The first conv reads the 8-bit input over the longest frames: its weights cost the most; the
    # classifier's (one MAC each) the least.
    assert costs[names[0]] == max(costs.values()) and costs[names[-1]] == min(costs.values())
    assert costs[names[0]] > 10 * costs[names[-1]]
