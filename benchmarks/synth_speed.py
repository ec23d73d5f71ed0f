"""Throughput of the synthetic RadioML-like generator: frames/s for generation + HDF5 writing.

    python benchmarks/synth_speed.py --preset quick --workers 2 --out /tmp/synth_quick.h5

Also reports single-process generation speed without writing (``--gen-only``), which isolates numpy work
from inter-process traffic and disk. The output file is deleted afterwards unless ``--keep``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from amcprune.data.classes import CLASSES  # noqa: E402
from amcprune.data.synth import LEGACY_V1, generate_frames, pair_rng, synth_config, write_synthetic  # noqa: E402


def gen_only(preset: str, frames_per_class: int, overrides: dict) -> float:
    cfg = synth_config(preset, **overrides)
    t = time.perf_counter()
    n = 0
    for ci, name in enumerate(cfg.classes):
        generate_frames(name, 10, frames_per_class, pair_rng(cfg.seed, CLASSES.index(name), 10), cfg)
        n += frames_per_class
    return n / (time.perf_counter() - t)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="/tmp/amcprune_synth_speed.h5")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--frames-per-pair", type=int, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the output file")
    ap.add_argument("--gen-only", action="store_true", help="only time in-process generation (no file)")
    ap.add_argument("--legacy-v1", action="store_true", help="generator 1's settings (LEGACY_V1), to compare")
    args = ap.parse_args(argv)
    overrides = dict(LEGACY_V1) if args.legacy_v1 else {}

    if args.gen_only:
        fps = gen_only(args.preset, 512, overrides)
        print(f"generation only, 1 process: {fps:,.0f} frames/s")
        return 0
    cfg = synth_config(args.preset, seed=args.seed, frames_per_pair=args.frames_per_pair, **overrides)
    load_before = os.getloadavg()[0]
    t0, wall0 = os.times(), time.perf_counter()
    out = write_synthetic(cfg, args.out, workers=args.workers, quiet=True)
    wall = time.perf_counter() - wall0
    t1 = os.times()
    main_cpu = (t1.user - t0.user) + (t1.system - t0.system)
    child_cpu = (t1.children_user - t0.children_user) + (t1.children_system - t0.children_system)
    cpu = main_cpu + child_cpu
    size = os.path.getsize(out)
    label = args.preset + (" (LEGACY_V1)" if args.legacy_v1 else "")
    print(f"preset={label} workers={args.workers} frames={cfg.n_frames:,} file={size / 2**20:.0f} MiB")
    print(f"wall {wall:.2f}s -> {cfg.n_frames / wall:,.0f} frames/s  (load avg before {load_before:.1f}, "
          f"{os.cpu_count()} cores)")
    # On a busy machine wall time measures the neighbours; CPU time measures the work.
    print(f"CPU {cpu:.2f}s (writer {main_cpu:.2f}s, workers {child_cpu:.2f}s) = {1e6 * cpu / cfg.n_frames:.0f} "
          f"us/frame -> {cfg.n_frames / cpu * min(args.workers, os.cpu_count() or 1):,.0f} frames/s "
          f"if {min(args.workers, os.cpu_count() or 1)} idle cores were all ours")
    if not args.keep:
        out.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
