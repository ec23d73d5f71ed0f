"""CLI for sweeps: ``amcprune sweep SWEEP.yaml``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from amcprune.errors import AmcpruneError


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""

    @app.command("sweep")
    def sweep(
        config: Path = typer.Argument(..., help="Sweep YAML: base trial config plus grid axes (see docs/sweep.md)."),
        out: Optional[Path] = typer.Option(None, "--out", help="Sweep directory [default: the YAML's out:, else <name>-out]."),
        workers: Optional[int] = typer.Option(None, "--workers", "-j", help="Trials at a time (local executor; Ray: sizes a local instance)."),
        executor: Optional[str] = typer.Option(None, "--executor", help="local (worker processes, default) or ray."),
        ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray cluster to join (e.g. auto or ray://host:10001); default: start a local instance."),
        dry_run: bool = typer.Option(False, "--dry-run", help="List the trials and their directories, run nothing."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="Only the final line."),
    ) -> None:
        """Run a grid of full trials (train -> prune -> export -> cost -> evaluate -> report); resumable."""
        # Here, not at the top: torch and Brevitas take seconds to load, and `amcprune --help` needs neither.
        from amcprune.pipeline.trial import read_trial
        from amcprune.sweep.config import load_sweep
        from amcprune.sweep.grid import expand
        from amcprune.sweep.run import default_out, run_sweep

        cfg = load_sweep(config)
        if executor is not None and executor not in ("local", "ray"):
            raise AmcpruneError(f"--executor: expected local or ray, got {executor!r}")
        if dry_run:
            target = out or default_out(cfg, config)
            for job in expand(cfg, target):
                state = read_trial(job.trial_dir) or {}
                status = "invalid: " + job.error if job.error else state.get("status", "new")
                typer.echo(f"{job.trial_dir}  {status}")
            return
        res = run_sweep(cfg, out if out is not None else default_out(cfg, config), workers=workers,
                        executor=executor, ray_address=ray_address, quiet=quiet, say=typer.echo)
        if quiet:
            typer.echo(f"{res['md']}: {len(res['rows']) - res['failed']} done, {res['failed']} failed")
