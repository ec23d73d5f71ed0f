"""CLI for the cost stage: ``amcprune cost MODEL [--per-layer] [--json] [--baseline FILE]``."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from amcprune.cli.train import MODEL_OPTION_HELP


def print_cost(result, source: str, per_layer: bool = False) -> None:
    """Human-readable report on stdout; warnings on stderr."""
    # Here, not at the top: torch, Brevitas and qonnx take seconds to load, and `amcprune --help` needs none of them.
    # The warnings quote layer bops in this same format, so they read exactly as the table's cells.
    from amcprune.cost.core import fmt_number as _fmt

    d = result.to_dict()
    b = d["baseline"]
    typer.echo(f"model:        {source}")
    typer.echo(f"bops:         {_fmt(result.bops)}")
    typer.echo(f"weight bits:  {_fmt(result.weight_bits)}")
    typer.echo(f"score:        {result.score:.6f}  (0.5 bops/{_fmt(b['bops'])} + 0.5 weight bits/{_fmt(b['weight_bits'])}; {b['name']})")
    typer.echo(f"weights:      {result.weights:,} total, {result.nonzero_weights:,} non-zero "
               f"(sparsity {100 * result.sparsity:.2f}%)")
    if per_layer:

        table = Table(title="per layer (ONNX node names after qonnx preprocessing)")
        named = any("module" in layer for layer in result.per_layer)
        if named:
            table.add_column("module")
        for col in ("layer", "op", "MACs", "input", "weights dt", "bops", "weight bits", "weights", "non-zero"):
            table.add_column(col, justify="left" if col in ("layer", "op", "input", "weights dt") else "right")
        for layer in result.per_layer:
            table.add_row(*([layer.get("module", "")] if named else []), layer["name"], layer["op"], _fmt(layer["macs"]), layer["input_dtype"], layer["weight_dtype"],
                          _fmt(layer["bops"]), _fmt(layer["weight_bits"]), f"{layer['weights']:,}", f"{layer['nonzero']:,}")
        Console(width=140).print(table)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)

# The model options describe a bare state dict; a checkpoint or run directory brings its own spec, which they
# may only repeat (a disagreeing option is an error).
BARE = " For a bare state dict; a checkpoint's own spec must agree."


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""

    @app.command("cost")
    def cost_cmd(
        model: Path = typer.Argument(..., help="Run directory, amcprune checkpoint, bare challenge state dict (with --arch), or (Q)ONNX file."),
        per_layer: bool = typer.Option(False, "--per-layer", help="Also print each MAC layer's MACs, datatypes, bops and weight bits."),
        as_json: bool = typer.Option(False, "--json", help="Print exactly one JSON object."),
        baseline: Optional[Path] = typer.Option(None, "--baseline", help="Normalise against this model's cost instead of the challenge VGG10."),
        arch: Optional[str] = typer.Option(None, "--arch", help="Architecture of a bare state dict (vgg10)."),
        bits: Optional[int] = typer.Option(None, "--bits", help=MODEL_OPTION_HELP["bits"] + BARE),
        weight_bits: Optional[int] = typer.Option(None, "--weight-bits", help=MODEL_OPTION_HELP["weight_bits"] + BARE),
        act_bits: Optional[int] = typer.Option(None, "--act-bits", help=MODEL_OPTION_HELP["act_bits"] + BARE),
        input_bits: Optional[int] = typer.Option(None, "--input-bits", help=MODEL_OPTION_HELP["input_bits"] + BARE),
        filters: Optional[int] = typer.Option(None, "--filters", help="vgg10 conv filters of a bare state dict (default 64)."),
        dense: Optional[int] = typer.Option(None, "--dense", help="vgg10 dense width of a bare state dict (default 128)."),
        no_cache: bool = typer.Option(False, "--no-cache", help="Recompute even if the cost of this content is cached."),
    ) -> None:
        """Inference cost as the ITU-ML5G-PS-007 challenge scored it (qonnx bops and weight bits)."""
        warnings.filterwarnings("ignore", message=".*fast_hadamard_transform.*")
        # Here, not at the top: torch, Brevitas and qonnx take seconds to load, and `amcprune --help` needs none of them.
        from amcprune.cost import CHALLENGE_BASELINE, baseline_from, model_cost
        from amcprune.cost.resolve import load_for_cost

        use_cache = not no_cache
        ref = baseline_from(baseline, use_cache=use_cache) if baseline is not None else CHALLENGE_BASELINE
        target = load_for_cost(model, arch=arch, bits=bits, weight_bits=weight_bits, act_bits=act_bits,
                               input_bits=input_bits, filters=filters, dense=dense)
        result = model_cost(target, baseline=ref, use_cache=use_cache)
        if as_json:
            d = result.to_dict()
            d["model"] = str(model)
            typer.echo(json.dumps(d, sort_keys=True))
        else:
            print_cost(result, str(model), per_layer=per_layer)
