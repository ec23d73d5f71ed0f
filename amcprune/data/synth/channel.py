"""Channel pieces of the generator, all vectorised over a batch of frames (float32/complex64).

Linear parts of the chain (pulse shaping, fractional timing offset, multipath with fractional tap delays)
are applied together as one frequency response on a circular (FFT) grid: exact for band-limited periodic
signals and one inverse FFT per frame in all. The non-linear-in-time parts (sample-rate offset: a time warp;
carrier offset: a time-varying rotation) are applied on the cropped frame.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import scipy.fft as sfft

KNOT_SPACING = 64
"""Random walks (CFO and SRO drift; the speech envelope) are drawn at one knot per 64 samples and
interpolated linearly: their steps are tiny (0.01 Hz at 200 kHz per sample), so a finer walk changes nothing
visible and would cost two extra normal draws per sample."""


@functools.lru_cache(maxsize=64)
def frame_grid(sps: int, frame_length: int) -> tuple[int, int, int]:
    """(symbols K, generated length N = K*sps, crop start) for one samples-per-symbol value.

    The guard on each side (>= 64 samples and >= 8 symbols) keeps the crop clear of the circular wrap of
    FFT filtering: the RRC tails have decayed by then, and for the non-periodic GMSK phase the ringing
    of the channel filter at the wrap is below -40 dB. N is chosen FFT-friendly (5-smooth).
    """
    guard = max(64, 8 * sps)
    k = math.ceil((frame_length + 2 * guard) / sps)
    while sfft.next_fast_len(k * sps) != k * sps:
        k += 1
    n = k * sps
    start = ((n - frame_length) // 2) // sps * sps  # a symbol centre lands on sample 0 of the frame
    return k, n, start


@functools.lru_cache(maxsize=64)
def fft_freqs(n: int) -> np.ndarray:
    return sfft.fftfreq(n).astype(np.float32)


def rrc_response(freqs: np.ndarray, sps: int, rolloff: np.ndarray | float) -> np.ndarray:
    """Root-raised-cosine frequency response (zero phase, peak 1) at ``freqs`` (cycles/sample).

    ``rolloff`` is a scalar or an (n, 1) array for per-frame roll-off; the result broadcasts accordingly.
    """
    af = np.abs(freqs)
    a = np.asarray(rolloff, dtype=np.float32)
    f1 = (1.0 - a) / (2.0 * sps)
    f2 = (1.0 + a) / (2.0 * sps)
    arg = (np.pi * sps / (2.0 * a)) * (af - f1)
    h = np.where(af <= f1, np.float32(1.0), np.where(af <= f2, np.cos(arg), np.float32(0.0)))
    return h.astype(np.float32, copy=False)


def gaussian_response(freqs: np.ndarray, sps: int, bt: float) -> np.ndarray:
    """Frequency response of GMSK's Gaussian filter (unit DC gain) for a symbol period of ``sps`` samples."""
    sigma = math.sqrt(math.log(2.0)) / (2.0 * math.pi * bt) * sps  # impulse-response std, in samples
    return np.exp(-2.0 * (math.pi * sigma * freqs) ** 2).astype(np.float32)


def fading_taps(rng: np.random.Generator, n: int, mags: list[float], kind: str, k_factor: float) -> np.ndarray:
    """Complex tap gains (n, taps): per tap a LOS part of random phase plus a Rayleigh part, K = LOS/scatter."""
    mags_a = np.asarray(mags, dtype=np.float32)
    t = len(mags_a)
    scatter = rng.standard_normal((n, t, 2), dtype=np.float32).view(np.complex64)[..., 0] * np.float32(
        math.sqrt(0.5))
    if kind == "rayleigh" or k_factor == 0:
        g = scatter
    else:
        los_phase = rng.uniform(0.0, 2 * math.pi, size=(n, t)).astype(np.float32)
        los = np.cos(los_phase) + 1j * np.sin(los_phase)
        g = np.float32(math.sqrt(k_factor / (k_factor + 1))) * los + np.float32(
            math.sqrt(1.0 / (k_factor + 1))) * scatter
    return (g * mags_a[None, :]).astype(np.complex64)


