"""One meaning of the model options (``spec_from_options``), conflicts as errors, and the spec every model carries."""

from __future__ import annotations

import copy

import pytest
import torch

from amcprune.cli.train import MODEL_OPTION_HELP
from amcprune.errors import AmcpruneError
from amcprune.pipeline import config as pipeline_config
from amcprune.export import burned_copy
from amcprune.models import (
    DEFAULT_ARCH,
    DEFAULT_BITS,
    DEFAULT_INPUT_BITS,
    ModelSpec,
    build_model,
    check_spec_options,
    load_challenge_state_dict,
    load_model,
    spec_from_options,
    spec_of,
)
from amcprune.utils.checkpoint import model_state, save_checkpoint
from helpers.challenge import challenge_vgg10

SMALL = {"conv_filters": 4, "dense_width": 8}


# ---- one meaning, one set of defaults ---------------------------------------------------------------------------


def test_defaults_are_the_challenge_baseline_and_modelspec_s():
    spec = spec_from_options()
    assert (spec.arch, spec.quantized, spec.input_bits, spec.weight_bits, spec.act_bits) == ("vgg10", True, 8, 8, 8)
    assert (DEFAULT_ARCH, DEFAULT_BITS, DEFAULT_INPUT_BITS) == ("vgg10", 8, 8)
    assert spec == ModelSpec(arch="vgg10")  # a spec file that names no widths means the same model


def test_bits_sets_weights_and_activations_never_the_input():
    spec = spec_from_options(bits=4)
    assert (spec.weight_bits, spec.act_bits, spec.input_bits) == (4, 4, DEFAULT_INPUT_BITS)
    spec = spec_from_options(bits=4, input_bits=6)
    assert (spec.weight_bits, spec.act_bits, spec.input_bits) == (4, 4, 6)
    spec = spec_from_options(weight_bits=3, act_bits=5)
    assert (spec.weight_bits, spec.act_bits, spec.input_bits) == (3, 5, DEFAULT_INPUT_BITS)


def test_options_override_the_base_and_keep_the_rest():
    base = {"arch": "vgg10", "weight_bits": 6, "act_bits": 6, "input_bits": 4, "conv_filters": 16}
    spec = spec_from_options(base, bits=3)
    assert (spec.weight_bits, spec.act_bits, spec.input_bits, spec.conv_filters) == (3, 3, 4, 16)
    spec = spec_from_options(ModelSpec(arch="vgg10", weight_bits=5), filters=8, dense=16, num_classes=4)
    assert (spec.weight_bits, spec.conv_filters, spec.dense_width, spec.num_classes) == (5, 8, 16, 4)
    assert spec_from_options(float_model=True).quantized is False


@pytest.mark.parametrize("options, words", [
    ({"bits": 4, "weight_bits": 6}, "--bits"),
    ({"bits": 4, "act_bits": 6}, "--bits"),
    ({"float_model": True, "bits": 4}, "--float"),
    ({"float_model": True, "input_bits": 8}, "--input-bits"),
    ({"arch": "compact", "filters": 8}, "--filters"),
])
def test_conflicting_options_are_one_line_errors(options, words):
    with pytest.raises(AmcpruneError) as exc:
        spec_from_options(**options)
    assert words in str(exc.value) and "\n" not in str(exc.value)


def test_bits_for_an_unquantized_base_is_an_error():
    with pytest.raises(AmcpruneError, match="unquantized"):
        spec_from_options({"arch": "vgg10", "quantized": False}, bits=4)
    assert spec_from_options({"arch": "vgg10", "quantized": False}, filters=8).quantized is False


def test_help_texts_state_the_defaults():
    assert f"default {DEFAULT_BITS})" in MODEL_OPTION_HELP["bits"] and "--input-bits" in MODEL_OPTION_HELP["bits"]
    assert f"default {DEFAULT_INPUT_BITS})" in MODEL_OPTION_HELP["input_bits"]
    for key in ("weight_bits", "act_bits"):
        assert f"default {DEFAULT_BITS})" in MODEL_OPTION_HELP[key] and "--bits" in MODEL_OPTION_HELP[key]


def test_pipeline_defaults_are_the_commands():
    trial = pipeline_config.TrialConfig.from_dict({"data": {"synth": "tiny"}})
    assert trial.model_spec() == spec_from_options()
    assert pipeline_config.DEFAULT_BITS == DEFAULT_BITS
    trial = pipeline_config.TrialConfig.from_dict({"data": {"synth": "tiny"}, "bits": 4, "model": {"input_bits": 6}})
    assert trial.model_spec() == spec_from_options({"input_bits": 6}, bits=4)
    with pytest.raises(AmcpruneError, match="unquantized"):
        pipeline_config.TrialConfig.from_dict({"data": {"synth": "tiny"}, "bits": 4, "model": {"quantized": False}})


# ---- options for a model that brings its own spec ---------------------------------------------------------------


def test_check_spec_options_accepts_repeats_and_refuses_disagreement():
    spec = ModelSpec(arch="vgg10", weight_bits=4, act_bits=4, input_bits=8, **SMALL)
    check_spec_options(spec, "ckpt")
    check_spec_options(spec, "ckpt", arch="vgg10", bits=4, input_bits=8, filters=[4] * 7, dense=8)
    for options, words in (({"bits": 8}, "weight_bits 8 (it has 4)"), ({"input_bits": 4}, "input_bits 4 (it has 8)"),
                           ({"weight_bits": 6}, "weight_bits 6"), ({"filters": 8}, "conv_filters 8"),
                           ({"arch": "compact"}, "arch compact"), ({"float_model": True}, "--float")):
        with pytest.raises(AmcpruneError) as exc:
            check_spec_options(spec, "ckpt", **options)
        assert words in str(exc.value) and str(exc.value).startswith("ckpt: ")
    with pytest.raises(AmcpruneError, match="unquantized"):
        check_spec_options(ModelSpec(arch="vgg10", quantized=False), "ckpt", bits=8)


# ---- the spec every model carries -------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["vgg10", "compact"])
def test_built_models_carry_their_spec(arch):
    spec = ModelSpec(arch=arch, input_length=512, **(SMALL if arch == "vgg10" else {}))
    model = build_model(spec)
    assert spec_of(model) == spec and model.spec.input_length == 512
    assert not any(k.startswith("spec") for k in model.state_dict())  # not part of the state
    assert copy.deepcopy(model).spec == spec and burned_copy(model).spec == spec
    assert model(torch.randn(2, 2, 512)).shape == (2, 24)


def test_loaded_models_carry_their_spec(tmp_path):
    spec = ModelSpec(arch="vgg10", weight_bits=4, act_bits=4, input_length=512, **SMALL)
    model = build_model(spec)
    save_checkpoint(tmp_path / "m.pt", {"spec": spec.model_dump(mode="json"), **model_state(model)})
    loaded, stored, _ = load_model(tmp_path / "m.pt")
    assert stored == spec and loaded.spec == spec
    ref = challenge_vgg10(filters=4, dense=8)
    ref.train()
    with torch.no_grad():
        ref(torch.randn(4, 2, 1024))  # activation scales enter the state dict
    challenge = load_challenge_state_dict(ref.state_dict(), spec_from_options(filters=4, dense=8))
    assert challenge.spec == spec_from_options(filters=4, dense=8)
    assert spec_of(torch.nn.Linear(2, 2)) is None
