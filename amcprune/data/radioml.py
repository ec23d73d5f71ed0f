"""Reader for RadioML 2018.01A files (and generated files in the same layout).

Layout: HDF5 with ``X`` float32 (N, 1024, 2), ``Y`` one-hot (N, C), ``Z`` integer SNR in dB (N, 1) or (N,).
Frames are ordered by class, then SNR (ascending), ``frames_per_pair`` frames per (class, SNR) pair.
The real file is about 21 GB: nothing here reads ``X`` whole; ``Z`` (20 MB) is read once, ``Y`` is only
sampled (the full check lives in :mod:`amcprune.data.validate`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import h5py
import numpy as np
from tqdm import tqdm

from amcprune.data.classes import CLASSES, FRAME_LENGTH
from amcprune.data.split import carve_validation, prescribed_split, split_fingerprint
from amcprune.errors import AmcpruneError

__all__ = [
    "RadioMLFile",
    "DataSplits",
    "load_splits",
    "read_frames",
    "iter_frames",
    "check_finite",
    "check_all_labels",
    "data_fingerprint",
    "content_sha256",
    "prescribed_split",
    "split_fingerprint",
]

# Reads above this many frames show a progress bar (unless quiet).
_PROGRESS_MIN_FRAMES = 20_000
# How many frames one slice read may span at most (bounds the temporary buffer to ~64 MB for 1024x2 float32).
_MAX_SPAN_FRAMES = 8192
_MAX_SHOWN_INDICES = 5


def _open_h5(path: Path):
    if not path.exists():
        raise AmcpruneError(f"{path}: file not found")
    if not path.is_file():
        raise AmcpruneError(f"{path}: not a file")
    try:
        ok = h5py.is_hdf5(str(path))
    except OSError as exc:  # unreadable
        raise AmcpruneError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    if not ok:
        raise AmcpruneError(f"{path}: not an HDF5 file")
    try:
        return h5py.File(str(path), "r")
    except OSError as exc:
        raise AmcpruneError(f"{path}: cannot open HDF5 file ({exc})") from None


def _parse_class_names(raw, n_classes: int, path: Path) -> tuple[str, ...] | None:
    if raw is None:
        return None
    if isinstance(raw, bytes):
        raw = raw.decode()
    if isinstance(raw, str):
        try:
            names = json.loads(raw)
        except json.JSONDecodeError:
            raise AmcpruneError(f"{path}: attribute 'classes' is not valid JSON") from None
    else:
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in np.asarray(raw).ravel().tolist()]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise AmcpruneError(f"{path}: attribute 'classes' must be a list of names")
    if len(names) != n_classes:
        raise AmcpruneError(
            f"{path}: attribute 'classes' lists {len(names)} names but Y has {n_classes} columns"
        )
    return tuple(names)


def _describe_shape(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


class RadioMLFile:
    """A validated RadioML-layout HDF5 file. Construction reads Z and samples Y; X is never read.

    Raises :class:`AmcpruneError` (one line naming the file and the problem) on any layout error.
    """

    def __init__(self, path: str | os.PathLike, frame_length: int | None = FRAME_LENGTH):
        self.path = Path(path)
        with self.open() as f:
            self._check(f, frame_length)

    # -- access -------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def open(self) -> Iterator["object"]:
        """Open the file read-only (an ``h5py.File``), closing it afterwards."""
        f = _open_h5(self.path)
        try:
            yield f
        finally:
            f.close()

    def error(self, problem: str) -> AmcpruneError:
        return AmcpruneError(f"{self.path}: {problem}")

    # -- validation ---------------------------------------------------------------------------------
    def _check(self, f, frame_length: int | None) -> None:
        for name in ("X", "Y", "Z"):
            if name not in f:
                raise self.error(f"missing dataset '{name}' (a RadioML file holds X, Y and Z)")
            if not isinstance(f[name], h5py.Dataset):
                raise self.error(f"'{name}' is not a dataset")
        X, Y, Z = f["X"], f["Y"], f["Z"]
        if X.ndim != 3 or X.shape[2] != 2:
            raise self.error(f"X has shape {_describe_shape(X.shape)}, expected (N, L, 2)")
        n = X.shape[0]
        if frame_length is not None and X.shape[1] != frame_length:
            raise self.error(f"X has frames of {X.shape[1]} samples, expected {frame_length}")
        if not np.issubdtype(X.dtype, np.floating):
            raise self.error(f"X has dtype {X.dtype}, expected float32")
        if Y.ndim != 2 or Y.shape[0] != n or Y.shape[1] < 1:
            raise self.error(f"Y has shape {_describe_shape(Y.shape)}, expected ({n}, C) to match X")
        if not (Z.shape == (n,) or Z.shape == (n, 1)):
            raise self.error(f"Z has shape {_describe_shape(Z.shape)}, expected ({n}, 1) to match X")
        if not (np.issubdtype(Y.dtype, np.integer) or np.issubdtype(Y.dtype, np.floating) or Y.dtype == bool):
            raise self.error(f"Y has dtype {Y.dtype}, expected integers")
        if not (np.issubdtype(Z.dtype, np.integer) or np.issubdtype(Z.dtype, np.floating)):
            raise self.error(f"Z has dtype {Z.dtype}, expected integers")
        if n == 0:
            raise self.error("the file holds no frames")

        self.n_frames = int(n)
        self.frame_length = int(X.shape[1])
        self.n_classes = int(Y.shape[1])
        self.x_dtype = np.dtype(X.dtype)

        # Z: 8 bytes per frame (20 MB on the full file), read whole and checked fully.
        z = np.asarray(Z[...]).reshape(-1)
        if np.issubdtype(z.dtype, np.floating):
            if not np.all(np.isfinite(z)) or not np.all(z == np.round(z)):
                raise self.error("Z holds non-integer SNR values")
        z = z.astype(np.int64)
        lo_z, hi_z = int(z.min()), int(z.max())
        if hi_z - lo_z <= 1_000_000:  # O(N) instead of sorting 2.5M values
            snrs = np.flatnonzero(np.bincount(z - lo_z)).astype(np.int64) + lo_z
        else:
            snrs = np.unique(z)
        n_pairs = self.n_classes * snrs.size
        if n % n_pairs:
            raise self.error(
                f"{n} frames is not a multiple of {self.n_classes} classes x {snrs.size} SNRs = {n_pairs}"
            )
        fpp = n // n_pairs
        self.snrs_db = tuple(int(s) for s in snrs)
        self.frames_per_pair = int(fpp)

        blocks = z.reshape(n_pairs, fpp)
        expected = np.tile(snrs, self.n_classes)
        bad = np.flatnonzero(np.any(blocks != expected[:, None], axis=1))
        if bad.size:
            b = int(bad[0])
            seen = np.unique(blocks[b])
            raise self.error(
                f"frames are not ordered by class then SNR: frames {b * fpp}..{(b + 1) * fpp - 1} "
                f"(class {b // snrs.size}, SNR {int(expected[b])} dB) have SNR values {seen[:5].tolist()}"
            )

        # Y: sample the first and last frame of each pair block (the full check is in validate).
        rows = np.unique(np.concatenate([np.arange(n_pairs) * fpp, np.arange(1, n_pairs + 1) * fpp - 1]))
        ysamp = _read_rows(Y, rows)
        check_labels(self, rows, ysamp)

        self.class_names = _parse_class_names(f.attrs.get("classes"), self.n_classes, self.path) or (
            CLASSES if self.n_classes == len(CLASSES) else tuple(f"class{i}" for i in range(self.n_classes))
        )
        self.attrs = {k: _jsonable(v) for k, v in f.attrs.items()}
        self.shapes = {name: (tuple(int(s) for s in f[name].shape), str(f[name].dtype)) for name in ("X", "Y", "Z")}

    # -- layout helpers -----------------------------------------------------------------------------
    @property
    def n_snrs(self) -> int:
        return len(self.snrs_db)

    @property
    def n_pairs(self) -> int:
        return self.n_classes * self.n_snrs

    def labels_of(self, indices: np.ndarray) -> np.ndarray:
        """Class index of each frame, from the layout."""
        return np.asarray(indices, dtype=np.int64) // (self.n_snrs * self.frames_per_pair)

    def snrs_of(self, indices: np.ndarray) -> np.ndarray:
        """SNR in dB of each frame, from the layout."""
        snr_idx = (np.asarray(indices, dtype=np.int64) // self.frames_per_pair) % self.n_snrs
        return np.asarray(self.snrs_db, dtype=np.int64)[snr_idx]

    def prescribed_split(self) -> tuple[np.ndarray, np.ndarray]:
        """The challenge train/test split of this file."""
        return prescribed_split(self.n_classes, self.n_snrs, self.frames_per_pair)

    def __repr__(self) -> str:
        return (
            f"RadioMLFile({str(self.path)!r}, n_frames={self.n_frames}, n_classes={self.n_classes}, "
            f"n_snrs={self.n_snrs}, frames_per_pair={self.frames_per_pair})"
        )


def _jsonable(value):
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _read_rows(ds, rows: np.ndarray) -> np.ndarray:
    """Read the given sorted unique rows of a dataset: slices for runs, one read per isolated row."""
    rows = np.asarray(rows, dtype=np.int64)
    out = np.empty((rows.size,) + ds.shape[1:], dtype=ds.dtype)
    if rows.size == 0:
        return out
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    starts = np.concatenate(([0], breaks))
    ends = np.concatenate((breaks, [rows.size]))
    for lo, hi in zip(starts.tolist(), ends.tolist()):
        a = int(rows[lo])
        out[lo:hi] = ds[a : a + (hi - lo)]
    return out


def check_labels(rf: RadioMLFile, rows: np.ndarray, y_rows: np.ndarray) -> None:
    """Raise unless ``y_rows`` (rows of Y at frame indices ``rows``) are one-hot with the layout's class."""
    y = np.asarray(y_rows)
    binary = (y == 0) | (y == 1)
    onehot = binary.all(axis=1) & (y.sum(axis=1) == 1)
    if not onehot.all():
        i = int(np.flatnonzero(~onehot)[0])
        raise rf.error(f"Y is not one-hot: frame {int(rows[i])} has labels {np.asarray(y[i]).tolist()[:8]}...")
    got = np.argmax(y, axis=1)
    want = rf.labels_of(rows)
    wrong = np.flatnonzero(got != want)
    if wrong.size:
        i = int(wrong[0])
        raise rf.error(
            f"frames are not ordered by class then SNR: frame {int(rows[i])} has class {int(got[i])}, "
            f"expected {int(want[i])} from its position"
        )


