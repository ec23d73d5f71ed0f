"""The synthetic RadioML-like generator: file layout, determinism, SNR, class signatures, errors."""

from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pytest

from amcprune.data.classes import CLASSES, FRAME_LENGTH
from amcprune.data.synth import (
    GENERATOR_VERSION, LEGACY_V1, PRESETS, SynthConfig, generate_frames, pair_rng, synth_config, write_synthetic,
)
from amcprune.data.synth.config import ANALOG_REFERENCE_SPS
from amcprune.data.synth import channel as ch
from amcprune.data.synth import modulations as md
from amcprune.data.synth import writer as writer_mod
from amcprune.errors import AmcpruneError

SPS = 8
CLEAN = dict(timing_offset=False, sample_rate_offset=False, carrier_offset=False, phase_offset=False,
             fading="none", awgn=False)


def frames(name, n=16, snr=30, seed=0, **cfg):
    config = SynthConfig(**cfg)
    x = generate_frames(name, snr, n, np.random.default_rng(seed), config, complex_output=True)
    assert x.shape == (n, FRAME_LENGTH) and x.dtype == np.complex64
    return x.astype(np.complex128)


def matched_centres(x, rolloff=0.35, phase=0):
    """Matched (RRC) filter, then samples at symbol centres away from the FFT wrap at the frame edges."""
    f = np.fft.fftfreq(FRAME_LENGTH)
    y = np.fft.ifft(np.fft.fft(x, axis=1) * ch.rrc_response(f, SPS, rolloff), axis=1)
    return y[:, 64 + phase:FRAME_LENGTH - 64:SPS]


def fit_to_constellation(y, pts, iters=4):
    """Per-frame complex gain that best maps symbol-centre samples onto ``pts``; returns distances."""
    out = []
    for row in y:
        g = np.sqrt(np.mean(np.abs(pts) ** 2) / np.mean(np.abs(row) ** 2))
        for _ in range(iters):
            z = row * g
            near = pts[np.argmin(np.abs(z[:, None] - pts[None, :]), axis=1)]
            g = np.vdot(row, near) / np.vdot(row, row)  # least squares: near ~ g * row
        z = row * g
        out.append(np.min(np.abs(z[:, None] - pts[None, :]), axis=1))
    return np.concatenate(out)


# ---- configuration ----------------------------------------------------------------------------------------

def test_presets_sizes():
    assert set(PRESETS) == {"tiny", "quick", "standard", "full"}
    assert synth_config("quick").n_frames == 24 * 26 * 64 == 39_936
    assert synth_config("standard").n_frames == 24 * 26 * 256
    assert synth_config("full").n_frames == 2_555_904
    tiny = synth_config("tiny")
    assert tiny.classes == list(CLASSES) and tiny.snrs_db == [-20, -10, 0, 10, 20, 30]
    assert synth_config("tiny", seed=None, frames_per_pair=3).frames_per_pair == 3


@pytest.mark.parametrize("kwargs, needle", [
    (dict(classes=["QPSK", "NOPE"]), "unknown class"),
    (dict(snr_min=10, snr_max=0), "snr_min"),
    (dict(frames_per_pair=0), "frames_per_pair"),
    (dict(samples_per_symbol=[7]), "even"),
    (dict(bogus=1), "bogus"),
    (dict(frames_per_pair="many"), "frames_per_pair"),
    (dict(am_index_min=0.8, am_index_max=0.5), "AM index"),
    (dict(fm_deviation_max=0.3), "FM deviation"),
    (dict(speech_pause=1.0), "speech_pause"),
    (dict(speech_pause_len=10), "speech_pause_len"),
    (dict(snr_definition="inband"), "snr_definition"),
    (dict(agc="max"), "agc"),
])
def test_bad_config_is_one_line_error(kwargs, needle):
    with pytest.raises(AmcpruneError) as exc:
        synth_config("tiny", **kwargs)
    assert needle in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(AmcpruneError):
        SynthConfig(**kwargs)


