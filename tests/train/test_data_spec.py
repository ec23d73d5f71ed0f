"""In-memory frames and the model spec: int8 codes belong to one input quantizer (models' ``InputQuant``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import amcprune.train.data as train_data
from amcprune.errors import AmcpruneError
from amcprune.models import build_model
from amcprune.models.quantizers import InputQuant
from amcprune.train.data import InMemoryData

from train_helpers import tiny_spec


def _arrays(n: int = 8, length: int = 1024):
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, size=(n, length, 2)).astype(np.float32)
    return {"train": (x, rng.integers(0, 4, n), np.zeros(n, dtype=np.int64))}


def test_one_input_quantizer_class():
    assert not hasattr(train_data, "InputQuant")  # the models stage's is the only one
    assert build_model(tiny_spec())[0].act_quant.quant_injector.__name__ == InputQuant.__name__


def test_int8_frames_know_their_spec_and_refuse_another_input_width():
    spec = tiny_spec(input_bits=6)
    data = InMemoryData.from_arrays(_arrays(), spec=spec)
    assert data.int8 and data.input_spec == spec and data.split("train").x.dtype == torch.int8
    data.check_model_spec(spec)
    data.check_model_spec(tiny_spec(input_bits=6, weight_bits=3))  # weights do not matter to the frames
    with pytest.raises(AmcpruneError, match="6-bit input quantizer but the model has a 8-bit input"):
        data.check_model_spec(tiny_spec(input_bits=8))
    with pytest.raises(AmcpruneError, match="float input"):
        data.check_model_spec(tiny_spec(quantized=False))
    with pytest.raises(AmcpruneError, match="takes 512"):
        data.check_model_spec(tiny_spec(input_bits=6, input_length=512))


def test_float_frames_feed_any_input_width():
    data = InMemoryData.from_arrays(_arrays(), spec=tiny_spec(quantized=False))
    assert not data.int8 and data.input_spec is None
    data.check_model_spec(tiny_spec(input_bits=4))
    data.check_model_spec(None)
