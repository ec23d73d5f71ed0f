"""The train stage: configuration, in-memory data, the training loop, the resumable train job, evaluation.

Public API::

    TrainConfig                        pydantic config (YAML: TrainConfig.from_yaml)
    InMemoryData.from_file / from_arrays, .batches(split, batch_size, shuffle=, generator=)
    Trainer(model, config, data)       .reset_optimizer(), .train_epoch(), .evaluate(split), .state_dict()
    train_run(config, spec, data_path, run_dir, resume=False, quiet=False, init_from=None, force=False)
    evaluate_model(model, data_or_frames, labels, snrs, class_names) -> EvalResult; write_eval(result, out_dir)
    evaluate_checkpoint(path, data_path, split="test", out_dir=None, ...)
"""

from amcprune.train.config import TrainConfig, resolve_device
from amcprune.train.data import InMemoryData, Split, load_data
from amcprune.train.evaluate import EvalResult, evaluate_checkpoint, evaluate_model, load_trained, write_eval
from amcprune.train.run import train_run
from amcprune.train.trainer import Trainer, load_runtime_stats_state, runtime_stats_state

__all__ = [
    "EvalResult",
    "InMemoryData",
    "Split",
    "TrainConfig",
    "Trainer",
    "evaluate_checkpoint",
    "evaluate_model",
    "load_data",
    "load_runtime_stats_state",
    "load_trained",
    "resolve_device",
    "runtime_stats_state",
    "train_run",
    "write_eval",
]