def test_unknown_preset_and_class():
    with pytest.raises(AmcpruneError, match="preset"):
        synth_config("huge")
    with pytest.raises(AmcpruneError, match="unknown class"):
        generate_frames("QAM7", 0, 2, np.random.default_rng(0), SynthConfig())


def test_classes_are_canonical_order():
    assert SynthConfig(classes=["qpsk", "BPSK", "QPSK"]).classes == ["BPSK", "QPSK"]
    assert synth_config("tiny", classes="FM, bpsk").classes == ["BPSK", "FM"]


# ---- constellations ---------------------------------------------------------------------------------------

def test_constellations_unit_power_and_sizes():
    sizes = {"OOK": 2, "4ASK": 4, "8ASK": 8, "BPSK": 2, "QPSK": 4, "8PSK": 8, "16PSK": 16, "32PSK": 32,
             "16APSK": 16, "32APSK": 32, "64APSK": 64, "128APSK": 128, "16QAM": 16, "32QAM": 32,
             "64QAM": 64, "128QAM": 128, "256QAM": 256}
    assert set(sizes) == set(md.CONSTELLATIONS)
    for name, pts in md.CONSTELLATIONS.items():
        assert len(pts) == sizes[name] == len(np.unique(np.round(pts, 5))), name
        assert np.mean(np.abs(pts) ** 2) == pytest.approx(1.0, abs=1e-5), name
    rings = {16: [4, 12], 32: [4, 12, 16], 64: [4, 12, 20, 28]}
    for m, counts in rings.items():
        radii, n = np.unique(np.round(np.abs(md.CONSTELLATIONS[f"{m}APSK"]), 4), return_counts=True)
        assert list(n) == counts


@pytest.mark.parametrize("m, side", [(32, 6), (128, 12)])
def test_cross_qam_has_no_corners(m, side):
    pts = md.qam_points(m)
    unit = pts / np.min(np.abs(pts.real[pts.real != 0]))  # odd-integer grid
    top = side - 1
    assert np.max(np.abs(unit.real)) == pytest.approx(top)
    corner = (np.abs(np.abs(unit.real) - top) < 1e-6) & (np.abs(np.abs(unit.imag) - top) < 1e-6)
    assert not corner.any()


# ---- class signatures (impairments off, 30 dB or no noise) ---------------------------------------------------

@pytest.mark.parametrize("name", sorted(md.CONSTELLATIONS))
def test_linear_classes_hit_their_constellation(name):
    y = matched_centres(frames(name, n=8, **CLEAN))
    pts = md.CONSTELLATIONS[name].astype(np.complex128)
    d = fit_to_constellation(y, pts)
    spacing = np.min(np.abs(pts[:, None] - pts[None, :]) + np.eye(len(pts)) * 9)
    assert np.quantile(d, 0.99) < 0.1 * spacing, name  # measured: <= 0.012


def test_bpsk_two_clusters_qpsk_four():
    yb = matched_centres(frames("BPSK", **CLEAN)).ravel()
    assert np.max(np.abs(yb.imag)) < 0.02 * np.mean(np.abs(yb))
    assert len(np.unique(np.sign(yb.real))) == 2
    yq = matched_centres(frames("QPSK", **CLEAN)).ravel()
    quadrants = set(zip(np.sign(yq.real), np.sign(yq.imag)))
    assert len(quadrants) == 4
    ang = np.angle(yq) % (np.pi / 2)
    assert np.allclose(ang, np.pi / 4, atol=0.05)


def test_ask_levels_and_ook_off_level():
    y4 = matched_centres(frames("4ASK", **CLEAN)).ravel().real
    y4 = y4 / np.sqrt(np.mean(y4 ** 2)) * np.sqrt(5)  # levels -3 -1 1 3 have mean power 5
    assert set(np.round(y4).astype(int)) <= {-3, -1, 1, 3} | {-4, 4, 2, -2, 0} and \
        set(np.round((y4 + 3) / 2).astype(int)) == {0, 1, 2, 3}
    yo = np.abs(matched_centres(frames("OOK", **CLEAN)).ravel())
    off = yo < 0.1 * yo.max()
    assert 0.35 < off.mean() < 0.65  # half the symbols are 'off'
    assert np.all((yo < 0.1 * yo.max()) | (yo > 0.8 * yo.max()))


