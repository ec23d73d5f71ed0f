"""File names of every kind of run directory amcprune writes, in one place.

Producers (train, prune, evaluate, cost, the trial pipeline) write under these names and readers (the report,
the pipeline's result row, the sweep) read under the same ones. This module imports nothing of amcprune, so
every stage can import it.
"""

from __future__ import annotations

# --- shared by train and prune runs ---------------------------------------------------------------
CONFIG_FILE = "config.yaml"  # what the run was started with (resume reads it back)
SUMMARY_FILE = "summary.json"  # written when the run ends

# --- train run (amcprune.train.run.train_run) -----------------------------------------------------
METRICS_FILE = "metrics.jsonl"  # one TrainMetrics line per finished epoch
CHECKPOINTS_DIR = "checkpoints"
BEST_CHECKPOINT = f"{CHECKPOINTS_DIR}/best.pt"
LAST_CHECKPOINT = f"{CHECKPOINTS_DIR}/last.pt"
TRAIN_RUN_FILES = (CONFIG_FILE, METRICS_FILE, CHECKPOINTS_DIR, SUMMARY_FILE)

# --- prune run (amcprune.prune.engine.prune_run) --------------------------------------------------
STATE_FILE = "state.pt"  # resume point
RECORDS_FILE = "records.jsonl"  # one PruneRecord per iteration end, rewind and stage end
RECORDS_CSV = "records.csv"  # the same as a table
EPOCHS_FILE = "epochs.jsonl"  # one PruneEpoch line per training epoch
ITERATIONS_DIR = "iterations"  # rewind points and stage starts (*.pt)
WORK_DIR = "work"  # imp-converge's round-best model
FINAL_CHECKPOINT = "final.pt"
FINAL_ONNX = "final.onnx"
PRUNE_RUN_FILES = (CONFIG_FILE, STATE_FILE, RECORDS_FILE, RECORDS_CSV, EPOCHS_FILE, ITERATIONS_DIR, WORK_DIR,
                   FINAL_CHECKPOINT, FINAL_ONNX, SUMMARY_FILE)

# --- what evaluate / cost / export add to a run directory -----------------------------------------
EVAL_FILE = "eval.json"  # amcprune.train.evaluate.write_eval (EvalResult.to_json), in a directory of its own
EVAL_DENSE_DIR = "eval_dense"  # the dense model's evaluation (the trial writes it)
EVAL_FINAL_DIR = "eval_final"  # the final model's evaluation (the trial writes it)
EVAL_DIR = "eval"  # `amcprune evaluate MODEL --out RUN/eval`: the run's own (final) model
COST_DENSE_FILE = "cost_dense.json"  # CostResult.to_dict() of the dense model
COST_FINAL_FILE = "cost_final.json"  # CostResult.to_dict() of the final model
COST_FILE = "cost.json"  # `amcprune cost --json > RUN/cost.json`: the run's own model
VERIFY_FILE = "verify.json"  # VerifyResult.to_dict() of final.onnx against PyTorch

# --- report (amcprune.report.write_report) --------------------------------------------------------
REPORT_HTML = "report.html"
REPORT_MD = "report.md"

# --- trial directory (amcprune.pipeline.trial.run_trial) ------------------------------------------
TRIAL_FILE = "trial.json"  # TrialState, rewritten after every change
TRIAL_ERROR_FILE = "error.txt"  # traceback of the last failure
TRIAL_LOG_FILE = "trial.log"  # the trial's output when a sweep worker runs it
TRIAL_TRAIN_DIR = "train"  # a train run directory
TRIAL_PRUNE_DIR = "prune"  # a prune run directory, plus the eval / cost / verify files above
TRIAL_DATA_DIR = "data"  # synthetic data generated for this trial alone
TRIAL_FILES = (TRIAL_FILE, TRIAL_ERROR_FILE, TRIAL_LOG_FILE, TRIAL_TRAIN_DIR, TRIAL_PRUNE_DIR, REPORT_HTML,
               REPORT_MD, TRIAL_DATA_DIR)

__all__ = [name for name in dict(globals()) if name.isupper()]
