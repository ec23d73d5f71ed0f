import json

import pytest

from amcprune.errors import AmcpruneError
from amcprune.report import collect_report_data
from amcprune import outputs as C
from amcprune.report.collect import parse_cost, parse_eval
from report_fixtures import fake_cost, make_prune_run, make_train_run


def test_prune_run_is_read_completely(prune_run):
    data = collect_report_data(prune_run)
    assert data.kind == "prune"
    assert data.data_fingerprint == "3f2a9c1be07d44aa0c8e"
    assert data.data_path == "/data/synth-tiny.h5"
    assert data.source == "runs/train/checkpoints/best.pt"
    assert data.judge_on == "val"
    assert data.config["model"]["arch"] == "vgg10"
    dense, final = data.dense, data.final
    assert dense is not None and final is not None
    assert dense.criterion_acc == pytest.approx(0.6) and final.criterion_acc == pytest.approx(0.571)
    assert 0 < final.accuracy < dense.accuracy < 1
    assert final.bops < dense.bops and final.score < dense.score  # dense cost from cost_dense.json
    assert final.nonzero_weights < dense.nonzero_weights == dense.weights
    assert final.sparsity == pytest.approx(1 - final.nonzero_weights / dense.weights)
    assert final.extra == {"stage": 0, "iteration": 5, "checkpoint": "iterations/s0-i005.pt"}
    assert len(data.records) == 8
    assert data.stages[0]["method"] == "fmp"
    assert data.summary_extra["threshold"] == 0.56 and "fixes" in data.summary_extra
    assert "out_dir" not in data.summary_extra and "final" not in data.summary_extra
    assert data.eval_dense.snrs == list(range(-10, 20, 4))
    assert len(data.eval_final.per_class_snr) == 6 and len(data.eval_final.per_class_snr[0]) == 8
    assert len(data.eval_final.confusion) == 6
    assert data.eval_final.class_names[:2] == ["OOK", "4ASK"]
    assert len(data.cost_final.per_layer) == 10 and data.cost_final.per_layer[0].nonzero_weights is not None
    assert data.notes == []


def test_dense_numbers_fall_back_to_the_first_record(tmp_path):
    run = make_prune_run(tmp_path / "r", n_classes=4, snrs=[0, 10], costs=False)
    data = collect_report_data(run)
    first = data.records[0]
    assert first["ps"] == []
    assert data.dense.bops == first["bops"] and data.dense.score == first["score"]
    assert data.final.bops is not None  # from summary.json final_cost


def test_train_run_has_no_pruning_section(train_run):
    data = collect_report_data(train_run)
    assert data.kind == "train"
    assert data.records == [] and data.final is None
    assert len(data.metrics) == 5
    assert data.dense.accuracy == pytest.approx(0.571)
    assert data.dense.criterion_acc == pytest.approx(0.58)
    assert data.dense.extra["best epoch"] == 5
    # No eval.json: the accuracy per SNR comes from summary.json.
    assert data.eval_dense.source == "summary.json" and len(data.eval_dense.acc_per_snr) == 26
    assert data.eval_dense.per_class_snr is None
    assert any("evaluation" in n for n in data.notes) is False
    assert data.summary_extra["best_epoch"] == 5 and "last" not in data.summary_extra


def test_train_run_eval_dir_is_the_dense_model(tmp_path):
    data = collect_report_data(make_train_run(tmp_path / "t", with_eval=True, with_summary=False))
    assert data.eval_dense is not None and data.eval_final is None
    assert data.dense.accuracy == data.eval_dense.accuracy


def test_eval_fallback_dir_and_missing_summary(tmp_path):
    run = make_prune_run(tmp_path / "r", n_classes=4, snrs=[0, 10], summary=False, costs=False,
                         final_eval_dir="eval")
    data = collect_report_data(run)
    assert data.eval_final is not None and data.eval_final.source == "eval/eval.json"
    # Without summary.json the final numbers come from the last record of a model that met the target.
    met = [r for r in data.records if r["met"] and r["event"] != "failed"][-1]
    assert data.final.bops == met["bops"]
    assert data.final.accuracy == pytest.approx(met["test_acc"])
    assert any(C.COST_DENSE_FILE in n for n in data.notes)


