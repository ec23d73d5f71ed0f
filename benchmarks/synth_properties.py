"""Measured properties of the synthetic generator, for the figures in docs/data.md.

    python benchmarks/synth_properties.py [--frames 512]

Prints, for the current defaults and for generator 1's settings (``LEGACY_V1``): carrier frequency offset
(rotations per frame), sample-rate offset (time shift over a frame), the carrier share of the AM classes with
carrier, silent stretches and sidebands of the analog classes, the SNR under both definitions (per sample,
Es/N0 and inside the occupied band), and frame level with and without AGC. Every figure is measured on
generated frames, none is computed from the config.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from amcprune.data.classes import CLASSES, FRAME_LENGTH  # noqa: E402
from amcprune.data.synth import LEGACY_V1, SynthConfig, generate_frames, pair_rng  # noqa: E402

CLEAN = dict(timing_offset=False, sample_rate_offset=False, carrier_offset=False, phase_offset=False,
             fading="none", awgn=False)


def frames(name, n, snr=30, seed=0, clean=False, **cfg):
    out = generate_frames(name, snr, n, pair_rng(seed, CLASSES.index(name), snr), SynthConfig(**cfg),
                          return_clean=clean, complex_output=True)
    return tuple(a.astype(np.complex128) for a in out) if clean else out.astype(np.complex128)


def q(a, ps=(0.05, 0.5, 0.95)):
    return " / ".join(f"{v:.3g}" for v in np.quantile(a, ps))


def rotations(n, **cfg):
    """Turns of the carrier phase over a frame, measured on bare carriers (AM with carrier at index 0)."""
    x = frames("AM-DSB-WC", n, **dict(CLEAN, carrier_offset=True, am_index_min=0.0, am_index_max=0.0, **cfg))
    ph = np.unwrap(np.angle(x), axis=1)
    return np.abs(ph[:, -1] - ph[:, 0]) / (2 * np.pi)


def sro_shift(n, **cfg):
    """Time shift (samples) at the frame's end, measured on a slow complex tone (its phase moves with time)."""
    from amcprune.data.synth import channel as ch

    rng = np.random.default_rng(0)
    knots = ch.random_walk_knots(rng, n, FRAME_LENGTH, cfg.get("sro_max_ppm", 250.0) * 1e-6,
                                 cfg.get("sro_walk_ppm", 0.05) * 1e-6, cfg.get("sro_static", False))
    return np.abs(ch.integrate_walk(knots, FRAME_LENGTH)[:, -1])


def carrier_share(name, n, **cfg):
    x = frames(name, n, **dict(CLEAN, **cfg))
    return np.abs(x.mean(axis=1)) ** 2 / np.mean(np.abs(x) ** 2, axis=1)


def quiet_share(name, n, **cfg):
    p = np.abs(frames(name, n, **dict(CLEAN, **cfg))) ** 2
    c = np.cumsum(np.pad(p, ((0, 0), (1, 0))), axis=1)
    win = (c[:, 64:] - c[:, :-64]) / 64
    return np.mean(win.min(axis=1) < 1e-3 * win.max(axis=1))


def upper_share(n, **cfg):
    x = frames("AM-SSB-SC", n, **dict(CLEAN, **cfg))
    p = np.abs(np.fft.fft(x * np.blackman(FRAME_LENGTH), axis=1)) ** 2
    f = np.fft.fftfreq(FRAME_LENGTH)
    return np.mean(p[:, f > 0.004].sum(axis=1) > p[:, f < -0.004].sum(axis=1))


def snr_figures(definition, n, sps=8, rolloff=0.35):
    x, c = frames("QPSK", n, snr=0, clean=True, snr_definition=definition)
    per_sample = 10 * np.log10(np.mean(np.abs(c) ** 2) / np.mean(np.abs(x - c) ** 2))
    f = np.abs(np.fft.fftfreq(FRAME_LENGTH))
    inside = f <= (1 + rolloff) / (2 * sps)
    ps = np.sum(np.abs(np.fft.fft(c, axis=1)[:, inside]) ** 2)
    pn = np.sum(np.abs(np.fft.fft(x - c, axis=1)[:, inside]) ** 2)
    return per_sample, per_sample + 10 * np.log10(sps), 10 * np.log10(ps / pn)


def levels(agc, n):
    rows = []
    for snr in (-20, 0, 30):
        x = frames("QPSK", n, snr=snr, agc=agc)
        peak = np.maximum(np.abs(x.real).max(axis=1), np.abs(x.imag).max(axis=1))
        beyond = np.mean(np.abs(x.view(np.float64)) > 2)
        rows.append(f"{snr} dB: power {np.median(np.mean(np.abs(x) ** 2, axis=1)):.3g}, peak |I|,|Q| "
                    f"{np.median(peak):.3g}, share of samples beyond +-2: {beyond:.3f}")
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=512)
    n = ap.parse_args(argv).frames
    legacy = dict(LEGACY_V1)

    for label, cfg in (("generator 2 (defaults)", {}), ("generator 1 (LEGACY_V1)", legacy)):
        print(f"== {label}")
        rot = rotations(n, **{k: v for k, v in cfg.items() if k == "cfo_static"})
        print(f"CFO rotations per frame (5/50/95 %): {q(rot)}; max {rot.max():.3g}; share > 1 turn: "
              f"{np.mean(rot > 1):.2f}")
        print(f"SRO shift at the frame end, samples (5/50/95 %): {q(sro_shift(n, **cfg))}")
        for name in ("AM-DSB-WC", "AM-SSB-WC"):
            print(f"{name} carrier share (5/50/95 %): {q(carrier_share(name, n, **cfg))}")
        for name in ("AM-DSB-SC", "AM-SSB-SC"):
            print(f"{name} frames with 64 samples 30 dB below their loudest: {quiet_share(name, n, **cfg):.2f}")
        print(f"AM-SSB-SC frames with the upper sideband: {upper_share(n, **cfg):.2f}")
    for definition in ("sample", "es_n0"):
        ps, esn0, inband = snr_figures(definition, n)
        print(f"== snr_definition={definition}, QPSK at label 0 dB, 8 samples/symbol, roll-off 0.35: "
              f"per-sample SNR {ps:.2f} dB, Es/N0 {esn0:.2f} dB, SNR in the occupied band {inband:.2f} dB")
    for agc in ("none", "power", "peak"):
        print(f"== agc={agc}, QPSK (medians)")
        for row in levels(agc, n):
            print("  " + row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
