"""Run directories: created fresh, continued with ``--resume``, or cleared with ``--force``."""

from __future__ import annotations

import shutil
from pathlib import Path

from amcprune.errors import AmcpruneError


def prepare_run_dir(run_dir: Path, run_files: tuple[str, ...], *, resume: bool, force: bool, kind: str) -> None:
    """Make ``run_dir`` ready for a ``kind`` run (e.g. "train run").

    With ``resume`` it must hold the run's ``config.yaml``. Otherwise an existing non-empty directory is
    refused unless ``force``, and even then only a run directory (one with ``config.yaml``) is cleared, and
    only of the files a run writes (``run_files``): ``--force`` pointed at the wrong folder deletes nothing.
    """
    run_dir = Path(run_dir)
    if resume:
        if not (run_dir / "config.yaml").is_file():
            raise AmcpruneError(f"{run_dir}: nothing to resume (no config.yaml); start it without --resume")
        return
    if run_dir.exists() and not run_dir.is_dir():
        raise AmcpruneError(f"{run_dir}: exists and is not a directory")
    if run_dir.is_dir() and any(run_dir.iterdir()):
        if not force:
            raise AmcpruneError(f"{run_dir}: already exists; use --resume to continue it or --force to start over")
        if not (run_dir / "config.yaml").exists():
            raise AmcpruneError(
                f"{run_dir}: does not look like an amcprune {kind} directory (no config.yaml); "
                "refusing to delete it even with --force"
            )
        for name in run_files:
            path = run_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    run_dir.mkdir(parents=True, exist_ok=True)
