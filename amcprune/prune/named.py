"""Named prune settings: the 2021 recipes, faithful to the published scripts, and amcprune's defaults.

``imp-2021`` and ``fmp-2021`` keep what the published scripts did, so that results stay comparable with
2021: the dense run's optimizer and scheduler go on training after each prune (its initial rate, 0.01 with
Adam, cosine warm restarts), and a prune follows as soon as one epoch's judgment meets the criterion. Their
rewinds rebuild the optimizer (the published FMP script did not: that defect is not reproduced).

``fmp`` is amcprune's default: each iteration fine-tunes with a fresh optimizer at a tenth of the train rate,
decayed to zero over the iteration (cosine, per batch), and is judged once, at its end. docs/pruning.md
shows the measurements behind the choice.
"""

from __future__ import annotations

from typing import Any

from amcprune.errors import AmcpruneError

_LEGACY = {"judge_at": "epoch", "finetune": "train", "lr_rewind": False, "max_epochs": 10, "patience": 3}

NAMED_SETTINGS: dict[str, dict[str, Any]] = {
    "imp-2021": {"methods": ["imp"], "criteria": ["global"], "p": [0.2], "max_iterations": 10, **_LEGACY},
    "fmp-2021": {"methods": ["fmp"], "criteria": ["global"], "p": [0.2], "divisor": 2.0, "p_min": [0.05], **_LEGACY},
    "fmp": {"methods": ["fmp"], "criteria": ["global"], "p": [0.2], "divisor": 2.0, "judge_at": "end",
            "finetune": "cosine", "finetune_lr_scale": 0.1, "max_epochs": 3},
}


def named_settings(name: str) -> dict[str, Any]:
    """The prune config fields of the named settings ``name`` (a copy)."""
    if name not in NAMED_SETTINGS:
        raise AmcpruneError(f"unknown prune settings {name!r} (choose from {', '.join(NAMED_SETTINGS)})")
    return {k: list(v) if isinstance(v, list) else v for k, v in NAMED_SETTINGS[name].items()}
