"""Epoch time of our in-memory pipeline vs the challenge script's DataLoader pipeline.

The challenge notebook wraps a numpy array in a ``Dataset`` whose ``__getitem__`` returns one transposed frame,
label and SNR, and iterates ``DataLoader(dataset, batch_size, sampler=SubsetRandomSampler(train_idx))``:
one Python call per frame plus the default collate. Ours (``InMemoryData``) keeps the split in one tensor
(int8 pre-quantized for the fixed-range input quantizer) and gathers each batch with one index tensor.

Measured twice on the same random frames: the pipeline alone (iterate the batches, no model), and a full
training epoch of the same model (quantized VGG10 by default).

    python benchmarks/pipeline_vs_dataloader.py --frames 16384 --batch 256 --filters 16 --threads 2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils.data import DataLoader, Dataset, SubsetRandomSampler  # noqa: E402


class ChallengeDataset(Dataset):
    """The 2021 notebook's dataset: frames in a numpy array, one frame per ``__getitem__``."""

    def __init__(self, X, y, snr):
        self.X, self.y, self.snr = X, y, snr

    def __len__(self):
        return len(self.y)

    def __getitem__(self, idx):
        return self.X[idx].transpose(), self.y[idx], self.snr[idx]


def _logits(out):
    return out.value if hasattr(out, "value") and not isinstance(out, torch.Tensor) else out


def train_epoch(model, batches, opt):
    model.train()
    n = 0
    for xb, yb, _ in batches:
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(_logits(model(xb)), yb)
        loss.backward()
        opt.step()
        n += len(yb)
    return n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=16384)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--filters", type=int, default=16)
    ap.add_argument("--float", action="store_true", help="time the float model instead of the quantized one")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--workers", type=int, default=0, help="DataLoader num_workers (the notebook used 0)")
    ap.add_argument("--repeats", type=int, default=3, help="pipeline-only repeats (best taken)")
    ap.add_argument("--no-train", action="store_true", help="only time the pipelines, not a training epoch")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from amcprune.models import ModelSpec, build_model
    from amcprune.train.data import InMemoryData

    rng = np.random.default_rng(0)
    X = (rng.standard_normal((args.frames, 1024, 2)) * 0.5).astype(np.float32)
    y = rng.integers(0, 24, args.frames).astype(np.int64)
    snr = rng.integers(-10, 30, args.frames).astype(np.int64)
    spec = ModelSpec(arch="vgg10", conv_filters=args.filters, quantized=not args.float, weight_bits=4, act_bits=4)

    ours = InMemoryData.from_arrays({"train": (X, y, snr)}, spec=spec, device="cpu")
    loader = DataLoader(ChallengeDataset(X, y, snr), batch_size=args.batch,
                        sampler=SubsetRandomSampler(np.arange(args.frames)), num_workers=args.workers)

    def ours_batches(seed=0):
        return ours.batches("train", args.batch, shuffle=True, generator=torch.Generator().manual_seed(seed))

    def drain(it):
        t0 = time.perf_counter()
        n = 0
        for xb, yb, _ in it:
            n += xb.shape[0]
            xb.float().sum()  # touch the batch
        return time.perf_counter() - t0, n

    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, {args.frames} frames, batch {args.batch}, "
          f"storage {'int8' if ours.int8 else 'float32'} ({ours.nbytes() / 2**20:.0f} MiB vs {X.nbytes / 2**20:.0f} MiB numpy)")
    t_ours = min(drain(ours_batches(r))[0] for r in range(args.repeats))
    t_dl = min(drain(iter(loader))[0] for _ in range(args.repeats))
    print(f"pipeline only : ours {t_ours:7.3f} s ({args.frames / t_ours:9.0f} frames/s)   "
          f"DataLoader {t_dl:7.3f} s ({args.frames / t_dl:9.0f} frames/s)   DataLoader/ours {t_dl / t_ours:6.1f}x")
    if args.no_train:
        return 0

    # Warm up kernels and allocator once, then time in the order ours, DataLoader, DataLoader, ours so that
    # drift of a shared machine's load hits both alike.
    torch.manual_seed(0)
    warm = build_model(spec)
    train_epoch(warm, list(ours_batches(99))[:3], torch.optim.Adam(warm.parameters(), lr=1e-3))
    results = {"ours": [], "dataloader": []}
    makers = {"ours": lambda: ours_batches(0), "dataloader": lambda: iter(loader)}
    for name in ("ours", "dataloader", "dataloader", "ours"):
        torch.manual_seed(0)
        model = build_model(spec)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        t0 = time.perf_counter()
        n = train_epoch(model, makers[name](), opt)
        dt = time.perf_counter() - t0
        results[name].append(dt)
        print(f"training epoch: {name:10s} {dt:7.2f} s ({n / dt:6.0f} samples/s)", flush=True)
    mo, md = np.mean(results["ours"]), np.mean(results["dataloader"])
    print(f"training epoch (mean of 2): ours {mo:.2f} s, DataLoader {md:.2f} s, DataLoader/ours {md / mo:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
