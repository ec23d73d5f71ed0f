"""The training loop: one epoch at a time over an ``InMemoryData``.

``Trainer`` owns the optimizer, the LR scheduler and the batch-order generator. Its ``state_dict`` holds only
tensors and plain values (RNG states as ``torch.Generator.get_state()`` tensors), so a checkpoint carrying it
loads with ``weights_only=True``.

``reset_optimizer()`` builds a fresh optimizer and scheduler over the model's *current* parameters. Call it
whenever parameters are replaced: after loading a pruning rewind point, after structured shrinking, after
``torch.nn.utils.prune`` re-parametrises ``weight`` as ``weight_orig``. (The published FMP script kept the
optimizer of the model it had thrown away, so after its first rewind only BatchNorm statistics changed.)

``start_finetune()`` replaces the training schedule by a fine-tuning one (the prune stage calls it at the start
of every iteration): a fresh optimizer at a given rate and, for ``"cosine"``, a decay to zero over a given
number of epochs stepped after every batch, so that even a one-epoch iteration ends at a low rate.
"""

from __future__ import annotations

import math
import time
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from amcprune.errors import AmcpruneError
from amcprune.train.config import TrainConfig, resolve_device
from amcprune.train.data import InMemoryData
from amcprune.train.evaluate import EvalResult, _logits, evaluate_model
from amcprune.train.fastquant import fast_quant

STATE_FORMAT = "amcprune-trainer/1"


def _stats_modules(model: nn.Module):
    """Brevitas scale modules that initialise a learned scale from runtime statistics
    (``ParameterFromRuntimeStatsScaling``: ``counter``, ``collect_stats_steps``, ``buffer``, ``value``)."""
    for name, module in model.named_modules():
        if all(hasattr(module, a) for a in ("counter", "collect_stats_steps", "buffer", "value")):
            yield name, module


def runtime_stats_state(model: nn.Module) -> dict[str, dict[str, torch.Tensor]]:
    """The statistics-collection state of every activation quantizer, as tensors.

    A state dict does not carry it: Brevitas drops ``buffer`` and, on load, ends statistics collection (the
    loaded ``value`` becomes the learned scale). A run resumed during the first ``collect_stats_steps``
    (300) training steps would then differ from an uninterrupted one; restoring this makes it identical.
    """
    return {
        name: {
            "counter": torch.tensor(int(m.counter)),
            "buffer": m.buffer.detach().cpu().clone(),
            "value": m.value.detach().cpu().clone(),
        }
        for name, m in _stats_modules(model)
    }


def load_runtime_stats_state(model: nn.Module, state: dict[str, dict[str, torch.Tensor]]) -> None:
    modules = dict(_stats_modules(model))
    for name, st in state.items():
        m = modules.get(name)
        if m is None or m.buffer.shape != st["buffer"].shape or m.value.shape != st["value"].shape:
            continue  # the model changed shape (structured pruning): keep what the loaded state gives
        with torch.no_grad():
            m.buffer.copy_(st["buffer"])
            m.value.copy_(st["value"])
        m.counter = int(st["counter"])


def distillation_loss(logits: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
                      weight: float) -> torch.Tensor:
    """Hinton et al. 2015: ``(1 - weight) * CE(logits, labels) + weight * T^2 * KL(teacher_T || student_T)``, the
    softened distributions at temperature ``T``; the ``T^2`` keeps the soft term's gradients on the scale of
    the hard one."""
    hard = F.cross_entropy(logits, labels)
    soft = F.kl_div(F.log_softmax(logits / temperature, dim=1), F.log_softmax(teacher_logits / temperature, dim=1),
                    reduction="batchmean", log_target=True)
    return (1.0 - weight) * hard + weight * temperature * temperature * soft


