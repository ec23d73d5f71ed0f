"""amcprune.outputs against the real producers: every key a tiny train, prune, evaluate and cost run writes
is a field of its record, and a malformed file is one error line naming the file and the field."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from amcprune import outputs
from amcprune.errors import AmcpruneError
from amcprune.outputs import (
    CostFile,
    EvalFile,
    PruneRecord,
    read_epochs,
    read_metrics,
    read_prune_summary,
    read_records,
    read_train_summary,
    scan_jsonl,
)

TESTS = Path(__file__).resolve().parents[1]


def _helpers(name: str, folder: str):
    spec = importlib.util.spec_from_file_location(f"outputs_{name}", TESTS / folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


prune_helpers = _helpers("prune_helpers", "prune")
train_helpers = _helpers("train_helpers", "train")


@pytest.fixture(scope="module")
def prune_dir(tmp_path_factory) -> Path:
    from amcprune.prune.config import PruneConfig
    from amcprune.prune.engine import prune_run

    root = tmp_path_factory.mktemp("prune")
    spec = prune_helpers.tiny_spec(conv_filters=8, dense_width=16)
    data = prune_helpers.tiny_data(spec, n_train=32)
    ckpt = prune_helpers.trained_checkpoint(root / "start.pt", spec, data, epochs=3)
    # fmp with a failing first prune: met, failed, rewind and stop records all appear.
    cfg = PruneConfig(methods="fmp", criteria="global", p=0.9, p_min=0.2, max_drop=0.05, max_epochs=1, patience=None,
                      cost=False, export=False)
    prune_run(cfg, ckpt, None, root / "run", data=data, quiet=True)
    return root / "run"


def test_a_prune_run_matches_its_records(prune_dir):
    records = read_records(prune_dir)
    assert {r.event for r in records} >= {"met", "stop"}
    assert [r.record for r in records] == list(range(len(records)))
    assert records[0].ps == [] and records[0].criterion_n
    assert read_epochs(prune_dir)
    summary = read_prune_summary(prune_dir)
    assert summary.records == len(records) and summary.final.stats.weights == records[0].weights
    assert summary.stages[0].checkpoint.startswith(outputs.ITERATIONS_DIR + "/")
    for name in outputs.PRUNE_RUN_FILES:
        if name not in (outputs.WORK_DIR, outputs.FINAL_ONNX):  # imp-converge only; export: false
            assert (prune_dir / name).exists(), name


def test_the_engine_writes_the_files_named_here():
    from amcprune.prune import engine
    from amcprune.train import run

    assert tuple(getattr(engine, "RUN_FILES", outputs.PRUNE_RUN_FILES)) == outputs.PRUNE_RUN_FILES
    assert run.RUN_FILES == outputs.TRAIN_RUN_FILES


def test_a_train_run_matches_its_records(tmp_path):
    from amcprune.train.run import train_run

    h5 = train_helpers.make_tiny_h5(tmp_path / "t.h5", fpp=10)
    train_run(train_helpers.tiny_config(epochs=2, eval_test_each_epoch=True), train_helpers.tiny_spec(), h5,
              tmp_path / "run", quiet=True)
    metrics = read_metrics(tmp_path / "run")
    assert [m.epoch for m in metrics] == [1, 2] and metrics[0].val_acc is not None and metrics[0].test_acc is not None
    summary = read_train_summary(tmp_path / "run")
    assert summary.last == metrics[-1] and summary.test_acc_per_snr.keys() == {"0", "10"}


def test_eval_and_cost_files_match():
    from amcprune.cost import model_cost
    from amcprune.models import ModelSpec, build_model
    from amcprune.train.evaluate import EvalResult

    counts = np.zeros((3, 4, 4), dtype=np.int64)
    counts[:, np.arange(4), np.arange(4)] = 5
    counts[1, 0, 1] = 2
    counts[2, 3] = 0  # a class without frames at one SNR: its accuracy cell is None
    ev = EvalResult(["a", "b", "c", "d"], [-10, 0, 10], counts, loss=1.0, split="test", confusion_snrs=[10])
    parsed = EvalFile.model_validate(json.loads(json.dumps(ev.to_json())))
    assert parsed.acc_class_snr[3][2] is None and parsed.n == int(counts.sum())

    torch.manual_seed(0)
    cost = model_cost(build_model(ModelSpec(arch="vgg10", conv_filters=4, dense_width=8))).to_dict()
    parsed = CostFile.model_validate(json.loads(json.dumps({**cost, "model": "m.pt"})))  # as `amcprune cost --json`
    assert len(parsed.per_layer) == 10 and parsed.baseline.bops > 0


def test_a_malformed_file_is_one_line_naming_the_field(tmp_path, prune_dir):
    summary = json.loads((prune_dir / outputs.SUMMARY_FILE).read_text())
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / outputs.SUMMARY_FILE).write_text(json.dumps({**summary, "dense_acc": "0.9"}))
    with pytest.raises(AmcpruneError) as info:
        read_prune_summary(bad)
    assert str(info.value) == f"{bad / outputs.SUMMARY_FILE}: field dense_acc: Input should be a valid number (got '0.9')"
    (bad / outputs.SUMMARY_FILE).write_text(json.dumps({**summary, "dense": {}}))
    with pytest.raises(AmcpruneError, match="field dense: not a field amcprune writes$"):
        read_prune_summary(bad)
    (bad / outputs.SUMMARY_FILE).write_text("{")
    with pytest.raises(AmcpruneError, match="summary.json: not readable JSON"):
        read_prune_summary(bad)

    lines = (prune_dir / outputs.RECORDS_FILE).read_text().splitlines()
    rec = json.loads(lines[0])
    del rec["met"]
    (bad / outputs.RECORDS_FILE).write_text("\n".join([lines[0], json.dumps(rec), lines[0], "{\"torn"]))
    with pytest.raises(AmcpruneError, match=r"records.jsonl line 2: field met: Field required$") as info:
        read_records(bad)
    assert "\n" not in str(info.value)
    good, problems = scan_jsonl(bad / outputs.RECORDS_FILE, PruneRecord)
    assert len(good) == 2 and len(problems) == 1  # the torn last line is not a problem
    assert read_records(tmp_path / "nowhere") == []


def test_outputs_imports_no_stage():
    code = ("import sys, amcprune.outputs; "
            "print(sorted(m for m in sys.modules if m.startswith('amcprune.') and not m.startswith('amcprune.outputs')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['amcprune.errors']"
