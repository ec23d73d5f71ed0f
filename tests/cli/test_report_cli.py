import importlib.util
import subprocess
import sys
from pathlib import Path

from amcprune.cli.main import main

_spec = importlib.util.spec_from_file_location(
    "report_fixtures", Path(__file__).resolve().parents[1] / "report" / "report_fixtures.py"
)
report_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(report_fixtures)


def test_report_prints_the_paths(tmp_path, capsys):
    run = report_fixtures.make_prune_run(tmp_path / "run", n_classes=4, snrs=[-10, 0, 10])
    assert main(["report", str(run)]) == 0
    out = capsys.readouterr().out.split()
    assert out == [str(run / "report.html"), str(run / "report.md")]
    assert (run / "report.html").exists() and (run / "report.md").exists()


def test_report_out_dir(tmp_path, capsys):
    run = report_fixtures.make_train_run(tmp_path / "train")
    assert main(["report", str(run), "--out", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "out" / "report.html"), str(tmp_path / "out" / "report.md")]


def test_report_errors_are_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: run directory not found") and err.count("\n") == 1
    proc = subprocess.run([sys.executable, "-m", "amcprune", "report", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "not an amcprune run directory" in proc.stderr and "Traceback" not in proc.stderr


def test_report_help(capsys):
    assert main(["report", "--help"]) == 0
    assert "--out" in capsys.readouterr().out


def test_report_is_never_replaced_without_force(tmp_path, capsys):
    run = report_fixtures.make_train_run(tmp_path / "train")
    assert main(["report", str(run)]) == 0
    (run / "report.md").write_text("my edits")
    capsys.readouterr()
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "already exists" in err and err.count("\n") == 1
    assert (run / "report.md").read_text() == "my edits"
    assert main(["report", str(run), "--force"]) == 0
    assert (run / "report.md").read_text() != "my edits"
