"""Run directories: created fresh, continued with ``--resume``, or cleared with ``--force``.

Two files of amcprune's own live in every run directory:

- ``.amcprune.lock``: an exclusive ``fcntl.flock`` held by the process that runs in the directory, for the
  whole life of that process (the descriptor stays open in ``_HELD``). A second process, a resume included,
  is refused with an error naming the holder. The kernel drops an flock when its process dies, however it
  dies, so a run killed with SIGKILL never leaves a lock that blocks its resume; the pid written in the file
  is only there to name the holder in the error.
- ``.amcprune-manifest``: the relative path of every file amcprune wrote there, one per line, appended (and
  fsynced) by ``amcprune.utils.atomic`` *before* the file appears under its name. ``--force`` deletes the
  files listed there and nothing else: a file a user put into the run directory, even under a name a run
  uses, survives, and a directory without a manifest is not cleared at all.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from amcprune.errors import AmcpruneError
from amcprune.utils.tempfiles import sweep_stale_temps

LOCK_NAME = ".amcprune.lock"
MANIFEST_NAME = ".amcprune-manifest"
BOOKKEEPING = (LOCK_NAME, MANIFEST_NAME)


@dataclass
class _Held:
    fd: int
    manifest: Path
    recorded: set[str] = field(default_factory=set)


# Run directories whose lock this process holds, by resolved path.
_HELD: dict[Path, _Held] = {}


def _key(path: Path) -> Path:
    return Path(os.path.abspath(path)).resolve()


def _holder_text(lock_path: Path) -> str:
    try:
        text = lock_path.read_text(errors="replace").strip()
    except OSError:
        return "another process"
    return text.splitlines()[0] if text else "another process"


def _still_held(key: Path, held: _Held) -> bool:
    """The registry entry still locks the file now at ``key/LOCK_NAME`` (not one deleted behind our back)."""
    try:
        return os.fstat(held.fd).st_ino == os.stat(key / LOCK_NAME).st_ino
    except OSError:
        return False


def _read_manifest(path: Path) -> list[str]:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []
    return list(dict.fromkeys(line.strip() for line in lines if line.strip()))


def lock_run_dir(run_dir: str | os.PathLike) -> None:
    """Take the exclusive lock of ``run_dir`` (created if needed) for the life of this process.

    Re-entrant within one process: a run directory this process already holds is not an error.
    """
    key = _key(Path(run_dir))
    held = _HELD.get(key)
    if held is not None:
        if _still_held(key, held):
            return
        release_run_dir(key)
    key.mkdir(parents=True, exist_ok=True)
    lock_path = key / LOCK_NAME
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise AmcpruneError(
                f"{run_dir}: in use by {_holder_text(lock_path)}; wait for it to finish or stop it first"
            ) from None
        raise AmcpruneError(f"{run_dir}: cannot lock the run directory ({exc.strerror or exc})") from None
    command = " ".join(["amcprune", *sys.argv[1:]]) if sys.argv and "amcprune" in sys.argv[0] else sys.argv[0]
    text = f"process {os.getpid()} ({command}, since {time.strftime('%Y-%m-%d %H:%M:%S')})\n"
    os.ftruncate(fd, 0)
    os.pwrite(fd, text.encode(), 0)
    _HELD[key] = _Held(fd=fd, manifest=key / MANIFEST_NAME, recorded=set(_read_manifest(key / MANIFEST_NAME)))


def release_run_dir(run_dir: str | os.PathLike) -> None:
    """Drop this process's lock on ``run_dir`` (for tests and long-lived processes); no-op if not held."""
    held = _HELD.pop(_key(Path(run_dir)), None)
    if held is not None:
        with contextlib.suppress(OSError):
            os.close(held.fd)


def held_run_dirs() -> list[Path]:
    return list(_HELD)


def record_output(path: str | os.PathLike) -> None:
    """Note in the manifest of the innermost held run directory containing ``path`` that amcprune writes it.

    Called by the atomic writers before the file appears under its name, so a kill in between leaves at
    worst a manifest line for a file that does not exist (harmless), never a run file the manifest misses.
    """
    if not _HELD:
        return
    target = _key(Path(path))
    best: tuple[Path, _Held] | None = None
    for key, held in _HELD.items():
        if target != key and key in target.parents and (best is None or len(key.parts) > len(best[0].parts)):
            best = (key, held)
    if best is None:
        return
    key, held = best
    rel = target.relative_to(key).as_posix()
    if rel in held.recorded or rel in BOOKKEEPING:
        return
    with open(held.manifest, "a") as fh:
        fh.write(rel + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    held.recorded.add(rel)


def _user_entries(run_dir: Path) -> list[Path]:
    return [p for p in run_dir.iterdir() if p.name not in BOOKKEEPING]


def _clear_recorded(run_dir: Path, kind: str) -> None:
    """Delete the files the manifest lists (never a directory tree), then the directories left empty."""
    key = _key(run_dir)
    manifest = key / MANIFEST_NAME
    if not manifest.is_file():
        raise AmcpruneError(
            f"{run_dir}: holds no record of the files amcprune wrote there ({MANIFEST_NAME}); refusing to delete "
            f"anything even with --force: remove the old {kind} yourself or choose another --out"
        )
    parents: set[Path] = set()
    for rel in _read_manifest(manifest):
        path = key / rel
        if Path(rel).is_absolute() or ".." in Path(rel).parts or rel in BOOKKEEPING:
            continue  # not something amcprune writes: a hand-edited manifest must not reach outside the run
        if path.is_symlink() or path.is_file():
            path.unlink()
        parents.update(p for p in path.parents if p != key and key in p.parents)
    for parent in sorted(parents, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            parent.rmdir()  # only succeeds when nothing else (a user's file) is left in it
    manifest.write_text("")
    held = _HELD.get(key)
    if held is not None:
        held.recorded.clear()


def prepare_run_dir(run_dir: Path, run_files: tuple[str, ...], *, resume: bool, force: bool, kind: str) -> None:
    """Make ``run_dir`` ready for a ``kind`` run (e.g. "train run") and lock it for this process.

    With ``resume`` it must hold the run's ``config.yaml``. Otherwise an existing non-empty directory is
    refused unless ``force``, and even then only a run directory (one with ``config.yaml``) is cleared, and
    only of the files its manifest records amcprune wrote: ``--force`` pointed at the wrong folder, or at a
    run holding a user's files, deletes nothing that amcprune did not write. ``run_files`` names what a run
    of this kind writes; the manifest, not this list, decides what is deleted.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise AmcpruneError(f"{run_dir}: exists and is not a directory")
    if resume:
        if not (run_dir / "config.yaml").is_file():
            raise AmcpruneError(f"{run_dir}: nothing to resume (no config.yaml); start it without --resume")
        lock_run_dir(run_dir)
        sweep_stale_temps(run_dir, recursive=True)
        return
    if run_dir.is_dir() and _user_entries(run_dir):
        if not force:
            raise AmcpruneError(f"{run_dir}: already exists; use --resume to continue it or --force to start over")
        if not (run_dir / "config.yaml").exists():
            raise AmcpruneError(
                f"{run_dir}: does not look like an amcprune {kind} directory (no config.yaml); "
                "refusing to delete it even with --force"
            )
    lock_run_dir(run_dir)
    # Checked again under the lock: another process may have started here since the checks above.
    if _user_entries(run_dir):
        if not force:
            raise AmcpruneError(f"{run_dir}: already exists; use --resume to continue it or --force to start over")
        _clear_recorded(run_dir, kind)
    sweep_stale_temps(run_dir, recursive=True)
