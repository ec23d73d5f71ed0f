"""CLI for the train stage: ``amcprune train``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
import yaml

from amcprune.errors import AmcpruneError


# The model options' help, shared by train, export and cost. The defaults are amcprune.models.spec's
# DEFAULT_BITS / DEFAULT_INPUT_BITS (the 2021 challenge baseline); tests check that the two agree. Importing the
# models package here would load Brevitas on every `amcprune` start, hence the literals.
MODEL_OPTION_HELP = {
    "bits": "Weight and activation bits of every layer (default 8); the input quantizer keeps --input-bits.",
    "weight_bits": "Weight bits of every layer (default 8); not together with --bits.",
    "act_bits": "Activation bits of every layer (default 8); not together with --bits.",
    "input_bits": "Bits of the input quantizer over [-2, 2] (default 8); --bits does not set it.",
}


def _build_spec(spec_path, arch, bits, weight_bits, act_bits, input_bits, filters, dense, float_model, data=None,
                stored=None, init_spec=None):
    """The run's ``ModelSpec``: the options over a base (a spec file, the resumed run's spec, the spec of an
    ``--init-from`` amcprune checkpoint, else the defaults with the data file's number of classes)."""
    # Here, not at the top: torch and Brevitas take seconds to load, and `amcprune --help` needs neither.
    from amcprune.data.radioml import RadioMLFile
    from amcprune.models import spec_from_options, spec_from_yaml

    options = dict(arch=arch, bits=bits, weight_bits=weight_bits, act_bits=act_bits, input_bits=input_bits,
                   float_model=float_model, filters=filters, dense=dense)
    if spec_path:
        base = spec_from_yaml(spec_path)
    elif stored is not None:
        base = dict(stored)
    elif init_spec is not None:
        base = init_spec
    else:
        base = {}
        if data is not None:
            base["num_classes"] = RadioMLFile(data).n_classes  # without a spec the data decides the classes
    return spec_from_options(base, source="model options", **options)


def _init_spec(init_from: Path | None):
    """The spec stored in an ``--init-from`` amcprune checkpoint (None for a bare state dict or no file)."""
    if init_from is None or not Path(init_from).is_file():
        return None
    # Here, not at the top: torch and Brevitas take seconds to load, and `amcprune --help` needs neither.
    from amcprune.utils.checkpoint import is_amcprune_checkpoint, load_checkpoint

    obj = load_checkpoint(init_from)
    if is_amcprune_checkpoint(obj) and isinstance(obj.get("spec"), dict):
        return obj["spec"]
    return None


