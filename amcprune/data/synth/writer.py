"""``write_synthetic``: a RadioML 2018-layout HDF5 file of generated frames, chunked, atomic, parallel.

Layout (as GOLD_XYZ_OSC.0001_1024.hdf5): ``X`` float32 (N, 1024, 2), ``Y`` int64 one-hot (N, n_classes),
``Z`` int64 (N, 1) SNR in dB; frames ordered by class, then SNR, each (class, SNR) pair contiguous with
``frames_per_pair`` frames. Attributes: ``amcprune_synth_config`` (JSON), ``classes`` (JSON list),
``generator_version``, plus ``snrs_db`` and ``frames_per_pair`` (JSON) for convenience.
"""

from __future__ import annotations

import collections
import contextlib
import json
import math
import mmap
import multiprocessing as mp
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np
from tqdm import tqdm

from amcprune.data.classes import CLASSES, FRAME_LENGTH
from amcprune.data.synth.config import GENERATOR_VERSION, SynthConfig
from amcprune.data.synth.generator import generate_frames
from amcprune.errors import AmcpruneError
from amcprune.utils.atomic import atomic_path
from amcprune.utils.tempfiles import raise_if_terminating, sweep_stale_temps

GEN_BLOCK = 256
"""Frames drawn from one random stream: pair p's frames [256 b, 256 (b+1)) use the stream of
(seed, class, SNR, b). Fixed (not a config field) so that chunking and worker counts never change the data;
256 frames are a batch large enough to amortise Python overhead and small enough to stay in cache."""

_SNR_OFFSET = 1000  # SeedSequence wants non-negative entropy; SNRs are validated to lie in -200..200


def pair_rng(seed: int, class_index: int, snr_db: int, block: int = 0) -> np.random.Generator:
    """The random stream of one block of one (class, SNR) pair; ``class_index`` is the canonical index
    (CLASSES), so a file with fewer classes or SNRs repeats the full file's frames for the pairs it has."""
    ss = np.random.SeedSequence([int(seed), int(class_index), int(snr_db) + _SNR_OFFSET, int(block)])
    return np.random.default_rng(ss)


class _Unit(NamedTuple):
    class_name: str
    snr_db: int
    block: int
    n: int


def _plan(config: SynthConfig) -> list[list[_Unit]]:
    """Tasks of consecutive units (in file order), each at most chunk_frames frames (at least one unit)."""
    tasks: list[list[_Unit]] = []
    cur: list[_Unit] = []
    cur_n = 0
    for name in config.classes:
        for snr in config.snrs_db:
            for b in range(math.ceil(config.frames_per_pair / GEN_BLOCK)):
                n = min(GEN_BLOCK, config.frames_per_pair - b * GEN_BLOCK)
                if cur and cur_n + n > config.chunk_frames:
                    tasks.append(cur)
                    cur, cur_n = [], 0
                cur.append(_Unit(name, snr, b, n))
                cur_n += n
    if cur:
        tasks.append(cur)
    return tasks


def _run_task(config: SynthConfig, units: list[_Unit], out: np.ndarray | None = None) -> np.ndarray:
    total = sum(u.n for u in units)
    if out is None:
        out = np.empty((total, FRAME_LENGTH, 2), np.float32)
    pos = 0
    for u in units:
        rng = pair_rng(config.seed, CLASSES.index(u.class_name), u.snr_db, u.block)
        out[pos:pos + u.n] = generate_frames(u.class_name, u.snr_db, u.n, rng, config)
        pos += u.n
    return out[:total]


# Worker-process state: the config, and (fork only) the shared result slots inherited from the parent.
_WORKER_CONFIG: SynthConfig | None = None
_SLOTS: np.ndarray | None = None


def _init_worker(config_json: str) -> None:
    global _WORKER_CONFIG
    # The kernel's default action, not the inherited Python handler: a Python handler runs only when the
    # worker returns to the interpreter, and a worker blocked on the pool's queue lock (which
    # Pool.terminate holds for good) never does, so pool.terminate() waited for it forever (seen under load).
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _WORKER_CONFIG = SynthConfig(**json.loads(config_json))


def _worker_task(units: list[_Unit], slot: int | None):
    assert _WORKER_CONFIG is not None
    if slot is None:
        return _run_task(_WORKER_CONFIG, units)
    assert _SLOTS is not None
    return len(_run_task(_WORKER_CONFIG, units, _SLOTS[slot]))


