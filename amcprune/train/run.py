"""``train_run``: the ``amcprune train`` job, resumable epoch by epoch.

Run directory::

    RUN/config.yaml          model spec, train config, data path and fingerprint, init_from
    RUN/metrics.jsonl        one JSON record per finished epoch (see ``_record``)
    RUN/checkpoints/last.pt  after every epoch: model, masks, trainer state (optimizer, scheduler, RNG, epoch),
                             data fingerprint, all metric records so far, early-stopping state
    RUN/checkpoints/best.pt  the same, for the epoch with the best val accuracy (train accuracy without a
                             val split); written before last.pt
    RUN/summary.json         written at the end: epochs, best epoch, test accuracy of best.pt

Crash safety: checkpoints are written atomically and metrics.jsonl is appended only after last.pt is on
disk. ``resume=True`` loads last.pt and rewrites metrics.jsonl from the records stored in it, so a run killed
at any moment loses at most the epoch in progress and never duplicates or loses a row. On CPU the resumed
run is bit-identical to an uninterrupted one (same batches, same RNG states).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from tqdm.auto import tqdm

from amcprune.data import radioml
from amcprune.errors import AmcpruneError
from amcprune.models import ModelSpec, build_model, load_challenge_state_dict, validate_spec
from amcprune.outputs import (
    BEST_CHECKPOINT,
    CONFIG_FILE,
    LAST_CHECKPOINT,
    METRICS_FILE,
    SUMMARY_FILE,
    TRAIN_RUN_FILES,
)
from amcprune.train.config import TrainConfig, resolve_device
from amcprune.train.data import InMemoryData
from amcprune.train.evaluate import evaluate_model
from amcprune.train.trainer import Trainer
from amcprune.utils.atomic import append_jsonl, read_jsonl, write_json_atomic, write_text_atomic
from amcprune.utils.rundir import prepare_run_dir
from amcprune.utils.checkpoint import (
    is_amcprune_checkpoint,
    load_checkpoint,
    load_model_state,
    model_state,
    save_checkpoint,
)

RUN_FILES = TRAIN_RUN_FILES
# Train options that may differ when resuming (they do not change what is computed, or extend it).
RESUME_MAY_CHANGE = {"epochs", "patience", "quiet", "device", "threads", "eval_batch_size", "eval_test_each_epoch", "fast_eval"}


def _spec_dict(spec: Any) -> dict[str, Any]:
    return spec.model_dump(mode="json") if hasattr(spec, "model_dump") else dict(spec)


def _validate_spec(data: Any, source: str):
    return validate_spec(data, source)


def _load_init(model: torch.nn.Module, spec: Any, path: str | os.PathLike) -> torch.nn.Module:
    """Initialise ``model`` from an amcprune checkpoint or a 2021 challenge VGG10 state dict."""
    obj = load_checkpoint(path)
    if is_amcprune_checkpoint(obj):
        try:
            load_model_state(model, obj["model"], obj.get("masks"))
        except AmcpruneError as exc:
            raise AmcpruneError(f"{path}: {exc}") from None
        return model
    return load_challenge_state_dict(path, spec)


def _line(rec: dict[str, Any], epochs: int) -> str:
    parts = [f"epoch {rec['epoch']}/{epochs}", f"loss {rec['train_loss']:.4f}", f"acc {rec['train_acc']:.4f}"]
    if rec.get("val_acc") is not None:
        parts.append(f"val {rec['val_acc']:.4f}")
    if rec.get("test_acc") is not None:
        parts.append(f"test {rec['test_acc']:.4f}")
    parts += [f"lr {rec['lr']:.3g}", f"{rec['samples_per_s']:.0f} samples/s", f"{rec['seconds']:.1f} s"]
    return "  ".join(parts)


def train_run(
    config: TrainConfig | None,
    spec: Any | None,
    data_path: str | os.PathLike | None,
    run_dir: str | os.PathLike,
    resume: bool = False,
    quiet: bool = False,
    init_from: str | os.PathLike | None = None,
    *,
    force: bool = False,
    chunk_frames: int = 65536,
) -> dict[str, Any]:
    """Train ``spec`` on ``data_path`` into ``run_dir``; returns the summary dict (also ``summary.json``).

    With ``resume=True`` the ``config``, ``spec`` and ``data_path`` stored in ``run_dir/config.yaml`` are used;
    arguments given anyway must agree with them (only ``RESUME_MAY_CHANGE`` train options may differ), and the
    data file must have the stored fingerprint.
    """
    run_dir = Path(run_dir)
    if config is not None and config.epochs < 1:
        # zero epochs would leave a run directory without a checkpoint that nothing downstream can read
        raise AmcpruneError(f"epochs must be at least 1, got {config.epochs}")
    prepare_run_dir(run_dir, RUN_FILES, resume=resume, force=force, kind="train run")

    if resume:
        stored = yaml.safe_load((run_dir / CONFIG_FILE).read_text()) or {}
        stored_spec = _validate_spec(stored.get("model"), f"{run_dir}/config.yaml")
        stored_cfg = TrainConfig.from_dict(stored.get("train"))
        if spec is not None and _spec_dict(_validate_spec(_spec_dict(spec), "model spec")) != _spec_dict(stored_spec):
            raise AmcpruneError(f"{run_dir}: the model spec differs from the one the run was started with")
        if config is not None:
            old, new = stored_cfg.model_dump(), config.model_dump()
            diff = sorted(k for k in old if old[k] != new[k] and k not in RESUME_MAY_CHANGE)
            if diff:
                raise AmcpruneError(f"{run_dir}: cannot resume with different train options: {', '.join(diff)}")
        else:
            config = stored_cfg
        spec = stored_spec
        stored_data = stored.get("data", {})
        data_path = Path(data_path) if data_path is not None else Path(stored_data.get("path", ""))
        init_from = stored.get("init_from")
        fingerprint = radioml.data_fingerprint(data_path)
        if stored_data.get("fingerprint") and stored_data["fingerprint"] != fingerprint:
            raise AmcpruneError(
                f"{data_path}: data fingerprint {fingerprint[:12]} differs from the run's "
                f"{stored_data['fingerprint'][:12]}: resume with the file the run was started on"
            )
    else:
        if config is None:
            config = TrainConfig()
        if spec is None:
            spec = ModelSpec(arch="vgg10")
        spec = _validate_spec(_spec_dict(spec), "model spec")
        if data_path is None:
            raise AmcpruneError("no data file given (--data)")
        data_path = Path(data_path)
        fingerprint = radioml.data_fingerprint(data_path)
        header = {
            "model": spec.model_dump(mode="json"),
            "train": config.model_dump(mode="json"),
            "data": {"path": str(data_path.resolve()), "fingerprint": fingerprint},
            "init_from": str(Path(init_from).resolve()) if init_from is not None else None,
        }
        write_text_atomic(run_dir / CONFIG_FILE, yaml.safe_dump(header, sort_keys=False))

    quiet = quiet or config.quiet
    device = resolve_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)

    splits = radioml.load_splits(
        data_path, val_fraction=config.val_fraction, val_seed=config.seed,
        snr_min=config.train_snr_min, snr_max=config.train_snr_max,
    )
    if splits.n_classes != spec.num_classes:
        raise AmcpruneError(f"{data_path}: the file has {splits.n_classes} classes but the model {spec.num_classes}")
    data = InMemoryData.from_file(data_path, splits, spec=spec, device=device, quiet=quiet,
                                  chunk_frames=chunk_frames, class_names=list(splits.class_names))

    torch.manual_seed(config.seed)
    model = build_model(spec)
    last_ckpt = None
    if resume and (run_dir / LAST_CHECKPOINT).is_file():
        last_ckpt = load_checkpoint(run_dir / LAST_CHECKPOINT)
        if last_ckpt.get("data_fingerprint") not in (None, fingerprint):
            raise AmcpruneError(f"{run_dir / LAST_CHECKPOINT}: trained on other data (fingerprint differs)")
        if last_ckpt.get("spec") != spec.model_dump(mode="json"):
            raise AmcpruneError(f"{run_dir / LAST_CHECKPOINT}: model spec differs from the run's config.yaml")
        try:
            load_model_state(model, last_ckpt["model"], last_ckpt.get("masks"))
        except AmcpruneError as exc:
            raise AmcpruneError(f"{run_dir / LAST_CHECKPOINT}: {exc}") from None
    elif init_from is not None:
        model = _load_init(model, spec, init_from)

    trainer = Trainer(model, config, data, device=device, quiet=quiet)
    metrics: list[dict[str, Any]] = []
    best = {"epoch": None, "score": None, "metric": "val_acc" if data.size("val") else "train_acc", "bad_epochs": 0}
    finished = False
    if last_ckpt is not None:
        trainer.load_state_dict(last_ckpt["trainer"])
        metrics = list(last_ckpt.get("metrics", []))
        best = dict(last_ckpt.get("best", best))
        finished = bool(last_ckpt.get("finished", False))
        if finished and trainer.epoch < config.epochs and not best.get("early_stopped"):
            finished = False  # the run is extended with more epochs
    # metrics.jsonl mirrors the records of last.pt exactly (drops a row of an epoch whose checkpoint was lost).
    write_text_atomic(run_dir / METRICS_FILE, "".join(json.dumps(r, sort_keys=True) + "\n" for r in metrics))

    def emit(text: str) -> None:
        if quiet:
            print(text, flush=True)
        else:
            tqdm.write(text)

    if not quiet:
        emit(
            f"training {spec.arch} ({'quantized' if spec.quantized else 'float'}) on {device}: "
            f"{data.size('train')} train / {data.size('val')} val / {data.size('test')} test frames, "
            f"{'int8' if data.int8 else 'float32'} storage {data.nbytes() / 2**20:.1f} MiB"
        )

    def payload() -> dict[str, Any]:
        return {
            "kind": "train",
            "spec": spec.model_dump(mode="json"),
            **model_state(trainer.model),
            "trainer": trainer.state_dict(),
            "train_config": config.model_dump(mode="json"),
            "epoch": trainer.epoch,
            "data_fingerprint": fingerprint,
            "data_path": str(Path(data_path).resolve()),
            "metrics": metrics,
            "best": best,
            "finished": finished,
        }

    while not finished and trainer.epoch < config.epochs:
        t0 = time.perf_counter()
        tr = trainer.train_epoch(desc=f"epoch {trainer.epoch + 1}/{config.epochs}")
        rec: dict[str, Any] = {
            "epoch": tr["epoch"],
            "train_loss": tr["loss"],
            "train_acc": tr["acc"],
            "lr": tr["lr"],
            "samples_per_s": tr["samples_per_s"],
            "train_seconds": tr["seconds"],
        }
        if data.size("val"):
            if "val_acc" in tr:
                rec["val_acc"], rec["val_loss"] = tr["val_acc"], tr["val_loss"]
            else:
                val = trainer.evaluate("val")
                rec["val_acc"], rec["val_loss"] = val.accuracy, val.loss
        if config.eval_test_each_epoch and data.size("test"):
            test = trainer.evaluate("test")
            rec["test_acc"], rec["test_loss"] = test.accuracy, test.loss
        rec["seconds"] = time.perf_counter() - t0
        metrics.append(rec)

        score = rec["val_acc"] if best["metric"] == "val_acc" else rec["train_acc"]
        improved = best["score"] is None or score > best["score"]
        if improved:
            best.update(epoch=rec["epoch"], score=score, bad_epochs=0)
        else:
            best["bad_epochs"] = int(best.get("bad_epochs", 0)) + 1
        if config.patience is not None and best["bad_epochs"] >= config.patience and trainer.epoch < config.epochs:
            best["early_stopped"] = True
            finished = True
        if trainer.epoch >= config.epochs:
            finished = True
        state = payload()
        if improved:
            save_checkpoint(run_dir / BEST_CHECKPOINT, state)
        save_checkpoint(run_dir / LAST_CHECKPOINT, state)
        append_jsonl(run_dir / METRICS_FILE, rec)
        emit(_line(rec, config.epochs))
        if best.get("early_stopped"):
            emit(f"early stop: no better {best['metric']} for {best['bad_epochs']} epochs (best epoch {best['epoch']})")

    summary = _summary(run_dir, data, spec, metrics, best, config, quiet)
    write_json_atomic(run_dir / SUMMARY_FILE, summary)
    return summary


def _summary(run_dir: Path, data: InMemoryData, spec: Any, metrics, best, config, quiet) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "run_dir": str(run_dir),
        "epochs": len(metrics),
        "best_epoch": best.get("epoch"),
        "best_metric": best.get("metric"),
        "best_score": best.get("score"),
        "early_stopped": bool(best.get("early_stopped", False)),
        "last": metrics[-1] if metrics else None,
        "test_acc": None,
    }
    best_path = run_dir / BEST_CHECKPOINT
    if best_path.is_file() and data.size("test"):
        ckpt = load_checkpoint(best_path)
        model = build_model(spec)
        load_model_state(model, ckpt["model"], ckpt.get("masks"))
        model.to(data.device)
        res = evaluate_model(model, data, split="test", batch_size=config.eval_batch_for(data.device), fast=config.fast_eval)
        summary["test_acc"] = res.accuracy
        summary["test_loss"] = res.loss
        summary["test_acc_per_snr"] = {str(k): v for k, v in res.acc_per_snr.items()}
        msg = f"best epoch {best.get('epoch')}: test accuracy {res.accuracy:.4f} on {res.n} frames"
        print(msg, flush=True) if quiet else tqdm.write(msg)
    return summary


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    return read_jsonl(Path(run_dir) / METRICS_FILE)
