"""CLI for the report stage: ``amcprune report RUN_DIR [--out DIR]``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""

    @app.command("report")
    def report(
        run_dir: Path = typer.Argument(..., help="A train or prune run directory."),
        out: Optional[Path] = typer.Option(
            None, "--out", help="Directory for report.html and report.md (default: RUN_DIR)."
        ),
        force: bool = typer.Option(False, "--force", help="Replace report.html and report.md if they exist."),
    ) -> None:
        """Write a self-contained HTML report (report.html) and a Markdown summary (report.md) of a run."""
        # Here, not at the top: matplotlib takes a second to load, and `amcprune --help` does not need it.
        from amcprune.report import write_report

        html_path, md_path = write_report(run_dir, out, overwrite=force)
        typer.echo(str(html_path))
        typer.echo(str(md_path))
