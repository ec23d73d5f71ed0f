import pytest

from amcprune.errors import AmcpruneError
from amcprune.utils.rundir import prepare_run_dir

FILES = ("config.yaml", "metrics.jsonl", "checkpoints")


def test_force_clears_only_the_run_files(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("x")
    (run / "metrics.jsonl").write_text("{}\n")
    (run / "notes.txt").write_text("mine")
    with pytest.raises(AmcpruneError, match="already exists"):
        prepare_run_dir(run, FILES, resume=False, force=False, kind="train run")
    prepare_run_dir(run, FILES, resume=False, force=True, kind="train run")
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]


def test_force_never_deletes_a_directory_that_is_not_a_run(tmp_path):
    d = tmp_path / "thesis"
    d.mkdir()
    (d / "metrics.jsonl").write_text("precious")  # a run's file name, but no config.yaml: not a run
    with pytest.raises(AmcpruneError, match="does not look like an amcprune train run directory"):
        prepare_run_dir(d, FILES, resume=False, force=True, kind="train run")
    assert (d / "metrics.jsonl").read_text() == "precious"


def test_resume_needs_a_run_and_a_file_is_not_a_directory(tmp_path):
    with pytest.raises(AmcpruneError, match="nothing to resume"):
        prepare_run_dir(tmp_path / "new", FILES, resume=True, force=False, kind="train run")
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(AmcpruneError, match="is not a directory"):
        prepare_run_dir(f, FILES, resume=False, force=False, kind="train run")
    prepare_run_dir(tmp_path / "fresh", FILES, resume=False, force=False, kind="train run")
    assert (tmp_path / "fresh").is_dir()
