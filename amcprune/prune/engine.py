"""The prune run: carries out the schedules of :mod:`amcprune.prune.schedule` on a model, resumably.

Run directory::

    OUT/config.yaml          prune config, train config, source checkpoint, data file (path, fingerprint), start spec
    OUT/state.pt             resume point, written atomically after every epoch (model + masks + spec, trainer
                             state: optimizer, scheduler, RNG; schedule state; number of records written)
    OUT/records.jsonl        one record per iteration end, rewind and stage end (appended with fsync)
    OUT/records.csv          the same as a table (rewritten atomically)
    OUT/epochs.jsonl         one line per training epoch (judged accuracy, loss, lr)
    OUT/iterations/*.pt      the models that met the criterion (rewind points) and each stage's start model
    OUT/final.pt             the last model that met the criterion (amcprune checkpoint)
    OUT/final.onnx           its QONNX export (scored with the cost module)
    OUT/summary.json         written at the end

A run killed at any moment resumes (``resume=True``) from the last finished epoch with the same p, iteration
and rewind point; records written after that state are dropped and written again, so ``records.jsonl`` has no
duplicated or missing rows.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any, Callable

import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from tqdm.auto import tqdm

from amcprune.errors import AmcpruneError
from amcprune.prune.config import PruneConfig
from amcprune.prune.criteria import check_selection, mask_summary, prune_model
from amcprune.prune.records import (RecordLog, criterion_noise, layer_widths, standard_error, truncate_jsonl,
                                    weight_counts)
from amcprune.prune.schedule import PRUNE, REWIND, STOP, TRAIN, Decision, ScheduleState, StageSettings, decide, formula_ratio, initial_state
from amcprune.prune.shrink import shrink_with_spec, swap_children
from amcprune.utils.atomic import append_jsonl, write_json_atomic, write_text_atomic
from amcprune.utils.rundir import prepare_run_dir
from amcprune.utils.checkpoint import load_checkpoint, load_model_state, model_state, save_checkpoint

STATE_KIND = "prune-state"
RUN_FILES = ("config.yaml", "state.pt", "records.jsonl", "records.csv", "epochs.jsonl", "iterations", "work",
             "final.pt", "final.onnx", "summary.json")


class SavedModel(BaseModel):
    """A model kept on disk (rewind point, stage start, final) with what was measured on it."""

    model_config = ConfigDict(extra="forbid")

    path: str  # relative to the run directory
    ps: list[float] = Field(default_factory=list)
    criterion_acc: float | None = None
    test_acc: float | None = None
    stats: dict[str, Any] = Field(default_factory=dict)
    stage: int = 0
    iteration: int = 0


class RunState(BaseModel):
    """Everything besides the model and the trainer that a resumed run needs (stored in ``state.pt``)."""

    model_config = ConfigDict(extra="forbid")

    stage: int = 0
    phase: str = "start"  # "start" (judge the stage's starting model), "train", "done"
    schedule: ScheduleState | None = None
    dense_acc: float | None = None
    dense_test_acc: float | None = None
    threshold: float | None = None
    dense_weights: int = 0
    ps: list[float] = Field(default_factory=list)  # rates applied to the current model's lineage
    rewind: SavedModel | None = None  # last model of this stage that met the criterion
    last_met: SavedModel | None = None  # last model of the run that met the criterion
    stage_start: SavedModel | None = None
    best_path: str | None = None  # imp-converge: the round's best epoch
    epochs_total: int = 0
    elapsed_s: float = 0.0
    stage_results: list[dict[str, Any]] = Field(default_factory=list)
    start_acc_pending: float | None = None  # the dense accuracy doubles as stage 0's first judgment
    noise: dict[str, Any] | None = None  # criterion_noise() of the dense judgment


# ---------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------
def _param_names(model: nn.Module, params: list[torch.Tensor]) -> list[str]:
    by_id = {id(p): name for name, p in model.named_parameters()}
    try:
        return [by_id[id(p)] for p in params]
    except KeyError:
        raise AmcpruneError("the optimizer holds parameters that are not the model's (stale optimizer)") from None


def optimizer_param_names(trainer: Any) -> list[list[str]]:
    return [_param_names(trainer.model, list(g["params"])) for g in trainer.optimizer.param_groups]


def remap_optimizer_state(opt_state: dict[str, Any], saved_names: list[list[str]], current: list[list[str]]) -> dict[str, Any]:
    """Re-key an optimizer state dict saved with parameters in ``saved_names`` order for an optimizer whose
    parameters come in ``current`` order (pruning re-registers ``weight`` as ``weight_orig``, which changes the
    order of ``model.parameters()`` between a live model and one rebuilt from a checkpoint)."""
    if len(saved_names) != len(current):
        raise AmcpruneError("optimizer state does not fit: different number of parameter groups")
    saved_index: dict[str, int] = {}
    i = 0
    for group in saved_names:
        for name in group:
            saved_index[name] = i
            i += 1
    new_state: dict[int, Any] = {}
    groups = []
    j = 0
    for g, names in enumerate(current):
        if sorted(names) != sorted(saved_names[g]):
            missing = sorted(set(saved_names[g]) ^ set(names))[:4]
            raise AmcpruneError(f"optimizer state does not fit the model (parameters differ: {', '.join(missing)})")
        group = dict(opt_state["param_groups"][g])
        ids = []
        for name in names:
            old = saved_index[name]
            if old in opt_state["state"]:
                new_state[j] = opt_state["state"][old]
            ids.append(j)
            j += 1
        group["params"] = ids
        groups.append(group)
    return {"state": new_state, "param_groups": groups}


def _rel(path: Path, root: Path) -> str:
    return str(path.relative_to(root))


def _fmt(x: float | None, digits: int = 4) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def noise_warning(noise: dict[str, Any], split: str) -> str:
    return (
        f"warning: the accuracy criterion lies {abs(noise['margin']) * 100:.2f} points from the dense model's {split} "
        f"accuracy, less than two standard errors of that accuracy ({noise['se'] * 100:.2f} points on "
        f"{noise['n']} frames): the run would decide on noise. Judge on more frames (--val-fraction) or allow a "
        "larger drop (--max-drop)."
    )


def resolve_source(path: str | os.PathLike) -> Path:
    try:
        from amcprune.models.loading import resolve_checkpoint_path
    except ImportError:  # pragma: no cover
        return Path(path)
    return resolve_checkpoint_path(path)


def train_config_for(source: str | os.PathLike, ckpt: dict[str, Any] | None = None):
    """The train config a model was trained with: its checkpoint's ``train_config``, else its run's
    ``config.yaml``, else the defaults."""
    from amcprune.train.config import TrainConfig

    if ckpt is not None and isinstance(ckpt.get("train_config"), dict):
        return TrainConfig.from_dict(ckpt["train_config"])
    source = Path(source)
    for cand in (source / "config.yaml", source.parent / "config.yaml", source.parent.parent / "config.yaml"):
        if cand.is_file():
            try:
                data = yaml.safe_load(cand.read_text()) or {}
            except yaml.YAMLError:
                continue
            if isinstance(data, dict) and isinstance(data.get("train"), dict):
                return TrainConfig.from_dict(data["train"])
    return TrainConfig()


def load_data(data_path: str | os.PathLike, spec: Any, train_config: Any, quiet: bool = False):
    """Train / val / test splits of ``data_path`` as an ``InMemoryData`` (val carved from train)."""
    from amcprune.data import radioml
    from amcprune.train.config import resolve_device
    from amcprune.train.data import InMemoryData

    splits = radioml.load_splits(
        data_path, val_fraction=train_config.val_fraction, val_seed=train_config.seed,
        snr_min=train_config.train_snr_min, snr_max=train_config.train_snr_max,
    )
    if splits.n_classes != spec.num_classes:
        raise AmcpruneError(f"{data_path}: the file has {splits.n_classes} classes but the model {spec.num_classes}")
    return InMemoryData.from_file(data_path, splits, spec=spec, device=resolve_device(train_config.device),
                                  quiet=quiet, class_names=list(splits.class_names))


# ---------------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------------
class PruneRun:
    """One prune run in ``out_dir``. Use :func:`prune_run`; tests may drive it directly."""

    def __init__(
        self,
        config: PruneConfig,
        train_config: Any,
        out_dir: str | os.PathLike,
        *,
        model: nn.Module,
        spec: Any,
        data: Any,
        quiet: bool = False,
        on_epoch: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        from amcprune.train.trainer import Trainer

        self.config = config
        self.train_config = train_config
        self.out = Path(out_dir)
        self.stages: list[StageSettings] = config.stages()
        self.spec = spec
        self.model = model
        self.data = data
        self.quiet = quiet
        self.on_epoch = on_epoch
        self.trainer = Trainer(model, train_config, data, quiet=quiet)
        self.device = self.trainer.device
        self.log = RecordLog(self.out)
        self.st = RunState()
        self._t0 = time.perf_counter()
        self._bar: Any = None
        self._epoch_lines = 0
        if any(st.criterion == "structured" for st in self.stages) and getattr(spec, "arch", None) != "vgg10":
            raise AmcpruneError(
                f"structured pruning (physical shrinking) supports the vgg10 architecture only, not {spec.arch!r}; "
                "use --criterion global or layer"
            )
        for stage in self.stages:  # fail before any training, not at the first prune
            check_selection(model, stage.criterion, config.exclude, config.layer_rates, spec)
        if config.judge_on == "val" and data.size("val") == 0:
            raise AmcpruneError(
                "judging on the validation split but it is empty: set a val fraction > 0 (--val-fraction) "
                "or judge on the test split (--judge-on test)"
            )

    # --- files ---------------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.out / "state.pt"

    def _wall(self) -> float:
        return self.st.elapsed_s + (time.perf_counter() - self._t0)

    def save_state(self) -> None:
        self.st.elapsed_s = self._wall()
        self._t0 = time.perf_counter()
        payload = {
            "kind": STATE_KIND,
            "spec": self.spec.model_dump(mode="json"),
            **model_state(self.model),
            "trainer": self.trainer.state_dict(),
            "optimizer_params": optimizer_param_names(self.trainer),
            "run": self.st.model_dump(mode="json"),
            "records": len(self.log),
            "epoch_lines": self._epoch_lines,
        }
        save_checkpoint(self.state_path, payload)

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a ``state.pt`` payload (the model must already hold its weights and masks)."""
        trainer_state = dict(state["trainer"])
        trainer_state["optimizer"] = remap_optimizer_state(
            trainer_state["optimizer"], state["optimizer_params"], optimizer_param_names(self.trainer)
        )
        self.trainer.load_state_dict(trainer_state)
        self.st = RunState.model_validate(state["run"])
        self.log.truncate(int(state["records"]))
        self._epoch_lines = int(state.get("epoch_lines", 0))
        truncate_jsonl(self.out / "epochs.jsonl", self._epoch_lines)

    def _save_model(self, rel: str, meta: dict[str, Any]) -> Path:
        path = self.out / rel
        save_checkpoint(path, {"kind": "prune-model", "spec": self.spec.model_dump(mode="json"),
                               **model_state(self.model), "prune": meta})
        return path

    def _load_model(self, rel: str) -> None:
        """Replace the model's weights by a saved model (rebuilt from its spec: new parameter tensors) and
        bind a fresh optimizer and scheduler to them."""
        from amcprune.models import build_model, validate_spec

        ckpt = load_checkpoint(self.out / rel)
        spec = validate_spec(ckpt["spec"], rel)
        if isinstance(self.model, nn.Sequential):
            with torch.random.fork_rng(devices=[]):
                fresh = build_model(spec)
            load_model_state(fresh, ckpt["model"], ckpt.get("masks") or None)
            fresh.to(self.device).train(self.model.training)
            swap_children(self.model, fresh)
        else:
            if spec.model_dump() != self.spec.model_dump():
                raise AmcpruneError(f"{rel}: cannot change the architecture of a {type(self.model).__name__} in place")
            from amcprune.prune.criteria import remove_masks

            remove_masks(self.model)
            load_model_state(self.model, ckpt["model"], ckpt.get("masks") or None)
        self.spec = spec
        # The parameters are new tensors: an optimizer bound to the old ones would train nothing (the
        # published FMP script's defect).
        self.trainer.reset_optimizer()

    # --- measuring -----------------------------------------------------------------------------
    def _judge(self) -> float:
        return float(self.trainer.evaluate(self.config.judge_on).accuracy)

    @property
    def judged_frames(self) -> int:
        return self.data.size(self.config.judge_on)  # every judgment evaluates the whole split

    def _noise(self, acc: float | None) -> dict[str, Any]:
        """The number of frames the criterion was judged on and the standard error of the judged accuracy
        (binomial: sqrt(acc (1 - acc) / n))."""
        n = self.judged_frames
        if acc is None or not n:
            return {"criterion_n": n or None, "criterion_se": None}
        return {"criterion_n": n, "criterion_se": standard_error(acc, n)}

    def _test_acc(self, judged: float | None = None) -> float | None:
        """Test accuracy of the current model (the judged value itself when judging on test)."""
        if self.config.judge_on == "test" and judged is not None:
            return judged
        if self.data.size("test") == 0:
            return None
        return float(self.trainer.evaluate("test").accuracy)

    def _measure(self) -> dict[str, Any]:
        counts = weight_counts(self.model)
        dense = self.st.dense_weights or counts["weights"]
        nz = counts["nonzero_weights"]
        stats: dict[str, Any] = {
            "weights": counts["weights"],
            "nonzero_weights": nz,
            "unmasked_weights": counts["unmasked_weights"],
            "sparsity": 1.0 - nz / dense if dense else 0.0,
            "compression": dense / nz if nz else float("inf"),
            "compression_formula": formula_ratio(self.st.ps),
            "widths": layer_widths(self.model),
            "bops": None,
            "weight_bits": None,
            "score": None,
        }
        if self.config.cost:
            try:
                from amcprune.cost import model_cost

                cost = model_cost(self.model)
                stats.update(bops=cost.bops, weight_bits=cost.weight_bits, score=cost.score)
                if cost.warnings:
                    stats["cost_warnings"] = list(cost.warnings)
            except Exception as exc:  # a failed score must not lose the run; it is recorded instead
                stats["cost_error"] = f"{type(exc).__name__}: {exc}"
        return stats

    def _record(self, event: str, *, met: bool, acc: float | None, test_acc: float | None, stats: dict[str, Any],
                **extra: Any) -> dict:
        stage = self.stages[self.st.stage]
        sched = self.st.schedule
        rec = {
            "event": event,
            "stage": self.st.stage,
            "method": stage.method,
            "criterion": stage.criterion,
            "iteration": sched.iteration if sched else 0,
            "p": sched.p if sched else stage.p,
            "epochs_total": self.st.epochs_total,
            "judge_on": self.config.judge_on,
            "criterion_acc": acc,
            "test_acc": test_acc,
            "threshold": self.st.threshold,
            "met": bool(met),
            **self._noise(acc),
            "ps": list(stats.get("ps", self.st.ps)),
            **{k: v for k, v in stats.items() if k != "ps"},
            **extra,
            "wall_s": round(self._wall(), 3),
        }
        rec = self.log.append(rec)
        self._say(
            f"[{rec['record']}] {event:7s} {stage.method}/{stage.criterion} it {rec['iteration']} p {rec['p']:.4g}: "
            f"{self.config.judge_on} acc {_fmt(acc)} (needs {_fmt(self.st.threshold)}) test {_fmt(test_acc)} "
            f"nonzero {rec.get('nonzero_weights')} / {self.st.dense_weights} "
            f"({_fmt(rec.get('compression'), 2)}x measured, {_fmt(rec.get('compression_formula'), 2)}x formula)"
            + (f" score {rec['score']:.5f}" if rec.get("score") is not None else "")
            + (f" [{extra['reason']}]" if extra.get("reason") else "")
        )
        return rec

    def _say(self, text: str) -> None:
        if self.quiet:
            return
        tqdm.write(text)

    # --- schedule actions ----------------------------------------------------------------------
    def _prune(self, p: float) -> dict[str, Any]:
        stage = self.stages[self.st.stage]
        report = prune_model(self.model, stage.criterion, p, exclude=self.config.exclude,
                             layer_rates=self.config.layer_rates, spec=self.spec)
        info: dict[str, Any] = {"pruned": report.pruned, "unit": report.unit}
        self.st.ps = [*self.st.ps, p]
        if stage.criterion == "structured":
            self.spec, shrink = shrink_with_spec(self.model, self.spec)
            info["widths_after"] = list(shrink.widths_after.values())
            self.trainer.reset_optimizer()  # new, smaller parameter tensors
        elif self.config.finetune == "train" and self.config.lr_rewind_for(stage.method):
            self.trainer.reset_optimizer()  # learning-rate rewinding
        self._begin_iteration()
        return info

    def _begin_iteration(self) -> None:
        """Every iteration fine-tunes with its own schedule (a fresh optimizer at the fine-tuning rate), not the
        dense run's: one epoch at the dense run's initial rate after a prune cost more accuracy than the prune
        itself. ``finetune: train`` keeps the 2021 behaviour (the train config's optimizer and scheduler)."""
        cfg = self.config
        if cfg.finetune == "train":
            return
        self.trainer.start_finetune(lr=cfg.finetune_lr_for(self.train_config.lr),
                                    epochs=self.stages[self.st.stage].max_epochs, schedule=cfg.finetune)

    def _prune_or_stop(self, p: float) -> None:
        """Prune with ``p``; when ``p`` is too small to remove a single weight or channel (e.g. a few channels
        left and a small structured rate) no later iteration can make progress: the stage ends with the current
        model, the last that met the criterion."""
        info = self._prune(p)
        if info["pruned"] == 0:
            self.st.ps = self.st.ps[:-1]
            self._say(f"p {p:.4g} removes nothing from the remaining {info['unit']}: ending the stage")
            self.st.schedule = self.st.schedule.model_copy(update={"done": True, "stop_reason": "nothing-to-prune"})
            self._end_stage(Decision(STOP, met=True, reason="nothing-to-prune"))

    def _save_met(self, acc: float, test_acc: float | None, stats: dict[str, Any]) -> SavedModel:
        sched = self.st.schedule
        rel = f"iterations/s{self.st.stage}-i{sched.iteration:03d}.pt"
        saved = SavedModel(path=rel, ps=list(self.st.ps), criterion_acc=acc, test_acc=test_acc, stats=stats,
                           stage=self.st.stage, iteration=sched.iteration)
        self._save_model(rel, saved.model_dump(mode="json"))
        return saved

    def _apply(self, decision, acc: float, new_sched: ScheduleState) -> None:
        old_sched = self.st.schedule
        epochs = old_sched.epoch
        if decision.kind == TRAIN:
            self.st.schedule = new_sched
            if epochs == 0:  # the stage's starting model trains: its first iteration begins
                self._begin_iteration()
            return
        if decision.met:
            if decision.restore and self.st.best_path:
                # imp-converge: the round's best epoch (judged earlier) is its result; same lineage of rates.
                self._load_model(self.st.best_path)
                acc = float(old_sched.best)
            test_acc = self._test_acc(acc)
            stats = self._measure()
            saved = self._save_met(acc, test_acc, stats)
            self.st.rewind = saved
            self.st.last_met = saved
            p_applied = decision.p if decision.kind == PRUNE else None
            self._record("met", met=True, acc=acc, test_acc=test_acc, stats=stats, epochs=epochs,
                         p_applied=p_applied, checkpoint=saved.path, reason=decision.reason)
        elif decision.kind in (REWIND, STOP):
            test_acc = self._test_acc(acc)
            stats = self._measure()
            self._record("failed", met=False, acc=acc, test_acc=test_acc, stats=stats, epochs=epochs,
                         p_applied=None, reason=decision.reason or "budget")

        if decision.kind == PRUNE:
            self.st.schedule = new_sched
            self._prune_or_stop(decision.p)
        elif decision.kind == REWIND:
            rw = self.st.rewind
            self._load_model(rw.path)
            self.st.ps = list(rw.ps)
            self.st.schedule = new_sched
            self._record("rewind", met=True, acc=rw.criterion_acc, test_acc=rw.test_acc,
                         stats={**rw.stats, "ps": rw.ps}, epochs=0, p_applied=decision.p, old_p=decision.old_p,
                         checkpoint=rw.path)
            self._prune_or_stop(decision.p)
        elif decision.kind == STOP:
            self.st.schedule = new_sched
            self._end_stage(decision)
        else:
            self.st.schedule = new_sched

    def _end_stage(self, decision) -> None:
        """The stage's result is its last model that met the criterion (else its starting model)."""
        result = self.st.rewind or self.st.stage_start
        met = self.st.rewind is not None
        current_is_result = decision.met and not decision.restore and met
        if not current_is_result:
            self._load_model(result.path)
            self.st.ps = list(result.ps)
        else:
            self.trainer.reset_optimizer()
        self._record("stop", met=met, acc=result.criterion_acc, test_acc=result.test_acc,
                     stats={**result.stats, "ps": result.ps}, epochs=0, p_applied=None, checkpoint=result.path,
                     reason=decision.reason)
        stage = self.stages[self.st.stage]
        self.st.stage_results.append({
            "stage": self.st.stage, "method": stage.method, "criterion": stage.criterion, "met": met,
            "reason": decision.reason, "iterations": self.st.schedule.iteration, "final_p": self.st.schedule.p,
            "checkpoint": result.path, "criterion_acc": result.criterion_acc, "test_acc": result.test_acc,
            "nonzero_weights": result.stats.get("nonzero_weights"), "compression": result.stats.get("compression"),
        })
        self.st.stage += 1
        self.st.rewind = None
        self.st.best_path = None
        self.st.schedule = None
        self.st.phase = "start" if self.st.stage < len(self.stages) else "done"

    # --- main loop -----------------------------------------------------------------------------
    def start(self) -> None:
        """Measure the starting (dense) model and fix the accuracy threshold."""
        cfg = self.config
        self.st = RunState()
        counts = weight_counts(self.model)
        self.st.dense_weights = counts["weights"]
        self.st.dense_acc = self._judge()
        self.st.dense_test_acc = self._test_acc(self.st.dense_acc)
        self.st.threshold = cfg.target if cfg.target is not None else self.st.dense_acc - cfg.max_drop
        self.st.start_acc_pending = self.st.dense_acc
        self.st.noise = criterion_noise(self.st.dense_acc, self.st.threshold, self.judged_frames)
        if self.st.noise["noisy"]:
            # Said even with quiet: every decision of the run would rest on it.
            tqdm.write(noise_warning(self.st.noise, cfg.judge_on))
        self._say(
            f"dense model: {cfg.judge_on} accuracy {_fmt(self.st.dense_acc)}, test {_fmt(self.st.dense_test_acc)}, "
            f"{counts['nonzero_weights']} of {counts['weights']} weights non-zero; criterion: {cfg.judge_on} accuracy "
            f">= {_fmt(self.st.threshold)}"
        )
        self.save_state()

    def _stage_start(self) -> None:
        stage = self.stages[self.st.stage]
        self.st.schedule = initial_state(stage)
        self.st.rewind = None
        if self.st.start_acc_pending is not None:
            acc, self.st.start_acc_pending = self.st.start_acc_pending, None
        else:
            acc = self._judge()
        test_acc = self._test_acc(acc)
        stats = self._measure()
        rel = f"iterations/s{self.st.stage}-start.pt"
        start = SavedModel(path=rel, ps=list(self.st.ps), criterion_acc=acc, test_acc=test_acc,
                           stats=stats, stage=self.st.stage, iteration=0)
        self._save_model(rel, start.model_dump(mode="json"))
        self.st.stage_start = start
        self._say(f"stage {self.st.stage}: {stage.method} with {stage.criterion} pruning, p {stage.p}, p_min {stage.p_min}")
        if stage.method == "imp-converge":
            self.st.best_path = rel
        self.st.phase = "train"
        met = acc >= self.st.threshold
        decision, new_sched = decide(stage, self.st.schedule, acc, met)
        self._apply(decision, acc, new_sched)

    def _epoch(self) -> None:
        stage = self.stages[self.st.stage]
        sched = self.st.schedule
        tr = self.trainer.train_epoch(desc=f"s{self.st.stage} it {sched.iteration} ep {sched.epoch + 1}")
        self.st.epochs_total += 1
        self.st.schedule = sched = sched.model_copy(update={"epoch": sched.epoch + 1})
        acc = self._judge()
        met = acc >= self.st.threshold
        ms = mask_summary(self.model)
        line = {
            "stage": self.st.stage, "method": stage.method, "criterion": stage.criterion,
            "iteration": sched.iteration, "epoch": sched.epoch, "epochs_total": self.st.epochs_total,
            "p": sched.p, "train_loss": tr["loss"], "train_acc": tr["acc"], "lr": tr["lr"], "lr_end": tr["lr_end"],
            "criterion_acc": acc, "met": met, **self._noise(acc),
            "unmasked_fraction": ms["unmasked"] / self.st.dense_weights if self.st.dense_weights else None,
        }
        append_jsonl(self.out / "epochs.jsonl", line)
        self._epoch_lines += 1
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_description(f"{stage.method}/{stage.criterion} p={sched.p:.3g} it {sched.iteration}", refresh=False)
            self._bar.set_postfix(sparsity=f"{1 - (line['unmasked_fraction'] or 1):.3f}",
                                  acc=f"{acc:.4f}", target=f"{self.st.threshold:.4f}", refresh=True)
        if stage.method == "imp-converge" and (sched.best is None or acc > sched.best):
            rel = "work/round-best.pt"
            self._save_model(rel, {"epoch": sched.epoch, "criterion_acc": acc})
            self.st.best_path = rel
        decision, new_sched = decide(stage, sched, acc, met)
        self._apply(decision, acc, new_sched)

    def run(self) -> dict[str, Any]:
        self._bar = tqdm(desc="prune", unit="epoch", disable=self.quiet, total=None, leave=False)
        try:
            while self.st.phase != "done":
                if self.st.phase == "start":
                    self._stage_start()
                else:
                    self._epoch()
                self.save_state()
                if self.on_epoch is not None:
                    self.on_epoch({"epochs_total": self.st.epochs_total, "records": len(self.log),
                                   "stage": self.st.stage, "phase": self.st.phase})
        finally:
            self._bar.close()
            self._bar = None
        return self.finish()

    def finish(self) -> dict[str, Any]:
        cfg = self.config
        final = self.st.last_met
        met = final is not None
        if final is None:
            # Nothing met the criterion: the final model is the starting model of the first stage.
            first = self.out / "iterations/s0-start.pt"
            if not first.is_file():
                raise AmcpruneError("the run has no model to report")
            final = SavedModel.model_validate(load_checkpoint(first)["prune"])
        ckpt = load_checkpoint(self.out / final.path)
        payload = {k: v for k, v in ckpt.items() if k != "format"}
        payload["kind"] = "prune-final"
        save_checkpoint(self.out / "final.pt", payload)
        summary: dict[str, Any] = {
            "out_dir": str(self.out),
            "met": met,
            "judge_on": cfg.judge_on,
            "threshold": self.st.threshold,
            "criterion_noise": self.st.noise,
            "dense_acc": self.st.dense_acc,
            "dense_test_acc": self.st.dense_test_acc,
            "dense_weights": self.st.dense_weights,
            "final": final.model_dump(mode="json"),
            "final_checkpoint": "final.pt",
            "final_onnx": None,
            "final_cost": None,
            "stages": self.st.stage_results,
            "records": len(self.log),
            "epochs_total": self.st.epochs_total,
            "wall_s": round(self._wall(), 3),
            "fixes": [
                "optimizer and scheduler rebuilt on the rewound parameters after every rewind",
                "compression measured from non-zero quantized weights (formula ratio reported beside it)",
                "structured shrinking keeps the trained weights and quantizer scales",
            ],
        }
        if not met:
            self._say("warning: no model met the criterion; final.pt is the starting model")
        if cfg.export:
            from amcprune.models import load_model

            model, spec, _ = load_model(self.out / "final.pt")
            try:
                from amcprune.export import export_qonnx

                export_qonnx(model, self.out / "final.onnx")
                summary["final_onnx"] = "final.onnx"
                from amcprune.cost import model_cost

                cost = model_cost(self.out / "final.onnx")
                summary["final_cost"] = {"bops": cost.bops, "weight_bits": cost.weight_bits, "score": cost.score,
                                         "weights": cost.weights, "nonzero_weights": cost.nonzero_weights,
                                         "sparsity": cost.sparsity, "warnings": list(cost.warnings)}
            except Exception as exc:  # final.pt is on disk already; report the failure instead of losing the run
                summary["export_error"] = f"{type(exc).__name__}: {exc}"
                self._say(f"warning: export/cost of final.pt failed: {exc}")
        write_json_atomic(self.out / "summary.json", summary)
        self._say(
            f"final model: {final.path} ({cfg.judge_on} acc {_fmt(final.criterion_acc)}, test {_fmt(final.test_acc)}, "
            f"compression {_fmt(final.stats.get('compression'), 2)}x)"
            + (f", score {summary['final_cost']['score']:.6f}" if summary.get("final_cost") else "")
        )
        return summary


