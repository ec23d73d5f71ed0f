"""Sweeps: a grid of full trials (bits, methods, architectures, seeds, any trial field), run by local worker
processes or Ray, resumable, summarised as a table and a Pareto plot.

Public API::

    SweepConfig, load_sweep(path)            the sweep YAML (see amcprune.sweep.config)
    expand(config, out_dir) -> [TrialJob]    the trials, named from their parameters
    run_sweep(config_or_path, out_dir=None, workers=None, executor=None, ray_address=None, quiet=False)
    collect_rows(sweep_dir), write_table(rows, out_dir, target=None), pareto_front(rows)

See ``docs/sweep.md``.
"""

from amcprune.sweep.config import SweepConfig, load_sweep, sweep_from_dict
from amcprune.sweep.grid import TrialJob, expand, trial_name
from amcprune.sweep.run import run_sweep
from amcprune.sweep.table import collect_rows, pareto_front, plot_pareto, write_table

__all__ = [
    "SweepConfig",
    "TrialJob",
    "collect_rows",
    "expand",
    "load_sweep",
    "pareto_front",
    "plot_pareto",
    "run_sweep",
    "sweep_from_dict",
    "trial_name",
    "write_table",
]
