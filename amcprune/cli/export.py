"""CLI for the export stage (not written yet)."""

import typer


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""
