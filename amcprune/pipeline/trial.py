"""``run_trial``: one full train -> prune -> export -> cost -> evaluate -> report run, resumable by stage.

Trial directory::

    TRIAL/trial.json             config, status and per-stage status (written atomically after every change)
    TRIAL/trial.log              output of the trial when run by a sweep worker
    TRIAL/error.txt              traceback of the last failure
    TRIAL/data/synth-<p>.h5      the synthetic data, when generated for this trial alone
    TRIAL/train/                 the dense training run (amcprune.train.run.train_run)
    TRIAL/prune/                 the prune run (amcprune.prune.engine.prune_run) plus what the report reads:
        eval_dense/eval.json     test evaluation of the dense model (train/checkpoints/best.pt), with plots
        eval_final/eval.json     test evaluation of the final model (prune/final.pt)
        cost_dense.json          CostResult.to_dict() of the dense model
        cost_final.json          CostResult.to_dict() of final.onnx
        verify.json              the QONNX export checked against PyTorch on test frames
    TRIAL/report.html, report.md the report of the prune run (amcprune.report.write_report)

File names come from :mod:`amcprune.outputs`; ``trial.json`` is a ``TrialState`` (validated before every
write) and the result row is read through that package's records. The trial directory is locked and keeps a
``.amcprune-manifest`` like a run directory, so ``force`` deletes only files amcprune wrote.

Stages run in the order of :data:`STAGES`. A stage that finished is skipped on a rerun; the stage that was
running when the trial was killed is resumed with its own ``resume`` (train, prune) or simply redone (the
others are short and write their files atomically).
"""

from __future__ import annotations

import json
import math
import os
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import h5py
import torch

from amcprune.cost import model_cost
from amcprune.data.radioml import RadioMLFile
from amcprune.data.synth import GENERATOR_VERSION, write_synthetic
from amcprune.errors import AmcpruneError
from amcprune.export import export_qonnx, verify_export
from amcprune.models import load_model, validate_spec
from amcprune.outputs import (
    CONFIG_FILE,
    COST_DENSE_FILE,
    COST_FINAL_FILE,
    EVAL_DENSE_DIR,
    EVAL_FILE,
    EVAL_FINAL_DIR,
    FINAL_CHECKPOINT,
    FINAL_ONNX,
    REPORT_HTML,
    SUMMARY_FILE,
    TRIAL_DATA_DIR,
    TRIAL_ERROR_FILE,
    TRIAL_FILE,
    TRIAL_FILES,
    TRIAL_LOG_FILE,
    TRIAL_PRUNE_DIR,
    TRIAL_TRAIN_DIR,
    VERIFY_FILE,
    CostFile,
    EvalFile,
    PruneSummary,
    TrialState,
    check,
    load_json,
)
from amcprune.pipeline.config import TrialConfig
from amcprune.pipeline.measure import QonnxMeasurer
from amcprune.prune.engine import prune_run
from amcprune.report import write_report
from amcprune.train.data import load_data
from amcprune.train.evaluate import evaluate_model, write_eval
from amcprune.train.run import train_run
from amcprune.utils.atomic import write_json_atomic, write_text_atomic
from amcprune.utils.rundir import MANIFEST_NAME, _clear_recorded, lock_run_dir

# The trial's names under the names the sweep imports them by.
ERROR_FILE = TRIAL_ERROR_FILE
LOG_FILE = TRIAL_LOG_FILE
TRAIN_DIR = TRIAL_TRAIN_DIR
PRUNE_DIR = TRIAL_PRUNE_DIR
STAGES = ("data", "train", "prune", "eval_dense", "cost_dense", "export", "cost_final", "eval_final", "report")


