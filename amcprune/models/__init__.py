"""The models stage: model specs, architectures (vgg10, compact), building and loading.

Importing this package registers the built-in architectures ("vgg10", "compact").
"""

from amcprune.models import compact as _compact  # noqa: F401  (registers "compact")
from amcprune.models import vgg10 as _vgg10  # noqa: F401  (registers "vgg10")
from amcprune.models.build import attach_spec, build_model, spec_of
from amcprune.models.channels import ChannelGroup, channel_groups
from amcprune.models.compact import CompactNet
from amcprune.models.inputs import dequantize_input, input_quant_info, input_scale, quantize_input_int8
from amcprune.models.layers import prunable_layers
from amcprune.models.loading import load_challenge_state_dict, load_model, resolve_checkpoint_path
from amcprune.models.quantizers import INPUT_RANGE
from amcprune.models.registry import ARCHITECTURES, available_archs, register_arch
from amcprune.models.spec import (
    DEFAULT_ARCH,
    DEFAULT_BITS,
    DEFAULT_COMPACT_BLOCKS,
    DEFAULT_INPUT_BITS,
    MODEL_PRESETS,
    BlockSpec,
    ModelSpec,
    check_spec_options,
    layer_bit_names,
    option_fields,
    spec_from_options,
    spec_from_yaml,
    spec_to_yaml,
    validate_spec,
)
from amcprune.models.vgg10 import VGG10_LAYER_INDEX, vgg10_flat_length

__all__ = [
    "ARCHITECTURES",
    "DEFAULT_ARCH",
    "DEFAULT_BITS",
    "DEFAULT_COMPACT_BLOCKS",
    "DEFAULT_INPUT_BITS",
    "INPUT_RANGE",
    "VGG10_LAYER_INDEX",
    "MODEL_PRESETS",
    "BlockSpec",
    "ChannelGroup",
    "CompactNet",
    "ModelSpec",
    "attach_spec",
    "available_archs",
    "build_model",
    "channel_groups",
    "check_spec_options",
    "dequantize_input",
    "input_quant_info",
    "input_scale",
    "layer_bit_names",
    "load_challenge_state_dict",
    "load_model",
    "option_fields",
    "prunable_layers",
    "quantize_input_int8",
    "register_arch",
    "resolve_checkpoint_path",
    "spec_from_options",
    "spec_from_yaml",
    "spec_of",
    "spec_to_yaml",
    "validate_spec",
    "vgg10_flat_length",
]