def _stored_section(run_dir: Path, key: str):
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise AmcpruneError(f"{run_dir}: nothing to resume (no config.yaml); start it without --resume")
    data = yaml.safe_load(path.read_text()) or {}
    return data.get(key) or {}


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""

    @app.command("train")
    def train(
        data: Optional[Path] = typer.Option(None, "--data", help="RadioML-layout HDF5 file (stored in the run when resuming)."),
        out: Path = typer.Option(..., "--out", help="Run directory to create (or to continue with --resume)."),
        arch: Optional[str] = typer.Option(
            None, "--arch", help="Architecture: vgg10 (default), compact, or a model preset (compact-winner, "
            "compact-winner-stem; docs/architectures.md)."),
        spec: Optional[Path] = typer.Option(None, "--spec", help="Model spec YAML (options below override it)."),
        config: Optional[Path] = typer.Option(None, "--config", help="Train config YAML (options below override it)."),
        bits: Optional[int] = typer.Option(None, "--bits", help=MODEL_OPTION_HELP["bits"]),
        weight_bits: Optional[int] = typer.Option(None, "--weight-bits", help=MODEL_OPTION_HELP["weight_bits"]),
        act_bits: Optional[int] = typer.Option(None, "--act-bits", help=MODEL_OPTION_HELP["act_bits"]),
        input_bits: Optional[int] = typer.Option(None, "--input-bits", help=MODEL_OPTION_HELP["input_bits"]),
        filters: Optional[int] = typer.Option(None, "--filters", help="vgg10: filters of every conv layer (64)."),
        dense: Optional[int] = typer.Option(None, "--dense", help="vgg10: width of the hidden dense layers (128)."),
        float_model: bool = typer.Option(False, "--float", help="Train the float (unquantized) model."),
        epochs: Optional[int] = typer.Option(None, "--epochs"),
        batch_size: Optional[int] = typer.Option(None, "--batch-size", help="1024 in the challenge recipe; 256 is faster on a CPU."),
        lr: Optional[float] = typer.Option(None, "--lr"),
        scheduler: Optional[str] = typer.Option(None, "--scheduler", help="cosine-restarts | plateau | none"),
        patience: Optional[int] = typer.Option(None, "--patience", help="Early stopping after N epochs without a better val accuracy."),
        seed: Optional[int] = typer.Option(None, "--seed"),
        train_snr_min: Optional[int] = typer.Option(None, "--train-snr-min", help="Train (and validate) only on SNR >= this (dB); test stays whole."),
        train_snr_max: Optional[int] = typer.Option(None, "--train-snr-max"),
        val_fraction: Optional[float] = typer.Option(None, "--val-fraction", help="Share of the training frames held out for validation (0.1)."),
        device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N"),
        threads: Optional[int] = typer.Option(None, "--threads", help="torch.set_num_threads for CPU training."),
        fast_quant: Optional[bool] = typer.Option(None, "--fast-quant/--no-fast-quant", help="Fused fake-quantization fast path for training steps (default on; Brevitas' values and gradients; eval and export always run Brevitas)."),
        fast_eval: Optional[bool] = typer.Option(None, "--fast-eval/--no-fast-eval", help="Evaluate under Brevitas' quant_inference_mode (default on; the same logits bit for bit)."),
        eval_test: bool = typer.Option(False, "--eval-test", help="Also record test accuracy after every epoch."),
        resume: bool = typer.Option(False, "--resume", help="Continue the run in --out where it stopped."),
        force: bool = typer.Option(False, "--force", help="Delete an existing run in --out and start over."),
        init_from: Optional[Path] = typer.Option(None, "--init-from", help="Start from an amcprune checkpoint (its spec is the default model spec) or a 2021 challenge VGG10 state dict."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars; one line per epoch."),
    ) -> None:
        """Train a (quantized) model; writes config.yaml, metrics.jsonl and checkpoints/{last,best}.pt."""
        # Here, not at the top: torch and Brevitas take seconds to load, and `amcprune --help` needs neither.
        from amcprune.train.config import TrainConfig
        from amcprune.train.run import train_run

        if resume and force:
            raise AmcpruneError("--resume and --force exclude each other")
        if epochs is not None and epochs < 1:
            raise AmcpruneError(f"--epochs must be at least 1, got {epochs}")
        overrides = {
            "epochs": epochs, "batch_size": batch_size, "lr": lr, "scheduler": scheduler, "patience": patience,
            "seed": seed, "train_snr_min": train_snr_min, "train_snr_max": train_snr_max,
            "val_fraction": val_fraction, "device": device, "threads": threads, "fast_quant": fast_quant,
            "fast_eval": fast_eval,
        }
        overrides = {k: v for k, v in overrides.items() if v is not None}
        if eval_test:
            overrides["eval_test_each_epoch"] = True
        spec_given = any(v is not None for v in (spec, arch, bits, weight_bits, act_bits, input_bits, filters, dense)) or float_model

        if resume:
            model_spec = None
            if spec_given:
                stored = _stored_section(out, "model")
                model_spec = _build_spec(spec, arch, bits, weight_bits, act_bits, input_bits, filters, dense, float_model, stored=stored)
            train_cfg = None
            if config is not None or overrides:
                stored = TrainConfig.from_dict(_stored_section(out, "train"))
                base = TrainConfig.from_yaml(config).model_dump() if config else stored.model_dump()
                base.update(overrides)
                train_cfg = TrainConfig.from_dict(base)
            if init_from is not None:
                raise AmcpruneError("--init-from applies to a new run; a resumed run continues from its own checkpoint")
        else:
            if data is None:
                raise AmcpruneError("--data is required")
            model_spec = _build_spec(spec, arch, bits, weight_bits, act_bits, input_bits, filters, dense, float_model, data,
                                     init_spec=_init_spec(init_from))
            base = TrainConfig.from_yaml(config).model_dump() if config else {}
            base.update(overrides)
            train_cfg = TrainConfig.from_dict(base)
        train_run(train_cfg, model_spec, data, out, resume=resume, quiet=quiet, init_from=init_from, force=force)
