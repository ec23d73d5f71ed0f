"""``amcprune prune`` end to end on a tiny RadioML-layout file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "prune"))
from prune_helpers import tiny_spec, tiny_train_config, trained_checkpoint, write_h5  # noqa: E402

from amcprune.cli.main import main  # noqa: E402


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("prune_cli")
    h5 = write_h5(root / "tiny.h5", fpp=24, length=1024)  # the data stage reads 1024-sample frames only
    spec = tiny_spec(input_length=1024)
    from amcprune.data import radioml
    from amcprune.train.data import InMemoryData

    cfg = tiny_train_config()
    splits = radioml.load_splits(h5, val_fraction=cfg.val_fraction, val_seed=cfg.seed)
    data = InMemoryData.from_file(h5, splits, spec=spec, device="cpu", quiet=True)
    ckpt = trained_checkpoint(root / "start.pt", spec, data, epochs=4)
    return root, h5, ckpt


def _run(capsys, *args):
    code = main(["prune", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_prune_cli_runs_exports_and_scores(files, capsys):
    root, h5, ckpt = files
    out = root / "run"
    code, stdout, err = _run(capsys, "--from", ckpt, "--data", h5, "--out", out, "--method", "imp",
                             "--criterion", "global", "--p", "0.3", "--max-drop", "0.2", "--max-epochs", "1",
                             "--max-iterations", "2", "--layer-rate", "last=0", "--threads", "1", "--quiet")
    assert code == 0, err
    line = json.loads(stdout.strip().splitlines()[-1])
    assert line["met"] is True
    for name in ("config.yaml", "state.pt", "records.jsonl", "records.csv", "epochs.jsonl", "final.pt", "final.onnx",
                 "summary.json"):
        assert (out / name).exists(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["final_cost"]["score"] > 0
    records = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]
    assert all(r["score"] is not None and r["bops"] > 0 for r in records)
    # The classifier was kept dense (its own rate 0).
    from amcprune.models import load_model

    model, _, _ = load_model(out / "final.pt")
    assert int((model[36].weight == 0).sum()) <= int(model[36].weight.numel() * 0.05)
    # Resuming a finished run just reports it again.
    code, stdout, err = _run(capsys, "--out", out, "--resume", "--quiet")
    assert code == 0, err
    assert json.loads(stdout.strip().splitlines()[-1])["criterion_acc"] == line["criterion_acc"]


def test_prune_cli_user_errors(files, capsys):
    root, h5, ckpt = files
    code, _, err = _run(capsys, "--from", ckpt, "--data", h5, "--out", root / "bad", "--target", "0.5",
                        "--max-drop", "0.1")
    assert code == 2 and "exactly one accuracy criterion" in err and "Traceback" not in err
    code, _, err = _run(capsys, "--from", root / "missing.pt", "--data", h5, "--out", root / "bad2", "--target", "0.5")
    assert code == 2 and "no such file" in err
    code, _, err = _run(capsys, "--from", ckpt, "--data", h5, "--out", root / "bad3", "--target", "0.5",
                        "--method", "lottery")
    assert code == 2 and "unknown method" in err
    code, _, err = _run(capsys, "--out", root / "never", "--resume")
    assert code == 2 and "nothing to resume" in err
    code, _, err = _run(capsys, "--from", ckpt, "--data", h5, "--out", root / "bad4", "--target", "0.5",
                        "--layer-rate", "last")
    assert code == 2 and "NAME=RATE" in err


def test_prune_cli_named_settings_and_new_refusals(files, capsys):
    import yaml

    root, h5, ckpt = files
    out = root / "legacy"
    code, _, err = _run(capsys, "--from", ckpt, "--data", h5, "--out", out, "--settings", "fmp-2021",
                        "--max-drop", "0.5", "--max-epochs", "1", "--max-iterations", "1", "--no-cost", "--no-export",
                        "--threads", "1", "--quiet")
    assert code == 0, err
    stored = yaml.safe_load((out / "config.yaml").read_text())["recipe"]
    # The published recipe's settings, with the options given on the command line on top.
    stage = stored["stages"][0]
    assert (stored["name"], stored["max_drop"]) == ("fmp-2021", 0.5)
    assert (stage["finetune"], stage["judge_at"], stage["p"], stage["p_min"], stage["max_epochs"]) == (
        "train", "epoch", 0.2, 0.05, 1)
    for args, message in (
        (["--settings", "lottery"], "lottery: neither a named recipe"),
        (["--p", "0.2", "--p-min", "0.5"], "p_min (0.5) is above p (0.2)"),
        (["--max-epochs", "0"], "max_epochs"),
        (["--exclude", "*"], "leave no layer to prune"),
        (["--finetune", "warm"], "finetune"),
    ):
        code, _, err = _run(capsys, "--from", ckpt, "--data", h5, "--out", root / "refused", "--target", "0.5",
                            "--threads", "1", "--quiet", *args)
        assert code == 2 and message in err and "Traceback" not in err, (args, err)
        assert len(err.strip().splitlines()) == 1


def test_prune_cli_dumps_a_recipe_that_runs_as_the_options_did(files, capsys):
    import yaml

    root, h5, ckpt = files
    options = ["--method", "fmp", "--criterion", "structured,global", "--p", "0.3", "--max-drop", "0.5",
               "--max-epochs", "1", "--max-iterations", "1", "--no-cost", "--no-export"]
    code, stdout, err = _run(capsys, "--out", root / "unused", *options, "--dump-recipe")
    assert code == 0, err
    assert not (root / "unused").exists()  # dumping runs nothing
    dumped = yaml.safe_load(stdout)
    assert [(s["kind"], s["criterion"], s["p"]) for s in dumped["stages"]] == [
        ("fmp", "structured", 0.3), ("fmp", "global", 0.3)]
    recipe_file = root / "recipe.yaml"
    recipe_file.write_text(stdout)
    common = ["--from", ckpt, "--data", h5, "--threads", "1", "--quiet"]
    code, _, err = _run(capsys, *common, "--out", root / "by-options", *options)
    assert code == 0, err
    code, _, err = _run(capsys, *common, "--out", root / "by-recipe", "--recipe", recipe_file)
    assert code == 0, err

    def rows(run):
        return [{k: v for k, v in json.loads(line).items() if k != "wall_s"}
                for line in (root / run / "records.jsonl").read_text().splitlines()]

    assert rows("by-options") == rows("by-recipe") and rows("by-recipe")
    # Options on top of a recipe; a recipe and a flat config together are refused.
    code, stdout, err = _run(capsys, "--out", root / "unused", "--recipe", recipe_file, "--p", "0.1,0.2",
                             "--dump-recipe")
    assert code == 0 and [s["p"] for s in yaml.safe_load(stdout)["stages"]] == [0.1, 0.2]
    code, _, err = _run(capsys, *common, "--out", root / "both", "--recipe", recipe_file, "--config", recipe_file)
    assert code == 2 and "not both" in err


def test_recipe_help_names_every_named_recipe():
    from amcprune.cli.prune import _RECIPE_NAMES
    from amcprune.prune.recipe import named_recipes

    assert _RECIPE_NAMES == named_recipes()