# ---------------------------------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------------------------------
def _prepare_dir(out: Path, resume: bool, force: bool) -> bool:
    """Returns True when a state to resume from exists."""
    prepare_run_dir(out, RUN_FILES, resume=resume, force=force, kind="prune run")
    return resume and (out / "state.pt").is_file()


def prune_run(
    config: PruneConfig | None,
    source: str | os.PathLike | None,
    data_path: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    *,
    train_config: Any | None = None,
    train_overrides: dict[str, Any] | None = None,
    data: Any | None = None,
    resume: bool = False,
    force: bool = False,
    quiet: bool = False,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Prune the model at ``source`` (a checkpoint or run directory) on ``data_path`` into ``out_dir``.

    ``train_config`` defaults to the one the source was trained with (``train_overrides`` change fields of
    it). ``data`` (an ``InMemoryData``) replaces loading ``data_path``. With ``resume=True`` the configs,
    source and data file stored in ``out_dir/config.yaml`` are used and the run continues from ``state.pt``.
    Returns the summary (also written to ``summary.json``).
    """
    from amcprune.data import radioml
    from amcprune.models import build_model, load_model, validate_spec
    from amcprune.train.config import TrainConfig

    out = Path(out_dir)
    has_state = _prepare_dir(out, resume, force)
    if resume:
        stored = yaml.safe_load((out / "config.yaml").read_text()) or {}
        stored_cfg = PruneConfig.from_dict(stored.get("prune"))
        if config is not None and config.model_dump() != stored_cfg.model_dump():
            raise AmcpruneError(f"{out}: cannot resume with different prune options (omit them with --resume)")
        config = stored_cfg
        train_config = TrainConfig.from_dict(stored.get("train"))
        source = stored.get("source")
        stored_data = stored.get("data") or {}
        if data is None:
            data_path = Path(data_path) if data_path is not None else Path(stored_data.get("path", ""))
            if stored_data.get("fingerprint"):
                fingerprint = radioml.data_fingerprint(data_path)
                if fingerprint != stored_data["fingerprint"]:
                    raise AmcpruneError(f"{data_path}: data fingerprint differs from the run's: resume with the same file")
        start_spec = validate_spec(stored.get("model"), f"{out}/config.yaml")
    else:
        if config is None:
            raise AmcpruneError("no prune config given")
        if source is None:
            raise AmcpruneError("no model to prune given (--from)")
        source_path = resolve_source(source)
        start_model, start_spec, ckpt = load_model(source_path)
        for stage in config.stages():  # before anything is written to the run directory
            check_selection(start_model, stage.criterion, config.exclude, config.layer_rates, start_spec)
        if train_config is None:
            train_config = train_config_for(source, ckpt)
        source = str(source_path.resolve())
        if data is None and data_path is None:
            raise AmcpruneError("no data file given (--data)")

    if train_overrides:
        merged = {**train_config.model_dump(), **{k: v for k, v in train_overrides.items() if v is not None}}
        train_config = TrainConfig.from_dict(merged)
    train_config = train_config.model_copy(update={"quiet": quiet or train_config.quiet})

    if data is None:
        data = load_data(data_path, start_spec, train_config, quiet=quiet)

    if not resume:
        header = {
            "prune": config.model_dump(mode="json"),
            "train": train_config.model_dump(mode="json"),
            "source": source,
            "data": {"path": str(Path(data_path).resolve()) if data_path is not None else None,
                     "fingerprint": getattr(data, "fingerprint", None)},
            "model": start_spec.model_dump(mode="json"),
        }
        write_text_atomic(out / "config.yaml", yaml.safe_dump(header, sort_keys=False))

    if has_state:
        state = load_checkpoint(out / "state.pt")
        if state.get("kind") != STATE_KIND:
            raise AmcpruneError(f"{out / 'state.pt'}: not a prune state")
        spec = validate_spec(state["spec"], f"{out / 'state.pt'}")
        with torch.random.fork_rng(devices=[]):
            model = build_model(spec)
        load_model_state(model, state["model"], state.get("masks") or None)
        run = PruneRun(config, train_config, out, model=model, spec=spec, data=data, quiet=quiet, on_epoch=on_epoch)
        run.restore(state)
        if run.st.phase == "done":
            return run.finish()
    else:
        model, spec, _ = load_model(source)
        run = PruneRun(config, train_config, out, model=model, spec=spec, data=data, quiet=quiet, on_epoch=on_epoch)
        run.log.truncate(0)
        truncate_jsonl(out / "epochs.jsonl", 0)
        run.start()
    return run.run()


def read_records(out_dir: str | os.PathLike) -> list[dict[str, Any]]:
    from amcprune.utils.atomic import read_jsonl

    return read_jsonl(Path(out_dir) / "records.jsonl")


__all__ = ["PruneRun", "RunState", "SavedModel", "load_data", "prune_run", "read_records", "remap_optimizer_state",
           "train_config_for"]