def test_32qam_samples_avoid_corners():
    y = matched_centres(frames("32QAM", n=32, **CLEAN))
    pts = md.CONSTELLATIONS["32QAM"].astype(np.complex128)
    d = fit_to_constellation(y, pts)
    assert np.quantile(d, 0.99) < 0.1
    full6 = md.qam_points(36)  # the full 6x6 grid, same spacing after scaling to 32QAM's unit
    corner = full6[(np.abs(full6.real) == np.abs(full6.real).max()) & (np.abs(full6.imag) == np.abs(full6.imag).max())]
    scale = np.abs(pts.real).max() / np.abs(full6.real).max()
    for row in y:
        g = np.sqrt(1 / np.mean(np.abs(row) ** 2))
        assert np.min(np.abs((row * g)[:, None] - corner[None, :] * scale)) > 0.3


def test_oqpsk_quadrature_offset_by_half_symbol():
    x = frames("OQPSK", **CLEAN)
    f = np.fft.fftfreq(FRAME_LENGTH)
    y = np.fft.ifft(np.fft.fft(x, axis=1) * ch.rrc_response(f, SPS, 0.35), axis=1)[:, 64:-64]
    i_peak = np.argmax([np.mean(np.abs(y[:, p::SPS].real)) for p in range(SPS)])
    q_peak = np.argmax([np.mean(np.abs(y[:, p::SPS].imag)) for p in range(SPS)])
    assert i_peak == 0 and q_peak == SPS // 2
    xq = frames("QPSK", **CLEAN)
    yq = np.fft.ifft(np.fft.fft(xq, axis=1) * ch.rrc_response(f, SPS, 0.35), axis=1)[:, 64:-64]
    assert np.argmax([np.mean(np.abs(yq[:, p::SPS].imag)) for p in range(SPS)]) == 0


@pytest.mark.parametrize("name", ["FM", "GMSK"])
def test_constant_envelope(name):
    env = np.abs(frames(name, **CLEAN))
    assert np.max(np.abs(env - env.mean())) < 1e-3
    # ... and it is modulated: the phase moves
    x = frames(name, **CLEAN)
    assert np.std(np.diff(np.unwrap(np.angle(x), axis=1), axis=1)) > 1e-3


def test_am_carrier():
    # steady speech: a short talk spurt in a pause has a frame mean of its own, which is not a carrier
    steady = dict(CLEAN, speech_pause=0.0, speech_level_db=0.0)
    wc = frames("AM-DSB-WC", **steady)
    sc = frames("AM-DSB-SC", **steady)
    assert np.all(np.abs(wc.mean(axis=1)) > 0.7)          # a strong carrier at DC
    assert np.all(np.abs(sc.mean(axis=1)) < 0.1)          # none without
    assert np.std(np.abs(wc)) > 0.05                      # and the envelope is modulated
    assert np.max(np.abs(sc.imag)) < 1e-4                 # DSB of a real message is real


def sideband_ratio(x):
    """Power above / below the carrier (removed: its leakage would fill both sides), Blackman window."""
    x = (x - x.mean(axis=1, keepdims=True)) * np.blackman(FRAME_LENGTH)
    p = np.abs(np.fft.fft(x, axis=1)) ** 2
    f = np.fft.fftfreq(FRAME_LENGTH)
    return p[:, f > 0].sum() / p[:, f < 0].sum()


def sideband_ratios(x):
    """Per frame: power above / below the carrier, Blackman window. The bins within the window's main lobe
    of DC (|f| < 4/1024) are left out: a carrier, or the frame mean of a short talk spurt, leaks into both
    sides there."""
    p = np.abs(np.fft.fft(x * np.blackman(FRAME_LENGTH), axis=1)) ** 2
    f = np.fft.fftfreq(FRAME_LENGTH)
    return p[:, f > 0.004].sum(axis=1) / p[:, f < -0.004].sum(axis=1)


