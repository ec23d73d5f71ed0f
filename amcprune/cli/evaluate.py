"""CLI for the evaluate stage: ``amcprune evaluate``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""

    @app.command("evaluate")
    def evaluate(
        checkpoint: Path = typer.Argument(..., help="An amcprune checkpoint (.pt) or a run directory (uses best.pt)."),
        data: Optional[Path] = typer.Option(None, "--data", help="RadioML-layout HDF5 file (default: the one the run used)."),
        split: str = typer.Option("test", "--split", help="test | val | all"),
        out: Optional[Path] = typer.Option(None, "--out", help="Write eval.json and PNG plots here."),
        snr: Optional[List[int]] = typer.Option(None, "--snr", help="SNR (dB) for an extra confusion matrix; repeatable."),
        batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Frames per batch (default: 256 on a CPU, 4096 on a GPU)."),
        device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
        limit: Optional[int] = typer.Option(None, "--limit", help="Evaluate a seeded random subset of N frames."),
        force: bool = typer.Option(False, "--force", help="Replace an evaluation already in --out."),
        quiet: bool = typer.Option(False, "--quiet", "-q"),
    ) -> None:
        """Accuracy overall and per SNR (with --out: per class x SNR, confusion matrices, plots)."""
        # Here, not at the top: torch and Brevitas take seconds to load, and `amcprune --help` needs neither.
        from amcprune.train.evaluate import evaluate_checkpoint

        result = evaluate_checkpoint(
            checkpoint, data, split=split, out_dir=out, confusion_snrs=snr or None, device=device,
            batch_size=batch_size, limit=limit, quiet=quiet, warn=lambda m: print(m, file=sys.stderr), overwrite=force,
        )
        typer.echo(result.table())
        if out is not None:
            typer.echo(f"wrote {out / 'eval.json'} and plots")
