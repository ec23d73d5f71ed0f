"""CLI for the demo: ``amcprune demo`` (the trial pipeline with a demo preset)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from amcprune.errors import AmcpruneError


def _fmt(value, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def summary_lines(result: dict, state: dict) -> list[str]:
    """The short summary printed at the end of the demo."""
    stages = state.get("stages") or {}
    wall = sum((s or {}).get("wall_s", 0.0) for s in stages.values())
    lines = [
        "",
        f"demo finished: {state.get('name')} ({result.get('arch')}, {result.get('bits')}-bit, "
        f"{result.get('method')} {result.get('criterion')}) in {wall / 60:.1f} min of stage time",
        f"  accuracy (test)    dense {_fmt(result.get('dense_test_accuracy'), '.4f')}  ->  final "
        f"{_fmt(result.get('test_accuracy'), '.4f')}   (criterion: {result.get('judge_on')} accuracy >= "
        f"{_fmt(result.get('threshold'), '.4f')}, met: {result.get('met')})",
        f"  sparsity           {_fmt(result.get('sparsity'), '.2%')}   measured compression "
        f"{_fmt(result.get('compression'), '.2f')}x ({_fmt(result.get('nonzero_weights'), ',.0f')} of "
        f"{_fmt(result.get('weights'), ',.0f')} weights non-zero)",
        f"  bops               {_fmt(result.get('bops'), ',.0f')}",
        f"  weight bits        {_fmt(result.get('weight_bits'), ',.0f')}",
        f"  score              {_fmt(result.get('score'), '.6f')}   (dense {_fmt(result.get('dense_score'), '.6f')}; "
        "1.0 = the challenge's 8-bit VGG10 baseline)",
        f"  report             {result.get('report')}",
    ]
    # Here, not at the top: torch and Brevitas take seconds to load, and `amcprune --help` needs neither.
    from amcprune.pipeline import STAGES

    timing = ", ".join(f"{k} {stages[k].get('wall_s', 0):.0f}s" for k in STAGES if isinstance(stages.get(k), dict))
    lines.append(f"  stage times        {timing}")
    return lines


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""

    @app.command("demo")
    def demo(
        out: Path = typer.Option(Path("demo-out"), "--out", help="Output directory (rerun to continue a killed demo)."),
        preset: str = typer.Option("quick", "--preset", help="quick (2 CPU cores, minutes; see docs/demo.md) or gpu (longer, closer to the challenge)."),
        data: Optional[Path] = typer.Option(None, "--data", help="Use this RadioML-layout HDF5 file instead of synthetic data."),
        set_: Optional[list[str]] = typer.Option(None, "--set", help="Override a trial field: KEY=VALUE, e.g. train.epochs=2 (repeatable).", hidden=True),
        force: bool = typer.Option(False, "--force", help="Start over in --out (deletes the previous demo's files there)."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars; one line per epoch and stage."),
    ) -> None:
        """Synthetic data -> 4-bit training -> FMP to the target -> verified QONNX -> score -> report."""
        # Here, not at the top: torch and Brevitas take seconds to load, and `amcprune --help` needs neither.
        from amcprune.pipeline import demo_config, read_trial, run_trial
        from amcprune.pipeline.presets import parse_overrides

        if data is not None and not data.is_file():
            raise AmcpruneError(f"{data}: no such data file")
        config = demo_config(preset, data=data, overrides=parse_overrides(set_))
        if not quiet:
            typer.echo(f"amcprune demo: preset {preset!r} into {out}/ (rerun the same command to continue after a kill)")
        result = run_trial(config, out, quiet=quiet, force=force)
        for line in summary_lines(result, read_trial(out) or {}):
            typer.echo(line)
