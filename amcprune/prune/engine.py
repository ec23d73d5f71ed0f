"""The prune run: carries out the schedules of :mod:`amcprune.prune.schedule` on a model, resumably.

Run directory::

    OUT/config.yaml          recipe, train config, source checkpoint, data file (path, fingerprint), start spec
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

from amcprune.data import radioml
from amcprune.errors import AmcpruneError
from amcprune.models import build_model, load_model, validate_spec
from amcprune.models.loading import resolve_checkpoint_path
from amcprune.outputs import (CONFIG_FILE, EPOCHS_FILE, FINAL_CHECKPOINT, FINAL_ONNX, ITERATIONS_DIR, PRUNE_RUN_FILES,
                              RECORDS_FILE, STATE_FILE, SUMMARY_FILE, PruneEpoch, PruneSummary, check)
from amcprune.prune.config import PruneConfig
from amcprune.prune.criteria import mask_summary, refresh_masked_weights
from amcprune.prune.measurer import Measurer
from amcprune.prune.recipe import Recipe
from amcprune.prune.records import (RecordLog, criterion_noise, layer_widths, standard_error, truncate_jsonl,
                                    weight_counts)
from amcprune.prune.schedule import ScheduleState, formula_ratio
from amcprune.prune.shrink import swap_children
from amcprune.prune.stages import StageSpec, stage_kind
from amcprune.train.config import TrainConfig
from amcprune.train.data import load_data
from amcprune.train.evaluate import evaluate_model
from amcprune.train.fasteval import fast_eval
from amcprune.train.trainer import Trainer
from amcprune.utils.atomic import append_jsonl, read_jsonl, write_json_atomic, write_text_atomic
from amcprune.utils.checkpoint import load_checkpoint, load_model_state, model_state, save_checkpoint
from amcprune.utils.rundir import prepare_run_dir

STATE_KIND = "prune-state"


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
    kind_state: dict[str, Any] | None = None  # what a stage kind other than imp/fmp keeps between steps
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
    return resolve_checkpoint_path(path)


def train_config_for(source: str | os.PathLike, ckpt: dict[str, Any] | None = None):
    """The train config a model was trained with: its checkpoint's ``train_config``, else its run's
    ``config.yaml``, else the defaults."""
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


# ---------------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------------
class PruneRun:
    """One prune run in ``out_dir``: orchestrates the recipe's stages and owns what they share (the model, the
    trainer, the criterion, records, saved models, resume state). Stage kinds drive it through the public
    methods below. Use :func:`prune_run`; tests may drive it directly."""

    def __init__(
        self,
        recipe: Recipe | PruneConfig,
        train_config: Any,
        out_dir: str | os.PathLike,
        *,
        model: nn.Module,
        spec: Any,
        data: Any,
        measurer: Measurer | None = None,
        quiet: bool = False,
        on_epoch: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.recipe = recipe.to_recipe() if isinstance(recipe, PruneConfig) else recipe
        self.train_config = train_config
        self.out = Path(out_dir)
        self.spec = spec
        self.model = model
        self.data = data
        self.measurer = measurer
        self.quiet = quiet
        self.on_epoch = on_epoch
        self.trainer = Trainer(model, train_config, data, quiet=quiet)
        self.device = self.trainer.device
        self.log = RecordLog(self.out)
        self.st = RunState()
        self._t0 = time.perf_counter()
        self._bar: Any = None
        self._epoch_lines = 0
        self._teacher: torch.Tensor | None = None
        check_recipe(self.recipe, model, spec, measurer)
        if self.recipe.judge_on == "val" and data.size("val") == 0:
            raise AmcpruneError(
                "judging on the validation split but it is empty: set a val fraction > 0 (--val-fraction) "
                "or judge on the test split (--judge-on test)"
            )

    @property
    def stage_spec(self) -> StageSpec:
        return self.recipe.stages[self.st.stage]

    # --- files ---------------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.out / STATE_FILE

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
        truncate_jsonl(self.out / EPOCHS_FILE, self._epoch_lines)

    def save_model(self, rel: str, meta: dict[str, Any]) -> Path:
        """Save the current model (weights, masks, spec) under ``rel`` with ``meta`` beside it."""
        path = self.out / rel
        save_checkpoint(path, {"kind": "prune-model", "spec": self.spec.model_dump(mode="json"),
                               **model_state(self.model), "prune": meta})
        return path

    def load_model(self, rel: str) -> None:
        """Replace the model's weights by a saved model (rebuilt from its spec: new parameter tensors) and
        bind a fresh optimizer and scheduler to them."""
        ckpt = load_checkpoint(self.out / rel)
        self._install(validate_spec(ckpt["spec"], rel), ckpt["model"], ckpt.get("masks") or None, rel)

    def set_spec(self, spec: Any) -> None:
        """Rebuild the model for ``spec`` (another width per layer, e.g. other bit widths) keeping its weights,
        masks and learned quantizer scales, which must fit the new model; a fresh optimizer follows."""
        state = model_state(self.model)
        self._install(validate_spec(spec, "new model spec"), state["model"], state["masks"] or None, "new model spec")

    def model_for(self, spec: Any, eval_mode: bool = True) -> nn.Module:
        """A new model for ``spec`` holding the current model's weights, masks and learned scales (a candidate to
        judge or score without touching the run's model)."""
        state = model_state(self.model)
        where = "new model spec"
        model = self._build(validate_spec(spec, where), state["model"], state["masks"] or None, where)
        return model.eval() if eval_mode else model

    def _build(self, spec: Any, state: dict[str, Any], masks: dict[str, Any] | None, where: str) -> nn.Module:
        with torch.random.fork_rng(devices=[]):  # building draws initial weights: resume must replay exactly
            fresh = build_model(spec)
        if type(fresh) is not type(self.model):
            raise AmcpruneError(f"{where}: cannot turn a {type(self.model).__name__} into a {type(fresh).__name__}")
        load_model_state(fresh, state, masks)
        return fresh.to(self.device)

    def _install(self, spec: Any, state: dict[str, Any], masks: dict[str, Any] | None, where: str) -> None:
        fresh = self._build(spec, state, masks, where).train(self.model.training)
        # The container stays (the trainer and callers hold it); its modules, and so its spec, change.
        swap_children(self.model, fresh)
        self.model.spec = spec
        self.spec = spec
        # The parameters are new tensors: an optimizer bound to the old ones would train nothing (the
        # published FMP script's defect).
        self.trainer.reset_optimizer()

    # --- measuring -----------------------------------------------------------------------------
    def _judge(self) -> float:
        return float(self.trainer.evaluate(self.recipe.judge_on).accuracy)

    def judge(self) -> float:
        """The current model's accuracy on the criterion's split."""
        return self._judge()

    def judge_model(self, model: nn.Module) -> float:
        """Another model's accuracy on the criterion's split (e.g. a candidate a stage ranks before trying it)."""
        return float(evaluate_model(model, self.data, split=self.recipe.judge_on,
                                    batch_size=self.train_config.eval_batch_for(self.device),
                                    fast=self.train_config.fast_eval).accuracy)

    def meets(self, acc: float) -> bool:
        return acc >= self.st.threshold

    @property
    def judged_frames(self) -> int:
        return self.data.size(self.recipe.judge_on)  # every judgment evaluates the whole split

    def _noise(self, acc: float | None) -> dict[str, Any]:
        """The number of frames the criterion was judged on and the standard error of the judged accuracy
        (binomial: sqrt(acc (1 - acc) / n))."""
        n = self.judged_frames
        if acc is None or not n:
            return {"criterion_n": n or None, "criterion_se": None}
        return {"criterion_n": n, "criterion_se": standard_error(acc, n)}

    def test_acc(self, judged: float | None = None) -> float | None:
        """Test accuracy of the current model (the judged value itself when judging on test)."""
        if self.recipe.judge_on == "test" and judged is not None:
            return judged
        if self.data.size("test") == 0:
            return None
        return float(self.trainer.evaluate("test").accuracy)

    def measure(self) -> dict[str, Any]:
        """Weights, non-zeros, compression (measured and by formula), layer widths and, with ``cost``, the score."""
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
        if self.recipe.cost:
            try:
                cost = self.measurer.score(self.model)
                stats.update(bops=cost["bops"], weight_bits=cost["weight_bits"], score=cost["score"])
                if cost.get("warnings"):
                    stats["cost_warnings"] = list(cost["warnings"])
            except Exception as exc:  # a failed score must not lose the run; it is recorded instead
                stats["cost_error"] = f"{type(exc).__name__}: {exc}"
        return stats

    def teacher_logits(self) -> torch.Tensor:
        """The dense model's outputs on every train frame, in split order: the distillation teacher. The dense
        model is the first stage's saved start; the outputs are computed once per process (the teacher does not
        change, and a resumed run recomputes them the same way)."""
        if self._teacher is None:
            ckpt = load_checkpoint(self.out / ITERATIONS_DIR / "s0-start.pt")
            with torch.random.fork_rng(devices=[]):
                teacher = build_model(validate_spec(ckpt["spec"], "the dense model"))
            load_model_state(teacher, ckpt["model"], ckpt.get("masks") or None)
            teacher.to(self.device).eval()
            outputs = []
            with torch.no_grad(), fast_eval(teacher, enabled=self.train_config.fast_eval):
                for xb, _, _ in self.data.batches("train", self.train_config.eval_batch_for(self.device)):
                    out = teacher(xb)
                    outputs.append((out.value if hasattr(out, "value") else out).float().cpu())
            self._teacher = torch.cat(outputs)
        return self._teacher

    def kept_score(self) -> float:
        """The score of the current model, which is the stage's last kept one: as recorded when it was kept (the
        recipe scores every record), else measured now."""
        rw = self.st.rewind
        if rw is not None and rw.stats.get("score") is not None:
            return float(rw.stats["score"])
        return float(self.measurer.score(self.model)["score"])

    def weight_costs(self) -> dict[str, float]:
        """What one remaining weight of each prunable layer adds to the score (from the measurer)."""
        return self.measurer.weight_costs(self.model)

    # --- records ---------------------------------------------------------------------------------
    def record(self, event: str, *, met: bool, acc: float | None, test_acc: float | None, stats: dict[str, Any],
               **extra: Any) -> dict:
        """Append one row to ``records.jsonl`` (and ``records.csv``) and say it."""
        spec = self.stage_spec
        progress = stage_kind(spec.kind).progress(self, spec)
        rec = {
            "event": event,
            "stage": self.st.stage,
            "method": spec.kind,
            "criterion": spec.criterion_name,
            "iteration": progress["iteration"],
            "p": progress["p"],
            "epochs_total": self.st.epochs_total,
            "judge_on": self.recipe.judge_on,
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
        p_text = f" p {rec['p']:.4g}" if rec["p"] is not None else ""
        self.say(
            f"[{rec['record']}] {event:7s} {spec.kind}/{spec.criterion_name} it {rec['iteration']}{p_text}: "
            f"{self.recipe.judge_on} acc {_fmt(acc)} (needs {_fmt(self.st.threshold)}) test {_fmt(test_acc)} "
            f"nonzero {rec.get('nonzero_weights')} / {self.st.dense_weights} "
            f"({_fmt(rec.get('compression'), 2)}x measured, {_fmt(rec.get('compression_formula'), 2)}x formula)"
            + (f" score {rec['score']:.5f}" if rec.get("score") is not None else "")
            + (f" [{extra['reason']}]" if extra.get("reason") else "")
        )
        return rec

    def say(self, text: str) -> None:
        if self.quiet:
            return
        tqdm.write(text)

    # --- what stage kinds do -------------------------------------------------------------------
    def train_epoch(self, *, iteration: int, epoch: int, p: float | None, desc: str) -> float:
        """Train one epoch, judge it, log it to ``epochs.jsonl``; returns the judged accuracy."""
        spec = self.stage_spec
        tr = self.trainer.train_epoch(desc=f"s{self.st.stage} it {iteration} ep {epoch}")
        refresh_masked_weights(self.model)
        self.st.epochs_total += 1
        acc = self._judge()
        ms = mask_summary(self.model)
        line = {
            "stage": self.st.stage, "method": spec.kind, "criterion": spec.criterion_name,
            "iteration": iteration, "epoch": epoch, "epochs_total": self.st.epochs_total,
            "p": p, "train_loss": tr["loss"], "train_acc": tr["acc"], "lr": tr["lr"], "lr_end": tr["lr_end"],
            "criterion_acc": acc, "met": self.meets(acc), **self._noise(acc),
            "unmasked_fraction": ms["unmasked"] / self.st.dense_weights if self.st.dense_weights else None,
        }
        check(PruneEpoch, line, self.out / EPOCHS_FILE)
        append_jsonl(self.out / EPOCHS_FILE, line)
        self._epoch_lines += 1
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_description(desc, refresh=False)
            self._bar.set_postfix(sparsity=f"{1 - (line['unmasked_fraction'] or 1):.3f}",
                                  acc=f"{acc:.4f}", target=f"{self.st.threshold:.4f}", refresh=True)
        return acc

    def keep_met(self, acc: float, *, epochs: int, p_applied: float | None, reason: str | None = None) -> SavedModel:
        """The current model met the criterion: save it as the stage's rewind point and the run's latest result,
        and record it."""
        test_acc = self.test_acc(acc)
        stats = self.measure()
        iteration = stage_kind(self.stage_spec.kind).progress(self, self.stage_spec)["iteration"]
        rel = f"{ITERATIONS_DIR}/s{self.st.stage}-i{iteration:03d}.pt"
        saved = SavedModel(path=rel, ps=list(self.st.ps), criterion_acc=acc, test_acc=test_acc, stats=stats,
                           stage=self.st.stage, iteration=iteration)
        self.save_model(rel, saved.model_dump(mode="json"))
        self.st.rewind = saved
        self.st.last_met = saved
        self.record("met", met=True, acc=acc, test_acc=test_acc, stats=stats, epochs=epochs, p_applied=p_applied,
                    checkpoint=saved.path, reason=reason)
        return saved

    def keep_start(self, acc: float) -> bool:
        """For kinds that only go on from a model that meets the criterion: keep the stage's starting model as its
        first rewind point, or end the stage when it does not meet the criterion. Returns whether to go on."""
        if not self.meets(acc):
            self.end_stage(reason="start-not-met", current_is_result=False)
            return False
        self.keep_met(acc, epochs=0, p_applied=None, reason="start")
        return True

    def record_failed(self, acc: float, *, epochs: int, reason: str) -> None:
        test_acc = self.test_acc(acc)
        self.record("failed", met=False, acc=acc, test_acc=test_acc, stats=self.measure(), epochs=epochs,
                    p_applied=None, reason=reason)

    def rewind(self, *, p_applied: float | None, old_p: float | None = None) -> SavedModel:
        """Go back to the stage's last model that met the criterion (its weights, masks, rates and spec), or to
        the stage's starting model when none has met it yet."""
        rw = self.st.rewind or self.st.stage_start
        self.load_model(rw.path)
        self.st.ps = list(rw.ps)
        self.record("rewind", met=True, acc=rw.criterion_acc, test_acc=rw.test_acc, stats={**rw.stats, "ps": rw.ps},
                    epochs=0, p_applied=p_applied, old_p=old_p, checkpoint=rw.path)
        return rw

    def end_stage(self, *, reason: str | None, current_is_result: bool) -> None:
        """End the current stage. Its result is its last model that met the criterion (else its starting model);
        ``current_is_result`` says the model in memory is that model, so it need not be reloaded."""
        result = self.st.rewind or self.st.stage_start
        met = self.st.rewind is not None
        if not (current_is_result and met):
            self.load_model(result.path)
            self.st.ps = list(result.ps)
        else:
            self.trainer.reset_optimizer()
        self.record("stop", met=met, acc=result.criterion_acc, test_acc=result.test_acc,
                    stats={**result.stats, "ps": result.ps}, epochs=0, p_applied=None, checkpoint=result.path,
                    reason=reason)
        spec = self.stage_spec
        progress = stage_kind(spec.kind).progress(self, spec)
        self.st.stage_results.append({
            "stage": self.st.stage, "method": spec.kind, "criterion": spec.criterion_name, "met": met,
            "reason": reason, "iterations": progress["iteration"], "final_p": progress["p"],
            "checkpoint": result.path, "criterion_acc": result.criterion_acc, "test_acc": result.test_acc,
            "nonzero_weights": result.stats.get("nonzero_weights"), "compression": result.stats.get("compression"),
        })
        self.st.stage += 1
        self.st.rewind = None
        self.st.best_path = None
        self.st.schedule = None
        self.st.kind_state = None
        self.st.phase = "start" if self.st.stage < len(self.recipe.stages) else "done"

    # --- main loop -----------------------------------------------------------------------------
    def start(self) -> None:
        """Measure the starting (dense) model and fix the accuracy threshold."""
        recipe = self.recipe
        self.st = RunState()
        counts = weight_counts(self.model)
        self.st.dense_weights = counts["weights"]
        self.st.dense_acc = self._judge()
        self.st.dense_test_acc = self.test_acc(self.st.dense_acc)
        self.st.threshold = recipe.target if recipe.target is not None else self.st.dense_acc - recipe.max_drop
        self.st.start_acc_pending = self.st.dense_acc
        self.st.noise = criterion_noise(self.st.dense_acc, self.st.threshold, self.judged_frames)
        if self.st.noise["noisy"]:
            # Said even with quiet: every decision of the run would rest on it.
            tqdm.write(noise_warning(self.st.noise, recipe.judge_on))
        self.say(
            f"dense model: {recipe.judge_on} accuracy {_fmt(self.st.dense_acc)}, test {_fmt(self.st.dense_test_acc)}, "
            f"{counts['nonzero_weights']} of {counts['weights']} weights non-zero; criterion: {recipe.judge_on} "
            f"accuracy >= {_fmt(self.st.threshold)} ({recipe.criterion_text()})"
        )
        self.save_state()

    def _stage_start(self) -> None:
        """Judge and save the stage's starting model (its result if nothing better is met), then hand over to
        the stage's kind."""
        spec = self.stage_spec
        self.st.rewind = None
        self.st.schedule = None
        self.st.kind_state = None
        if self.st.start_acc_pending is not None:
            acc, self.st.start_acc_pending = self.st.start_acc_pending, None
        else:
            acc = self._judge()
        test_acc = self.test_acc(acc)
        stats = self.measure()
        rel = f"{ITERATIONS_DIR}/s{self.st.stage}-start.pt"
        start = SavedModel(path=rel, ps=list(self.st.ps), criterion_acc=acc, test_acc=test_acc,
                           stats=stats, stage=self.st.stage, iteration=0)
        self.save_model(rel, start.model_dump(mode="json"))
        self.st.stage_start = start
        self.say(f"stage {self.st.stage}: {spec.describe()}")
        self.st.phase = "train"
        stage_kind(spec.kind).start(self, spec, acc)

    def run(self) -> dict[str, Any]:
        self._bar = tqdm(desc="prune", unit="epoch", disable=self.quiet, total=None, leave=False)
        try:
            while self.st.phase != "done":
                if self.st.phase == "start":
                    self._stage_start()
                else:
                    stage_kind(self.stage_spec.kind).step(self, self.stage_spec)
                self.save_state()
                if self.on_epoch is not None:
                    self.on_epoch({"epochs_total": self.st.epochs_total, "records": len(self.log),
                                   "stage": self.st.stage, "phase": self.st.phase})
        finally:
            self._bar.close()
            self._bar = None
        return self.finish()

    def finish(self) -> dict[str, Any]:
        recipe = self.recipe
        final = self.st.last_met
        met = final is not None
        if final is None:
            # Nothing met the criterion: the final model is the starting model of the first stage.
            first = self.out / ITERATIONS_DIR / "s0-start.pt"
            if not first.is_file():
                raise AmcpruneError("the run has no model to report")
            final = SavedModel.model_validate(load_checkpoint(first)["prune"])
        ckpt = load_checkpoint(self.out / final.path)
        payload = {k: v for k, v in ckpt.items() if k != "format"}
        payload["kind"] = "prune-final"
        save_checkpoint(self.out / FINAL_CHECKPOINT, payload)
        summary: dict[str, Any] = {
            "out_dir": str(self.out),
            "met": met,
            "judge_on": recipe.judge_on,
            "threshold": self.st.threshold,
            "criterion_noise": self.st.noise,
            "dense_acc": self.st.dense_acc,
            "dense_test_acc": self.st.dense_test_acc,
            "dense_weights": self.st.dense_weights,
            "final": final.model_dump(mode="json"),
            "final_checkpoint": FINAL_CHECKPOINT,
            "final_onnx": None,
            "final_cost": None,
            "stages": self.st.stage_results,
            "records": len(self.log),
            "epochs_total": self.st.epochs_total,
            "wall_s": round(self._wall(), 3),
        }
        if not met:
            self.say("warning: no model met the criterion; final.pt is the starting model")
        if recipe.export:
            try:
                summary["final_cost"] = self.measurer.export(self.out / FINAL_CHECKPOINT, self.out / FINAL_ONNX)
                summary["final_onnx"] = FINAL_ONNX
            except Exception as exc:  # final.pt is on disk already; report the failure instead of losing the run
                summary["export_error"] = f"{type(exc).__name__}: {exc}"
                self.say(f"warning: export/cost of final.pt failed: {exc}")
        check(PruneSummary, summary, self.out / SUMMARY_FILE)
        write_json_atomic(self.out / SUMMARY_FILE, summary)
        self.say(
            f"final model: {final.path} ({recipe.judge_on} acc {_fmt(final.criterion_acc)}, test "
            f"{_fmt(final.test_acc)}, compression {_fmt(final.stats.get('compression'), 2)}x)"
            + (f", score {summary['final_cost']['score']:.6f}" if summary.get("final_cost") else "")
        )
        return summary


def check_recipe(recipe: Recipe, model: nn.Module, spec: Any, measurer: Measurer | None) -> None:
    """Everything about a recipe that can fail on this model, before anything is trained or written."""
    if (recipe.cost or recipe.export or any(s.needs_measurer for s in recipe.stages)) and measurer is None:
        raise AmcpruneError("the recipe scores models (cost, export, or a cost-aware stage) but no measurer was "
                            "given: pass amcprune.pipeline.measure.QonnxMeasurer(), or set cost and export to false")
    for stage in recipe.stages:
        stage_kind(stage.kind).check(model, spec, stage)


# ---------------------------------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------------------------------
def _prepare_dir(out: Path, resume: bool, force: bool) -> bool:
    """Returns True when a state to resume from exists."""
    prepare_run_dir(out, PRUNE_RUN_FILES, resume=resume, force=force, kind="prune run")
    return resume and (out / STATE_FILE).is_file()


def stored_recipe(stored: dict[str, Any], where: str) -> Recipe:
    """The recipe in a run's ``config.yaml`` (runs written before recipes existed stored a prune config)."""
    if isinstance(stored.get("recipe"), dict):
        return Recipe.from_dict(stored["recipe"], source=f"{where}: recipe")
    if isinstance(stored.get("prune"), dict):
        return PruneConfig.from_dict(stored["prune"], source=f"{where}: prune").to_recipe()
    raise AmcpruneError(f"{where}: no recipe stored")


def prune_run(
    config: Recipe | PruneConfig | None,
    source: str | os.PathLike | None,
    data_path: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    *,
    train_config: Any | None = None,
    train_overrides: dict[str, Any] | None = None,
    data: Any | None = None,
    measurer: Measurer | None = None,
    resume: bool = False,
    force: bool = False,
    quiet: bool = False,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run the recipe ``config`` (or the recipe a :class:`PruneConfig` stands for) on the model at ``source``
    (a checkpoint or run directory) with ``data_path`` into ``out_dir``.

    ``train_config`` defaults to the one the source was trained with (``train_overrides`` change fields of
    it). ``data`` (an ``InMemoryData``) replaces loading ``data_path``. ``measurer`` scores and exports models
    (needed unless the recipe sets ``cost`` and ``export`` to false). With ``resume=True`` the recipe, train
    config, source and data file stored in ``out_dir/config.yaml`` are used and the run continues from
    ``state.pt``. Returns the summary (also written to ``summary.json``).
    """
    recipe = config.to_recipe() if isinstance(config, PruneConfig) else config
    out = Path(out_dir)
    has_state = _prepare_dir(out, resume, force)
    if resume:
        stored = yaml.safe_load((out / CONFIG_FILE).read_text()) or {}
        stored_rec = stored_recipe(stored, f"{out}/{CONFIG_FILE}")
        if recipe is not None and recipe.model_dump() != stored_rec.model_dump():
            raise AmcpruneError(f"{out}: cannot resume with a different recipe (omit the prune options with --resume)")
        recipe = stored_rec
        train_config = TrainConfig.from_dict(stored.get("train"))
        source = stored.get("source")
        stored_data = stored.get("data") or {}
        if data is None:
            data_path = Path(data_path) if data_path is not None else Path(stored_data.get("path", ""))
            if stored_data.get("fingerprint"):
                fingerprint = radioml.data_fingerprint(data_path)
                if fingerprint != stored_data["fingerprint"]:
                    raise AmcpruneError(f"{data_path}: data fingerprint differs from the run's: resume with the same file")
        start_spec = validate_spec(stored.get("model"), f"{out}/{CONFIG_FILE}")
    else:
        if recipe is None:
            raise AmcpruneError("no recipe given")
        if source is None:
            raise AmcpruneError("no model to prune given (--from)")
        source_path = resolve_source(source)
        start_model, start_spec, ckpt = load_model(source_path)
        check_recipe(recipe, start_model, start_spec, measurer)  # before anything is written to the run directory
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
            "recipe": recipe.model_dump(mode="json"),
            "train": train_config.model_dump(mode="json"),
            "source": source,
            "data": {"path": str(Path(data_path).resolve()) if data_path is not None else None,
                     "fingerprint": getattr(data, "fingerprint", None)},
            "model": start_spec.model_dump(mode="json"),
        }
        write_text_atomic(out / CONFIG_FILE, yaml.safe_dump(header, sort_keys=False))

    def make_run(model: nn.Module, spec: Any) -> PruneRun:
        return PruneRun(recipe, train_config, out, model=model, spec=spec, data=data, measurer=measurer, quiet=quiet,
                        on_epoch=on_epoch)

    if has_state:
        state = load_checkpoint(out / STATE_FILE)
        if state.get("kind") != STATE_KIND:
            raise AmcpruneError(f"{out / STATE_FILE}: not a prune state")
        spec = validate_spec(state["spec"], f"{out / STATE_FILE}")
        with torch.random.fork_rng(devices=[]):
            model = build_model(spec)
        load_model_state(model, state["model"], state.get("masks") or None)
        run = make_run(model, spec)
        run.restore(state)
        if run.st.phase == "done":
            return run.finish()
    else:
        model, spec, _ = load_model(source)
        run = make_run(model, spec)
        run.log.truncate(0)
        truncate_jsonl(out / EPOCHS_FILE, 0)
        run.start()
    return run.run()


def read_records(out_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a run as written (``amcprune.outputs.read_records`` gives them typed)."""
    return read_jsonl(Path(out_dir) / RECORDS_FILE)


__all__ = ["PruneRun", "RunState", "SavedModel", "check_recipe", "prune_run", "read_records",
           "remap_optimizer_state", "stored_recipe", "train_config_for"]
