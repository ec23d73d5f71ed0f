"""A RadioML 2018-like synthetic data generator (the real dataset's licence forbids shipping it).

Public API:
- ``SynthConfig`` (pydantic), ``PRESETS`` {tiny, quick, standard, full}, ``synth_config(preset, **overrides)``;
- ``GENERATOR_VERSION`` (stored in every file) and ``LEGACY_V1`` (overrides that reproduce generator 1);
- ``write_synthetic(config, out_path, workers=1, quiet=False) -> Path``: the HDF5 file, RadioML 2018 layout;
- ``generate_frames(class_name, snrs_db, n, rng, config, return_clean=False)``: frames in memory;
- ``pair_rng(seed, class_index, snr_db, block=0)``: the random stream the writer uses for a pair's block.

Modules: ``modulations`` (the 24 class definitions), ``channel`` (impairments), ``generator`` (the chain),
``config``, ``writer``.
"""

from amcprune.data.synth.config import (
    GENERATOR_VERSION, LEGACY_V1, PRESETS, SynthConfig, SynthConfigError, synth_config,
)
from amcprune.data.synth.generator import generate_frames
from amcprune.data.synth.writer import GEN_BLOCK, pair_rng, write_synthetic

__all__ = [
    "GENERATOR_VERSION", "GEN_BLOCK", "LEGACY_V1", "PRESETS", "SynthConfig", "SynthConfigError", "generate_frames",
    "pair_rng", "synth_config", "write_synthetic",
]
