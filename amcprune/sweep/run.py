"""``run_sweep``: expand the grid, skip finished trials, run the rest, write the table and the Pareto plot.

Sweep directory::

    OUT/sweep.yaml            the sweep config as run
    OUT/data/                 synthetic files shared by the trials (generated once, before any trial)
    OUT/trials/<name>/        one trial directory each (amcprune.pipeline.run_trial)
    OUT/results.csv, results.md, pareto.png
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

import yaml

from amcprune.errors import AmcpruneError
from amcprune.pipeline.trial import read_trial, write_failed
from amcprune.sweep.config import SweepConfig, load_sweep
from amcprune.sweep.executors import import_ray, run_local, run_ray
from amcprune.sweep.grid import TrialJob, expand, prepare_data
from amcprune.sweep.table import row_from_state, write_table
from amcprune.utils.atomic import write_text_atomic

SWEEP_FILE = "sweep.yaml"


def default_out(config: SweepConfig, source: str | os.PathLike | None) -> Path:
    if config.out:
        return Path(config.out)
    stem = config.name or (Path(source).stem if source else "sweep")
    return Path(f"{stem}-out")


def _fmt_row(row: dict[str, Any]) -> str:
    if row.get("status") != "done":
        return f"failed: {row.get('error')}"
    r = row.get("result") or row
    def f(key, spec):
        v = r.get(key)
        return "-" if v is None else format(v, spec)
    return (f"done: test acc {f('test_accuracy', '.4f')}, compression {f('compression', '.2f')}x, "
            f"score {f('score', '.6f')}")


def run_sweep(
    config: SweepConfig | str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    *,
    workers: int | None = None,
    executor: str | None = None,
    ray_address: str | None = None,
    quiet: bool = False,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run (or continue) a sweep; returns ``{out_dir, rows, csv, md, plot, ran, skipped, failed}``."""
    source = None
    if not isinstance(config, SweepConfig):
        source = config
        config = load_sweep(config)
    out = Path(out_dir) if out_dir is not None else default_out(config, source)
    executor = executor or config.executor
    if executor not in ("local", "ray"):
        raise AmcpruneError(f"unknown executor {executor!r} (local or ray)")
    workers = workers if workers is not None else config.workers
    if workers < 1:
        raise AmcpruneError(f"--workers must be >= 1, got {workers}")
    ray_address = ray_address or config.ray_address
    if executor == "ray":
        import_ray()  # fail before any work when Ray is missing
    if out.exists() and not out.is_dir():
        raise AmcpruneError(f"{out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / SWEEP_FILE, yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))

    jobs = expand(config, out)
    names = [j.name for j in jobs]
    rows: dict[str, dict[str, Any]] = {}
    todo: list[TrialJob] = []
    skipped = 0
    for job in jobs:
        if job.config is None:
            state = write_failed(job.trial_dir, job.error or "invalid trial config", name=job.name, params=job.params)
            rows[job.name] = row_from_state(job.name, state, job.params)
            continue
        state = read_trial(job.trial_dir)
        if state is not None and state.get("status") == "done" and state.get("config") == job.config:
            rows[job.name] = row_from_state(job.name, state, job.params)
            skipped += 1
            continue
        if state is not None and state.get("config") not in (None, job.config):
            error = "the trial directory holds a trial with another config (delete it to rerun with this one)"
            rows[job.name] = row_from_state(job.name, {**state, "status": "failed", "error": error}, job.params)
            continue
        rows[job.name] = row_from_state(job.name, state, job.params)
        todo.append(job)

    def table() -> tuple[Path, Path, Path | None]:
        return write_table([rows[n] for n in names], out, target=config.target,
                           title=f"Sweep {config.name or (Path(source).stem if source else out.name)}")

    if not quiet:
        say(f"sweep: {len(jobs)} trials in {out}/trials ({skipped} finished, {len(todo)} to run, "
            f"{len(jobs) - skipped - len(todo)} invalid); executor {executor}"
            + (f", {workers} workers" if executor == "local" else ""))
    table()
    t0 = time.perf_counter()
    if todo:
        prepare_data(todo, quiet=quiet, say=say)
        finished = [0]

        def on_result(row: dict[str, Any]) -> None:
            name = row["trial"]
            job = next(j for j in jobs if j.name == name)
            rows[name] = row_from_state(name, read_trial(job.trial_dir) or {"status": row.get("status"),
                                                                             "error": row.get("error")}, job.params)
            if row.get("status") != "done":
                rows[name]["status"] = "failed"
                rows[name]["error"] = row.get("error")
            finished[0] += 1
            if not quiet:
                say(f"[{finished[0]}/{len(todo)}] {name}: {_fmt_row(row)} ({row.get('wall_s', 0):.0f} s)")
            table()

        if executor == "local":
            run_local(todo, workers, on_result)
        else:
            run_ray(todo, on_result, address=ray_address, workers=workers if workers > 1 else None)
    csv_path, md_path, plot = table()
    ordered = [rows[n] for n in names]
    failed = sum(r.get("status") != "done" for r in ordered)
    if not quiet:
        say(f"sweep finished in {time.perf_counter() - t0:.0f} s: {len(ordered) - failed} done, {failed} failed; "
            f"{md_path}, {csv_path}" + (f", {plot}" if plot else ""))
    return {"out_dir": out, "rows": ordered, "csv": csv_path, "md": md_path, "plot": plot,
            "ran": len(todo), "skipped": skipped, "failed": failed}