def test_a_summary_that_does_not_match_is_a_note_naming_the_field(prune_run):
    summary = json.loads((prune_run / C.SUMMARY_FILE).read_text())
    summary["final"]["stats"]["weights"] = "many"
    (prune_run / C.SUMMARY_FILE).write_text(json.dumps(summary))
    data = collect_report_data(prune_run)
    assert any(n.startswith("summary.json: field final.stats.weights: Input should be a valid integer (got 'many')")
               for n in data.notes), data.notes
    assert data.final is not None and data.final.extra["checkpoint"] == "iterations/s0-i005.pt"  # from the records
    assert data.summary_extra == {}


def test_a_record_that_does_not_match_is_left_out_with_a_note(prune_run):
    lines = (prune_run / C.RECORDS_FILE).read_text().splitlines()
    bad = json.loads(lines[2])
    bad["val_acc"] = bad.pop("criterion_acc")  # a spelling nothing writes
    lines[2] = json.dumps(bad)
    (prune_run / C.RECORDS_FILE).write_text("\n".join(lines) + "\n")
    data = collect_report_data(prune_run)
    assert len(data.records) == 7
    assert any(n.startswith("records.jsonl line 3: field criterion_acc: Field required") for n in data.notes), data.notes


def test_corrupt_files_become_notes(prune_run):
    (prune_run / C.SUMMARY_FILE).write_text("{not json")
    (prune_run / C.COST_FINAL_FILE).write_text("")
    with open(prune_run / C.RECORDS_FILE, "a") as fh:
        fh.write('{"iteration": 6, "torn')  # a torn last line is ignored
    data = collect_report_data(prune_run)
    assert len(data.records) == 8
    assert any(C.SUMMARY_FILE in n for n in data.notes)
    assert any(C.COST_FINAL_FILE in n for n in data.notes)
    assert data.cost_final is None and data.final is not None


def test_missing_and_non_run_dirs_raise_one_line(tmp_path):
    with pytest.raises(AmcpruneError, match="not found"):
        collect_report_data(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AmcpruneError, match="not an amcprune run directory") as info:
        collect_report_data(tmp_path / "empty")
    assert "\n" not in str(info.value)
    (tmp_path / "file").write_text("x")
    with pytest.raises(AmcpruneError, match="not a directory"):
        collect_report_data(tmp_path / "file")


def test_eval_json_is_read_as_evaluate_writes_it():
    import numpy as np

    from amcprune.train.evaluate import EvalResult

    counts = np.array([[[3, 1], [0, 4]], [[2, 0], [1, 1]]])  # [snr][true][pred]
    ev = parse_eval("c", json.loads(json.dumps(EvalResult(["A", "B"], [0, 10], counts, split="test").to_json())))
    assert ev.acc_per_snr == [pytest.approx(7 / 8), pytest.approx(3 / 4)]
    assert ev.per_class_snr == [[pytest.approx(0.75), 1.0], [1.0, pytest.approx(0.5)]]
    assert ev.confusion == [[5, 1], [1, 5]]
    assert ev.accuracy == pytest.approx(10 / 12) and ev.class_names == ["A", "B"] and ev.n_frames == 12


def test_other_spellings_are_refused_not_guessed():
    """The report once read ~50 spellings nothing writes and took values in (1, 100] as percentages."""
    with pytest.raises(AmcpruneError, match=r"^x: field split: Field required \(and \d+ more\)$") as info:
        parse_eval("x", {"classes": ["A", "B"], "per_snr": {"10": 90.0}, "confusion_matrix": [[3, 1], [0, 4]]})
    assert "\n" not in str(info.value)
    with pytest.raises(AmcpruneError, match="field per_layer"):
        parse_cost("c", {**fake_cost(), "per_layer": {"conv": {"op": "Conv", "macs": 5, "bops": 10}}})
    with pytest.raises(AmcpruneError, match="field total_weights: not a field amcprune writes"):
        parse_cost("c", {**fake_cost(), "total_weights": 3})


def test_train_run_cost_json_is_the_dense_model(tmp_path):
    run = make_train_run(tmp_path / "t")
    (run / C.COST_FILE).write_text(json.dumps(fake_cost()))
    data = collect_report_data(run)
    assert data.cost_dense is not None and data.cost_final is None
    assert data.dense.bops == fake_cost()["bops"] and data.dense.sparsity == pytest.approx(0.0)