def check_all_labels(rf: RadioMLFile, chunk_frames: int = 65536, quiet: bool = False) -> None:
    """Check every row of Y (one-hot, class consistent with the frame's position), chunk by chunk (490 MB as
    int64 on the full file, never held at once). Raises ``AmcpruneError`` at the first bad row."""
    with rf.open() as f:
        dy = f["Y"]
        bar = None
        if not quiet and rf.n_frames >= 10 * chunk_frames:
            bar = tqdm(total=rf.n_frames, unit="frame", desc="checking labels", leave=False)
        try:
            for lo in range(0, rf.n_frames, chunk_frames):
                hi = min(lo + chunk_frames, rf.n_frames)
                check_labels(rf, np.arange(lo, hi, dtype=np.int64), dy[lo:hi])
                if bar is not None:
                    bar.update(hi - lo)
        finally:
            if bar is not None:
                bar.close()


_FILE_CACHE: dict[tuple, RadioMLFile] = {}
_FILE_CACHE_SIZE = 4


def _as_file(path_or_file) -> RadioMLFile:
    """A validated file; validations of unchanged files (same inode, size, mtime) are reused, so that
    chunked callers of ``read_frames(path, ...)`` do not re-read Z for every chunk."""
    if isinstance(path_or_file, RadioMLFile):
        return path_or_file
    path = Path(path_or_file)
    try:
        st = path.stat()
        key = (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)
    except OSError:
        return RadioMLFile(path)  # raises the clear error
    rf = _FILE_CACHE.get(key)
    if rf is None:
        rf = RadioMLFile(path)
        if len(_FILE_CACHE) >= _FILE_CACHE_SIZE:
            _FILE_CACHE.pop(next(iter(_FILE_CACHE)))
        _FILE_CACHE[key] = rf
    return rf