def test_ssb_one_sided_dsb_two_sided():
    assert np.all(sideband_ratios(frames("AM-SSB-SC", ssb_sideband="upper", **CLEAN)) > 1e3)
    assert np.all(sideband_ratios(frames("AM-SSB-WC", ssb_sideband="upper", **CLEAN)) > 1e3)
    assert np.all(sideband_ratios(frames("AM-SSB-SC", ssb_sideband="lower", **CLEAN)) < 1e-3)
    assert 0.5 < sideband_ratio(frames("AM-DSB-SC", **CLEAN)) < 2.0


@pytest.mark.parametrize("name", ["AM-SSB-SC", "AM-SSB-WC"])
def test_random_sideband_gives_both_and_each_frame_one(name):
    r = sideband_ratios(frames(name, n=64, **CLEAN))  # the default is ssb_sideband="random"
    upper, lower = r > 1e3, r < 1e-3
    assert np.all(upper | lower)  # every frame is single-sideband
    assert 0.25 < upper.mean() < 0.75  # and both sidebands occur (measured 0.5 +- sampling)


def quiet_stretch(x, floor_db=-30.0, length=64):
    """Per frame: whether some ``length``-sample stretch has power ``floor_db`` below the frame's loudest."""
    p = np.abs(x) ** 2
    c = np.cumsum(np.pad(p, ((0, 0), (1, 0))), axis=1)
    win = (c[:, length:] - c[:, :-length]) / length
    return win.min(axis=1) < 10 ** (floor_db / 10) * win.max(axis=1)


def test_analog_messages_have_silent_stretches():
    quiet = quiet_stretch(frames("AM-DSB-SC", n=128, **CLEAN))
    assert 0.1 < quiet.mean() < 0.6  # measured 0.27 at the default pause share 0.3
    assert not quiet_stretch(frames("AM-DSB-SC", n=128, **dict(CLEAN, speech_pause=0.0))).any()
    # a pause in FM is an unmodulated carrier: its phase stops moving
    fm = frames("FM", n=64, **CLEAN)
    inst = np.abs(np.diff(np.unwrap(np.angle(fm), axis=1), axis=1))
    # quiet_stretch squares its input: on sqrt|f| it finds 64 samples whose mean |f| is 5 % of the loudest
    still = quiet_stretch(np.sqrt(inst), floor_db=-13.0)
    assert 0.05 < still.mean() < 0.6


def test_speech_envelope_pause_share_and_level():
    rng = np.random.default_rng(0)
    g = md.speech_envelope(rng, 2000, 4096, pause=0.3, pause_len=1024, floor_db=-40.0, level_db=0.0)
    paused = g[:, ::64] < 0.5
    assert abs(paused.mean() - 0.3) < 0.02  # the stationary share of pauses
    runs = np.diff(np.flatnonzero(np.diff(paused[:, :].ravel().astype(int)) != 0))
    assert runs.size > 100  # pauses start and end inside the stretch
    lv = md.speech_envelope(rng, 200, 2048, pause=0.0, pause_len=1024, floor_db=-40.0, level_db=1.0)
    # the loudest knot is the nominal level (it may lie on the last knot, one ramp beyond ``length``)
    assert lv.max() <= 1.0 + 1e-6 and np.mean(lv.max(axis=1) > 1.0 - 1e-6) > 0.8
    spread_db = 20 * np.log10(lv.max(axis=1) / lv.min(axis=1))
    assert np.median(spread_db) > 2.0  # the level wanders within a frame


def test_am_index_range_sets_the_carrier_share():
    def share(**cfg):
        x = frames("AM-DSB-WC", n=64, **dict(CLEAN, speech_pause=0.0, speech_level_db=0.0, **cfg))
        return np.abs(x.mean(axis=1)) ** 2 / np.mean(np.abs(x) ** 2, axis=1)

    full = share(am_index_min=1.0, am_index_max=1.0)
    light = share(am_index_min=0.2, am_index_max=0.2)
    # DSB at index mu with a message of RMS mu/3: carrier share 1 / (1 + mu^2 / 9)
    assert np.median(full) == pytest.approx(1 / (1 + 1 / 9), abs=0.01)
    assert np.median(light) == pytest.approx(1 / (1 + 0.04 / 9), abs=0.002)
    spread = share()  # the default range 0.3-1.0
    assert np.quantile(spread, 0.9) - np.quantile(spread, 0.1) > 0.03