class Trainer:
    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig,
        data: InMemoryData | None,
        *,
        device: str | torch.device | None = None,
        quiet: bool | None = None,
    ) -> None:
        self.config = config
        if device is not None:
            self.device = resolve_device(device)
        elif data is not None:
            self.device = data.device
        else:
            self.device = resolve_device(config.device)
        if config.threads:
            torch.set_num_threads(config.threads)
        if data is not None:  # frames coded for another input quantizer or length would train silently wrong
            data.check_model_spec(getattr(model, "spec", None))
        self.model = model.to(self.device)
        self.data = data
        self.quiet = config.quiet if quiet is None else quiet
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(config.seed)
        self.epoch = 0
        self.optimizer: torch.optim.Optimizer
        self.scheduler: Any
        self.finetune: dict[str, Any] | None = None  # set by start_finetune: the scheduler steps per batch
        self.teacher: dict[str, Any] | None = None  # set by set_teacher: train on a distillation loss
        self.reset_optimizer()

    # --- optimizer ------------------------------------------------------------------------------
    def parameters(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def _new_optimizer(self, lr: float) -> None:
        cfg = self.config
        params = self.parameters()
        if not params:
            raise AmcpruneError("the model has no trainable parameters")
        if cfg.optimizer == "adam":
            self.optimizer = torch.optim.Adam(params, lr=lr, weight_decay=cfg.weight_decay)
        else:
            self.optimizer = torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)

    def reset_optimizer(self, lr: float | None = None) -> None:
        """A fresh optimizer and scheduler bound to the model's current parameters.

        After :meth:`start_finetune` this starts the fine-tuning schedule again (same rate and length)."""
        if self.finetune is not None:
            self.start_finetune(**self.finetune)
            return
        cfg = self.config
        self._new_optimizer(cfg.lr if lr is None else lr)
        if cfg.scheduler == "cosine-restarts":
            self.scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(self.optimizer, T_0=cfg.t0, T_mult=cfg.t_mult)
        elif cfg.scheduler == "plateau":
            mode = "max" if cfg.plateau_metric == "val_acc" else "min"
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer, mode=mode, factor=cfg.plateau_factor, patience=cfg.plateau_patience
            )
        else:
            self.scheduler = None

    def start_finetune(self, lr: float, epochs: int, schedule: Literal["cosine", "constant"] = "cosine") -> None:
        """A fresh optimizer at ``lr`` over the current parameters; with ``"cosine"`` the rate decays to zero
        over ``epochs`` epochs, stepped after every batch (held at zero past the end)."""
        if lr <= 0 or epochs < 1:
            raise AmcpruneError(f"fine-tuning needs lr > 0 and at least one epoch (got lr {lr}, epochs {epochs})")
        self.finetune = {"lr": float(lr), "epochs": int(epochs), "schedule": schedule}
        self._new_optimizer(lr)
        if schedule == "constant":
            self.scheduler = None
            return
        if self.data is None:
            raise AmcpruneError("a cosine fine-tuning schedule needs the training data (its number of batches)")
        total = max(1, epochs * self.data.n_batches("train", self.config.batch_size))

        def factor(step: int, total: int = total) -> float:
            return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))

        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, factor)

    @property
    def per_batch_schedule(self) -> bool:
        return self.finetune is not None and self.scheduler is not None

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    # --- training -------------------------------------------------------------------------------
    def set_teacher(self, logits: torch.Tensor | None, temperature: float = 4.0, weight: float = 0.5) -> None:
        """Train with knowledge distillation from a teacher's outputs on the train split (``logits[i]`` for the
        split's frame ``i``, computed once: the teacher is fixed), or without (``None``)."""
        if logits is None or weight == 0:
            self.teacher = None
            return
        n = self.data.size("train") if self.data is not None else 0
        if logits.shape[0] != n:
            raise AmcpruneError(f"teacher outputs for {logits.shape[0]} frames but the train split has {n}")
        self.teacher = {"logits": logits, "temperature": float(temperature), "weight": float(weight)}

    def train_epoch(self, *, desc: str | None = None) -> dict[str, float]:
        """One pass over the train split; steps the scheduler once at the end of the epoch.

        Returns ``epoch`` (the number of finished epochs), ``loss``, ``acc``, ``samples``, ``samples_per_s``,
        ``seconds`` and ``lr`` (the rate used during this epoch). With ``scheduler="plateau"`` the val split
        is evaluated here to step the scheduler, and ``val_acc``/``val_loss`` are returned as well (train
        loss is used when there is no val split).
        """
        if self.data is None or self.data.size("train") == 0:
            raise AmcpruneError("no training frames (check the SNR filter and the split)")
        cfg = self.config
        model, opt = self.model, self.optimizer
        model.train()
        lr = self.lr
        n_batches = self.data.n_batches("train", cfg.batch_size)
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        seen = 0
        bar = tqdm(total=n_batches, desc=desc or f"epoch {self.epoch + 1}", unit="batch", disable=self.quiet, leave=False)
        t0 = time.perf_counter()
        last_post = t0
        teacher = self.teacher
        # The fused fake-quantization fast path for the training steps only (cfg.fast_quant): leaving the block
        # restores Brevitas' own code, which evaluation (also the plateau scheduler's, below) and export run.
        with fast_quant(model, enabled=cfg.fast_quant):
            for xb, yb, _, index in self.data.batches("train", cfg.batch_size, shuffle=True, generator=self.generator,
                                                      drop_singleton=True, with_index=True):
                opt.zero_grad(set_to_none=True)
                logits = _logits(model(xb))
                if teacher is None:
                    loss = F.cross_entropy(logits, yb)
                else:
                    loss = distillation_loss(logits, yb, teacher["logits"][index].to(logits.device),
                                             teacher["temperature"], teacher["weight"])
                if not torch.isfinite(loss):
                    # Stop before the step: nothing non-finite reaches the weights, and the last checkpoint written
                    # (after the previous epoch) stays the run's resume point.
                    bar.close()
                    raise AmcpruneError(
                        f"training diverged: the loss is {float(loss.detach())} at batch {seen // cfg.batch_size + 1} of epoch "
                        f"{self.epoch + 1}; stopped, the last checkpoint is kept (try a lower learning rate)"
                    )
                loss.backward()
                opt.step()
                if self.per_batch_schedule:
                    self.scheduler.step()
                b = yb.shape[0]
                with torch.no_grad():
                    loss_sum += loss.detach() * b
                    correct += (logits.detach().argmax(dim=1) == yb).sum()
                seen += b
                if not self.quiet:
                    bar.update(1)
                    now = time.perf_counter()
                    if now - last_post > 0.5:
                        last_post = now
                        bar.set_postfix(loss=f"{float(loss_sum) / seen:.4f}", acc=f"{int(correct) / seen:.4f}",
                                        sps=f"{seen / (now - t0):.0f}", refresh=False)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - t0
        bar.close()
        self.epoch += 1
        result: dict[str, float] = {
            "epoch": self.epoch,
            "loss": float(loss_sum) / max(seen, 1),
            "acc": int(correct) / max(seen, 1),
            "samples": seen,
            "samples_per_s": seen / seconds if seconds > 0 else float("nan"),
            "seconds": seconds,
            "lr": lr,
            "lr_end": self.lr,  # differs from lr when the schedule steps per batch
        }
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            if self.data.size("val"):
                val = self.evaluate("val")
                result["val_acc"], result["val_loss"] = val.accuracy, val.loss
                metric = val.accuracy if cfg.plateau_metric == "val_acc" else val.loss
            else:
                metric = result["acc"] if cfg.plateau_metric == "val_acc" else result["loss"]
            self.scheduler.step(metric)
        elif self.scheduler is not None and not self.per_batch_schedule:
            self.scheduler.step()
        return result

    def evaluate(self, split: str = "val", **kwargs: Any) -> EvalResult:
        """Accuracy figures of the current model on ``split`` ("train", "val" or "test")."""
        if self.data is None:
            raise AmcpruneError("no data to evaluate on")
        if split not in ("train", "val", "test"):
            raise AmcpruneError(f"unknown split {split!r} (train, val or test)")
        kwargs.setdefault("fast", self.config.fast_eval)
        return evaluate_model(self.model, self.data, split=split, batch_size=self.config.eval_batch_for(self.device),
                              **kwargs)

    # --- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "format": STATE_FORMAT,
            "epoch": self.epoch,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "torch_rng": torch.get_rng_state(),
            "batch_generator": self.generator.get_state(),
            "config": self.config.model_dump(mode="json"),
            "quant_stats": runtime_stats_state(self.model),
            "finetune": dict(self.finetune) if self.finetune is not None else None,
        }
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise AmcpruneError("not a trainer state (missing or unknown format)")
        # The scheduler's state only loads into a scheduler of the same kind: rebuild the schedule it came from.
        if state.get("finetune"):
            self.start_finetune(**state["finetune"])
        elif self.finetune is not None:
            self.finetune = None
            self.reset_optimizer()
        groups = state["optimizer"].get("param_groups", [])
        n_saved = sum(len(g["params"]) for g in groups)
        n_now = len(self.parameters())
        if n_saved != n_now:
            raise AmcpruneError(f"optimizer state holds {n_saved} parameters but the model has {n_now}")
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except (ValueError, KeyError) as exc:
            raise AmcpruneError(f"optimizer state does not fit the model ({exc})") from None
        if self.scheduler is not None and state.get("scheduler"):
            self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"].cpu())
        self.generator.set_state(state["batch_generator"].cpu())
        if "cuda_rng" in state and torch.cuda.is_available():
            try:
                torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
            except Exception:
                pass  # a different number of GPUs: only dropout-like randomness differs
        if state.get("quant_stats"):
            load_runtime_stats_state(self.model, state["quant_stats"])
        self.epoch = int(state["epoch"])
