"""Sweeps: grid expansion, the table and Pareto plot, local worker processes, Ray, resuming."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from amcprune.errors import AmcpruneError
from amcprune.pipeline import read_trial
from amcprune.sweep import collect_rows, expand, pareto_front, run_sweep, sweep_from_dict, trial_name, write_table

BASE = {
    "data": {"synth": "tiny", "synth_overrides": {"classes": ["BPSK", "QPSK", "8PSK", "16QAM"]}},
    "arch": "vgg10",
    "device": "cpu",
    "model": {"conv_filters": 4, "dense_width": 8},
    "train": {"epochs": 1, "batch_size": 64, "val_fraction": 0.2, "eval_batch_size": 512},
    "prune": {"max_drop": 0.5, "p": 0.5, "p_min": 0.25, "max_epochs": 1, "patience": 1, "max_iterations": 1,
              "cost": False},
    "verify_frames": 4,
    "eval_plots": False,
}


def sweep_dict(**axes) -> dict:
    return {"name": "t", "base": BASE, **axes}


def test_expand_names_and_invalid_trials(tmp_path):
    cfg = sweep_from_dict(sweep_dict(bits=[4, 1], methods=["fmp", "imp"], grid={"train.lr": [0.01]}))
    jobs = expand(cfg, tmp_path)
    assert [j.name for j in jobs] == [
        "bits-4_method-fmp_lr-0.01", "bits-4_method-imp_lr-0.01", "bits-1_method-fmp_lr-0.01",
        "bits-1_method-imp_lr-0.01",
    ]
    assert [j.config is None for j in jobs] == [False, False, True, True]
    assert "weight_bits must be in 2..32" in jobs[2].error
    data = {j.config["data"]["path"] for j in jobs if j.config}
    assert len(data) == 1 and Path(data.pop()).parent == (tmp_path / "data").resolve()  # shared, generated once
    assert jobs[0].resources == {"num_cpus": 1.0, "num_gpus": 0.0}
    assert trial_name({}) == "trial"
    assert trial_name({"method": ["fmp", "imp"], "prune.p": 0.125}) == "method-fmp+imp_p-0.125"


@pytest.mark.parametrize("bad, match", [
    ({"base": BASE, "bitz": [4]}, "bitz: Extra inputs"),
    ({"base": BASE, "grid": {"train.lrr": [1]}}, "unknown train field 'lrr'"),
    ({"base": {"model": {}}}, "base.data is missing"),
    ({"base": {**BASE, "bits": "x"}}, "base: bits"),
    ({"base": BASE, "workers": 0}, "workers"),
])
def test_bad_sweep_configs(bad, match):
    with pytest.raises(AmcpruneError, match=match):
        sweep_from_dict(bad)


def test_pareto_front_and_table(tmp_path):
    rows = [
        {"trial": "a", "status": "done", "bits": 4, "method": "fmp", "score": 0.05, "test_accuracy": 0.60, "threshold": 0.55},
        {"trial": "b", "status": "done", "bits": 4, "method": "imp", "score": 0.04, "test_accuracy": 0.58, "threshold": 0.55},
        {"trial": "c", "status": "done", "bits": 6, "method": "fmp", "score": 0.06, "test_accuracy": 0.59, "threshold": 0.55},
        {"trial": "d", "status": "failed", "bits": 1, "method": "fmp", "error": "bits | bad"},
    ]
    assert pareto_front(rows) == [1, 0]
    csv_path, md_path, plot = write_table(rows, tmp_path, target=0.56)
    table = list(csv.DictReader(csv_path.open()))
    assert [r["pareto"] for r in table] == ["True", "True", "False", ""]
    assert table[3]["error"] == "bits | bad"
    md = md_path.read_text()
    assert "| Bits | Method | Compression (measured) | BOPs | Weight bits | Score | Accuracy | Test accuracy" in md
    assert "bits \\| bad" in md and "pareto.png" in md
    assert plot.stat().st_size > 10_000


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "local"
    cfg = sweep_from_dict(sweep_dict(bits=[4, 1], methods=["fmp", "imp"]))
    return out, cfg, run_sweep(cfg, out, workers=2, executor="local", quiet=True)


def test_local_sweep_runs_records_failures_and_writes_outputs(local_sweep):
    out, _, res = local_sweep
    rows = {r["trial"]: r for r in res["rows"]}
    assert [rows[n]["status"] for n in ("bits-4_method-fmp", "bits-4_method-imp")] == ["done", "done"]
    for n in ("bits-1_method-fmp", "bits-1_method-imp"):
        assert rows[n]["status"] == "failed" and "weight_bits" in rows[n]["error"]
        assert read_trial(out / "trials" / n)["status"] == "failed"
    for n in ("bits-4_method-fmp", "bits-4_method-imp"):
        r = rows[n]
        assert r["score"] > 0 and r["compression"] == pytest.approx(2.0, rel=0.05) and r["method"] in ("fmp", "imp")
        assert (out / "trials" / n / "report.html").is_file()
        assert "=== " in (out / "trials" / n / "trial.log").read_text()
    assert (out / "results.csv").is_file() and (out / "pareto.png").is_file()
    md = (out / "results.md").read_text()
    assert "4 trials: 2 done, 2 failed" in md
    assert len(list((out / "data").glob("*.h5"))) == 1
    assert collect_rows(out, [r["trial"] for r in res["rows"]])[0]["score"] == rows["bits-4_method-fmp"]["score"]


def test_rerun_skips_finished_trials(local_sweep, monkeypatch):
    out, cfg, first = local_sweep

    def boom(*a, **k):
        raise AssertionError("no trial should run again")

    monkeypatch.setattr("amcprune.sweep.run.run_local", boom)
    res = run_sweep(cfg, out, workers=2, executor="local", quiet=True)
    assert res["ran"] == 0 and res["skipped"] == 2 and res["failed"] == 2
    assert [r.get("score") for r in res["rows"]] == [r.get("score") for r in first["rows"]]


def test_failing_trial_in_a_worker_is_recorded(tmp_path):
    from amcprune.sweep.executors import run_job

    cfg = {**BASE, "data": {"path": str(tmp_path / "missing.h5")}}
    row = run_job("x", cfg, str(tmp_path / "x"), {"bits": 4})
    assert row["status"] == "failed" and "no such data file" in row["error"]
    state = read_trial(tmp_path / "x")
    assert state["status"] == "failed" and "no such data file" in state["error"]
    assert "Traceback" in (tmp_path / "x" / "error.txt").read_text()


def test_ray_executor(tmp_path):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        cfg = sweep_from_dict(sweep_dict(bits=[4], methods=["fmp", "imp"], resources={"num_cpus": 1}))
        res = run_sweep(cfg, tmp_path / "ray", executor="ray", quiet=True)
        assert [r["status"] for r in res["rows"]] == ["done", "done"]
        assert all(r["score"] > 0 for r in res["rows"])
        assert (tmp_path / "ray" / "pareto.png").is_file()
        assert ray.is_initialized()  # a Ray the caller started is left running
    finally:
        ray.shutdown()
