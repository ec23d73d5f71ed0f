"""CLI for the export stage: ``amcprune export CKPT_OR_RUN --out model.onnx [--format] [--verify]``."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Optional

import typer

from amcprune.cli.train import MODEL_OPTION_HELP
from amcprune.errors import AmcpruneError
from amcprune.utils.atomic import atomic_path


def verification_frames(n: int, data: Path | None = None, seed: int = 0, length: int = 1024):
    """``n`` frames (n, 2, length): spread over the test split of ``data`` when given, else uniform in [-2, 2]."""
    # Here, not at the top: h5py and numpy take a while to load, and `amcprune --help` needs neither.
    import numpy as np

    from amcprune.data.radioml import load_splits, read_frames

    if n < 1:
        raise AmcpruneError(f"--frames must be at least 1, got {n}")
    if data is None:
        rng = np.random.default_rng(seed)
        return rng.uniform(-2.0, 2.0, size=(n, 2, length)).astype(np.float32)
    splits = load_splits(data)
    test = splits.test
    if test.size == 0:
        raise AmcpruneError(f"{data}: the test split is empty")
    pick = np.unique(test[np.linspace(0, test.size - 1, min(n, test.size)).round().astype(np.int64)])
    x, _y, _snr = read_frames(data, pick, quiet=True)
    if x.shape[1] != length:
        raise AmcpruneError(f"{data}: frames of {x.shape[1]} samples, but the model takes {length} (its input_length)")
    return np.ascontiguousarray(x.transpose(0, 2, 1)).astype(np.float32)

# The model options describe a bare state dict; a checkpoint or run directory brings its own spec, which they
# may only repeat (a disagreeing option is an error).
BARE = " For a bare state dict; a checkpoint's own spec must agree."


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""

    @app.command("export")
    def export_cmd(
        source: Path = typer.Argument(..., help="Run directory, amcprune checkpoint, or bare challenge state dict (with --arch)."),
        out: Path = typer.Option(..., "--out", "-o", help="ONNX file to write (atomically)."),
        fmt: str = typer.Option("qonnx", "--format", "-f", help="qonnx (Quant nodes, FINN / cost tool) or qcdq (onnxruntime)."),
        verify: bool = typer.Option(False, "--verify", help="Run the export and the PyTorch model on frames and compare."),
        frames: int = typer.Option(64, "--frames", help="Frames used by --verify."),
        data: Optional[Path] = typer.Option(None, "--data", help="RadioML-layout HDF5: verify on its test split (else random frames in [-2, 2])."),
        arch: Optional[str] = typer.Option(None, "--arch", help="Architecture of a bare state dict (vgg10)."),
        bits: Optional[int] = typer.Option(None, "--bits", help=MODEL_OPTION_HELP["bits"] + BARE),
        weight_bits: Optional[int] = typer.Option(None, "--weight-bits", help=MODEL_OPTION_HELP["weight_bits"] + BARE),
        act_bits: Optional[int] = typer.Option(None, "--act-bits", help=MODEL_OPTION_HELP["act_bits"] + BARE),
        input_bits: Optional[int] = typer.Option(None, "--input-bits", help=MODEL_OPTION_HELP["input_bits"] + BARE),
        filters: Optional[int] = typer.Option(None, "--filters", help="vgg10 conv filters of a bare state dict."),
        dense: Optional[int] = typer.Option(None, "--dense", help="vgg10 dense width of a bare state dict."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
        force: bool = typer.Option(False, "--force", help="Replace an existing --out file."),
    ) -> None:
        """Export a model to QONNX or QCDQ ONNX (pruning masks burned in), optionally verifying it.

        With --verify the file is written under a temporary name, verified, and only then renamed to --out:
        a file that fails verification is never left under the output name.
        """
        warnings.filterwarnings("ignore", message=".*fast_hadamard_transform.*")
        # Here, not at the top: torch, Brevitas and qonnx take seconds to load, and `amcprune --help` needs none of them.
        from torch import nn

        from amcprune.cost.resolve import load_for_cost
        from amcprune.export import export_model, read_onnx, verify_export
        from amcprune.export.onnx_export import FORMATS, input_shape_of

        if fmt not in FORMATS:
            raise AmcpruneError(f"unknown --format {fmt!r}: choose one of {', '.join(FORMATS)}")
        if verify and frames < 1:
            raise AmcpruneError(f"--frames must be at least 1, got {frames}")
        if out.is_dir():
            raise AmcpruneError(f"{out}: is a directory; --out takes the name of the ONNX file to write")
        if out.exists() and not force:
            raise AmcpruneError(f"{out}: already exists; use --force to replace it")
        target = load_for_cost(source, arch=arch, bits=bits, weight_bits=weight_bits, act_bits=act_bits,
                               input_bits=input_bits, filters=filters, dense=dense)
        if not isinstance(target, nn.Module):
            read_onnx(target)  # bytes that only carry an .onnx suffix fail here with the reader's error
            raise AmcpruneError(f"{source}: is already an ONNX file; export needs a checkpoint or a run directory")
        x = verification_frames(frames, data, length=input_shape_of(target)[-1]) if verify else None
        record = {"out": str(out), "format": fmt}
        with atomic_path(out, suffix=".onnx") as tmp:
            export_model(target, tmp, fmt)
            if verify:
                res = verify_export(target, tmp, x, fmt=fmt, raise_on_failure=False)
                record.update(res.to_dict())
                if not res.passed:
                    record["out"] = None
                    if as_json:
                        typer.echo(json.dumps(record, sort_keys=True))
                    raise AmcpruneError(
                        f"{out}: not written: the {fmt} export disagrees with the PyTorch model on "
                        f"{_frames_text(res.n, data)}: {res.describe()}"
                    )
        if as_json:
            typer.echo(json.dumps(record, sort_keys=True))
        else:
            typer.echo(f"wrote {out} ({fmt})")
            if verify:
                typer.echo(f"verified on {_frames_text(record['n'], data)}: {res.describe()}")


def _frames_text(n: int, data: Path | None) -> str:
    return f"{n} frames ({'test split of ' + str(data) if data else 'random frames in [-2, 2]'})"
