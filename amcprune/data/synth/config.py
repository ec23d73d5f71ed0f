"""Configuration of the synthetic RadioML-like generator: ``SynthConfig``, ``PRESETS``, ``synth_config``.

The impairment defaults follow the published parameters of the RadioML 2016 generator (GNU Radio's
``dynamic_channel_model`` at 200 kHz with 8 samples per symbol), because the RadioML 2018 generation code
is not public and the 2016 parameters are the closest documented description of how the real file was
made. Every impairment has an on/off switch so that tests (and curious users) can look at clean signals.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from amcprune.data.classes import CLASSES, FRAME_LENGTH
from amcprune.errors import AmcpruneError
from amcprune.utils.config import validation_message

GENERATOR_VERSION = "amcprune-synth-2"
"""Bumped whenever the same config and seed would give different samples, so files can be told apart.
2: speech-like analog messages (pauses, wandering level), random SSB sideband, wider AM index and FM deviation
ranges, CFO/SRO as random walks from zero (the 2016 model), and the fields for the SNR definition and AGC.
``LEGACY_V1`` holds the overrides under which generator 2 reproduces generator 1's samples."""


class SynthConfigError(AmcpruneError, ValueError):
    """An invalid synthetic-data configuration (an ``AmcpruneError``, so the CLI prints one line)."""


