"""``generate_frames``: a batch of RadioML-like frames of one class, vectorised over the batch.

The chain per frame, in the order a real link applies it:

1. baseband: symbols (or an analog message) -> pulse-shaped signal, generated longer than the frame
   (guard samples, see ``channel.frame_grid``) on a circular FFT grid;
2. linear channel: fractional timing offset and multipath fading, folded with the RRC pulse into one
   frequency response (so one inverse FFT per frame does pulse shaping and channel);
3. receiver clock: sample-rate offset (time warp, 5-point Lagrange interpolation) while cropping 1024 samples;
4. carrier: frequency offset (a random walk from zero, or with ``cfo_static`` a static offset plus the walk),
   and a random phase;
5. scale the clean frame to unit mean power, add complex AWGN: variance 10^(-SNR/10) per sample with
   ``snr_definition='sample'`` (Es/N0 = SNR + 10 log10(samples per symbol) for digital classes), or
   sps * 10^(-SNR/10) with ``'es_n0'`` (the label is Es/N0); exact per frame either way;
6. optionally an AGC (``agc``): the noisy frame scaled to unit power or unit peak.
Random draws come from three independent child streams (signal, channel, noise) of the given generator,
so switching an impairment off leaves the symbols and the noise of the other stages unchanged.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft as sfft

from amcprune.data.classes import CLASSES, FRAME_LENGTH
from amcprune.data.synth import channel as ch
from amcprune.data.synth import modulations as md
from amcprune.data.synth.config import ANALOG_REFERENCE_SPS, SynthConfig
from amcprune.errors import AmcpruneError

SUB_BATCH = 64
"""Frames processed together: 64 frames keep each temporary array near 512 KiB, in cache and clear of
fresh-memory page faults (whole 256-frame batches were 20-30 % slower in CPU time, several times slower
on a busy machine), while per-call Python overhead stays a few percent. Part of the data definition: the
random draws are made per sub-batch."""

_CLASS_LOOKUP = {c.upper(): c for c in CLASSES}


def _as_class(name: str) -> str:
    try:
        return _CLASS_LOOKUP[str(name).upper()]
    except KeyError:
        raise AmcpruneError(f"unknown class {name!r} (known: {', '.join(CLASSES)})") from None


def _scatter_ifft(spec_band: np.ndarray, band: np.ndarray, n_fft: int) -> np.ndarray:
    full = np.zeros((spec_band.shape[0], n_fft), np.complex64)
    full[:, band] = spec_band
    return sfft.ifft(full, axis=1, overwrite_x=True)


def _rotor(phase: np.ndarray) -> np.ndarray:
    out = np.empty(phase.shape, np.complex64)
    out.real = np.cos(phase)
    out.imag = np.sin(phase)
    return out


def _baseband(name: str, kind: str, m: int, sps: int, k: int, n_fft: int, rng: np.random.Generator,
              config: SynthConfig, rolloff) -> tuple[np.ndarray, np.ndarray | None]:
    """Either (spectrum on ``band`` bins, band) for signals built in frequency, or (time signal, None)."""
    freqs = ch.fft_freqs(n_fft)
    if kind in (md.LINEAR, md.OQPSK_KIND):
        fmax = (1.0 + config.rolloff_max) / (2.0 * sps) + 1e-9
        band = np.flatnonzero(np.abs(freqs) <= fmax)
        h = ch.rrc_response(freqs[band], sps, rolloff)
        if kind == md.LINEAR:
            pts = md.CONSTELLATIONS[name]
            sym = pts[rng.integers(0, len(pts), size=(m, k))]
            s = sfft.fft(sym, axis=1, overwrite_x=True)
            spec = s[:, band % k]
        else:
            # impulses every half symbol: I on even, jQ on odd slots (Q delayed by sps/2 samples)
            bits = rng.integers(0, 2, size=(m, 2 * k), dtype=np.int8)
            half = np.where(bits, np.float32(math.sqrt(0.5)), np.float32(-math.sqrt(0.5))).astype(np.complex64)
            half[:, 1::2] *= 1j
            s = sfft.fft(half, axis=1, overwrite_x=True)
            spec = s[:, band % (2 * k)]
        spec *= h
        return spec, band
    if kind == md.GMSK_KIND:
        a = np.where(rng.integers(0, 2, size=(m, k), dtype=np.int8), np.float32(1), np.float32(-1))
        nrz = np.repeat(a, sps, axis=1)
        rf = sfft.rfftfreq(n_fft).astype(np.float32)
        spec = sfft.rfft(nrz, axis=1, overwrite_x=True)
        spec *= ch.gaussian_response(rf, sps, config.gmsk_bt)
        freq = sfft.irfft(spec, n=n_fft, axis=1, overwrite_x=True)
        # modulation index 1/2: the phase moves by +-pi/2 per symbol
        phase = np.cumsum(freq, axis=1, dtype=np.float64) * (math.pi / 2 / sps)
        return _rotor(phase.astype(np.float32)), None
    # analog classes: a band-limited message, with speech-like pauses and level (``md.speech_envelope``)
    kpos = np.arange(1, int(md.MESSAGE_F_HI[1] * n_fft) + 1)
    c = md.message_spectrum(rng, m, freqs[kpos])
    power = 2.0 * np.sum(np.abs(c) ** 2, axis=1, keepdims=True) / float(n_fft) ** 2
    c *= (md.MESSAGE_RMS / np.sqrt(np.maximum(power, 1e-30))).astype(np.float32)
    speech = config.speech_pause > 0 or config.speech_level_db > 0

    def envelope() -> np.ndarray:
        # drawn after every draw generator 1 made, so that LEGACY_V1 (no envelope) repeats its streams
        return md.speech_envelope(rng, m, n_fft, config.speech_pause, config.speech_pause_len,
                                  config.speech_floor_db, config.speech_level_db, ch.KNOT_SPACING)

    if kind == md.FM_KIND:
        half = np.zeros((m, n_fft // 2 + 1), np.complex64)
        half[:, kpos] = c
        msg = sfft.irfft(half, n=n_fft, axis=1, overwrite_x=True)  # unit-free, RMS 1/3, peaks ~1
        dev = rng.uniform(config.fm_deviation_min, config.fm_deviation_max, size=(m, 1))
        if speech:
            msg *= envelope()  # a pause is an unmodulated carrier
        phase = (2 * math.pi) * dev * np.cumsum(msg, axis=1, dtype=np.float64)
        return _rotor(phase.astype(np.float32)), None
    with_carrier = name in md.WITH_CARRIER
    mu = (rng.uniform(config.am_index_min, config.am_index_max, size=(m, 1)).astype(np.float32)
          if with_carrier else np.float32(1))
    upper = None
    if kind == md.AM_SSB:
        side = config.ssb_sideband
        upper = np.ones(m, bool) if side == "upper" else np.zeros(m, bool) if side == "lower" \
            else rng.integers(0, 2, size=m).astype(bool)
    if speech:
        half = np.zeros((m, n_fft // 2 + 1), np.complex64)
        half[:, kpos] = c
        msg = sfft.irfft(half, n=n_fft, axis=1, overwrite_x=True)
        msg *= envelope()
        # back to the message band: what the ramps spread below MESSAGE_F_LO is cut (transmitters high-pass
        # their audio), so nothing lands on or next to the carrier and SSB stays one-sided near DC
        c = sfft.rfft(msg, axis=1, overwrite_x=True)[:, kpos].astype(np.complex64)
        c[:, freqs[kpos] < md.MESSAGE_F_LO] = 0
    band = np.concatenate([[0], kpos, n_fft - kpos])
    nk = len(kpos)
    spec = np.zeros((m, 1 + 2 * nk), np.complex64)
    if with_carrier:
        spec[:, 0] = n_fft  # a unit carrier: ifft of N at DC is 1
    c *= mu
    if kind == md.AM_DSB:  # real message: Hermitian spectrum
        spec[:, 1:1 + nk] = c
        spec[:, 1 + nk:] = np.conj(c)
    else:  # analytic message m + j H{m} (upper) or m - j H{m} (lower): one sideband only
        spec[upper, 1:1 + nk] = 2 * c[upper]
        spec[~upper, 1 + nk:] = 2 * np.conj(c[~upper])
    return spec, band


def _clean_group(name: str, m: int, sps: int, sig_rng: np.random.Generator, ch_rng: np.random.Generator,
                 config: SynthConfig) -> np.ndarray:
    """(m, FRAME_LENGTH) complex64 clean frames of one samples-per-symbol value, unit mean power each."""
    kind = md.CLASS_KIND[name]
    k, n_fft, start = ch.frame_grid(sps, FRAME_LENGTH)
    freqs = ch.fft_freqs(n_fft)

    # ---- channel parameters (fixed draw order) ----
    if config.rolloff_min < config.rolloff_max:
        rolloff = ch_rng.uniform(config.rolloff_min, config.rolloff_max, size=(m, 1)).astype(np.float32)
    else:
        rolloff = np.float32(config.rolloff_min)
    tau = (ch_rng.uniform(0.0, sps, size=(m, 1)) if config.timing_offset else np.zeros((m, 1))).astype(np.float32)
    if config.fading != "none":
        gains = ch.fading_taps(ch_rng, m, config.multipath_mags, config.fading, config.rician_k)
        delays = tau + np.asarray(config.multipath_delays, np.float32)[None, :]
    else:
        gains, delays = None, tau
    phase0 = ch_rng.uniform(0.0, 2 * math.pi, size=(m, 1)).astype(np.float32) if config.phase_offset else None
    cfo = (ch.random_walk_knots(ch_rng, m, FRAME_LENGTH, config.cfo_max, config.cfo_walk, config.cfo_static)
           if config.carrier_offset else None)
    sro = (ch.random_walk_knots(ch_rng, m, FRAME_LENGTH, config.sro_max_ppm * 1e-6, config.sro_walk_ppm * 1e-6,
                                config.sro_static)
           if config.sample_rate_offset else None)
    linear_channel = config.timing_offset or config.fading != "none"

    # ---- baseband + linear channel ----
    sig, band = _baseband(name, kind, m, sps, k, n_fft, sig_rng, config, rolloff)
    if band is not None:
        if linear_channel:
            sig *= ch.delay_response(freqs[band], delays, gains)
        full = _scatter_ifft(sig, band, n_fft)
    elif linear_channel:
        spec = sfft.fft(sig, axis=1, overwrite_x=True)
        spec *= ch.delay_response(freqs, delays, gains)
        full = sfft.ifft(spec, axis=1, overwrite_x=True)
    else:
        full = sig

    # ---- receiver clock: crop (and warp) ----
    if sro is not None:
        x = ch.warp_crop(full, start, FRAME_LENGTH, ch.integrate_walk(sro, FRAME_LENGTH))
    else:
        x = np.ascontiguousarray(full[:, start:start + FRAME_LENGTH])

    # ---- carrier ----
    if cfo is not None:
        phase = np.float32(2 * math.pi) * ch.integrate_walk(cfo, FRAME_LENGTH)
        if phase0 is not None:
            phase += phase0
        x *= _rotor(phase)
    elif phase0 is not None:
        x *= _rotor(phase0)

    power = np.mean(x.real ** 2 + x.imag ** 2, axis=1, keepdims=True)
    x *= (1.0 / np.sqrt(np.maximum(power, 1e-20))).astype(np.float32)
    return x.astype(np.complex64, copy=False)


def generate_frames(class_name: str, snrs_db, n: int, rng: np.random.Generator, config: SynthConfig,
                    return_clean: bool = False, *, complex_output: bool = False):
    """``n`` frames of ``class_name`` at ``snrs_db`` (a scalar or one value per frame).

    Returns float32 (n, 1024, 2) I/Q frames as stored in the HDF5 file (or complex64 (n, 1024) with
    ``complex_output``); with ``return_clean`` a tuple (noisy, clean) where clean is the unit-power frame
    before noise (times the AGC's gain, if any), so a caller can measure the SNR. ``rng`` is a numpy
    Generator seeded from a SeedSequence (as ``numpy.random.default_rng(seed)`` gives); the output depends
    only on its state and ``config``.
    """
    name = _as_class(class_name)
    n = int(n)
    if n < 0:
        raise AmcpruneError(f"number of frames must be >= 0, got {n}")
    snrs = np.asarray(snrs_db, dtype=np.float64)
    if snrs.ndim == 0:
        snrs = np.full(n, float(snrs))
    snrs = snrs.reshape(-1)
    if snrs.shape != (n,):
        raise AmcpruneError(f"snrs_db must be a scalar or hold {n} values, got {snrs.shape[0]}")
    sig_rng, ch_rng, noise_rng = rng.spawn(3)

    sps_choices = config.samples_per_symbol
    pick = ch_rng.integers(0, len(sps_choices), size=n) if len(sps_choices) > 1 else np.zeros(n, np.intp)
    noise_var = 10.0 ** (-snrs / 10.0)
    if config.snr_definition == "es_n0":
        # Es = sps * (unit power per sample) and N0 = noise variance per sample (fs = 1)
        analog = md.CLASS_KIND[name] in (md.AM_DSB, md.AM_SSB, md.FM_KIND)
        sps_of = np.full(n, ANALOG_REFERENCE_SPS) if analog else np.asarray(sps_choices)[pick]
        noise_var = noise_var * sps_of
    sigma = np.sqrt(0.5 * noise_var).astype(np.float32)[:, None]
    noisy = np.empty((n, FRAME_LENGTH), np.complex64)
    clean_all = np.empty((n, FRAME_LENGTH), np.complex64) if return_clean else None
    for s0 in range(0, n, SUB_BATCH):
        rows = slice(s0, min(n, s0 + SUB_BATCH))
        m = rows.stop - rows.start
        if len(sps_choices) == 1:
            clean = _clean_group(name, m, sps_choices[0], sig_rng, ch_rng, config)
        else:
            clean = np.empty((m, FRAME_LENGTH), np.complex64)
            for j, sps in enumerate(sps_choices):
                idx = np.flatnonzero(pick[rows] == j)
                if len(idx):
                    clean[idx] = _clean_group(name, len(idx), sps, sig_rng, ch_rng, config)
        if clean_all is not None:
            clean_all[rows] = clean
        if config.awgn:
            noise = noise_rng.standard_normal((m, FRAME_LENGTH, 2), dtype=np.float32).view(np.complex64)[..., 0]
            np.multiply(noise, sigma[rows], out=noisy[rows])
            noisy[rows] += clean
        else:
            noisy[rows] = clean
        if config.agc != "none":
            y = noisy[rows]
            if config.agc == "power":
                level = np.sqrt(np.mean(y.real ** 2 + y.imag ** 2, axis=1, keepdims=True))
            else:
                level = np.maximum(np.max(np.abs(y.real), axis=1, keepdims=True),
                                   np.max(np.abs(y.imag), axis=1, keepdims=True))
            gain = (1.0 / np.maximum(level, 1e-20)).astype(np.float32)
            noisy[rows] *= gain
            if clean_all is not None:  # the same gain, so that clean and noise still give the SNR
                clean_all[rows] *= gain

    def fmt(a: np.ndarray) -> np.ndarray:
        return a if complex_output else a.view(np.float32).reshape(n, FRAME_LENGTH, 2)

    if return_clean:
        return fmt(noisy), fmt(clean_all)
    return fmt(noisy)
