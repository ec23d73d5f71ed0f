"""Training configuration (pydantic v2, loadable from YAML).

The defaults are the 2021 challenge recipe: Adam, lr 0.01, CosineAnnealingWarmRestarts(T_0=5) stepped once
per epoch, 20 epochs, batch 1024, seed 0. On a CPU a batch of 256 is usually the better choice.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field, model_validator

from amcprune.errors import AmcpruneError
from amcprune.utils.config import YamlConfig


class TrainConfig(YamlConfig):
    """Everything that decides how a model is trained (but not which model: that is the ``ModelSpec``)."""

    config_kind: ClassVar[str] = "train config"
    yaml_section: ClassVar[str | None] = "train"  # a run's config.yaml holds it under `train:`

    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = Field(0.01, gt=0)
    momentum: float = Field(0.9, ge=0, description="SGD only")
    weight_decay: float = Field(0.0, ge=0)
    scheduler: Literal["cosine-restarts", "plateau", "none"] = "cosine-restarts"
    t0: int = Field(5, ge=1, description="cosine-restarts: epochs of the first cycle (T_0)")
    t_mult: int = Field(1, ge=1, description="cosine-restarts: cycle length multiplier (T_mult)")
    plateau_metric: Literal["val_acc", "val_loss"] = "val_acc"
    plateau_factor: float = Field(0.1, gt=0, lt=1)
    plateau_patience: int = Field(2, ge=0)
    epochs: int = Field(20, ge=0)
    batch_size: int = Field(1024, ge=1)
    eval_batch_size: int | None = Field(
        None, ge=1, description="frames per evaluation batch; None: 256 on a CPU, 4096 on a GPU (on a CPU, batches "
        "of 256 stay in cache: 0.43x the time of batches of 2048, docs/benchmarks.md)")
    patience: int | None = Field(None, ge=1, description="early stopping: epochs without a better val accuracy")
    seed: int = 0
    train_snr_min: int | None = None
    train_snr_max: int | None = None
    val_fraction: float = Field(0.1, ge=0, lt=1)
    eval_test_each_epoch: bool = Field(False, description="also measure test accuracy after every epoch")
    device: str = "auto"
    threads: int | None = Field(None, ge=1, description="torch.set_num_threads; None leaves torch's default")
    fast_quant: bool = Field(
        True, description="training steps use the fused fake-quantization fast path (amcprune.train.fastquant): "
        "Brevitas' forward values and gradients, several times less work; evaluation and export always run Brevitas")
    fast_eval: bool = Field(
        True, description="evaluation runs under Brevitas' quant_inference_mode with cached quantized weights "
        "(amcprune.train.fasteval): the same logits bit for bit, several times faster on a CPU")
    quiet: bool = False

    def eval_batch_for(self, device: str | torch.device) -> int:
        """``eval_batch_size``, or the default for ``device``'s type."""
        return self.eval_batch_size if self.eval_batch_size is not None else default_eval_batch_size(device)

    @model_validator(mode="after")
    def _check(self) -> "TrainConfig":
        if self.train_snr_min is not None and self.train_snr_max is not None and self.train_snr_min > self.train_snr_max:
            raise ValueError(f"train_snr_min ({self.train_snr_min}) > train_snr_max ({self.train_snr_max})")
        return self



def default_eval_batch_size(device: str | torch.device) -> int:
    """Frames per evaluation batch when none is given: 256 on a CPU (the activations of a batch stay in cache;
    measured on the demo's pruned VGG10: 0.43x the time of batches of 2048), 4096 on a GPU."""
    return 256 if torch.device(device).type == "cpu" else 4096


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"`` means CUDA when available, else CPU; an unavailable CUDA device is a user error."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise AmcpruneError(f"unknown device {device!r} ({exc})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise AmcpruneError(f"device {device!r} requested but CUDA is not available (use --device cpu or auto)")
    return dev
