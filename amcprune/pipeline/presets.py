"""The trials behind ``amcprune demo``: ``quick`` (2 CPU cores, at most 10 minutes) and ``gpu``.

``tiny`` is for tests only (seconds, accuracy meaningless). See ``docs/demo.md`` for the measured times.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from amcprune.errors import AmcpruneError
from amcprune.pipeline.config import TrialConfig, check_path, set_path

DEMO_PRESETS: dict[str, dict[str, Any]] = {
    # 2 CPU cores, under 10 minutes (docs/demo.md has the measured times and the spread over seeds and kernels):
    # the `quick` synthetic file (39,936 frames), a narrow 4-bit VGG10 (16 filters, 64-wide dense layers) trained
    # 8 epochs at batch 128 on SNR >= 0 dB (the test split stays whole), then FMP judged on 20 % of the training
    # frames (4,224: a standard error of 0.8 points, well inside the 3-point criterion), each iteration
    # fine-tuned from a fresh optimizer at 0.3 x the train rate decayed to zero over its epochs, p 0.3
    # halved down to 0.075, at most 12 prunes, then per-layer bit lowering (the fmp-bits recipe) for at most 8
    # steps, the cost scored at every record.
    "quick": {
        "name": "demo-quick",
        "data": {"synth": "quick", "synth_workers": 2},
        "arch": "vgg10",
        "bits": 4,
        "recipe": "fmp-bits",
        "seed": 0,
        "device": "auto",
        "model": {"conv_filters": 16, "dense_width": 64},
        "train": {"epochs": 8, "batch_size": 128, "lr": 0.01, "scheduler": "cosine-restarts", "t0": 8,
                  "train_snr_min": 0, "val_fraction": 0.2},
        # max_iterations: at most 12 prunes (fmp), then at most 8 bit steps
        "prune": {"max_drop": 0.03, "judge_on": "val", "p": 0.3, "divisor": 2, "p_min": 0.075, "max_epochs": 1,
                  "max_iterations": [12, 8], "finetune": "cosine", "finetune_lr_scale": 0.3, "judge_at": "end",
                  "cost": True},
        "verify_frames": 32,
    },
    # A GPU machine: the `standard` file (159,744 frames; pass --data for the real RadioML 2018.01A file), the
    # challenge VGG10 (64 filters) at 4 bits with the challenge recipe (20 epochs, batch 1024), then FMP with
    # p 0.2, n 2, p_min 0.05 and 3 fine-tuning epochs per iteration (the defaults' cosine fine-tuning).
    "gpu": {
        "name": "demo-gpu",
        "data": {"synth": "standard", "synth_workers": 4},
        "arch": "vgg10",
        "bits": 4,
        "method": "fmp",
        "criterion": "global",
        "seed": 0,
        "device": "auto",
        "model": {"conv_filters": 64, "dense_width": 128},
        "train": {"epochs": 20, "batch_size": 1024, "lr": 0.01, "scheduler": "cosine-restarts", "t0": 5,
                  "train_snr_min": -6, "val_fraction": 0.1},
        "prune": {"max_drop": 0.02, "judge_on": "val", "p": 0.2, "divisor": 2, "p_min": 0.05, "max_epochs": 3},
        "verify_frames": 64,
    },
    # Tests: seconds on 2 cores.
    "tiny": {
        "name": "demo-tiny",
        "data": {"synth": "tiny"},
        "arch": "vgg10",
        "bits": 4,
        "method": "fmp",
        "seed": 0,
        "device": "cpu",
        "model": {"conv_filters": 4, "dense_width": 8},
        "train": {"epochs": 1, "batch_size": 128, "val_fraction": 0.2, "eval_batch_size": 512},
        "prune": {"max_drop": 0.5, "p": 0.5, "p_min": 0.25, "max_epochs": 1, "patience": 1, "max_iterations": 1,
                  "cost": False},
        "verify_frames": 4,
        "eval_plots": False,
    },
}
PUBLIC_PRESETS = ("quick", "gpu")


def parse_overrides(items: list[str] | None) -> list[tuple[str, Any]]:
    """``KEY=VALUE`` strings (VALUE parsed as YAML, KEY a dotted trial field) as (key, value) pairs."""
    out = []
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise AmcpruneError(f"--set: expected KEY=VALUE, got {item!r}")
        check_path(key)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise AmcpruneError(f"--set {key}: cannot parse {raw!r}") from None
        out.append((key, value))
    return out


def demo_config(preset: str = "quick", data: str | Path | None = None,
                overrides: list[tuple[str, Any]] | None = None) -> TrialConfig:
    """The demo trial of ``preset``; ``data`` replaces the synthetic file with an existing RadioML-layout file."""
    if preset not in DEMO_PRESETS:
        raise AmcpruneError(f"unknown demo preset {preset!r} (choose from {', '.join(PUBLIC_PRESETS)})")
    values = copy.deepcopy(DEMO_PRESETS[preset])
    if data is not None:
        values["data"] = {"path": str(Path(data).expanduser().resolve())}
    for key, value in overrides or []:
        values = set_path(values, key, value)
    return TrialConfig.from_dict(values, source=f"demo preset {preset!r}")