def _results(config: SynthConfig, tasks: list[list[_Unit]], workers: int):
    """Yield task outputs in file order. ``workers`` processes fill at most 2 chunks each ahead of the
    writer, so memory stays bounded even when the disk is slower than generation (full preset: 21 GB).

    On Linux the workers are forked (milliseconds, no re-import; the generator holds no threads or locks
    that fork could break) and write into shared anonymous memory, one slot per chunk in flight, so the
    8 KiB of every frame is not pickled through a pipe: that traffic cost the writing process about as
    much CPU as writing the file. Elsewhere workers are spawned and results are pickled.
    A yielded array is valid until the next one is requested.
    """
    global _SLOTS
    if workers <= 1:
        for units in tasks:
            yield _run_task(config, units)
        return
    n_slots = 2 * workers
    fork = sys.platform.startswith("linux")
    ctx = mp.get_context("fork" if fork else "spawn")
    buf = slots = None
    if fork:
        slot_frames = max(sum(u.n for u in t) for t in tasks)
        buf = mmap.mmap(-1, n_slots * slot_frames * FRAME_LENGTH * 2 * 4)
        slots = np.frombuffer(buf, np.float32).reshape(n_slots, slot_frames, FRAME_LENGTH, 2)
        _SLOTS = slots
    try:
        pool = ctx.Pool(workers, initializer=_init_worker, initargs=(config.model_dump_json(),))
    finally:
        _SLOTS = None  # the forked children hold their own reference
    try:
        pending: collections.deque = collections.deque()
        for i in range(min(n_slots, len(tasks))):
            pending.append((i, pool.apply_async(_worker_task, (tasks[i], i if fork else None))))
        nxt = len(pending)
        while pending:
            slot, res = pending.popleft()
            out = res.get()
            yield slots[slot, :out] if fork else out
            if nxt < len(tasks):  # the slot has been written out: reuse it
                pending.append((slot, pool.apply_async(_worker_task, (tasks[nxt], slot if fork else None))))
                nxt += 1
        # an orderly exit: every worker takes its stop sentinel; terminate() below then has nothing to stop
        pool.close()
        pool.join()
    finally:
        pool.terminate()
        pool.join()
        del slots
        if buf is not None:
            try:
                buf.close()
            except BufferError:  # a view is still referenced; the mapping is freed with it
                pass


def _write_chunk(dx, dy, dz, pos: int, x: np.ndarray, units: list[_Unit], classes: list[str]) -> int:
    m = x.shape[0]
    y = np.zeros((m, len(classes)), np.int64)
    z = np.empty((m, 1), np.int64)
    p = 0
    for u in units:
        y[p:p + u.n, classes.index(u.class_name)] = 1
        z[p:p + u.n, 0] = u.snr_db
        p += u.n
    dx[pos:pos + m] = x
    dy[pos:pos + m] = y
    dz[pos:pos + m] = z
    return pos + m


def estimated_bytes(config: SynthConfig) -> int:
    n = config.n_frames
    return n * FRAME_LENGTH * 2 * 4 + n * (len(config.classes) + 1) * 8


def write_synthetic(config: SynthConfig, out_path: str | os.PathLike, workers: int = 1,
                    quiet: bool = False, overwrite: bool = True) -> Path:
    """Generate ``config`` into ``out_path`` (HDF5, RadioML 2018 layout) and return the path.

    Writes chunk by chunk under a temporary name beside ``out_path`` and renames at the end, so an error,
    Ctrl-C or SIGTERM leaves no file; what a SIGKILL leaves (a hidden ``.name.amcprune-PID-*.tmp``, never
    ``out_path``) is deleted by the next write into that directory. An existing ``out_path`` is refused
    unless ``overwrite`` (the CLI's ``--force``).
    ``workers`` processes generate chunks while this process writes them; the bytes do not depend on it.
    """
    if isinstance(config, dict):
        config = SynthConfig(**config)
    if not isinstance(config, SynthConfig):
        raise AmcpruneError("write_synthetic needs a SynthConfig")
    workers = int(workers)
    if workers < 1:
        raise AmcpruneError(f"workers must be >= 1, got {workers}")
    out = Path(out_path)
    if out.is_dir():
        raise AmcpruneError(f"cannot write {out}: it is a directory")
    if out.exists() and not overwrite:
        raise AmcpruneError(f"{out}: already exists; use --force to replace it")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise AmcpruneError(f"cannot write {out}: {err.strerror or err}") from None
    sweep_stale_temps(out.parent)  # hundreds of MB each, left by a killed earlier run
    need = estimated_bytes(config)
    try:
        free = shutil.disk_usage(out.parent).free
    except OSError:
        free = None
    if free is not None and need > free:
        raise AmcpruneError(f"not enough disk space for {out}: needs {need / 2**30:.1f} GiB, "
                            f"{free / 2**30:.1f} GiB free")

    classes = config.classes
    snrs = config.snrs_db
    n_total = config.n_frames
    n_cls = len(classes)
    tasks = _plan(config)
    try:
        with atomic_path(out) as tmp:
            with h5py.File(tmp, "w") as f:
                dx = f.create_dataset("X", shape=(n_total, FRAME_LENGTH, 2), dtype=np.float32,
                                      chunks=(min(n_total, 64), FRAME_LENGTH, 2))
                dy = f.create_dataset("Y", shape=(n_total, n_cls), dtype=np.int64,
                                      chunks=(min(n_total, 4096), n_cls))
                dz = f.create_dataset("Z", shape=(n_total, 1), dtype=np.int64, chunks=(min(n_total, 4096), 1))
                f.attrs["amcprune_synth_config"] = config.to_json()
                f.attrs["classes"] = json.dumps(classes)
                f.attrs["generator_version"] = GENERATOR_VERSION
                f.attrs["snrs_db"] = json.dumps(snrs)
                f.attrs["frames_per_pair"] = config.frames_per_pair
                pos = 0
                with tqdm(total=n_total, unit="frame", unit_scale=True, desc="synth", disable=quiet,
                          smoothing=0.1) as bar:
                    with contextlib.closing(_results(config, tasks, workers)) as results:
                        for i, x in enumerate(results):
                            raise_if_terminating()
                            pos = _write_chunk(dx, dy, dz, pos, x, tasks[i], classes)
                            bar.update(x.shape[0])
                assert pos == n_total
    except OSError as err:
        raise AmcpruneError(f"cannot write {out}: {getattr(err, 'strerror', None) or err}") from None
    return out
