"""The trial pipeline on tiny synthetic data: every file the report reads, the report, and resuming by stage."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from amcprune.errors import AmcpruneError
from amcprune.pipeline import STAGES, TrialConfig, read_trial, run_trial
from amcprune.pipeline.config import check_path, set_path
from amcprune.pipeline.presets import DEMO_PRESETS


def tiny_trial(data_path: Path, **overrides) -> dict:
    """The demo's `tiny` preset (seconds on 2 cores) on an existing file."""
    cfg = copy.deepcopy(DEMO_PRESETS["tiny"])
    cfg.update(name="t", data={"path": str(data_path)})
    cfg.update(overrides)
    return cfg


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory) -> Path:
    from amcprune.data.synth import synth_config, write_synthetic

    return write_synthetic(synth_config("tiny"), tmp_path_factory.mktemp("data") / "tiny.h5", quiet=True)


@pytest.fixture(scope="module")
def finished_trial(tiny_file, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("trial") / "t"
    result = run_trial(tiny_trial(tiny_file), out, quiet=True)
    return out, result


def test_run_trial_writes_everything_the_report_reads(finished_trial):
    out, result = finished_trial
    prune = out / "prune"
    for rel in ("eval_dense/eval.json", "eval_final/eval.json", "cost_dense.json", "cost_final.json", "final.pt",
                "final.onnx", "summary.json", "records.jsonl", "verify.json"):
        assert (prune / rel).is_file(), rel
    assert (out / "report.html").is_file() and (out / "report.md").is_file()
    assert "Figures are in `report.html`" in (out / "report.md").read_text()
    state = read_trial(out)
    assert state["status"] == "done"
    assert [s for s in STAGES if state["stages"][s]["status"] == "done"] == list(STAGES)
    cost = json.loads((prune / "cost_final.json").read_text())
    assert result["score"] == pytest.approx(cost["score"])
    assert result["bops"] == cost["bops"] and result["weight_bits"] == cost["weight_bits"]
    assert 0 <= result["test_accuracy"] <= 1 and 0 <= result["dense_test_accuracy"] <= 1
    assert result["compression"] == pytest.approx(2.0, rel=0.05)  # one prune of p=0.5
    assert result["sparsity"] == pytest.approx(0.5, abs=0.03)
    assert result["bits"] == 4 and result["method"] == "fmp" and result["arch"] == "vgg10"
    assert json.loads((prune / "verify.json").read_text())["passed"] is True


def test_rerun_skips_finished_stages(finished_trial, tiny_file, monkeypatch):
    out, result = finished_trial

    def boom(*a, **k):
        raise AssertionError("a finished stage ran again")

    monkeypatch.setattr("amcprune.pipeline.trial.train_run", boom)
    monkeypatch.setattr("amcprune.pipeline.trial.prune_run", boom)
    assert run_trial(tiny_trial(tiny_file), out, quiet=True) == result

    # An interrupted last stage is redone, and only it.
    state = read_trial(out)
    state["status"] = "interrupted"
    state["stage"] = "report"
    state["stages"]["report"]["status"] = "running"
    (out / "trial.json").write_text(json.dumps(state))
    (out / "report.html").unlink()
    again = run_trial(tiny_trial(tiny_file), out, quiet=True)
    assert (out / "report.html").is_file()
    assert again["score"] == result["score"]
    assert read_trial(out)["status"] == "done"


def test_interrupted_training_resumes_with_train_resume(tiny_file, tmp_path, monkeypatch):
    """A trial killed during training continues it with train_run(resume=True), then runs the rest."""
    import amcprune.pipeline.trial as trial_mod  # the trial calls train_run by its own name

    out = tmp_path / "t"
    cfg = tiny_trial(tiny_file, train={"epochs": 1, "batch_size": 128, "val_fraction": 0.2, "eval_batch_size": 512})
    calls = []
    real = trial_mod.train_run

    def stop_after_training(*args, **kwargs):
        calls.append(kwargs.get("resume"))
        real(*args, **kwargs)
        raise KeyboardInterrupt  # killed right after the epoch's checkpoint

    monkeypatch.setattr(trial_mod, "train_run", stop_after_training)
    with pytest.raises(KeyboardInterrupt):
        run_trial(cfg, out, quiet=True)
    state = read_trial(out)
    assert state["status"] == "interrupted" and state["stages"]["train"]["status"] == "interrupted"
    assert (out / "train" / "checkpoints" / "last.pt").is_file()

    def recording(*args, **kwargs):
        calls.append(kwargs.get("resume"))
        return real(*args, **kwargs)

    monkeypatch.setattr(trial_mod, "train_run", recording)
    monkeypatch.setattr("amcprune.pipeline.trial.prune_run", _fail_prune)
    with pytest.raises(AmcpruneError, match="prune stopped for the test"):
        run_trial(cfg, out, quiet=True)
    assert calls == [False, True]
    state = read_trial(out)
    assert state["status"] == "failed" and state["error"] == "prune stopped for the test"
    assert state["stages"]["train"]["status"] == "done" and state["stages"]["prune"]["status"] == "failed"
    assert "prune stopped for the test" in (out / "error.txt").read_text()


def _fail_prune(*args, **kwargs):
    raise AmcpruneError("prune stopped for the test")


def test_other_config_in_the_same_directory_is_refused(finished_trial, tiny_file):
    out, _ = finished_trial
    with pytest.raises(AmcpruneError, match="different config"):
        run_trial(tiny_trial(tiny_file, seed=1), out, quiet=True)


def test_missing_data_file_fails_the_trial(tmp_path):
    out = tmp_path / "t"
    with pytest.raises(AmcpruneError, match="no such data file"):
        run_trial(tiny_trial(tmp_path / "missing.h5"), out, quiet=True)
    assert read_trial(out)["status"] == "failed"


def test_trial_config_validation():
    with pytest.raises(AmcpruneError, match="weight_bits must be in 2..32"):
        TrialConfig.from_dict(tiny_trial(Path("x.h5"), bits=1))
    with pytest.raises(AmcpruneError, match="data"):
        TrialConfig.from_dict({"bits": 4})
    with pytest.raises(AmcpruneError, match="unknown synthetic preset"):
        TrialConfig.from_dict({"data": {"synth": "huge"}})
    cfg = TrialConfig.from_dict({"data": {"synth": "tiny"}, "model": {"weight_bits": 6, "act_bits": 6}})
    assert cfg.model_spec().weight_bits == 6  # the section counts when the shortcut is unset
    assert cfg.prune_config().max_drop == 0.02 and [s.kind for s in cfg.prune_config().stages] == ["fmp"]
    cfg = TrialConfig.from_dict(set_path({"data": {"synth": "tiny"}}, "train.lr", 0.005))
    assert cfg.train_config().lr == 0.005
    check_path("prune.p")
    check_path("prune.ladder")  # a stage kind's field, for a trial that names a recipe
    cfg = TrialConfig.from_dict({"data": {"synth": "tiny"}, "recipe": "fmp-bits", "prune": {"p": 0.3, "ladder": [4, 3]}})
    fmp, bits = cfg.prune_config().stages
    assert (fmp.p, bits.ladder, cfg.prune_config().max_drop) == (0.3, [4, 3], 0.02)
    assert cfg.label()["method"] == "fmp-bits"
    with pytest.raises(AmcpruneError, match="recipe names the stages"):
        TrialConfig.from_dict({"data": {"synth": "tiny"}, "recipe": "fmp", "method": "imp"})
    with pytest.raises(AmcpruneError, match="no stage .gmp. has the setting.s. p"):
        TrialConfig.from_dict({"data": {"synth": "tiny"}, "recipe": "gmp", "prune": {"p": 0.3}})
    with pytest.raises(AmcpruneError, match="unknown train field"):
        check_path("train.nope")
    with pytest.raises(AmcpruneError, match="unknown trial field"):
        check_path("nope")


def test_force_deletes_only_files_amcprune_wrote(tiny_file, tmp_path, monkeypatch):
    """--force once rmtree'd whole stage directories; now only what the manifests list goes."""
    out = tmp_path / "t"
    run_trial(tiny_trial(tiny_file), out, quiet=True)
    mine = [out / "train" / "my-notes.txt", out / "prune" / "eval_final" / "my-plot.png", out / "data" / "mine.h5"]
    for path in mine:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("the user's")
    monkeypatch.setattr("amcprune.pipeline.trial.train_run", _fail_train)
    with pytest.raises(AmcpruneError, match="train stopped for the test"):
        run_trial(tiny_trial(tiny_file, seed=1), out, quiet=True, force=True)
    assert all(path.read_text() == "the user's" for path in mine)
    for gone in ("report.html", "prune/final.pt", "prune/summary.json", "prune/eval_final/eval.json",
                 "train/checkpoints/best.pt", "prune/cost_final.json"):
        assert not (out / gone).exists(), gone
    state = read_trial(out)
    assert state["status"] == "failed" and state["config"]["seed"] == 1
    assert state["stages"]["data"]["status"] == "done" and state["stages"]["train"]["status"] == "failed"


def _fail_train(*args, **kwargs):
    raise AmcpruneError("train stopped for the test")


def test_ensure_synthetic_replaces_only_files_amcprune_wrote(tiny_file, tmp_path):
    import shutil

    from amcprune.data.synth import synth_config
    from amcprune.pipeline import ensure_synthetic
    from amcprune.pipeline.trial import synthetic_matches

    theirs = tmp_path / "recording.h5"
    theirs.write_bytes(b"someone's recording")
    with pytest.raises(AmcpruneError, match="not a synthetic data file amcprune wrote; refusing to replace it") as info:
        ensure_synthetic(synth_config("tiny"), theirs, quiet=True)
    assert "\n" not in str(info.value) and theirs.read_bytes() == b"someone's recording"

    # A synthetic file of another config is amcprune's own: regenerated.
    ours = tmp_path / "synth.h5"
    shutil.copy(tiny_file, ours)
    other = synth_config("tiny", seed=7)
    assert not synthetic_matches(ours, other)
    ensure_synthetic(other, ours, quiet=True)
    assert synthetic_matches(ours, other)