class SynthConfig(BaseModel):
    """Everything that decides the content of a synthetic file (together with ``GENERATOR_VERSION``).

    Same config, same bytes: each (class, SNR) pair draws from its own random stream derived from
    ``(seed, canonical class index, SNR)``, so neither ``workers`` nor ``chunk_frames`` changes a sample, and a
    file with a subset of classes or SNRs holds exactly the frames of the full file for those pairs.

    Constructing it with bad values raises ``SynthConfigError`` (an ``AmcpruneError``) with one line.
    """

    model_config = ConfigDict(extra="forbid")

    # ---- what to generate -------------------------------------------------------------------------------
    classes: list[str] = Field(default_factory=lambda: list(CLASSES))
    """Class names; stored in canonical RadioML order whatever order is given (one-hot columns follow it)."""
    snr_min: int = -20
    """-20..30 dB in steps of 2 is the RadioML 2018 grid (26 SNRs)."""
    snr_max: int = 30
    snr_step: int = 2
    frames_per_pair: int = 64
    """Frames per (class, SNR) pair; the real file has 4096. 64 keeps a default run to seconds."""
    seed: int = 0
    chunk_frames: int = 2048
    """Frames per worker task and per HDF5 write: 2048 frames are 16 MiB of X, small next to memory,
    large enough that inter-process traffic and Python overhead are negligible. Does not change the data."""

    # ---- digital pulse shaping ----------------------------------------------------------------------------
    samples_per_symbol: list[int] = Field(default_factory=lambda: [8])
    """Per frame one of these (uniformly). 8 is what the 2016 generator used; even values only, because
    OQPSK delays Q by half a symbol in whole samples."""
    rolloff_min: float = 0.35
    """RRC roll-off drawn uniformly in [rolloff_min, rolloff_max] per frame; 0.35 is the 2016 value.
    Widen to e.g. 0.2-0.4 for a model that must not latch onto one spectral shape."""
    rolloff_max: float = 0.35
    gmsk_bt: float = 0.3
    """GSM's bandwidth-time product; the 2016 generator's GFSK/GMSK also used 0.3-0.35."""

    # ---- channel impairments --------------------------------------------------------------------------------
    timing_offset: bool = True
    """Fractional timing offset, uniform over one symbol period: a receiver is never symbol-aligned."""
    sample_rate_offset: bool = True
    """Sample clock offset: a random walk from zero at the frame's first sample, clipped at +-sro_max_ppm
    (GNU Radio's ``sro_model`` in the 2016 generator); ``sro_static`` adds a static start offset."""
    sro_max_ppm: float = 250.0
    """The walk's clip: 50 Hz at 200 kHz in the 2016 generator = 250 ppm (at most 0.26 samples of shift over
    a frame). With the 2016 step the walk never gets near it within 1024 samples."""
    sro_walk_ppm: float = 0.05
    """Random-walk step std per sample (0.01 Hz at 200 kHz in the 2016 generator)."""
    sro_static: bool = False
    """Start the walk at a static offset uniform in +-sro_max_ppm instead of zero (generator 1's model,
    harsher than the 2016 generator)."""
    carrier_offset: bool = True
    """Carrier frequency offset: a random walk from zero at the frame's first sample, clipped at +-cfo_max
    (GNU Radio's ``cfo_model`` in the 2016 generator); ``cfo_static`` adds a static start offset."""
    cfo_max: float = 0.0025
    """The walk's clip in cycles/sample: 0.25 % of the sample rate (500 Hz at 200 kHz in the 2016 generator).
    With the 2016 step the walk stays within about 5e-6 over a frame: the 500 Hz is a bound, not a typical
    offset."""
    cfo_walk: float = 5e-8
    """Random-walk step std per sample in cycles/sample (0.01 Hz at 200 kHz in the 2016 generator)."""
    cfo_static: bool = False
    """Start the walk at a static offset uniform in +-cfo_max instead of zero: generator 1's model, up to
    2.6 rotations per frame (a receiver without any frequency correction)."""
    phase_offset: bool = True
    """Uniform carrier phase in [0, 2 pi): an unsynchronised receiver sees any rotation."""
    fading: Literal["rician", "rayleigh", "none"] = "rician"
    """Block fading per frame (taps constant over the 1024 samples: at the 2016 Doppler the channel
    barely moves within one frame). Rician with LOS like the 2016 generator; 'none' = a single clean tap."""
    multipath_delays: list[float] = Field(default_factory=lambda: [0.0, 0.9, 1.7])
    """Tap delays in samples (2016 generator); fractional delays are exact (applied in frequency)."""
    multipath_mags: list[float] = Field(default_factory=lambda: [1.0, 0.8, 0.3])
    rician_k: float = 4.0
    """LOS-to-scatter power ratio per tap (2016 generator: K=4)."""
    awgn: bool = True
    """Add complex white Gaussian noise to the unit-power clean frame, at the level ``snr_definition`` sets."""
    snr_definition: Literal["sample", "es_n0"] = "sample"
    """'sample': noise variance 10^(-SNR/10) per complex sample over the whole sampled band, so a digital
    class at 8 samples/symbol has Es/N0 = SNR + 9.0 dB. 'es_n0': the label is Es/N0, noise variance
    sps * 10^(-SNR/10) with the frame's samples per symbol; the analog classes (no symbols) use
    ``ANALOG_REFERENCE_SPS``, i.e. the noise level of an 8-samples/symbol digital frame at the same label."""
    agc: Literal["none", "power", "peak"] = "none"
    """Automatic gain control on the noisy frame: 'none' (the frame's power is 1 + noise power, so it
    encodes the SNR), 'power' (unit mean power per frame) or 'peak' (largest |I| or |Q| = 1). Off by
    default: nothing public says the real file was normalised."""

    # ---- analog classes -----------------------------------------------------------------------------------
    ssb_sideband: Literal["upper", "lower", "random"] = "random"
    """Which sideband AM-SSB keeps ('random': either, per frame). A fixed sideband is a one-sided spectrum
    that no real SSB class has (both are in use)."""
    am_index_min: float = 0.3
    """Modulation index of AM with carrier (message peak over carrier amplitude), uniform per frame in
    [am_index_min, am_index_max]. Broadcast AM averages 30-50 %; the carrier holds most of the power."""
    am_index_max: float = 1.0
    fm_deviation_min: float = 0.005
    """Peak frequency deviation of FM in cycles/sample, uniform per frame: 1-10 kHz at 200 kHz, narrow- to
    medium-band FM inside the sampled band (Carson bandwidth at most 0.2 fs)."""
    fm_deviation_max: float = 0.05
    speech_pause: float = 0.3
    """Share of the time the message is silent (talk spurts and pauses alternate as a two-state Markov
    chain); a paused AM-WC or FM frame is a bare carrier, as real audio gives. 0: never silent."""
    speech_pause_len: int = 1024
    """Mean length of a pause in samples (talk spurts: speech_pause_len * (1 - p) / p). Real pauses are far
    longer than a frame at any plausible rate; shorter ones here put pause edges inside some frames too."""
    speech_floor_db: float = -40.0
    """Level of the background in a pause, relative to speech: recordings are never digital silence."""
    speech_level_db: float = 0.75
    """Std of the per-64-sample step of a random walk of the speech level (dB), shifted so that its highest
    point over the generated stretch is the nominal level: the AM index stays a bound on the message peak."""

    @field_validator("classes", mode="before")
    @classmethod
    def _split_classes(cls, v: Any) -> Any:
        # a CLI may hand over "BPSK,QPSK" as one string
        if isinstance(v, str):
            return [c.strip() for c in v.split(",") if c.strip()]
        return v

    @field_validator("classes")
    @classmethod
    def _check_classes(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one class is needed")
        lookup = {c.upper(): c for c in CLASSES}
        unknown = [c for c in v if str(c).upper() not in lookup]
        if unknown:
            raise ValueError(f"unknown class {unknown[0]!r} (known: {', '.join(CLASSES)})")
        wanted = {lookup[str(c).upper()] for c in v}
        return [c for c in CLASSES if c in wanted]

    @field_validator("samples_per_symbol")
    @classmethod
    def _check_sps(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("at least one value is needed")
        for s in v:
            if s < 2 or s > 64 or s % 2:
                raise ValueError(f"samples per symbol must be even and in 2..64, got {s}")
        return sorted(set(v))

    @model_validator(mode="after")
    def _check(self) -> "SynthConfig":
        if not -200 <= self.snr_min <= 200 or not -200 <= self.snr_max <= 200:
            raise ValueError("SNRs must lie in -200..200 dB")
        if self.snr_min > self.snr_max:
            raise ValueError(f"snr_min ({self.snr_min}) must not exceed snr_max ({self.snr_max})")
        if self.snr_step < 1:
            raise ValueError(f"snr_step must be >= 1, got {self.snr_step}")
        if self.frames_per_pair < 1:
            raise ValueError(f"frames_per_pair must be >= 1, got {self.frames_per_pair}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.chunk_frames < 1:
            raise ValueError(f"chunk_frames must be >= 1, got {self.chunk_frames}")
        if not 0.0 < self.rolloff_min <= self.rolloff_max <= 1.0:
            raise ValueError("roll-off needs 0 < rolloff_min <= rolloff_max <= 1")
        if not 0.05 <= self.gmsk_bt <= 2.0:
            raise ValueError(f"gmsk_bt must lie in 0.05..2, got {self.gmsk_bt}")
        if not 0 <= self.sro_max_ppm <= 400 or self.sro_walk_ppm < 0:
            # 400 ppm shifts the frame end by 0.41 samples, within the interpolator's +-0.5
            raise ValueError("sro_max_ppm must lie in 0..400 and sro_walk_ppm be >= 0")
        if not 0 <= self.cfo_max <= 0.25 or self.cfo_walk < 0:
            raise ValueError("cfo_max must lie in 0..0.25 cycles/sample and cfo_walk be >= 0")
        if len(self.multipath_delays) != len(self.multipath_mags) or not self.multipath_delays:
            raise ValueError("multipath_delays and multipath_mags need the same, non-zero length")
        if any(d < 0 or d > 32 for d in self.multipath_delays):
            raise ValueError("multipath delays must lie in 0..32 samples")
        if any(m < 0 for m in self.multipath_mags) or not any(m > 0 for m in self.multipath_mags):
            raise ValueError("multipath magnitudes must be >= 0, at least one > 0")
        if self.rician_k < 0:
            raise ValueError(f"rician_k must be >= 0, got {self.rician_k}")
        if not 0.0 <= self.am_index_min <= self.am_index_max <= 2.0:
            raise ValueError("AM index needs 0 <= am_index_min <= am_index_max <= 2")
        if not 0.0 <= self.fm_deviation_min <= self.fm_deviation_max <= 0.2:
            # beyond 0.2 cycles/sample the Carson bandwidth no longer fits into the sampled band
            raise ValueError("FM deviation needs 0 <= fm_deviation_min <= fm_deviation_max <= 0.2 cycles/sample")
        if not 0.0 <= self.speech_pause < 1.0:
            raise ValueError(f"speech_pause must lie in 0..1 (exclusive), got {self.speech_pause}")
        if self.speech_pause_len < 64:
            raise ValueError(f"speech_pause_len must be >= 64 samples, got {self.speech_pause_len}")
        if not -120.0 <= self.speech_floor_db <= 0.0:
            raise ValueError(f"speech_floor_db must lie in -120..0 dB, got {self.speech_floor_db}")
        if not 0.0 <= self.speech_level_db <= 20.0:
            raise ValueError(f"speech_level_db must lie in 0..20 dB, got {self.speech_level_db}")
        return self

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as err:
            raise SynthConfigError("invalid synthetic data config: " + validation_message(err)) from None

    # ---- derived values -------------------------------------------------------------------------------------
    @property
    def snrs_db(self) -> list[int]:
        return list(range(self.snr_min, self.snr_max + 1, self.snr_step))

    @property
    def n_frames(self) -> int:
        return len(self.classes) * len(self.snrs_db) * self.frames_per_pair

    @property
    def frame_length(self) -> int:
        return FRAME_LENGTH

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True)


ANALOG_REFERENCE_SPS = 8
"""Samples per symbol that sets the analog classes' noise level under ``snr_definition='es_n0'``."""

LEGACY_V1: dict[str, Any] = {
    "ssb_sideband": "upper", "am_index_min": 0.5, "am_index_max": 1.0, "fm_deviation_min": 0.01,
    "fm_deviation_max": 0.05, "speech_pause": 0.0, "speech_level_db": 0.0, "cfo_static": True, "sro_static": True,
}
"""Overrides that make generator 2 produce generator 1's samples (amcprune-synth-1) for the same seed:
``synth_config("quick", **LEGACY_V1)``, or ``amcprune data synth --legacy-v1``."""

PRESETS: dict[str, dict[str, Any]] = {
    # all classes and the extreme SNRs in a second or two: for tests of the whole pipeline.
    "tiny": {"snr_step": 10, "frames_per_pair": 8, "chunk_frames": 512},
    # the demo: 24 x 26 x 64 = 39,936 frames (320 MB), seconds to generate, minutes to train on CPU.
    "quick": {"frames_per_pair": 64},
    # a CPU benchmark: 24 x 26 x 256 = 159,744 frames (1.3 GB).
    "standard": {"frames_per_pair": 256},
    # the size of the real file: 24 x 26 x 4096 = 2,555,904 frames (21 GB).
    "full": {"frames_per_pair": 4096},
}
"""Named starting points; ``synth_config(name, **overrides)`` applies overrides on top."""


def synth_config(preset: str = "quick", **overrides: Any) -> SynthConfig:
    """The preset's config with ``overrides`` applied; overrides that are ``None`` are ignored so that a
    CLI can pass its unset options straight through. Unknown presets or fields raise ``AmcpruneError``."""
    if preset not in PRESETS:
        raise SynthConfigError(f"unknown synthetic preset {preset!r} (choose from {', '.join(PRESETS)})")
    values = dict(PRESETS[preset])
    values.update({k: v for k, v in overrides.items() if v is not None})
    return SynthConfig(**values)
