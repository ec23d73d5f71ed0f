"""CLI for the train stage: ``amcprune train``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from amcprune.errors import AmcpruneError


def _build_spec(spec_path, arch, bits, weight_bits, act_bits, input_bits, filters, dense, float_model, data=None, stored=None):
    from amcprune.models import spec_from_yaml, validate_spec

    if spec_path:
        base = spec_from_yaml(spec_path).model_dump(mode="json")
    elif stored is not None:
        base = dict(stored)
    else:
        base = {"arch": arch or "vgg10"}
    if not spec_path and stored is None and data is not None:
        from amcprune.data.radioml import RadioMLFile

        base["num_classes"] = RadioMLFile(data).n_classes  # without a spec file the data decides the classes
    if spec_path and arch:
        base["arch"] = arch
    if float_model and any(v is not None for v in (bits, weight_bits, act_bits, input_bits)):
        raise AmcpruneError("--float trains the unquantized model, which has no bit widths: "
                            "drop --bits/--weight-bits/--act-bits/--input-bits, or drop --float")
    if bits is not None and (weight_bits is not None or act_bits is not None):
        raise AmcpruneError("--bits sets both weight and activation bits: do not combine it with --weight-bits/--act-bits")
    if bits is not None:
        base["weight_bits"] = base["act_bits"] = bits
    for key, value in (("weight_bits", weight_bits), ("act_bits", act_bits), ("input_bits", input_bits),
                       ("conv_filters", filters), ("dense_width", dense)):
        if value is not None:
            base[key] = value
    if float_model:
        base["quantized"] = False
    return validate_spec(base, "model options")


def _stored_section(run_dir: Path, key: str):
    import yaml

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
        arch: Optional[str] = typer.Option(None, "--arch", help="Architecture: vgg10 (default) or compact."),
        spec: Optional[Path] = typer.Option(None, "--spec", help="Model spec YAML (options below override it)."),
        config: Optional[Path] = typer.Option(None, "--config", help="Train config YAML (options below override it)."),
        bits: Optional[int] = typer.Option(None, "--bits", help="Weight and activation bits (the input keeps --input-bits, 8 by default)."),
        weight_bits: Optional[int] = typer.Option(None, "--weight-bits"),
        act_bits: Optional[int] = typer.Option(None, "--act-bits"),
        input_bits: Optional[int] = typer.Option(None, "--input-bits"),
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
        eval_test: bool = typer.Option(False, "--eval-test", help="Also record test accuracy after every epoch."),
        resume: bool = typer.Option(False, "--resume", help="Continue the run in --out where it stopped."),
        force: bool = typer.Option(False, "--force", help="Delete an existing run in --out and start over."),
        init_from: Optional[Path] = typer.Option(None, "--init-from", help="Start from an amcprune checkpoint or a 2021 challenge VGG10 state dict."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars; one line per epoch."),
    ) -> None:
        """Train a (quantized) model; writes config.yaml, metrics.jsonl and checkpoints/{last,best}.pt."""
        from amcprune.train.config import TrainConfig
        from amcprune.train.run import train_run

        if resume and force:
            raise AmcpruneError("--resume and --force exclude each other")
        if epochs is not None and epochs < 1:
            raise AmcpruneError(f"--epochs must be at least 1, got {epochs}")
        overrides = {
            "epochs": epochs, "batch_size": batch_size, "lr": lr, "scheduler": scheduler, "patience": patience,
            "seed": seed, "train_snr_min": train_snr_min, "train_snr_max": train_snr_max,
            "val_fraction": val_fraction, "device": device, "threads": threads,
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
            model_spec = _build_spec(spec, arch, bits, weight_bits, act_bits, input_bits, filters, dense, float_model, data)
            base = TrainConfig.from_yaml(config).model_dump() if config else {}
            base.update(overrides)
            train_cfg = TrainConfig.from_dict(base)
        train_run(train_cfg, model_spec, data, out, resume=resume, quiet=quiet, init_from=init_from, force=force)
