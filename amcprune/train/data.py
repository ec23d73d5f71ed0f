"""In-memory batches: the whole split lives in one tensor and batches are gathered by index tensors.

No ``Dataset``/``DataLoader``, no per-sample Python: an epoch is one ``torch.randperm`` (seeded
``torch.Generator``) and one fancy-indexing gather per batch, on the device that holds the data.

Storage
-------
Frames are stored in the model's layout ``(n, 2, 1024)``. When the model's input quantizer has a fixed
range and at most 8 bits (``amcprune.models.input_quant_info(spec)`` is not ``None``), frames are stored
pre-quantized as int8 integers (``quantize_input_int8``) and dequantized per batch on the device
(``dequantize_input``): the model sees exactly the values it would see from the float frames, at a quarter
of the memory. Otherwise (float models, learned input scales) frames are stored as float32.

Memory
------
Frames are read with ``read_frames`` in chunks (``chunk_frames``, default 65,536 frames = 512 MiB of float32)
and copied into a preallocated tensor, so the peak is the final storage plus one chunk. Before allocating,
the needed size is compared with the memory available on the target device:

- CUDA device too small, but the host has room: the data stays in host memory (pinned) and each batch is
  copied to the GPU with ``non_blocking=True``; a warning says so.
- Host memory too small: an ``AmcpruneError`` states the size needed and what is available; train on a
  subset (``--train-snr-min``, fewer classes) or on a larger machine. The full RadioML 2018.01A training
  split (2.3 M frames) needs 4.7 GB as int8 and 18.8 GB as float32.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

import h5py
import numpy as np
import torch
from tqdm.auto import tqdm

from amcprune.data import radioml
from amcprune.data.classes import CLASSES
from amcprune.errors import AmcpruneError
from amcprune.models import ModelSpec, dequantize_input, input_quant_info, quantize_input_int8
from amcprune.train.config import resolve_device

SPLIT_NAMES = ("train", "val", "test")


@dataclass
class Split:
    """One split's tensors on the storage device: ``x`` (n, 2, L) int8 or float32, ``y`` and ``snr`` int64."""

    x: torch.Tensor
    y: torch.Tensor
    snr: torch.Tensor
    indices: np.ndarray | None = None  # rows of the source file, when loaded from one

    def __len__(self) -> int:
        return int(self.y.shape[0])


def int8_spec(spec: ModelSpec | None) -> ModelSpec | None:
    """``spec`` when its input quantizer lets frames be stored as int8 codes
    (``amcprune.models.input_quant_info``), else ``None`` (frames stay float32)."""
    if spec is None or input_quant_info(spec) is None:
        return None
    return spec


