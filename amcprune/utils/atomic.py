"""Atomic writes: a reader (or a resumed run) never sees a half-written file.

Everything is first written next to its destination under a temporary name, flushed to disk and then
renamed over the target with ``os.replace``, which is atomic on POSIX within one file system.

Temporary names carry the writer's pid (``.NAME.amcprune-PID-XXXX.tmp``): an error, Ctrl-C or SIGTERM
(``amcprune.cli.main`` turns it into an exception) deletes the file on the way out, and what a SIGKILL
leaves behind is swept by the next writer in that directory once process PID is gone
(``sweep_stale_temps``). Every file written inside a run directory this process holds is recorded in that
directory's manifest first (``amcprune.utils.rundir.record_output``), so ``--force`` knows what it may delete.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from amcprune.utils.rundir import record_output
from amcprune.utils.tempfiles import raise_if_terminating, register_temp, sweep_stale_temps, temp_prefix, unregister_temp


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, on error delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temps(path.parent, name=path.name)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=suffix + ".tmp", dir=path.parent)
    # mkstemp creates 0600; give the result the mode a plain open() would (0666 less the umask).
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)
    os.close(fd)
    tmp_path = Path(tmp)
    register_temp(tmp_path)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        raise_if_terminating()
        record_output(path)
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise
    finally:
        unregister_temp(tmp_path)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """Append one JSON line and fsync it, so a kill right after loses nothing that was reported."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record_output(path)
    with open(path, "a") as fh:
        fh.write(json.dumps(record, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read JSON lines, ignoring a torn last line left by a kill during a write."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return records