def test_fm_deviation_range():
    def peak(dev):
        x = frames("FM", n=32, **dict(CLEAN, speech_pause=0.0, speech_level_db=0.0, fm_deviation_min=dev,
                                      fm_deviation_max=dev))
        return np.median(np.max(np.abs(np.diff(np.unwrap(np.angle(x), axis=1), axis=1)), axis=1)) / (2 * np.pi)

    narrow, wide = peak(0.005), peak(0.04)
    assert wide / narrow == pytest.approx(8, rel=0.05)
    assert 0.5 * 0.04 < wide < 1.5 * 0.04  # the message peaks near 1 (3 sigma of RMS 1/3)


def test_legacy_v1_repeats_generator_1():
    """Samples of amcprune-synth-1 (`amcprune data synth --preset tiny`, written by the generator before
    this change): the same seed under LEGACY_V1 gives them again."""
    cfg = synth_config("tiny", **LEGACY_V1)
    expected = {  # (class, SNR, frame): I/Q at samples 100, 517, 1000
        ("QPSK", 30, 0): [(0.642517, -0.058388), (-1.098896, -0.461209), (0.616811, 0.030923)],
        ("AM-SSB-WC", 10, 1): [(-1.282751, 0.56213), (1.269791, 0.118019), (-1.468394, 0.485481)],
        ("FM", 30, 2): [(0.881226, -0.070558), (0.53778, -0.881495), (-0.662203, -0.697655)],
        ("AM-DSB-WC", -20, 7): [(-6.699901, 0.001178), (-11.430587, -8.638535), (1.778722, 6.751182)],
    }
    for (name, snr, k), iq in expected.items():
        x = generate_frames(name, snr, 8, pair_rng(cfg.seed, CLASSES.index(name), snr), cfg)
        assert np.allclose(x[k, [100, 517, 1000]], np.array(iq), atol=2e-5), name
        new = generate_frames(name, snr, 8, pair_rng(cfg.seed, CLASSES.index(name), snr), synth_config("tiny"))
        assert not np.allclose(new[k, [100, 517, 1000]], np.array(iq), atol=2e-5), name


def test_digital_bandwidth_follows_rolloff():
    x = frames("QPSK", n=16, **CLEAN)
    p = np.mean(np.abs(np.fft.fft(x * np.blackman(FRAME_LENGTH), axis=1)) ** 2, axis=0)
    f = np.abs(np.fft.fftfreq(FRAME_LENGTH))
    assert p[f > (1 + 0.35) / (2 * SPS) + 0.01].sum() < 1e-4 * p.sum()


# ---- SNR and impairments ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["QPSK", "64QAM", "FM", "AM-SSB-WC", "GMSK", "OOK"])
@pytest.mark.parametrize("snr", [-10, 10, 30])
def test_measured_snr_matches_label(name, snr):
    cfg = SynthConfig()  # all impairments on
    x, c = generate_frames(name, snr, 32, pair_rng(1, CLASSES.index(name), snr), cfg, return_clean=True,
                           complex_output=True)
    p_clean = np.mean(np.abs(c) ** 2, axis=1)
    assert np.allclose(p_clean, 1.0, atol=1e-3)
    p_noise = np.mean(np.abs(x - c) ** 2, axis=1)
    measured = 10 * np.log10(np.mean(p_clean / p_noise))
    assert abs(measured - snr) < 0.3


