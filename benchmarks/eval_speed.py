"""Evaluation throughput: Brevitas' plain eval against ``amcprune.train.fasteval`` (Brevitas' quant_inference_mode).

For each architecture, builds the quantized model (a few training steps on random frames first, so that its
scales are learned ones), then evaluates ``--frames`` random frames through ``predict_batches`` in each mode:
``plain`` (Brevitas' eval-mode forward) and ``fast`` (quant_inference_mode with cached quantized weights), each
at every ``--batch`` size, the modes interleaved repeat by repeat so that load drift hits them alike. Prints the
median seconds per pass, frames/s, the speed-up over the first row (plain at the first batch size: the
previous default), and whether the predictions are identical to that row's.

    python benchmarks/eval_speed.py --threads 2                             # demo VGG10, batches 2048 and 256
    python benchmarks/eval_speed.py --archs vgg10-16 vgg10-64 compact-winner --batches 2048 256 128
    python benchmarks/eval_speed.py --from demo-out/prune/final.pt --data demo-out/data/synth-quick.h5

``--from`` (a checkpoint or run directory) with ``--data`` times that trained model on the file's test split
(``--frames`` of it) instead of the ``--archs`` models on random frames: a pruned model's masks and its learned
scales are part of what evaluation costs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

ARCHS = {
    "vgg10-16": dict(arch="vgg10", conv_filters=16, dense_width=64, weight_bits=4, act_bits=4),
    "vgg10-32": dict(arch="vgg10", conv_filters=32, dense_width=64, weight_bits=4, act_bits=4),
    "vgg10-64": dict(arch="vgg10", conv_filters=64, dense_width=128, weight_bits=4, act_bits=4),
    "compact-winner": dict(arch="compact-winner"),
}


def _model(name: str):
    from amcprune.models import ModelSpec, build_model
    from amcprune.train.evaluate import _logits

    torch.manual_seed(0)
    model = build_model(ModelSpec(num_classes=24, **ARCHS[name])).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        x = torch.randn(32, 2, 1024, generator=g) * 0.5
        opt.zero_grad()
        F.cross_entropy(_logits(model(x)), torch.randint(0, 24, (32,), generator=g)).backward()
        opt.step()
    return model.eval()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--archs", nargs="+", default=["vgg10-16"], choices=sorted(ARCHS))
    ap.add_argument("--batches", type=int, nargs="+", default=[2048, 256])
    ap.add_argument("--frames", type=int, default=4224, help="frames per pass (the demo's validation split: 4,224)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--from", dest="source", type=Path, default=None, help="a trained checkpoint or run directory")
    ap.add_argument("--data", type=Path, default=None, help="with --from: the RadioML-layout file (its test split)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from amcprune.train.evaluate import predict_batches

    if args.source is not None:
        from amcprune.data import radioml
        from amcprune.train.data import InMemoryData
        from amcprune.train.evaluate import load_trained

        if args.data is None:
            ap.error("--from needs --data")
        trained, spec, _ = load_trained(args.source)
        test = radioml.load_splits(args.data).test[: args.frames]
        data = InMemoryData.from_file(args.data, {"test": test}, spec=spec, device="cpu", quiet=True)
        x, y, _ = next(iter(data.batches("test", len(test))))  # one batch: the whole split, as float frames
        models = [(str(args.source), trained.eval())]
    else:
        g = torch.Generator().manual_seed(2)
        x = torch.randn(args.frames, 2, 1024, generator=g) * 0.5
        y = torch.randint(0, 24, (args.frames,), generator=g)
        models = [(name, None) for name in args.archs]
    args.frames = len(x)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, {args.frames} frames, "
          f"load average {os.getloadavg()[0]:.2f}")
    print("| model | mode | batch | s per pass | frames/s | x first row | same predictions |")
    print("|---|---|---|---|---|---|---|")
    for name, model in models:
        model = model if model is not None else _model(name)
        runs = [(mode, b) for b in args.batches for mode in ("plain", "fast")]
        times: dict[tuple[str, int], list[float]] = {r: [] for r in runs}
        preds: dict[tuple[str, int], torch.Tensor] = {}

        def batches(b):
            return [(x[i:i + b], y[i:i + b], y[i:i + b]) for i in range(0, args.frames, b)]

        for r in runs:  # warm-up, and the predictions
            preds[r] = predict_batches(model, batches(r[1]), fast=r[0] == "fast")[0]
        for _ in range(args.repeats):
            for mode, b in runs:
                t0 = time.perf_counter()
                predict_batches(model, batches(b), fast=mode == "fast")
                times[(mode, b)].append(time.perf_counter() - t0)
        first = runs[0]
        base = statistics.median(times[first])
        for r in runs:
            t = statistics.median(times[r])
            print(f"| {name} | {r[0]} | {r[1]} | {t:.3f} | {args.frames / t:,.0f} | {base / t:.2f}x | "
                  f"{bool(torch.equal(preds[r], preds[first]))} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
