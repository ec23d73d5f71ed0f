"""Run sweep trials: local worker processes (default) or Ray tasks.

Both call :func:`run_job` for each trial, which runs the trial pipeline in the trial's directory with its
output sent to ``trial.log``, and never raises: a failure comes back as a row with ``status: failed`` and the
error line (also in the trial's ``trial.json`` and ``error.txt``).

``local``
    ``concurrent.futures.ProcessPoolExecutor`` with the spawn start method and ``workers`` processes; each
    sets ``torch.set_num_threads(cores // workers)``.
``ray``
    Every trial is a Ray task declaring ``num_cpus`` and ``num_gpus`` (from the sweep's ``resources``, or the
    trial's device), so the same sweep runs on a laptop (a local Ray instance started here) or on a cluster
    (``--ray-address``). On a cluster the output directory and the data file must be on storage every node
    sees under the same path.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from amcprune.errors import AmcpruneError
from amcprune.pipeline.trial import LOG_FILE, error_line, read_trial, run_trial, write_failed

RAY_MISSING = "--executor ray needs Ray, which is not installed: pip install 'amcprune[ray]'"


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _set_threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(int(threads))
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(1)


def _failed_row(name: str, trial_dir: str, error: str) -> dict[str, Any]:
    state = read_trial(trial_dir) or {}
    if state.get("status") != "failed" or state.get("error") != error:
        with contextlib.suppress(OSError):
            state = write_failed(trial_dir, error, name=name, params=state.get("params"), config=state.get("config"))
    return {"trial": name, "status": "failed", "error": error, "trial_dir": str(trial_dir)}


def run_job(name: str, config: dict[str, Any], trial_dir: str, params: dict[str, Any] | None = None,
            threads: int | None = None) -> dict[str, Any]:
    """Run one trial (in a worker); returns ``{trial, status, error, trial_dir, wall_s, result}``, never raises."""
    t0 = time.perf_counter()
    _set_threads(threads)
    path = Path(trial_dir)
    path.mkdir(parents=True, exist_ok=True)
    try:
        with open(path / LOG_FILE, "a", buffering=1) as log, contextlib.redirect_stdout(log), \
                contextlib.redirect_stderr(log):
            print(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} trial {name} (pid {os.getpid()}, threads {threads})")
            try:
                result = run_trial(config, path, quiet=True, params=params)
            except BaseException as exc:
                traceback.print_exc()
                if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                    raise
                error = error_line(exc)
                return {**_failed_row(name, trial_dir, error), "wall_s": time.perf_counter() - t0}
    except OSError as exc:
        return {**_failed_row(name, trial_dir, f"cannot write the trial log: {exc}"), "wall_s": time.perf_counter() - t0}
    return {"trial": name, "status": "done", "error": None, "trial_dir": str(trial_dir), "result": result,
            "wall_s": time.perf_counter() - t0}


# --------------------------------------------------------------------------------------------------
# local processes
# --------------------------------------------------------------------------------------------------
def run_local(jobs: Iterable[Any], workers: int, on_result: Callable[[dict[str, Any]], None],
              threads: int | None = None) -> list[dict[str, Any]]:
    """Run ``jobs`` (``TrialJob``) in ``workers`` spawned processes; ``on_result`` gets each row as it ends."""
    jobs = list(jobs)
    if not jobs:
        return []
    workers = max(1, min(int(workers), len(jobs)))
    threads = threads or max(1, available_cores() // workers)
    rows: list[dict[str, Any]] = []
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
    try:
        futures = {pool.submit(run_job, j.name, j.config, str(j.trial_dir), j.params, threads): j for j in jobs}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                job = futures[fut]
                try:
                    row = fut.result()
                except BrokenProcessPool:
                    row = _failed_row(job.name, str(job.trial_dir), "the worker process died (killed or out of memory)")
                except Exception as exc:  # pragma: no cover - run_job does not raise
                    row = _failed_row(job.name, str(job.trial_dir), f"{type(exc).__name__}: {exc}")
                rows.append(row)
                on_result(row)
    except KeyboardInterrupt:
        for fut in futures:
            fut.cancel()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    else:
        pool.shutdown(wait=True)
    return rows


# --------------------------------------------------------------------------------------------------
# Ray
# --------------------------------------------------------------------------------------------------
def import_ray():
    try:
        import ray  # noqa: F401  (local: Ray is optional, the extra amcprune[ray])
    except ImportError:
        raise AmcpruneError(RAY_MISSING) from None
    return ray


def run_ray(jobs: Iterable[Any], on_result: Callable[[dict[str, Any]], None], address: str | None = None,
            workers: int | None = None) -> list[dict[str, Any]]:
    """Run ``jobs`` as Ray tasks with their ``num_cpus``/``num_gpus``; connects to ``address`` or starts a
    local instance (``num_cpus``: ``workers`` trials' worth, else every core). A Ray already initialised in
    this process (a test, a notebook) is used as it is and left running."""
    ray = import_ray()
    jobs = list(jobs)
    if not jobs:
        return []
    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR"}
        if address:
            ray.init(address=address, **kwargs)
        else:
            per_trial = max(j.resources.get("num_cpus", 1.0) for j in jobs)
            cpus = int(workers * per_trial) if workers else available_cores()
            ray.init(num_cpus=max(1, cpus), **kwargs)
        started = True
    try:
        remote = ray.remote(run_job)
        refs = {}
        for j in jobs:
            cpus = j.resources.get("num_cpus", 1.0)
            gpus = j.resources.get("num_gpus", 0.0)
            ref = remote.options(num_cpus=cpus, num_gpus=gpus, max_retries=0, name=f"trial:{j.name}").remote(
                j.name, j.config, str(j.trial_dir), j.params, max(1, int(cpus)))
            refs[ref] = j
        rows: list[dict[str, Any]] = []
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                job = refs[ref]
                try:
                    row = ray.get(ref)
                except Exception as exc:  # a task that died (worker crash, out of memory)
                    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    row = _failed_row(job.name, str(job.trial_dir), f"Ray task failed: {text}")
                rows.append(row)
                on_result(row)
        return rows
    finally:
        if started:
            ray.shutdown()