def _finite_error(path: Path, bad: np.ndarray) -> AmcpruneError:
    bad = np.sort(np.asarray(bad, dtype=np.int64))
    shown = ", ".join(str(i) for i in bad[:_MAX_SHOWN_INDICES].tolist())
    more = ", ..." if bad.size > _MAX_SHOWN_INDICES else ""
    return AmcpruneError(f"{path}: {bad.size} frame(s) contain NaN or Inf (frame indices: {shown}{more})")


def _plan_reads(idx: np.ndarray, fpp: int) -> list[tuple[int, int, np.ndarray]]:
    """Group sorted unique indices into reads: ``(lo, hi, positions)`` with the indices in [lo, hi).

    Indices are grouped into aligned spans of ``max(fpp, 4096)`` frames (pair blocks of the real file), at most
    ``_MAX_SPAN_FRAMES``.
    """
    if idx.size == 0:
        return []
    span = max(1, min(max(int(fpp), 4096), _MAX_SPAN_FRAMES))
    group = idx // span
    breaks = np.flatnonzero(np.diff(group)) + 1
    starts = np.concatenate(([0], breaks))
    ends = np.concatenate((breaks, [idx.size]))
    return [(int(idx[a]), int(idx[b - 1]) + 1, np.arange(a, b)) for a, b in zip(starts.tolist(), ends.tolist())]


