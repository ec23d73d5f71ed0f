"""CLI for the data stage: ``amcprune data info | validate | synth``."""

from __future__ import annotations

import os
import time
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from amcprune.errors import AmcpruneError

data_app = typer.Typer(
    name="data",
    help="Inspect, validate and generate RadioML 2018.01A-layout HDF5 files.",
    no_args_is_help=True,
)


class Preset(str, Enum):
    tiny = "tiny"
    quick = "quick"
    standard = "standard"
    full = "full"


def _format_snrs(snrs: tuple[int, ...]) -> str:
    if len(snrs) >= 3:
        steps = {b - a for a, b in zip(snrs, snrs[1:])}
        if len(steps) == 1:
            return f"{snrs[0]}..{snrs[-1]} dB step {steps.pop()} ({len(snrs)} values)"
    return ", ".join(str(s) for s in snrs) + f" dB ({len(snrs)} values)"


def _format_size(n_bytes: int) -> str:
    size = float(n_bytes)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"  # pragma: no cover


def _print_layout(rf) -> None:
    typer.echo(f"file: {rf.path}")
    typer.echo(f"frames: {rf.n_frames}")
    typer.echo(f"frame length: {rf.frame_length}")
    typer.echo(f"classes ({rf.n_classes}): {', '.join(rf.class_names)}")
    typer.echo(f"SNRs: {_format_snrs(rf.snrs_db)}")
    typer.echo(f"frames per pair: {rf.frames_per_pair}")


@data_app.command("info")
def info(
    file: Path = typer.Argument(..., help="RadioML-layout HDF5 file."),
    full: bool = typer.Option(False, "--full", help="Also hash every byte of X, Y and Z (reads all of X)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Print the layout and the prescribed split of FILE (reads Z and a sample of X and Y; all with --full)."""
    # Here, not at the top: h5py and numpy take a while to load, and `amcprune --help` needs neither.
    from amcprune.data.radioml import RadioMLFile, content_sha256, data_fingerprint
    from amcprune.data.split import split_fingerprint

    rf = RadioMLFile(file)
    _print_layout(rf)
    train, test = rf.prescribed_split()
    typer.echo(f"train frames: {train.size}")
    typer.echo(f"test frames: {test.size}")
    typer.echo(f"test-split sha256: {split_fingerprint(test)}")
    typer.echo(f"sampled data fingerprint (layout, Z, 2 frames per class x SNR): {data_fingerprint(rf)}")
    if full:
        typer.echo(f"content sha256 (all of X, Y, Z): {content_sha256(rf, quiet=quiet)}")


@data_app.command("validate")
def validate(
    file: Path = typer.Argument(..., help="RadioML-layout HDF5 file."),
    full: bool = typer.Option(False, "--full", help="Scan every frame of X for NaN/Inf (reads X in chunks)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Check the layout, every label, the split and NaN/Inf frames; exit 2 at the first problem."""
    # Here, not at the top: h5py and numpy take a while to load, and `amcprune --help` needs neither.
    from amcprune.data.validate import validate_file

    report = validate_file(file, full=full, quiet=quiet)
    for line in report.checks:
        typer.echo(f"ok  {line}")
    typer.echo(f"{report.path}: valid")


def _default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover (not Linux)
        return max(1, os.cpu_count() or 1)


@data_app.command("synth")
def synth(
    out: Path = typer.Option(..., "--out", help="Output HDF5 file (written atomically)."),
    preset: Preset = typer.Option(Preset.quick, "--preset", help="Size preset."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (default: the preset's)."),
    classes: Optional[str] = typer.Option(None, "--classes", help="Comma-separated class names (default: all 24)."),
    snr_min: Optional[int] = typer.Option(None, "--snr-min", help="Lowest SNR in dB."),
    snr_max: Optional[int] = typer.Option(None, "--snr-max", help="Highest SNR in dB."),
    snr_step: Optional[int] = typer.Option(None, "--snr-step", help="SNR step in dB."),
    frames_per_pair: Optional[int] = typer.Option(None, "--frames-per-pair", help="Frames per (class, SNR) pair."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Worker processes (default: number of CPUs)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing --out file."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Generate a synthetic RadioML-like file in the RadioML 2018.01A layout."""
    if out.exists() and not out.is_dir() and not force:
        raise AmcpruneError(f"{out}: already exists; use --force to replace it")
    overrides: dict = {}
    if seed is not None:
        overrides["seed"] = seed
    if classes is not None:
        names = [c.strip() for c in classes.split(",") if c.strip()]
        if not names:
            raise AmcpruneError("--classes needs at least one class name")
        overrides["classes"] = names
    for key, value in (
        ("snr_min", snr_min),
        ("snr_max", snr_max),
        ("snr_step", snr_step),
        ("frames_per_pair", frames_per_pair),
    ):
        if value is not None:
            overrides[key] = value
    if workers is None:
        workers = _default_workers()
    elif workers < 1:
        raise AmcpruneError(f"--workers must be at least 1, got {workers}")

    # Here, not at the top: h5py, numpy and scipy take a while to load, and `amcprune --help` needs none of them.
    from amcprune.data.radioml import RadioMLFile
    from amcprune.data.synth import synth_config, write_synthetic

    config = synth_config(preset.value, **overrides)  # bad values raise a one-line AmcpruneError
    start = time.perf_counter()
    written = Path(write_synthetic(config, out, workers=workers, quiet=quiet, overwrite=force))
    elapsed = time.perf_counter() - start

    rf = RadioMLFile(written)
    typer.echo(f"wrote {written}")
    typer.echo(f"frames: {rf.n_frames}")
    typer.echo(f"classes ({rf.n_classes}): {', '.join(rf.class_names)}")
    typer.echo(f"SNRs: {_format_snrs(rf.snrs_db)}")
    typer.echo(f"frames per pair: {rf.frames_per_pair}")
    typer.echo(f"size: {_format_size(written.stat().st_size)}")
    rate = rf.n_frames / elapsed if elapsed > 0 else float("inf")
    typer.echo(f"time: {elapsed:.1f} s ({rate:,.0f} frames/s, {workers} worker(s))")


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""
    app.add_typer(data_app, name="data")
