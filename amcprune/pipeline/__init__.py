"""The trial pipeline: one train -> prune -> export -> cost -> evaluate -> report run, resumable by stage.

Public API::

    TrialConfig, DataConfig                  pydantic configs (TrialConfig.from_yaml / from_dict)
    run_trial(config, out_dir, quiet=False)  run or continue a trial; returns its result row
    collect_result(trial_dir)                the result row from a trial directory's files
    read_trial(trial_dir)                    its trial.json
    DEMO_PRESETS, demo_config(preset, out)   the `amcprune demo` trials

See ``docs/demo.md`` and ``docs/sweep.md``.
"""

from amcprune.pipeline.config import DataConfig, TrialConfig, check_path, set_path
from amcprune.pipeline.presets import DEMO_PRESETS, demo_config
from amcprune.pipeline.trial import STAGES, collect_result, ensure_synthetic, read_trial, run_trial, write_failed

__all__ = [
    "DEMO_PRESETS",
    "STAGES",
    "DataConfig",
    "TrialConfig",
    "check_path",
    "collect_result",
    "demo_config",
    "ensure_synthetic",
    "read_trial",
    "run_trial",
    "set_path",
    "write_failed",
]