@pytest.mark.parametrize("definition", ["sample", "es_n0"])
@pytest.mark.parametrize("name", ["QPSK", "256QAM", "GMSK", "FM", "AM-DSB-WC"])
def test_measured_snr_matches_the_chosen_definition(name, definition):
    snr = 6
    cfg = SynthConfig(snr_definition=definition, samples_per_symbol=[4])
    x, c = generate_frames(name, snr, 64, pair_rng(2, CLASSES.index(name), snr), cfg, return_clean=True,
                           complex_output=True)
    ratio = np.mean(np.abs(c) ** 2) / np.mean(np.abs(x - c) ** 2)  # per sample, full band
    if definition == "es_n0":
        sps = ANALOG_REFERENCE_SPS if name in ("FM", "AM-DSB-WC") else 4
        ratio *= sps  # Es/N0 = P * sps / sigma^2
    assert abs(10 * np.log10(ratio) - snr) < 0.1


def test_in_band_snr_of_the_per_sample_definition():
    """docs/data.md: at 8 samples/symbol and roll-off 0.35 the noise inside the signal's band is
    10 log10(8 / 1.35) = 7.7 dB below the full-band figure (and Es/N0 = SNR + 9.0 dB)."""
    x, c = generate_frames("QPSK", 0, 64, pair_rng(3, 4, 0), SynthConfig(), return_clean=True, complex_output=True)
    f = np.abs(np.fft.fftfreq(FRAME_LENGTH))
    inside = f <= (1 + 0.35) / (2 * SPS)
    ps = np.sum(np.abs(np.fft.fft(c, axis=1)[:, inside]) ** 2)
    pn = np.sum(np.abs(np.fft.fft(x - c, axis=1)[:, inside]) ** 2)
    assert 10 * np.log10(ps / pn) == pytest.approx(10 * np.log10(SPS / 1.35), abs=0.3)


@pytest.mark.parametrize("agc", ["power", "peak"])
def test_agc_normalises_each_frame_and_keeps_the_snr(agc):
    snrs = np.array([-20, -5, 10, 30] * 4)
    x, c = generate_frames("16QAM", snrs, 16, np.random.default_rng(5), SynthConfig(agc=agc), return_clean=True,
                           complex_output=True)
    if agc == "power":
        assert np.allclose(np.mean(np.abs(x) ** 2, axis=1), 1.0, atol=1e-4)
    else:
        assert np.allclose(np.maximum(np.abs(x.real).max(axis=1), np.abs(x.imag).max(axis=1)), 1.0, atol=1e-6)
    measured = 10 * np.log10(np.mean(np.abs(c) ** 2, axis=1) / np.mean(np.abs(x - c) ** 2, axis=1))
    assert np.all(np.abs(measured - snrs) < 0.5)
    raw = generate_frames("16QAM", snrs, 16, np.random.default_rng(5), SynthConfig(), complex_output=True)
    p = np.mean(np.abs(raw) ** 2, axis=1)  # without AGC the power encodes the SNR
    assert np.allclose(p, 1 + 10 ** (-snrs / 10), rtol=0.15)  # noise power of one frame: +-3 % (1 sigma)


def test_per_frame_snrs_and_float_layout():
    cfg = SynthConfig()
    snrs = np.array([-20, 0, 20, 30])
    x, c = generate_frames("BPSK", snrs, 4, np.random.default_rng(3), cfg, return_clean=True)
    assert x.shape == (4, FRAME_LENGTH, 2) and x.dtype == np.float32 and np.isfinite(x).all()
    noise = np.mean(np.sum((x - c) ** 2, axis=2), axis=1)
    assert np.all(np.abs(10 * np.log10(1 / noise) - snrs) < 1.0)


def test_impairments_change_frames_and_switches_work():
    clean = frames("QPSK", n=4, **CLEAN)
    for field, value in [("timing_offset", True), ("sample_rate_offset", True), ("carrier_offset", True),
                         ("phase_offset", True), ("fading", "rician"), ("fading", "rayleigh")]:
        # the static offsets: the 2016 walks from zero move a frame by less than the threshold below
        cfg = dict(CLEAN, cfo_static=True, sro_static=True, **{field: value})
        x = frames("QPSK", n=4, **cfg)
        assert np.mean(np.abs(x - clean) ** 2) > 1e-4, field
    # symbols do not depend on the channel switches: with CFO only, |x| equals the clean |x|
    x = frames("QPSK", n=4, **dict(CLEAN, carrier_offset=True, phase_offset=True))
    assert np.allclose(np.abs(x), np.abs(clean), atol=1e-4)