def delay_response(freqs: np.ndarray, delays: np.ndarray, gains: np.ndarray | None) -> np.ndarray:
    """sum_i gains[:, i] * exp(-2j pi f delays[:, i]) on ``freqs``: (n, len(freqs)) complex64.

    ``delays`` (n, taps) in samples (timing offset already added); ``gains`` (n, taps) or None for one tap.
    """
    out = None
    for i in range(delays.shape[1]):
        ph = (np.float32(-2 * math.pi) * delays[:, i:i + 1]) * freqs[None, :]
        term = np.empty(ph.shape, np.complex64)
        term.real = np.cos(ph)
        term.imag = np.sin(ph)
        if gains is not None:
            term *= gains[:, i:i + 1]
        out = term if out is None else out + term
    return out


def integrate_walk(knots: np.ndarray, frame_length: int) -> np.ndarray:
    """(n, frame_length) float32: at sample t, sum_{s<t} v(s), where v linearly interpolates the knot values
    (n, frame_length // KNOT_SPACING + 1) placed every KNOT_SPACING samples: the integral of a slowly walking
    rate (a phase from a frequency, a time shift from a clock offset). Broadcasts, no matrix product (a
    BLAS call with threads was 40x slower on a busy machine)."""
    seg = KNOT_SPACING
    r = np.arange(seg, dtype=np.float64)
    b = r * (r - 1) / (2 * seg)          # sum_{s<r} s/seg
    a = r - b                            # sum_{s<r} (1 - s/seg)
    a_tot, b_tot = seg - (seg - 1) / 2, (seg - 1) / 2
    v = knots.astype(np.float32)
    lo, hi = v[:, :-1], v[:, 1:]
    seg_sum = lo * np.float32(a_tot) + hi * np.float32(b_tot)
    start = np.cumsum(seg_sum, axis=1) - seg_sum
    out = (start[:, :, None] + lo[:, :, None] * a.astype(np.float32) + hi[:, :, None] * b.astype(np.float32))
    return out.reshape(knots.shape[0], -1)[:, :frame_length]


def random_walk_knots(rng: np.random.Generator, n: int, frame_length: int, max_abs: float,
                      step: float, static: bool = False) -> np.ndarray:
    """(n, knots) values of a random walk (``step`` std per sample) clipped at +-max_abs, starting at zero
    on the frame's first sample as GNU Radio's cfo_model/sro_model do, or with ``static`` at an offset
    uniform in +-max_abs (generator 1's model).

    Clipped after summing (generator 1's order, kept so that ``LEGACY_V1`` reproduces it); clipping each
    step instead differs only once a walk reaches the bound, which at the 2016 step it does not in a frame."""
    n_knots = frame_length // KNOT_SPACING + 1
    start = rng.uniform(-max_abs, max_abs, size=(n, 1)) if static else 0.0
    steps = rng.standard_normal((n, n_knots)) * (step * math.sqrt(KNOT_SPACING))
    steps[:, 0] = 0.0
    return np.clip(start + np.cumsum(steps, axis=1), -max_abs, max_abs).astype(np.float32)


MAX_WARP = 0.5
"""Largest time-warp displacement (samples) ``warp_crop`` supports with its 5-point interpolator."""


def warp_crop(x: np.ndarray, start: int, length: int, disp: np.ndarray) -> np.ndarray:
    """Rows of complex ``x`` (n, N) sampled at ``start + t + disp[:, t]`` for t < length, |disp| <= 0.5.

    5-point Lagrange interpolation on the sample grid around t (slices, no gathers): error below -65 dB
    for the digital classes at 8 samples/symbol and below -45 dB for the widest FM at the largest shift.
    """
    d = disp.astype(np.float32)
    d2 = d * d
    a = d2 - np.float32(1)
    b = d2 - np.float32(4)
    p = d * a * np.float32(1 / 24)
    q = d * b * np.float32(-1 / 6)
    out = x[:, start:start + length] * ((a * b) * np.float32(0.25))
    out += x[:, start - 2:start - 2 + length] * (p * (d - np.float32(2)))
    out += x[:, start + 2:start + 2 + length] * (p * (d + np.float32(2)))
    out += x[:, start - 1:start - 1 + length] * (q * (d - np.float32(1)))
    out += x[:, start + 1:start + 1 + length] * (q * (d + np.float32(1)))
    return out
