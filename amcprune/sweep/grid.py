"""Expand a :class:`SweepConfig` into trials: the Cartesian product of its axes over ``base``.

Each trial's directory is named from its parameters (``arch-vgg10_bits-4_method-fmp_seed-0``), so a rerun
finds the same directories and skips the trials that finished. A trial whose config is invalid (say
``bits: 0`` in the grid) is kept with its error: it is recorded as failed and the others run.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amcprune.data.synth import synth_config
from amcprune.errors import AmcpruneError
from amcprune.pipeline.config import TrialConfig, set_path
from amcprune.pipeline.trial import ensure_synthetic
from amcprune.sweep.config import SweepConfig

TRIALS_DIR = "trials"
DATA_DIR = "data"


@dataclass
class TrialJob:
    name: str
    params: dict[str, Any]  # trial field path -> value
    trial_dir: Path
    config: dict[str, Any] | None  # the validated TrialConfig as JSON; None when invalid
    error: str | None = None
    resources: dict[str, float] = field(default_factory=dict)  # num_cpus, num_gpus

    def label(self) -> dict[str, Any]:
        return dict(self.params)


def _value_text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "+".join(_value_text(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return hashlib.sha256(repr(sorted(value.items())).encode()).hexdigest()[:8]
    return str(value)


def trial_name(params: dict[str, Any]) -> str:
    """``key-value`` pairs joined by ``_`` (a dotted path contributes its last part), file-name safe."""
    if not params:
        return "trial"
    parts = []
    for path, value in params.items():
        key = path.split(".")[-1]
        parts.append(f"{key}-{_value_text(value)}")
    return re.sub(r"[^A-Za-z0-9_.+=-]+", "-", "_".join(parts)).strip("-.")[:200] or "trial"


def _resources(sweep: SweepConfig, config: TrialConfig | None) -> dict[str, float]:
    cpus = sweep.resources.num_cpus
    gpus = sweep.resources.num_gpus
    if gpus is None:
        device = str(config.train_config().device) if config is not None else "cpu"
        gpus = 1.0 if device.startswith("cuda") else 0.0
    if cpus is None:
        threads = config.train_config().threads if config is not None else None
        cpus = float(threads) if threads else 1.0
    return {"num_cpus": float(cpus), "num_gpus": float(gpus)}


def _synth_path(config: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """Point a synthetic ``data`` section without a path at the sweep's shared data directory."""
    data = dict(config.get("data") or {})
    if data.get("synth") and not data.get("path"):
        try:
            sc = synth_config(data["synth"], **(data.get("synth_overrides") or {}))
        except AmcpruneError:
            return config  # left for TrialConfig to report
        digest = hashlib.sha256(sc.to_json().encode()).hexdigest()[:8]
        data["path"] = str((out_dir / DATA_DIR / f"synth-{data['synth']}-{digest}.h5").resolve())
    elif data.get("path"):
        data["path"] = str(Path(data["path"]).expanduser().resolve())
    return {**config, "data": data}


def expand(sweep: SweepConfig, out_dir: str | Path) -> list[TrialJob]:
    """Every trial of the sweep, in grid order, with its directory under ``out_dir/trials``."""
    out_dir = Path(out_dir)
    axes = sweep.axes()
    paths = [p for p, _ in axes]
    jobs: list[TrialJob] = []
    seen: dict[str, int] = {}
    for values in itertools.product(*(v for _, v in axes)):
        params = dict(zip(paths, values))
        raw = dict(sweep.base)
        for path, value in params.items():
            raw = set_path(raw, path, value)
        name = trial_name(params)
        if name in seen:  # two parameter sets that read the same once made file-name safe
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        else:
            seen[name] = 0
        raw["name"] = name
        raw = _synth_path(raw, out_dir)
        try:
            config = TrialConfig.from_dict(raw, source=f"trial {name}")
            job = TrialJob(name, params, out_dir / TRIALS_DIR / name, config.model_dump(mode="json"),
                           resources=_resources(sweep, config))
        except AmcpruneError as exc:
            job = TrialJob(name, params, out_dir / TRIALS_DIR / name, None, error=str(exc),
                           resources=_resources(sweep, None))
        jobs.append(job)
    return jobs


def prepare_data(jobs: list[TrialJob], quiet: bool = False, say=print) -> list[Path]:
    """Generate every synthetic file the trials share, once, before any trial starts (no races)."""
    done: dict[str, Path] = {}
    for job in jobs:
        if job.config is None:
            continue
        cfg = TrialConfig.model_validate(job.config)
        if cfg.data.synth is None or cfg.data.path in done:
            continue
        path = Path(cfg.data.path)
        ensure_synthetic(cfg.data.synth_config(), path, workers=cfg.data.synth_workers, quiet=quiet,
                         say=None if quiet else say)
        done[cfg.data.path] = path
    return list(done.values())
