"""Training throughput of float vs quantized (Brevitas) VGG10, with and without the fast path.

For each conv width, builds the float model and the quantized one (twice, same weights: Brevitas' own code,
``brevitas``, and the training fast path of ``amcprune.train.fastquant``, ``fast``), runs ``--warmup`` training
steps of each (``--past-stats`` first ends the activation quantizers' statistics phase, as after 300 steps),
then times ``--repeats`` blocks of ``--steps`` steps (forward, loss, backward, Adam step) on a fixed random
batch of ``--batch`` frames, the modes interleaved block by block so that load drift hits them alike, and
prints the median samples/s and the median per-block ratio of each quantized mode's step time to the float
step time. ``--profile`` prints a torch.profiler table of a few steps of the first quantized mode.

    python benchmarks/train_speed.py --threads 2 --filters 16 32 64 --batch 256
    python benchmarks/train_speed.py --filters 32 --modes fast --profile
    BREVITAS_JIT=1 python benchmarks/train_speed.py ...     # Brevitas' TorchScript mode (see the report)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def _logits(out):
    return out.value if hasattr(out, "value") and not isinstance(out, torch.Tensor) else out


def make_stepper(model, batch, device, fast=False):
    """A closure running one training step (forward, loss, backward, Adam) on a fixed random batch; with
    ``fast``, the model's fast path is switched on for the stepper's lifetime (the Trainer switches it on once
    per epoch)."""
    from amcprune.train.fastquant import fast_quant

    model.to(device).train()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(batch, 2, 1024, generator=g) * 0.5).to(device)
    y = torch.randint(0, 24, (batch,), generator=g).to(device)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(_logits(model(x)), y)
        loss.backward()
        opt.step()

    if fast:
        step.fast_quant = fast_quant(model)  # switched off when the stepper is collected
        step.fast_quant.__enter__()

    return step


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
CLOCK = CLOCKS["wall"]


def rate(step, steps, batch, device):
    """Samples per second of ``CLOCK``: wall time, or (``--clock cpu``) this process's CPU time, all threads
    together, which other jobs on the machine barely change (with one thread: the work a step costs)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = CLOCK()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (CLOCK() - t0)


def compare(steppers, batch, steps, warmup, repeats, device):
    """Interleaved timing (float block, each quantized block, float block, ...) so that load drift hits all
    alike. ``steppers``: {name: step}, the first is the reference. Returns {name: median samples/s} and
    {name: median over blocks of (reference samples/s / samples/s)}, i.e. the step-time ratio."""
    names = list(steppers)
    for _ in range(warmup):
        for name in names:
            steppers[name]()
    rates: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(repeats):
        for name in names:
            rates[name].append(rate(steppers[name], steps, batch, device))
    ref = rates[names[0]]
    sps = {name: statistics.median(r) for name, r in rates.items()}
    ratio = {name: statistics.median(f / q for f, q in zip(ref, r)) for name, r in rates.items()}
    return sps, ratio


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--filters", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per block")
    ap.add_argument("--repeats", type=int, default=5, help="timed blocks (median reported)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--past-stats", action="store_true",
                    help="end the activation quantizers' statistics phase first (as after 300 steps of training)")
    ap.add_argument("--modes", nargs="+", choices=["brevitas", "fast"], default=["brevitas", "fast"],
                    help="quantized modes timed beside float: Brevitas' own code, the training fast path")
    ap.add_argument("--bits", type=int, default=4, help="weight and activation bits of the quantized model")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                    help="wall time (default), or process CPU time: robust to other jobs on a shared machine")
    ap.add_argument("--profile", action="store_true", help="profile quantized steps at the first --filters width")
    ap.add_argument("--compile", action="store_true",
                    help="torch.compile the quantized model (use with --past-stats; compiling takes minutes on CPU)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)

    global CLOCK
    CLOCK = CLOCKS[args.clock]
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else args.device if args.device != "auto" else "cpu")
    from amcprune.models import ModelSpec, build_model
    from amcprune.train.trainer import _stats_modules

    def build(f, quantized):
        torch.manual_seed(0)
        spec = ModelSpec(arch="vgg10", conv_filters=f, quantized=quantized, weight_bits=args.bits, act_bits=args.bits)
        model = build_model(spec)
        if args.past_stats:
            for _, m in _stats_modules(model):
                m.init_scale()  # what Brevitas does after collect_stats_steps training steps
        if quantized and args.compile:
            model = torch.compile(model)
        return model

    from amcprune.train.fastquant import backend

    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {device}, batch {args.batch}, "
          f"BREVITAS_JIT={os.environ.get('BREVITAS_JIT', '0')}, past_stats={args.past_stats}, compile={args.compile}, "
          f"fast backend={backend()}, clock {args.clock}, load average {os.getloadavg()[0]:.2f}")
    rows = []
    head = f"{'filters':>7} {'float sps':>10}"
    for mode in args.modes:
        head += f" {mode + ' sps':>13} {mode + '/float':>15}"
    print(head)
    for f in args.filters:
        steppers = {"float": make_stepper(build(f, False), args.batch, device)}
        for mode in args.modes:
            steppers[mode] = make_stepper(build(f, True), args.batch, device, fast=mode == "fast")
        sps, ratio = compare(steppers, args.batch, args.steps, args.warmup, args.repeats, device)
        row = {"filters": f, "float_sps": sps["float"], "load_avg_1min": os.getloadavg()[0]}
        line = f"{f:>7d} {sps['float']:>10.0f}"
        for mode in args.modes:
            row[f"{mode}_sps"], row[f"{mode}_ratio"] = sps[mode], ratio[mode]
            line += f" {sps[mode]:>13.0f} {ratio[mode]:>14.2f}x"
        rows.append(row)
        print(line, flush=True)

    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        step = make_stepper(build(args.filters[0], True), args.batch, device, fast=args.modes[0] == "fast")
        for _ in range(args.warmup):
            step()
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with profile(activities=acts) as prof:
            for _ in range(args.steps):
                step()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
