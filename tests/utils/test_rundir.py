import os
import signal
import subprocess
import sys
import time

import pytest

from amcprune.errors import AmcpruneError
from amcprune.utils.atomic import append_jsonl, write_text_atomic
from amcprune.utils.rundir import LOCK_NAME, MANIFEST_NAME, held_run_dirs, prepare_run_dir, release_run_dir

FILES = ("config.yaml", "metrics.jsonl", "checkpoints")


@pytest.fixture(autouse=True)
def release_locks():
    """Each test starts and ends without run directories held by this process (as separate processes would)."""
    for d in held_run_dirs():
        release_run_dir(d)
    yield
    for d in held_run_dirs():
        release_run_dir(d)


def _run_written_by_amcprune(run):
    """A run directory as a train run leaves it: every file written through the atomic writers."""
    prepare_run_dir(run, FILES, resume=False, force=False, kind="train run")
    write_text_atomic(run / "config.yaml", "x")
    append_jsonl(run / "metrics.jsonl", {"epoch": 1})
    write_text_atomic(run / "checkpoints" / "last.pt", "ckpt")
    release_run_dir(run)


def test_force_clears_only_the_files_amcprune_wrote(tmp_path):
    run = tmp_path / "run"
    _run_written_by_amcprune(run)
    assert sorted((run / MANIFEST_NAME).read_text().split()) == ["checkpoints/last.pt", "config.yaml", "metrics.jsonl"]
    (run / "notes.txt").write_text("mine")
    (run / "checkpoints" / "important.pt").write_text("mine too")  # a user's file inside a run's folder
    with pytest.raises(AmcpruneError, match="already exists"):
        prepare_run_dir(run, FILES, resume=False, force=False, kind="train run")
    prepare_run_dir(run, FILES, resume=False, force=True, kind="train run")
    left = {p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file()}
    assert left == {LOCK_NAME, MANIFEST_NAME, "checkpoints/important.pt", "notes.txt"}
    assert (run / "checkpoints" / "important.pt").read_text() == "mine too"


def test_force_on_a_run_without_manifest_deletes_nothing(tmp_path):
    # The reported case: any config.yaml used to make --force delete whole run folders.
    k = tmp_path / "k"
    (k / "checkpoints").mkdir(parents=True)
    (k / "config.yaml").write_text("x")
    (k / "checkpoints" / "important.pt").write_text("y")
    with pytest.raises(AmcpruneError, match="no record of the files amcprune wrote"):
        prepare_run_dir(k, FILES, resume=False, force=True, kind="train run")
    assert (k / "checkpoints" / "important.pt").read_text() == "y" and (k / "config.yaml").read_text() == "x"


def test_a_hand_edited_manifest_cannot_reach_outside_the_run(tmp_path):
    run = tmp_path / "run"
    _run_written_by_amcprune(run)
    outside = tmp_path / "outside.txt"
    outside.write_text("keep")
    with open(run / MANIFEST_NAME, "a") as fh:
        fh.write("../outside.txt\n" + str(outside) + "\n")
    prepare_run_dir(run, FILES, resume=False, force=True, kind="train run")
    assert outside.read_text() == "keep"


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


def test_a_start_that_died_before_writing_anything_can_start_again(tmp_path):
    run = tmp_path / "run"
    prepare_run_dir(run, FILES, resume=False, force=False, kind="train run")
    release_run_dir(run)  # the process died: only the lock file and an empty manifest are left
    prepare_run_dir(run, FILES, resume=False, force=False, kind="train run")


def _holder(run):
    """Another process holding the lock of ``run`` until it is killed."""
    code = (
        "import sys, time; from amcprune.utils.rundir import prepare_run_dir; "
        f"prepare_run_dir(__import__('pathlib').Path({str(run)!r}), (), resume=True, force=False, kind='train run'); "
        "print('locked', flush=True); time.sleep(600)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_process_is_refused_and_a_killed_holder_leaves_no_stale_lock(tmp_path):
    run = tmp_path / "run"
    _run_written_by_amcprune(run)
    proc = _holder(run)
    try:
        # The reported case: two `prune --out D --resume` at once both ran and doubled the records.
        with pytest.raises(AmcpruneError, match=rf"in use by process {proc.pid}\b"):
            prepare_run_dir(run, FILES, resume=True, force=False, kind="train run")
        with pytest.raises(AmcpruneError, match="in use by process"):
            prepare_run_dir(run, FILES, resume=False, force=True, kind="train run")
        assert (run / "config.yaml").read_text() == "x"  # --force did not delete a live run's files
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    prepare_run_dir(run, FILES, resume=True, force=False, kind="train run")
    # Re-entrant within one process (a resume after a start in the same process, e.g. the pipeline).
    prepare_run_dir(run, FILES, resume=True, force=False, kind="train run")


def test_stale_temporary_files_are_swept_at_the_next_start(tmp_path):
    run = tmp_path / "run"
    _run_written_by_amcprune(run)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    for _ in range(50):  # the pid must not have been reused meanwhile
        try:
            os.kill(dead_pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    stale = run / "checkpoints" / f".last.pt.amcprune-{dead_pid}-abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    live = run / "checkpoints" / f".best.pt.amcprune-{os.getppid()}-abc123.tmp"  # a live writer's file
    live.write_bytes(b"in progress")
    prepare_run_dir(run, FILES, resume=True, force=False, kind="train run")
    assert not stale.exists() and live.exists()