def carrier_frequency(**cfg):
    """Instantaneous frequency (cycles/sample) of bare carriers: AM with carrier at modulation index 0."""
    x = frames("AM-DSB-WC", n=32, **dict(CLEAN, carrier_offset=True, am_index_min=0.0, am_index_max=0.0, **cfg))
    return np.diff(np.unwrap(np.angle(x), axis=1), axis=1) / (2 * np.pi)


def test_cfo_walk_starts_at_zero_and_stays_within_its_clip():
    # a step large enough to reach the clip within a frame, so that the clip is exercised
    f = carrier_frequency(cfo_walk=2e-4, cfo_max=0.002)
    assert np.all(np.abs(f[:, 0]) < 1e-5)  # the walk starts at zero ...
    assert np.all(np.abs(f[:, :4]) < 4 / 64 * 0.002 + 1e-5)  # ... and ramps towards its first knot
    assert np.all(np.abs(f) <= 0.002 + 1e-5)  # and never leaves +-cfo_max
    assert np.mean(np.abs(f[:, -64:]) > 0.0019) > 0.2  # many walks end at the clip
    knots = ch.random_walk_knots(np.random.default_rng(0), 500, FRAME_LENGTH, 0.002, 2e-4)
    assert np.all(knots[:, 0] == 0) and np.all(np.abs(knots) <= 0.002)
    assert np.any(knots == 0.002) and np.any(knots == -0.002)


def test_cfo_defaults_follow_the_2016_generator_static_is_an_option():
    f = carrier_frequency()  # the 2016 step (0.01 Hz at 200 kHz per sample) from zero: tiny over a frame
    assert np.max(np.abs(f)) < 2e-5
    fs = carrier_frequency(cfo_static=True)  # generator 1: static offset uniform in +-0.0025
    slope = np.mean(fs, axis=1)
    assert np.all(np.abs(slope) <= 0.0025 + 1e-4) and np.std(slope) > 5e-4


def test_sro_walk_starts_at_zero():
    knots = ch.random_walk_knots(np.random.default_rng(1), 200, FRAME_LENGTH, 250e-6, 0.05e-6)
    assert np.all(knots[:, 0] == 0) and np.max(np.abs(knots)) < 250e-6
    static = ch.random_walk_knots(np.random.default_rng(1), 200, FRAME_LENGTH, 250e-6, 0.05e-6, static=True)
    assert np.std(static[:, 0]) > 100e-6 and np.max(np.abs(static)) <= 250e-6


def test_sps_and_rolloff_choices_vary_the_spectrum():
    x = frames("BPSK", n=64, samples_per_symbol=[4, 8, 16], rolloff_min=0.2, rolloff_max=0.5, **CLEAN)
    assert x.shape == (64, FRAME_LENGTH) and np.isfinite(x).all()
    p = np.abs(np.fft.fft(x * np.blackman(FRAME_LENGTH), axis=1)) ** 2
    f = np.abs(np.fft.fftfreq(FRAME_LENGTH))
    order = np.argsort(f)
    cum = np.cumsum(p[:, order], axis=1) / p.sum(axis=1, keepdims=True)
    bw = f[order][np.argmax(cum > 0.99, axis=1)]  # 99 % power bandwidth per frame
    # occupied band (1 + a) / (2 sps): 0.15-0.19 at sps 4 down to 0.04-0.05 at sps 16
    assert bw.min() < 0.06 and bw.max() > 0.13 and len(np.unique(np.round(bw, 3))) > 10


# ---- the HDF5 writer ------------------------------------------------------------------------------------------

SMALL = dict(classes=["OOK", "QPSK", "FM", "OQPSK"], snr_min=-10, snr_max=10, snr_step=10,
             frames_per_pair=5, chunk_frames=7, seed=3)


