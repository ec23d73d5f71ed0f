"""Temporary files of atomic writes: their names, cleanup on SIGTERM, and sweeping those whose writer died.

A name is ``.NAME.amcprune-PID-XXXX.tmp`` (NAME the target's name, PID the writer's), so the sweep can tell a
write in progress in another process (leave it) from the remains of a killed one (delete them).

SIGTERM (``amcprune.cli.main``) calls ``terminate_now``: it deletes this process's temporary files at once
and raises ``Terminated``. Deleting them in the handler matters: Python swallows an exception raised while a
finalizer runs (h5py deallocates objects all the time), and the write would then go on to completion; the
``terminating`` flag makes the next ``raise_if_terminating`` (every atomic rename, every synth chunk) stop it.
The swallowed exception is not printed either (a traceback after "terminated" would look like a crash).
"""

from __future__ import annotations

import glob
import os
import re
import sys
from pathlib import Path


class Terminated(BaseException):
    """The process received SIGTERM; like KeyboardInterrupt, not an ``Exception``, so nothing swallows it."""


_LIVE: set[Path] = set()
_TERMINATING = False


def register_temp(path: Path) -> None:
    _LIVE.add(Path(path))


def unregister_temp(path: Path) -> None:
    _LIVE.discard(Path(path))


def raise_if_terminating() -> None:
    if _TERMINATING:
        raise Terminated()


def _unraisable_hook(unraisable) -> None:
    if issubclass(unraisable.exc_type, Terminated):
        return  # raised inside a finalizer: the terminating flag stops the work at its next check
    _previous_unraisable_hook(unraisable)


_previous_unraisable_hook = sys.unraisablehook


def terminate_now() -> None:
    """For a SIGTERM handler: delete this process's temporary files, then raise ``Terminated``."""
    global _TERMINATING
    _TERMINATING = True
    sys.unraisablehook = _unraisable_hook
    for path in list(_LIVE):
        try:
            path.unlink()
        except OSError:
            pass
    raise Terminated()


_TEMP_RE = re.compile(r"^\..*\.amcprune-(\d+)-[^/]*\.tmp$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def sweep_stale_temps(directory: str | os.PathLike, recursive: bool = False, name: str | None = None) -> list[Path]:
    """Delete temporary files of atomic writes whose writer process is gone; return what was deleted.

    Only names of the form ``.NAME.amcprune-PID-XXXX.tmp`` with a dead PID are touched (``name``: only those
    of target NAME), so a write in progress in another process is never disturbed.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    pattern = f".{glob.escape(name)}.amcprune-*.tmp" if name is not None else ".*.amcprune-*.tmp"
    removed = []
    for path in directory.rglob(pattern) if recursive else directory.glob(pattern):
        m = _TEMP_RE.match(path.name)
        if m is None or int(m.group(1)) == os.getpid() or _pid_alive(int(m.group(1))):
            continue
        try:
            path.unlink()
        except OSError:
            continue
        removed.append(path)
    return removed


def temp_prefix(path: str | os.PathLike) -> str:
    """The ``mkstemp`` prefix of a temporary file for target ``path`` written by this process."""
    return f".{Path(path).name}.amcprune-{os.getpid()}-"