def read_trial(trial_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The trial's ``trial.json`` (None when absent or unreadable)."""
    path = Path(trial_dir) / TRIAL_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def write_failed(trial_dir: str | os.PathLike, error: str, *, name: str | None = None, params: dict | None = None,
                 config: dict | None = None) -> dict[str, Any]:
    """Record a trial that could not even start (e.g. an invalid config in a sweep grid)."""
    trial_dir = Path(trial_dir)
    state = read_trial(trial_dir) or {}
    state.update({"name": name or trial_dir.name, "status": "failed", "error": error, "params": params or {},
                  "config": config if config is not None else state.get("config"),
                  "stages": state.get("stages") or {}, "result": state.get("result")})
    write_json_atomic(trial_dir / TRIAL_FILE, state)
    return state


class _Trial:
    def __init__(self, config: TrialConfig, out: Path, quiet: bool, params: dict[str, Any] | None,
                 say: Callable[[str], None] | None):
        self.config = config
        self.out = out
        self.quiet = quiet
        self.train_dir = out / TRAIN_DIR
        self.prune_dir = out / PRUNE_DIR
        self._data = None
        self._say = say
        self.state: dict[str, Any] = {}
        self.params = params or {}

    # --- bookkeeping ------------------------------------------------------------------------------
    def say(self, text: str) -> None:
        if self._say is not None:
            self._say(text)
        elif not self.quiet:
            print(text, flush=True)

    def save(self) -> None:
        check(TrialState, self.state, self.out / TRIAL_FILE)  # what readers of trial.json rely on
        write_json_atomic(self.out / TRIAL_FILE, self.state)

    def stage_status(self, stage: str) -> str | None:
        return (self.state["stages"].get(stage) or {}).get("status")

    # --- data ------------------------------------------------------------------------------------
    @property
    def data_path(self) -> Path:
        return Path(self.state["data_path"])

    def resolve_data_path(self) -> Path:
        d = self.config.data
        if d.path is not None:
            return Path(d.path).expanduser().resolve()
        return (self.out / TRIAL_DATA_DIR / f"synth-{d.synth}.h5").resolve()

    def data(self):
        """The train / val / test splits in memory, loaded once for the prune and evaluation stages."""
        if self._data is None:
            spec = self.dense_spec()
            self._data = load_data(self.data_path, spec, self.config.train_config(), quiet=self.quiet)
        return self._data

    def dense_spec(self):
        return validate_spec(self.state["model"], "trial model spec")

    # --- stages ----------------------------------------------------------------------------------
    def stage_data(self) -> None:
        d = self.config.data
        path = self.resolve_data_path()
        if d.synth is not None:
            ensure_synthetic(d.synth_config(), path, workers=d.synth_workers, quiet=self.quiet, say=self.say)
        elif not path.is_file():
            raise AmcpruneError(f"{path}: no such data file")
        info = RadioMLFile(path)
        self.state["data_path"] = str(path)
        self.state["model"] = self.config.model_spec(num_classes=info.n_classes).model_dump(mode="json")

    def stage_train(self, resume: bool) -> None:
        resume = resume and (self.train_dir / CONFIG_FILE).is_file()
        # A fresh start over an earlier attempt: force deletes only the files that attempt's manifest lists.
        train_run(self.config.train_config(), self.dense_spec(), self.data_path, self.train_dir,
                  resume=resume, quiet=self.quiet, force=not resume)

    def stage_prune(self, resume: bool) -> None:
        resume = resume and (self.prune_dir / CONFIG_FILE).is_file()
        prune_run(
            None if resume else self.config.prune_config(), None if resume else self.train_dir, self.data_path,
            self.prune_dir, data=self.data(), measurer=QonnxMeasurer(), resume=resume, quiet=self.quiet,
            force=not resume,
        )

    def _evaluate(self, source: Path, out_dir: Path) -> dict[str, Any]:
        model, _, _ = load_model(source)
        model.to(self.data().device)
        tc = self.config.train_config()
        result = evaluate_model(model, self.data(), split="test", batch_size=tc.eval_batch_for(self.data().device),
                                fast=tc.fast_eval)
        write_eval(result, out_dir, plots=self.config.eval_plots)
        return {"accuracy": result.accuracy, "n": result.n}

    def stage_eval_dense(self) -> dict[str, Any]:
        return self._evaluate(self.train_dir, self.prune_dir / EVAL_DENSE_DIR)

    def stage_eval_final(self) -> dict[str, Any]:
        return self._evaluate(self.prune_dir / FINAL_CHECKPOINT, self.prune_dir / EVAL_FINAL_DIR)

    def stage_cost_dense(self) -> dict[str, Any]:
        model, _, _ = load_model(self.train_dir)
        cost = model_cost(model).to_dict()
        write_json_atomic(self.prune_dir / COST_DENSE_FILE, cost)
        return {k: cost.get(k) for k in ("bops", "weight_bits", "score")}

    def stage_export(self) -> dict[str, Any]:
        model, _, _ = load_model(self.prune_dir / FINAL_CHECKPOINT)
        onnx_path = self.prune_dir / FINAL_ONNX
        if not onnx_path.is_file():  # the prune run exports it unless its config says export: false
            export_qonnx(model, onnx_path)
        out: dict[str, Any] = {"onnx": FINAL_ONNX, "verified": False}
        n = self.config.verify_frames
        if n > 0:
            data = self.data()
            xb, _, _ = next(iter(data.batches("test", n)), (None, None, None))
            if xb is None:
                raise AmcpruneError("no test frames to verify the export with")
            frames = xb.detach().to("cpu", torch.float32)
            model.to("cpu")
            result = verify_export(model, onnx_path, frames, fmt="qonnx")
            write_json_atomic(self.prune_dir / VERIFY_FILE, result.to_dict())
            out.update(verified=True, **{k: result.to_dict()[k] for k in ("max_abs_diff", "argmax_agreement", "n")})
        return out

    def stage_cost_final(self) -> dict[str, Any]:
        cost = model_cost(self.prune_dir / FINAL_ONNX).to_dict()
        write_json_atomic(self.prune_dir / COST_FINAL_FILE, cost)
        return {k: cost.get(k) for k in ("bops", "weight_bits", "score")}

    def stage_report(self) -> dict[str, Any]:
        html, md = write_report(self.prune_dir, out_dir=self.out)
        return {"html": html.name, "md": md.name}

    # --- the run ---------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        t_start = time.perf_counter()
        for stage in STAGES:
            status = self.stage_status(stage)
            if status == "done":
                continue
            resume = status in ("running", "failed", "interrupted")
            entry = {"status": "running", "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                     "wall_s": (self.state["stages"].get(stage) or {}).get("wall_s", 0.0)}
            self.state["stages"][stage] = entry
            self.state["status"] = "running"
            self.state["stage"] = stage
            self.save()
            self.say(f"[{self.state['name']}] {stage}{' (resumed)' if resume and stage in ('train', 'prune') else ''}")
            t0 = time.perf_counter()
            try:
                if stage == "train":
                    info = self.stage_train(resume)
                elif stage == "prune":
                    info = self.stage_prune(resume)
                else:
                    info = getattr(self, f"stage_{stage}")()
            finally:
                entry["wall_s"] = round(entry["wall_s"] + time.perf_counter() - t0, 3)
            entry.update(status="done", finished=time.strftime("%Y-%m-%dT%H:%M:%S"))
            if info:
                entry["info"] = info
            self.save()
        self.state["result"] = collect_result(self.out, self.state)
        self.state["status"] = "done"
        self.state["stage"] = None
        self.state["error"] = None
        self.state["wall_s"] = round(sum((s or {}).get("wall_s", 0.0) for s in self.state["stages"].values()), 3)
        self.state["last_run_s"] = round(time.perf_counter() - t_start, 3)
        self.save()
        with_error = self.out / ERROR_FILE
        if with_error.exists():
            with_error.unlink()
        return self.state["result"]


def run_trial(
    config: TrialConfig | dict[str, Any],
    out_dir: str | os.PathLike,
    quiet: bool = False,
    *,
    force: bool = False,
    params: dict[str, Any] | None = None,
    say: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run (or continue) the trial ``config`` in ``out_dir``; return its result row (see :func:`collect_result`).

    A directory holding a trial with another config is refused unless ``force``, which first deletes the files
    amcprune wrote there (the manifests of the trial and of its train and prune runs), nothing else. The trial
    directory is locked for the life of the process, like a run directory. On failure the status, the error
    and ``error.txt`` (traceback) are recorded before the exception propagates.
    """
    if not isinstance(config, TrialConfig):
        config = TrialConfig.from_dict(config)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise AmcpruneError(f"{out}: exists and is not a directory")
    stored = read_trial(out)
    config_json = config.model_dump(mode="json")
    if stored is not None and stored.get("config") != config_json:
        if not force:
            raise AmcpruneError(
                f"{out}: holds a trial with a different config; use another output directory (or --force to start over)"
            )
        stored = None
    if not force and stored is None and out.is_dir():
        entries = {p.name for p in out.iterdir() if not p.name.startswith(".")}
        if entries and not entries <= set(TRIAL_FILES):
            raise AmcpruneError(f"{out}: exists and is not a trial directory; use another output directory")
    out.mkdir(parents=True, exist_ok=True)
    lock_run_dir(out)  # every file the trial writes from here on is recorded in its manifest
    if force:
        clear_trial(out)
        stored = None  # start over even with the same config: the files of the finished stages are gone

    trial = _Trial(config, out, quiet, params, say)
    if stored is not None:
        trial.state = stored
        trial.state.setdefault("stages", {})
        if params:
            trial.state["params"] = params
    else:
        trial.state = {"name": config.name or out.name, "status": "pending", "params": params or {},
                       "label": config.label(), "config": config_json, "stages": {}, "result": None, "error": None}
    if trial.state.get("status") == "done" and all(trial.stage_status(s) == "done" for s in STAGES):
        return trial.state["result"] or collect_result(out, trial.state)
    try:
        return trial.run()
    except BaseException as exc:
        interrupted = isinstance(exc, (KeyboardInterrupt, SystemExit))
        stage = trial.state.get("stage")
        if stage and stage in trial.state["stages"]:
            trial.state["stages"][stage]["status"] = "interrupted" if interrupted else "failed"
        trial.state["status"] = "interrupted" if interrupted else "failed"
        trial.state["error"] = error_line(exc)
        try:
            trial.save()
            write_text_atomic(out / ERROR_FILE, "".join(traceback.format_exception(exc)))
        except OSError:
            pass
        raise


def clear_trial(trial_dir: str | os.PathLike) -> None:
    """Delete the files amcprune wrote in a trial directory: those its train and prune runs' manifests list,
    then those of the trial's own manifest. A file a user put there, even under a name a trial uses, stays."""
    trial_dir = Path(trial_dir)
    for sub in (trial_dir / TRIAL_TRAIN_DIR, trial_dir / TRIAL_PRUNE_DIR, trial_dir):
        if (sub / MANIFEST_NAME).is_file():
            lock_run_dir(sub)  # refused while another process runs there
            # rundir's own --force clearing: the manifest's files only, then the directories left empty.
            _clear_recorded(sub, "trial")


def error_line(exc: BaseException) -> str:
    """One line describing ``exc`` (an ``AmcpruneError`` reads as its message)."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, AmcpruneError):
        return text or "error"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ------------------------------------------------------------------------------------------------------
# synthetic data
# ------------------------------------------------------------------------------------------------------
def synthetic_matches(path: Path, config) -> bool:
    """Whether ``path`` is a synthetic file written with ``config`` (same config and generator version)."""
    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as f:
            stored = f.attrs.get("amcprune_synth_config")
            version = f.attrs.get("generator_version")
        if isinstance(stored, bytes):
            stored = stored.decode()
        if isinstance(version, bytes):
            version = version.decode()
        return stored is not None and json.loads(stored) == json.loads(config.to_json()) and version == GENERATOR_VERSION
    except Exception:  # an unreadable or foreign file does not match; ensure_synthetic decides what to do with it
        return False


def written_by_amcprune(path: Path) -> bool:
    """Whether ``path`` is a file amcprune wrote: a synthetic file (its generator's attribute), or one listed in
    the manifest of a run or trial directory above it (a file amcprune wrote there, even a damaged one)."""
    path = Path(path).resolve()
    for parent in path.parents:
        manifest = parent / MANIFEST_NAME
        if manifest.is_file():
            try:
                listed = {line.strip() for line in manifest.read_text(errors="replace").splitlines()}
            except OSError:
                listed = set()
            if path.relative_to(parent).as_posix() in listed:
                return True
    try:
        with h5py.File(path, "r") as f:
            return "amcprune_synth_config" in f.attrs
    except (OSError, ValueError):  # not HDF5 at all
        return False


def ensure_synthetic(config, path: str | os.PathLike, workers: int = 1, quiet: bool = False,
                     say: Callable[[str], None] | None = None) -> Path:
    """Generate the synthetic file at ``path`` unless it already holds exactly ``config``.

    An existing file is replaced only when amcprune wrote it (an older or other synthetic config); anything
    else at ``path`` (a user's recording) is refused with an error, never overwritten.
    """
    path = Path(path)
    if synthetic_matches(path, config):
        return path
    if path.exists() and not (path.is_file() and written_by_amcprune(path)):
        raise AmcpruneError(
            f"{path}: exists and is not a synthetic data file amcprune wrote; refusing to replace it "
            "(move it away, or give it as data.path to train on it)"
        )
    if say is not None:
        say(f"generating {config.n_frames} synthetic frames into {path}")
    t0 = time.perf_counter()
    write_synthetic(config, path, workers=workers, quiet=quiet, overwrite=True)
    if say is not None:
        say(f"  done in {time.perf_counter() - t0:.1f} s")
    return path


# ------------------------------------------------------------------------------------------------------
# the result row
# ------------------------------------------------------------------------------------------------------
def _finite(x: Any) -> float | None:
    if x is None or isinstance(x, bool):
        return None
    v = float(x)
    return v if math.isfinite(v) else None


def collect_result(trial_dir: str | os.PathLike, state: dict[str, Any] | None = None) -> dict[str, Any]:
    """The trial's headline numbers from the files in its directory (missing ones are None).

    ``compression`` is measured: dense weights over non-zero quantized weights of the final model (from the
    prune run's stats, else from the two cost files); ``accuracy`` is the judged (criterion) accuracy of the
    final model, ``test_accuracy`` its test accuracy (eval_final, else the prune summary).
    """
    trial_dir = Path(trial_dir)
    state = state if state is not None else (read_trial(trial_dir) or {})
    prune = trial_dir / TRIAL_PRUNE_DIR
    # A missing or mismatching file leaves its numbers None; the report names the problem.
    summary = load_json(prune / SUMMARY_FILE, PruneSummary)[0]
    cost_dense = load_json(prune / COST_DENSE_FILE, CostFile)[0]
    cost_final = load_json(prune / COST_FINAL_FILE, CostFile)[0]
    eval_dense = load_json(prune / EVAL_DENSE_DIR / EVAL_FILE, EvalFile)[0]
    eval_final = load_json(prune / EVAL_FINAL_DIR / EVAL_FILE, EvalFile)[0]
    final = summary.final if summary is not None else None
    stats = final.stats if final is not None else None
    dense_weights = summary.dense_weights if summary is not None else (cost_dense.weights if cost_dense else None)
    nonzero = cost_final.nonzero_weights if cost_final is not None else (stats.nonzero_weights if stats else None)
    compression = _finite(stats.compression) if stats is not None else None
    if compression is None and dense_weights and nonzero:
        compression = dense_weights / nonzero
    sparsity = (1.0 - nonzero / dense_weights if dense_weights and nonzero is not None
                else (_finite(stats.sparsity) if stats is not None else None))
    test_acc = eval_final.accuracy if eval_final is not None else (final.test_acc if final is not None else None)
    dense_test = (eval_dense.accuracy if eval_dense is not None
                  else (summary.dense_test_acc if summary is not None else None))
    label = state.get("label") or {}
    report = trial_dir / REPORT_HTML
    return {
        **label,
        "judge_on": summary.judge_on if summary is not None else None,
        "threshold": _finite(summary.threshold) if summary is not None else None,
        "met": summary.met if summary is not None else None,
        "dense_accuracy": _finite(summary.dense_acc) if summary is not None else None,
        "dense_test_accuracy": _finite(dense_test),
        "dense_score": _finite(cost_dense.score) if cost_dense is not None else None,
        "accuracy": _finite(final.criterion_acc) if final is not None else None,
        "test_accuracy": _finite(test_acc),
        "weights": _finite(dense_weights),
        "nonzero_weights": _finite(nonzero),
        "sparsity": _finite(sparsity),
        "compression": _finite(compression),
        "compression_formula": _finite(stats.compression_formula) if stats is not None else None,
        "bops": _finite(cost_final.bops) if cost_final is not None else None,
        "weight_bits": _finite(cost_final.weight_bits) if cost_final is not None else None,
        "score": _finite(cost_final.score) if cost_final is not None else None,
        "epochs_prune": summary.epochs_total if summary is not None else None,
        "report": str(report) if report.is_file() else None,
    }