def _read_block(ds, sel: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Read rows ``sel`` (sorted, unique, within [lo, hi)) of ``ds``: one slice when dense, else a selection."""
    if sel.size * 4 >= (hi - lo) or sel.size > 512:
        block = ds[lo:hi]
        return block if sel.size == hi - lo else block[sel - lo]
    return ds[sel]  # h5py point selection: reads only the chosen frames


def read_frames(
    path: str | os.PathLike | RadioMLFile, indices, quiet: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read frames ``indices`` (any order, repeats allowed): ``(X float32 (n, L, 2), y int64 (n,), snr int64 (n,))``.

    Reads pair block by pair block, never the whole of X. Labels come from Y (checked one-hot and consistent
    with the layout), SNRs from Z. Raises :class:`AmcpruneError` if any frame read holds NaN or Inf.
    """
    rf = _as_file(path)
    indices = np.asarray(indices)
    if indices.size and not np.issubdtype(indices.dtype, np.integer):
        raise AmcpruneError(f"{rf.path}: frame indices must be integers, got dtype {indices.dtype}")
    indices = indices.astype(np.int64, copy=False).reshape(-1)
    if indices.size and (indices.min() < 0 or indices.max() >= rf.n_frames):
        bad = indices[(indices < 0) | (indices >= rf.n_frames)]
        raise AmcpruneError(f"{rf.path}: frame index {int(bad[0])} out of range (file has {rf.n_frames} frames)")
    sorted_unique = indices.size <= 1 or bool(np.all(np.diff(indices) > 0))
    if sorted_unique:
        uniq, inverse = indices, None
    else:
        uniq, inverse = np.unique(indices, return_inverse=True)

    X = np.empty((uniq.size, rf.frame_length, 2), dtype=np.float32)
    Y = np.empty((uniq.size, rf.n_classes), dtype=np.int64)
    Z = np.empty(uniq.size, dtype=np.int64)
    bad_frames: list[np.ndarray] = []
    show = (not quiet) and uniq.size >= _PROGRESS_MIN_FRAMES
    with rf.open() as f:
        dx, dy, dz = f["X"], f["Y"], f["Z"]
        bar = None
        if show:
            bar = tqdm(total=int(uniq.size), unit="frame", desc=f"reading {rf.path.name}", leave=False)
        try:
            for lo, hi, pos in _plan_reads(uniq, rf.frames_per_pair):
                sel = uniq[pos]
                x = _read_block(dx, sel, lo, hi)
                X[pos] = x
                Y[pos] = _read_block(dy, sel, lo, hi)
                Z[pos] = np.asarray(_read_block(dz, sel, lo, hi)).reshape(-1)
                finite = np.isfinite(x).all(axis=(1, 2))
                if not finite.all():
                    bad_frames.append(sel[~finite])
                if bar is not None:
                    bar.update(pos.size)
        finally:
            if bar is not None:
                bar.close()
    if bad_frames:
        raise _finite_error(rf.path, np.concatenate(bad_frames))
    check_labels(rf, uniq, Y)
    y = np.argmax(Y, axis=1).astype(np.int64)
    if inverse is not None:
        return X[inverse], y[inverse], Z[inverse]
    return X, y, Z


def iter_frames(
    path: str | os.PathLike | RadioMLFile, indices, chunk_frames: int = 65536, quiet: bool = False
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Yield ``(idx, X, y, snr)`` for the sorted unique ``indices`` in chunks of ``chunk_frames`` frames.

    For callers that convert frames on the fly (e.g. to int8) without holding all of them as float32.
    """
    rf = _as_file(path)
    uniq = np.unique(np.asarray(indices, dtype=np.int64).reshape(-1))
    bar = None
    if not quiet and uniq.size >= _PROGRESS_MIN_FRAMES:
        bar = tqdm(total=int(uniq.size), unit="frame", desc=f"reading {rf.path.name}", leave=False)
    try:
        for lo in range(0, uniq.size, max(1, int(chunk_frames))):
            idx = uniq[lo : lo + chunk_frames]
            X, y, snr = read_frames(rf, idx, quiet=True)
            yield idx, X, y, snr
            if bar is not None:
                bar.update(idx.size)
    finally:
        if bar is not None:
            bar.close()


def check_finite(
    path: str | os.PathLike | RadioMLFile, indices=None, quiet: bool = False, chunk_frames: int = 4096
) -> int:
    """Scan frames (all of X in chunks when ``indices`` is None) for NaN/Inf; return how many were checked.

    Raises :class:`AmcpruneError` naming the number of bad frames and the first few indices.
    """
    rf = _as_file(path)
    bad: list[np.ndarray] = []
    with rf.open() as f:
        dx = f["X"]
        if indices is None:
            total = rf.n_frames
            reads = [(a, min(a + chunk_frames, total), None) for a in range(0, total, chunk_frames)]
        else:
            uniq = np.unique(np.asarray(indices, dtype=np.int64))
            if uniq.size and (uniq[0] < 0 or uniq[-1] >= rf.n_frames):
                raise AmcpruneError(f"{rf.path}: frame index out of range (file has {rf.n_frames} frames)")
            total = int(uniq.size)
            reads = [(lo, hi, uniq[pos]) for lo, hi, pos in _plan_reads(uniq, rf.frames_per_pair)]
        bar = None
        if not quiet and total >= _PROGRESS_MIN_FRAMES:
            bar = tqdm(total=total, unit="frame", desc=f"checking {rf.path.name}", leave=False)
        try:
            for lo, hi, sel in reads:
                if sel is None:
                    x = dx[lo:hi]
                    rows = np.arange(lo, hi)
                else:
                    x = _read_block(dx, sel, lo, hi)
                    rows = sel
                finite = np.isfinite(x).all(axis=tuple(range(1, x.ndim)))
                if not finite.all():
                    bad.append(rows[~finite])
                if bar is not None:
                    bar.update(len(rows))
        finally:
            if bar is not None:
                bar.close()
    if bad:
        raise _finite_error(rf.path, np.concatenate(bad))
    return total


def sample_frame_indices(rf: RadioMLFile) -> np.ndarray:
    """First, middle and last frame of every pair block (sorted, unique)."""
    starts = np.arange(rf.n_pairs, dtype=np.int64) * rf.frames_per_pair
    fpp = rf.frames_per_pair
    return np.unique(np.concatenate([starts, starts + fpp // 2, starts + fpp - 1]))


def data_fingerprint(path: str | os.PathLike | RadioMLFile) -> str:
    """A *sampled* fingerprint: SHA-256 of shapes, dtypes, attributes, all of Z, and the X/Y rows of the first
    and middle frame of every (class, SNR) pair block.

    Cheap (reads Z and two frames per pair block, not the 21 GB of X), independent of the file's name and
    modification time, and enough to tell one dataset or preset from another. It does not identify the
    content of the other frames: a file differing only there (a NaN frame, an edited label) has the same
    sampled fingerprint. ``content_sha256`` covers every byte of X, Y and Z.
    """
    rf = _as_file(path)
    h = hashlib.sha256()
    meta = {
        "shapes": {k: [list(s), d] for k, (s, d) in rf.shapes.items()},
        "attrs": rf.attrs,
        "snrs_db": list(rf.snrs_db),
        "frames_per_pair": rf.frames_per_pair,
        "class_names": list(rf.class_names),
    }
    h.update(json.dumps(meta, sort_keys=True, default=str).encode())
    starts = np.arange(rf.n_pairs, dtype=np.int64) * rf.frames_per_pair
    rows = np.unique(np.concatenate([starts, starts + rf.frames_per_pair // 2]))
    with rf.open() as f:
        h.update(np.ascontiguousarray(np.asarray(f["Z"][...]).astype("<i8")).tobytes())
        h.update(np.ascontiguousarray(_read_rows(f["Y"], rows).astype("<i8")).tobytes())
        h.update(np.ascontiguousarray(_read_rows(f["X"], rows).astype("<f4")).tobytes())
    return h.hexdigest()


def content_sha256(path: str | os.PathLike | RadioMLFile, chunk_frames: int = 16384, quiet: bool = False) -> str:
    """SHA-256 of every value of X, Y and Z (plus their shapes and dtypes), read in chunks of ``chunk_frames``.

    Unlike ``data_fingerprint`` it identifies the content completely, at the price of reading all of X.
    """
    rf = _as_file(path)
    h = hashlib.sha256()
    h.update(json.dumps({k: [list(s), d] for k, (s, d) in rf.shapes.items()}, sort_keys=True).encode())
    with rf.open() as f:
        bar = None
        if not quiet and rf.n_frames >= _PROGRESS_MIN_FRAMES:
            bar = tqdm(total=rf.n_frames, unit="frame", desc=f"hashing {rf.path.name}", leave=False)
        try:
            for name in ("X", "Y", "Z"):
                ds = f[name]
                for lo in range(0, rf.n_frames, chunk_frames):
                    h.update(np.ascontiguousarray(ds[lo : lo + chunk_frames]).tobytes())
                    if bar is not None and name == "X":
                        bar.update(min(chunk_frames, rf.n_frames - lo))
        finally:
            if bar is not None:
                bar.close()
    return h.hexdigest()


@dataclass
class DataSplits:
    """Train / validation / test frame indices (sorted int64) into one RadioML-layout file."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    n_classes: int
    class_names: tuple[str, ...]
    snrs_db: tuple[int, ...]
    frames_per_pair: int
    test_sha256: str  # fingerprint of the full prescribed test split, before any filter
    filters: dict = field(default_factory=dict)

    def sizes(self) -> dict[str, int]:
        return {"train": int(self.train.size), "val": int(self.val.size), "test": int(self.test.size)}


def _class_indices(classes: Sequence[str | int], rf: RadioMLFile) -> np.ndarray:
    out = []
    lookup = {name.lower(): i for i, name in enumerate(rf.class_names)}
    for c in classes:
        if isinstance(c, (int, np.integer)) and not isinstance(c, bool):
            if not 0 <= int(c) < rf.n_classes:
                raise AmcpruneError(f"{rf.path}: class index {c} out of range (file has {rf.n_classes} classes)")
            out.append(int(c))
        else:
            key = str(c).strip().lower()
            if key not in lookup:
                raise AmcpruneError(
                    f"{rf.path}: unknown class {c!r} (file classes: {', '.join(rf.class_names)})"
                )
            out.append(lookup[key])
    return np.unique(np.asarray(out, dtype=np.int64))


def load_splits(
    path: str | os.PathLike | RadioMLFile,
    val_fraction: float = 0.0,
    val_seed: int = 0,
    snr_min: float | None = None,
    snr_max: float | None = None,
    classes: Sequence[str | int] | None = None,
    filter_test: bool = False,
) -> DataSplits:
    """The prescribed split of ``path``, a validation carve from train, then the SNR / class filters.

    Validation comes from the training frames only, per (class, SNR) pair, deterministically from ``val_seed``.
    Filters are applied after the split (so the split never changes): to train and val, and to test only
    with ``filter_test=True`` (the challenge accuracy is measured on the whole test set).
    """
    rf = _as_file(path)
    train, test = rf.prescribed_split()
    test_sha = split_fingerprint(test)
    train, val = carve_validation(train, rf.frames_per_pair, val_fraction, val_seed)
    if snr_min is not None and snr_max is not None and snr_min > snr_max:
        raise AmcpruneError(f"SNR filter is empty: snr_min {snr_min} > snr_max {snr_max}")
    class_idx = _class_indices(classes, rf) if classes is not None else None

    def keep(idx: np.ndarray) -> np.ndarray:
        mask = np.ones(idx.size, dtype=bool)
        if snr_min is not None or snr_max is not None:
            snr = rf.snrs_of(idx)
            if snr_min is not None:
                mask &= snr >= snr_min
            if snr_max is not None:
                mask &= snr <= snr_max
        if class_idx is not None:
            mask &= np.isin(rf.labels_of(idx), class_idx)
        return idx[mask]

    train, val = keep(train), keep(val)
    if filter_test:
        test = keep(test)
    if train.size == 0:
        raise AmcpruneError(f"{rf.path}: no training frames left after the SNR/class filters")
    return DataSplits(
        train=train,
        val=val,
        test=test,
        n_classes=rf.n_classes,
        class_names=tuple(rf.class_names),
        snrs_db=tuple(rf.snrs_db),
        frames_per_pair=rf.frames_per_pair,
        test_sha256=test_sha,
        filters={
            "snr_min": snr_min,
            "snr_max": snr_max,
            "classes": None if class_idx is None else [rf.class_names[i] for i in class_idx.tolist()],
            "filter_test": bool(filter_test),
            "val_fraction": float(val_fraction),
            "val_seed": int(val_seed),
        },
    )
