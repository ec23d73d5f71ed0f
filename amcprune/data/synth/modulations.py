"""The 24 RadioML 2018 classes: constellations and baseband (pre-channel) signal definitions.

Digital classes are linear modulations (a constellation, raised-root-cosine pulses), except GMSK (a
continuous-phase FSK) and OQPSK (QPSK whose quadrature rail is delayed by half a symbol). Analog classes
are driven by a band-limited random message, a stand-in for the real audio of the original datasets:
band-limited Gaussian noise with speech/music-like bandwidth, shaped by ``speech_envelope`` into talk spurts
and pauses at a wandering level, so that some frames carry little or no modulation, as real audio does.

All constellations have unit mean power over their points (uniform symbols), so that the Es of every
class is the same before the channel; frames are renormalised after the channel anyway (see ``generator``).
"""

from __future__ import annotations

import math

import numpy as np

from amcprune.data.classes import CLASSES

# ---- class kinds --------------------------------------------------------------------------------------------
LINEAR = "linear"   # constellation + RRC pulse shaping
OQPSK_KIND = "oqpsk"
GMSK_KIND = "gmsk"
AM_DSB = "am-dsb"
AM_SSB = "am-ssb"
FM_KIND = "fm"

CLASS_KIND: dict[str, str] = {
    **{c: LINEAR for c in CLASSES[:17]},
    "AM-SSB-WC": AM_SSB, "AM-SSB-SC": AM_SSB,
    "AM-DSB-WC": AM_DSB, "AM-DSB-SC": AM_DSB,
    "FM": FM_KIND, "GMSK": GMSK_KIND, "OQPSK": OQPSK_KIND,
}
WITH_CARRIER = {"AM-SSB-WC", "AM-DSB-WC"}


def _unit_power(points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, dtype=np.complex128)
    return points / np.sqrt(np.mean(np.abs(points) ** 2))


def ask_points(m: int) -> np.ndarray:
    """Bipolar M-ASK (M-PAM) levels -(M-1)..(M-1) in steps of 2 on the real axis, as GNU Radio's
    generic constellations (and the RadioML constellation plots) show them: M distinct amplitudes."""
    return _unit_power(np.arange(-(m - 1), m, 2, dtype=float))


def ook_points() -> np.ndarray:
    """On-off keying: an 'off' level 0 and one 'on' level (sqrt 2 after power normalisation)."""
    return _unit_power(np.array([0.0, 1.0]))


def psk_points(m: int) -> np.ndarray:
    """M-PSK on the unit circle; QPSK at 45 degrees (the usual Gray-mapped square), others from 0."""
    offset = math.pi / 4 if m == 4 else 0.0
    return np.exp(1j * (2 * math.pi * np.arange(m) / m + offset))


# Ring layouts (points per ring, radius relative to the inner ring, phase offset of the ring's first point).
# 16/32APSK: DVB-S2 (EN 302 307-1) at code rates 2/3 and 3/4 (gamma 2.85; 2.84 and 5.27), with the
# standard's ring phases. 64APSK: DVB-S2X 4+12+20+28 with radius ratios 2.4, 4.3, 7.0 (the 132/180 rate,
# approximately). 128APSK: a DVB-S2X-like 6-ring layout 16+16+16+16+16+48; the radius ratios
# 1, 1.72, 2.12, 2.68, 3.22, 3.78 are our choice (evenly spread outer rings), not the standard's table.
APSK_RINGS: dict[int, list[tuple[int, float, float]]] = {
    16: [(4, 1.0, math.pi / 4), (12, 2.85, math.pi / 12)],
    32: [(4, 1.0, math.pi / 4), (12, 2.84, math.pi / 12), (16, 5.27, 0.0)],
    64: [(4, 1.0, math.pi / 4), (12, 2.4, math.pi / 12), (20, 4.3, math.pi / 20), (28, 7.0, math.pi / 28)],
    128: [(16, 1.0, math.pi / 16), (16, 1.72, 0.0), (16, 2.12, math.pi / 16), (16, 2.68, 0.0),
          (16, 3.22, math.pi / 16), (48, 3.78, math.pi / 48)],
}


def apsk_points(m: int) -> np.ndarray:
    rings = APSK_RINGS[m]
    pts = [r * np.exp(1j * (off + 2 * math.pi * np.arange(n) / n)) for n, r, off in rings]
    out = np.concatenate(pts)
    assert len(out) == m
    return _unit_power(out)


def qam_points(m: int) -> np.ndarray:
    """Square QAM for even powers of two; cross QAM for 32 (6x6 minus the 4 corners) and 128 (12x12
    minus a 2x2 block at each corner), the standard cross shapes with no corner points."""
    side = int(round(math.sqrt(m)))
    if side * side == m:
        lv = np.arange(-(side - 1), side, 2, dtype=float)
        pts = (lv[None, :] + 1j * lv[:, None]).ravel()
    else:
        side = {32: 6, 128: 12}[m]
        cut = {32: 1, 128: 2}[m]
        lv = np.arange(-(side - 1), side, 2, dtype=float)
        grid = lv[None, :] + 1j * lv[:, None]
        idx = np.arange(side)
        edge = (idx < cut) | (idx >= side - cut)
        corner = edge[None, :] & edge[:, None]
        pts = grid[~corner]
    assert len(pts) == m
    return _unit_power(pts)


