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


def _print_generator(rf) -> None:
    """Which generator wrote the file, so that a file from an older generator is recognisably old."""
    from amcprune.data.synth.config import GENERATOR_VERSION

    version = rf.attrs.get("generator_version")
    if version is None:
        typer.echo("generator: none recorded (not an amcprune synthetic file)")
    elif version == GENERATOR_VERSION:
        typer.echo(f"generator: {version} (current)")
    else:
        typer.echo(f"generator: {version} (this amcprune writes {GENERATOR_VERSION}: regenerate for current data)")


def _parse_settings(items: list[str]) -> dict:
    """``KEY=VALUE`` pairs; a value is read as JSON (numbers, true/false, lists) and else kept as a string."""
    import json

    out: dict = {}
    for item in items:
        key, eq, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not eq or not key:
            raise AmcpruneError(f"--set needs KEY=VALUE, got {item!r}")
        if key in out:
            raise AmcpruneError(f"--set {key} is given twice")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw.strip()
    return out


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
    _print_generator(rf)
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
    settings: Optional[list[str]] = typer.Option(
        None, "--set", help="Any SynthConfig field as KEY=VALUE, e.g. --set cfo_static=true --set "
        "snr_definition=es_n0 --set 'samples_per_symbol=[4,8,16]' (repeatable; see docs/data.md)."),
    legacy_v1: bool = typer.Option(False, "--legacy-v1", help="Generator 1's analog and CFO/SRO settings: the "
                                   "same samples as amcprune-synth-1 for the same seed (--set overrides them)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing --out file."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Generate a synthetic RadioML-like file in the RadioML 2018.01A layout."""
    if out.exists() and not out.is_dir() and not force:
        raise AmcpruneError(f"{out}: already exists; use --force to replace it")
    overrides: dict = {}
    given = _parse_settings(settings or [])
    named = {k for k, v in (("seed", seed), ("classes", classes), ("snr_min", snr_min), ("snr_max", snr_max),
                            ("snr_step", snr_step), ("frames_per_pair", frames_per_pair)) if v is not None}
    both = sorted(named & set(given))
    if both:
        raise AmcpruneError(f"--set {both[0]} repeats the option --{both[0].replace('_', '-')}; give it once")
    overrides.update(given)
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
    from amcprune.data import synth as synth_module
    from amcprune.data.radioml import RadioMLFile

    if legacy_v1:  # under everything given explicitly
        overrides = {**synth_module.LEGACY_V1, **overrides}
    config = synth_module.synth_config(preset.value, **overrides)  # bad values raise a one-line AmcpruneError
    start = time.perf_counter()
    written = Path(synth_module.write_synthetic(config, out, workers=workers, quiet=quiet, overwrite=force))
    elapsed = time.perf_counter() - start

    rf = RadioMLFile(written)
    typer.echo(f"wrote {written}")
    typer.echo(f"frames: {rf.n_frames}")
    typer.echo(f"classes ({rf.n_classes}): {', '.join(rf.class_names)}")
    typer.echo(f"SNRs: {_format_snrs(rf.snrs_db)}")
    typer.echo(f"frames per pair: {rf.frames_per_pair}")
    if rf.attrs.get("generator_version") is not None:
        typer.echo(f"generator: {rf.attrs['generator_version']}")
    typer.echo(f"size: {_format_size(written.stat().st_size)}")
    rate = rf.n_frames / elapsed if elapsed > 0 else float("inf")
    typer.echo(f"time: {elapsed:.1f} s ({rate:,.0f} frames/s, {workers} worker(s))")


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""
    app.add_typer(data_app, name="data")