def to_model_layout(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Frames as a float32 tensor ``(n, 2, L)``; accepts the file layout ``(n, L, 2)`` too."""
    t = torch.as_tensor(x)
    if t.ndim != 3:
        raise AmcpruneError(f"expected frames of shape (n, 1024, 2) or (n, 2, 1024), got {tuple(t.shape)}")
    if t.shape[1] != 2 and t.shape[2] == 2:
        t = t.transpose(1, 2)
    elif t.shape[1] != 2:
        raise AmcpruneError(f"expected frames of shape (n, 1024, 2) or (n, 2, 1024), got {tuple(t.shape)}")
    return t.to(torch.float32).contiguous()


def _available_bytes(device: torch.device) -> int | None:
    if device.type == "cuda":
        try:
            free, _total = torch.cuda.mem_get_info(device)
            return int(free)
        except Exception:  # pragma: no cover - no CUDA here
            return None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


class InMemoryData:
    """Train/val/test splits held as tensors, batched by index tensors.

    Build it with :meth:`from_file` (chunked reading of an HDF5 file through ``read_frames``) or
    :meth:`from_arrays` (numpy/torch arrays, e.g. in tests). ``device`` is where batches are consumed;
    ``storage_device`` where the frames live (the same unless they did not fit on the GPU).
    """

    def __init__(
        self,
        splits: Mapping[str, Split],
        *,
        device: torch.device,
        storage_device: torch.device | None = None,
        input_spec: ModelSpec | None = None,
        class_names: Sequence[str] | None = None,
        fingerprint: str | None = None,
        source: str | None = None,
    ) -> None:
        self.splits: dict[str, Split] = dict(splits)
        self.device = torch.device(device)
        self.storage_device = torch.device(storage_device) if storage_device is not None else self.device
        self.input_spec = input_spec  # frames are this spec's int8 input codes (None: float32 frames)
        n_classes = 0
        for s in self.splits.values():
            if len(s):
                n_classes = max(n_classes, int(s.y.max()) + 1)
        if class_names is None:
            class_names = list(CLASSES[: max(n_classes, 1)]) if n_classes <= len(CLASSES) else [str(i) for i in range(n_classes)]
        self.class_names = list(class_names)
        self.fingerprint = fingerprint
        self.source = source

    # --- construction -----------------------------------------------------------------------------
    @classmethod
    def from_arrays(
        cls,
        arrays: Mapping[str, tuple[Any, Any, Any]],
        *,
        spec: Any | None = None,
        device: str | torch.device = "cpu",
        class_names: Sequence[str] | None = None,
        store_int8: bool | None = None,
    ) -> "InMemoryData":
        """``arrays[split] = (X, y, snr)`` with X in (n, 1024, 2) or (n, 2, 1024) layout."""
        device = torch.device(device)
        input_spec = int8_spec(spec) if store_int8 is not False else None
        if store_int8 and input_spec is None:
            raise AmcpruneError("int8 storage needs a model whose input quantizer has a fixed range and <= 8 bits")
        splits = {}
        for name, (x, y, snr) in arrays.items():
            xt = to_model_layout(x)
            xs = quantize_input_int8(xt, input_spec) if input_spec is not None else xt
            splits[name] = Split(
                x=xs.to(device),
                y=torch.as_tensor(np.asarray(y), dtype=torch.int64).to(device),
                snr=torch.as_tensor(np.asarray(snr).reshape(-1), dtype=torch.int64).to(device),
            )
        return cls(splits, device=device, input_spec=input_spec, class_names=class_names)

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike,
        splits: Any,
        *,
        spec: Any | None = None,
        device: str | torch.device = "cpu",
        chunk_frames: int = 65536,
        quiet: bool = False,
        class_names: Sequence[str] | None = None,
        store_int8: bool | None = None,
        names: Sequence[str] = SPLIT_NAMES,
    ) -> "InMemoryData":
        """Read the given splits (a ``DataSplits`` or a mapping name -> index array) chunk by chunk."""
        device = torch.device(device)
        input_spec = int8_spec(spec) if store_int8 is not False else None
        if store_int8 and input_spec is None:
            raise AmcpruneError("int8 storage needs a model whose input quantizer has a fixed range and <= 8 bits")
        if isinstance(splits, Mapping):
            index_sets = {k: np.asarray(v, dtype=np.int64) for k, v in splits.items()}
        else:
            index_sets = {k: np.asarray(getattr(splits, k), dtype=np.int64) for k in names if getattr(splits, k, None) is not None}
        if class_names is None:
            try:
                class_names = list(radioml.RadioMLFile(path).class_names)
            except Exception:
                class_names = None
        length = cls._frame_length(path)
        itemsize = 1 if input_spec is not None else 4
        need = sum(len(v) for v in index_sets.values()) * 2 * length * itemsize
        storage = cls._choose_storage(device, need, "int8" if input_spec is not None else "float32")
        pin = storage.type == "cpu" and device.type == "cuda"

        out: dict[str, Split] = {}
        for name, idx in index_sets.items():
            n = len(idx)
            x = torch.empty((n, 2, length), dtype=torch.int8 if input_spec is not None else torch.float32, device=storage)
            if pin:
                x = x.pin_memory()
            y = torch.empty(n, dtype=torch.int64)
            snr = torch.empty(n, dtype=torch.int64)
            bar = tqdm(total=n, desc=f"load {name}", unit="frame", unit_scale=True, disable=quiet or n == 0, leave=False)
            for start in range(0, n, chunk_frames):
                chunk = idx[start : start + chunk_frames]
                xc, yc, sc = radioml.read_frames(path, chunk, quiet=True)
                xt = to_model_layout(xc)
                if input_spec is not None:
                    xt = quantize_input_int8(xt, input_spec)
                x[start : start + len(chunk)].copy_(xt)
                y[start : start + len(chunk)] = torch.as_tensor(np.asarray(yc), dtype=torch.int64)
                snr[start : start + len(chunk)] = torch.as_tensor(np.asarray(sc).reshape(-1), dtype=torch.int64)
                bar.update(len(chunk))
            bar.close()
            out[name] = Split(x=x, y=y.to(storage), snr=snr.to(storage), indices=idx)
        try:
            fingerprint = radioml.data_fingerprint(path)
        except Exception:
            fingerprint = None
        return cls(out, device=device, storage_device=storage, input_spec=input_spec, class_names=class_names,
                   fingerprint=fingerprint, source=str(path))

    @staticmethod
    def _frame_length(path: str | os.PathLike) -> int:
        try:
            with h5py.File(path, "r") as fh:
                return int(fh["X"].shape[1])
        except Exception:
            return 1024

    @staticmethod
    def _choose_storage(device: torch.device, need: int, kind: str) -> torch.device:
        avail = _available_bytes(device)
        if avail is None or need <= 0.9 * avail:
            return device
        if device.type == "cuda":
            host = _available_bytes(torch.device("cpu"))
            if host is None or need <= 0.8 * host:
                warnings.warn(
                    f"the data needs {_gib(need)} as {kind} but the GPU has {_gib(avail)} free: keeping it in pinned "
                    "host memory and copying each batch to the GPU",
                    stacklevel=3,
                )
                return torch.device("cpu")
            avail = host
        raise AmcpruneError(
            f"the selected frames need {_gib(need)} in memory as {kind} but only {_gib(avail)} is available: "
            "train on fewer frames (e.g. --train-snr-min) or on a machine with more memory"
        )

    # --- access -----------------------------------------------------------------------------------
    def __contains__(self, split: str) -> bool:
        return split in self.splits

    def size(self, split: str) -> int:
        return len(self.splits[split]) if split in self.splits else 0

    @property
    def int8(self) -> bool:
        return self.input_spec is not None

    def nbytes(self) -> int:
        return sum(s.x.numel() * s.x.element_size() for s in self.splits.values())

    def split(self, name: str) -> Split:
        if name not in self.splits:
            raise AmcpruneError(f"no {name!r} split loaded (have: {', '.join(self.splits) or 'none'})")
        return self.splits[name]

    def check_model_spec(self, spec: ModelSpec | None, what: str = "the model") -> None:
        """Raise ``AmcpruneError`` unless these frames can feed a model built from ``spec``: the same frame
        length as ``spec.input_length`` and, for frames stored as int8 input codes, the same input quantizer
        (a model whose input width differs would silently see the other quantizer's values)."""
        if spec is None:
            return
        lengths = {int(s.x.shape[-1]) for s in self.splits.values() if len(s)}
        if lengths and lengths != {spec.input_length}:
            raise AmcpruneError(f"the frames have {min(lengths)} samples but {what} takes {spec.input_length} (input_length)")
        if self.input_spec is not None and input_quant_info(spec) != input_quant_info(self.input_spec):
            have = "float" if not spec.quantized else f"{spec.input_bits}-bit"
            raise AmcpruneError(f"the frames are stored as the codes of a {self.input_spec.input_bits}-bit input "
                                f"quantizer but {what} has a {have} input: load the data for its spec")

    def dequantize(self, x: torch.Tensor) -> torch.Tensor:
        """Stored frames -> the float tensor the model takes."""
        if self.input_spec is None:
            return x if x.dtype == torch.float32 else x.float()
        return dequantize_input(x, self.input_spec)

    def batches(
        self,
        split: str,
        batch_size: int,
        *,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        drop_singleton: bool = False,
        with_index: bool = False,
    ) -> Iterator[tuple[torch.Tensor, ...]]:
        """Yield ``(x float (b, 2, L), y, snr)`` on ``self.device`` (``with_index``: and the frames' indices in
        the split, on the CPU, e.g. to look up a teacher's cached outputs).

        With ``shuffle`` the order is ``torch.randperm(n, generator=generator)`` (a CPU generator, so the
        order is the same on every device). ``drop_singleton`` drops a last batch of one frame (BatchNorm
        cannot train on it).
        """
        s = self.split(split)
        n = len(s)
        if n == 0:
            return
        order = torch.randperm(n, generator=generator) if shuffle else None
        if order is not None:
            order = order.to(self.storage_device)
        moving = self.storage_device != self.device
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            if drop_singleton and stop - start == 1 and n > 1:
                break
            if order is None:
                idx = None
                xb, yb, sb = s.x[start:stop], s.y[start:stop], s.snr[start:stop]
            else:
                idx = order[start:stop]
                xb, yb, sb = s.x.index_select(0, idx), s.y.index_select(0, idx), s.snr.index_select(0, idx)
            if moving:
                xb = xb.to(self.device, non_blocking=True)
                yb = yb.to(self.device, non_blocking=True)
                sb = sb.to(self.device, non_blocking=True)
            if with_index:
                index = torch.arange(start, stop) if idx is None else idx.cpu()
                yield self.dequantize(xb), yb, sb, index
            else:
                yield self.dequantize(xb), yb, sb

    def n_batches(self, split: str, batch_size: int) -> int:
        return math.ceil(self.size(split) / batch_size)


def load_data(data_path: str | os.PathLike, spec: Any, train_config: Any, quiet: bool = False):
    """Train / val / test splits of ``data_path`` as an ``InMemoryData`` (val carved from train)."""
    splits = radioml.load_splits(
        data_path, val_fraction=train_config.val_fraction, val_seed=train_config.seed,
        snr_min=train_config.train_snr_min, snr_max=train_config.train_snr_max,
    )
    if splits.n_classes != spec.num_classes:
        raise AmcpruneError(f"{data_path}: the file has {splits.n_classes} classes but the model {spec.num_classes}")
    return InMemoryData.from_file(data_path, splits, spec=spec, device=resolve_device(train_config.device),
                                  quiet=quiet, class_names=list(splits.class_names))