def constellation(name: str) -> np.ndarray:
    """Unit-mean-power points (complex128) of a linearly modulated class."""
    if name == "OOK":
        return ook_points()
    if name.endswith("ASK"):
        return ask_points(int(name[:-3]))
    if name == "BPSK":
        return psk_points(2)
    if name == "QPSK":
        return psk_points(4)
    if name.endswith("APSK"):
        return apsk_points(int(name[:-4]))
    if name.endswith("PSK"):
        return psk_points(int(name[:-3]))
    if name.endswith("QAM"):
        return qam_points(int(name[:-3]))
    raise KeyError(name)


CONSTELLATIONS: dict[str, np.ndarray] = {
    c: constellation(c).astype(np.complex64) for c, k in CLASS_KIND.items() if k == LINEAR
}

# ---- analog message and modulation parameters ----------------------------------------------------------------
# All frequencies in cycles per sample. At the 2016 generator's 200 kHz, 0.002 is 400 Hz (speech has
# little energy below) and 0.015-0.05 are 3-10 kHz, the bandwidth of speech and AM-broadcast audio.
# The modulation index of AM and the deviation of FM are config fields (``SynthConfig.am_index_*``,
# ``fm_deviation_*``), as are the pauses and level of the speech envelope (``speech_*``).
MESSAGE_F_LO = 0.002
MESSAGE_F_HI = (0.015, 0.05)
MESSAGE_RMS = 1.0 / 3.0
"""Message RMS while talking at the nominal level: Gaussian peaks stay below 1 (3 sigma) 99.7 % of the
time, so AM at index 1 rarely over-modulates."""


def message_spectrum(rng: np.random.Generator, n: int, freqs_pos: np.ndarray) -> np.ndarray:
    """Random one-sided spectra (n, len(freqs_pos)) of band-limited messages with unit-free scale.

    A pink-ish (1/sqrt(f)) amplitude slope like speech and music, between MESSAGE_F_LO and a per-frame
    upper edge drawn from MESSAGE_F_HI. Zero mean (no DC bin), so the FM phase is periodic.
    """
    f_hi = rng.uniform(*MESSAGE_F_HI, size=(n, 1)).astype(np.float32)
    nb = len(freqs_pos)
    c = rng.standard_normal((n, nb, 2), dtype=np.float32).view(np.complex64)[..., 0]
    amp = (MESSAGE_F_LO / np.maximum(freqs_pos, MESSAGE_F_LO)) ** 0.5
    mask = (freqs_pos[None, :] >= MESSAGE_F_LO) & (freqs_pos[None, :] <= f_hi)
    return c * (amp[None, :] * mask).astype(np.float32)


def speech_envelope(rng: np.random.Generator, n: int, length: int, pause: float, pause_len: float,
                    floor_db: float, level_db: float, spacing: int = 64) -> np.ndarray:
    """(n, length) float32 gains that give a noise message the structure of speech: talk spurts and pauses.

    On knots every ``spacing`` samples: a two-state Markov chain (talking / paused) whose stationary share
    of pauses is ``pause`` and whose pauses last ``pause_len`` samples on average, started from that
    stationary share; a paused knot has gain ``floor_db``. The talking level wanders as a random walk of
    ``level_db`` per knot, shifted so that its highest point is 0 dB (the nominal level). Linear
    interpolation between knots makes every edge a ramp of ``spacing`` samples, so the message stays
    band-limited (the ramp's spectrum falls off well inside the message band).
    """
    n_knots = length // spacing + 2
    gain_db = np.zeros((n, n_knots), np.float32)
    if level_db > 0:
        walk = np.cumsum(rng.standard_normal((n, n_knots), dtype=np.float32) * np.float32(level_db), axis=1)
        gain_db = walk - walk.max(axis=1, keepdims=True)
    if pause > 0:
        talk_len = pause_len * (1.0 - pause) / pause
        p_stop = min(1.0, spacing / talk_len)
        p_start = min(1.0, spacing / pause_len)
        u = rng.random((n, n_knots), dtype=np.float32)
        talking = np.empty((n, n_knots), bool)
        talking[:, 0] = u[:, 0] >= pause
        for j in range(1, n_knots):
            talking[:, j] = np.where(talking[:, j - 1], u[:, j] >= p_stop, u[:, j] < p_start)
        gain_db = np.where(talking, gain_db, np.float32(floor_db))
    g = (10.0 ** (gain_db / np.float32(20))).astype(np.float32)
    frac = np.arange(spacing, dtype=np.float32) / np.float32(spacing)
    lo, hi = g[:, :-1, None], g[:, 1:, None]
    return (lo + (hi - lo) * frac).reshape(n, -1)[:, :length]