def test_file_layout(tmp_path):
    cfg = synth_config("tiny", **SMALL)
    out = write_synthetic(cfg, tmp_path / "s.h5", quiet=True)
    assert out == tmp_path / "s.h5"
    with h5py.File(out, "r") as f:
        X, Y, Z = f["X"], f["Y"], f["Z"]
        n = 4 * 3 * 5
        assert X.shape == (n, FRAME_LENGTH, 2) and X.dtype == np.float32
        assert Y.shape == (n, 4) and Y.dtype == np.int64
        assert Z.shape == (n, 1) and Z.dtype == np.int64
        y, z = Y[:], Z[:, 0]
        assert np.all(y.sum(axis=1) == 1)
        assert list(np.argmax(y, axis=1)) == [c for c in range(4) for _ in range(15)]
        assert list(z) == [s for _ in range(4) for s in (-10, 0, 10) for _ in range(5)]
        assert json.loads(f.attrs["classes"]) == ["OOK", "QPSK", "FM", "OQPSK"]
        assert f.attrs["generator_version"] == GENERATOR_VERSION
        assert SynthConfig(**json.loads(f.attrs["amcprune_synth_config"])) == cfg
        assert np.isfinite(X[:]).all()
    assert os.listdir(tmp_path) == ["s.h5"]


def test_deterministic_across_workers_chunks_and_subsets(tmp_path):
    cfg = synth_config("tiny", **SMALL)
    a = write_synthetic(cfg, tmp_path / "a.h5", workers=1, quiet=True)
    b = write_synthetic(cfg, tmp_path / "b.h5", workers=2, quiet=True)
    c = write_synthetic(cfg.model_copy(update={"chunk_frames": 1000}), tmp_path / "c.h5", quiet=True)
    d = write_synthetic(synth_config("tiny", **dict(SMALL, classes=["FM"], snr_min=0)), tmp_path / "d.h5",
                        quiet=True)
    with h5py.File(a) as fa, h5py.File(b) as fb, h5py.File(c) as fc, h5py.File(d) as fd:
        xa = fa["X"][:]
        assert xa.tobytes() == fb["X"][:].tobytes() == fc["X"][:].tobytes()
        assert np.array_equal(fa["Y"][:], fb["Y"][:]) and np.array_equal(fa["Z"][:], fb["Z"][:])
        # FM (class position 2) at SNR 0 and 10 in the full file = the subset file
        assert fd["X"][:].tobytes() == xa[2 * 15 + 5:3 * 15].tobytes()
    other = write_synthetic(cfg.model_copy(update={"seed": 4}), tmp_path / "e.h5", quiet=True)
    with h5py.File(other) as fe:
        assert not np.array_equal(fe["X"][:5], xa[:5])


def test_pair_longer_than_generation_block(tmp_path):
    cfg = synth_config("tiny", classes=["BPSK"], snr_min=0, snr_max=0, frames_per_pair=writer_mod.GEN_BLOCK + 3)
    out = write_synthetic(cfg, tmp_path / "l.h5", quiet=True)
    with h5py.File(out) as f:
        x = f["X"][:]
    assert x.shape[0] == writer_mod.GEN_BLOCK + 3
    assert not np.array_equal(x[:3], x[writer_mod.GEN_BLOCK:])  # blocks draw from different streams


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = writer_mod.generate_frames

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 3:
            raise RuntimeError("boom")
        return real(*args, **kwargs)

    monkeypatch.setattr(writer_mod, "generate_frames", flaky)
    with pytest.raises(RuntimeError, match="boom"):
        write_synthetic(synth_config("tiny", **SMALL), tmp_path / "f.h5", quiet=True)
    assert os.listdir(tmp_path) == []


def test_unwritable_output(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(AmcpruneError, match="cannot write"):
        write_synthetic(synth_config("tiny", **SMALL), blocker / "out.h5", quiet=True)
    with pytest.raises(AmcpruneError, match="directory"):
        write_synthetic(synth_config("tiny", **SMALL), tmp_path, quiet=True)
    with pytest.raises(AmcpruneError, match="workers"):
        write_synthetic(synth_config("tiny", **SMALL), tmp_path / "w.h5", workers=0, quiet=True)
