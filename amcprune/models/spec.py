"""``ModelSpec``: everything needed to rebuild a model (stored in checkpoints as a plain dict).

Layer names used by ``layer_bits`` (per-layer overrides of ``weight_bits`` / ``act_bits``):

vgg10
    ``conv0`` .. ``conv6``: the seven convolutions; ``weight_bits`` is the conv's weight width,
    ``act_bits`` the width of the QuantReLU that follows it (the input of the next layer).
    ``dense0``, ``dense1``: the two hidden QuantLinear layers (``weight_bits``, ``act_bits`` as above).
    ``dense2``: the classifier (``weight_bits`` only; its output is not quantized, its bias is int32).
    The input quantizer's width is ``input_bits``.

compact (``i`` is the index in ``blocks``)
    ``block{i}.conv``: the full convolution of a block with ``separable: false``;
    ``block{i}.dw`` / ``block{i}.pw``: the depthwise and pointwise convolutions of a separable block;
    ``weight_bits`` is the conv's weight width, ``act_bits`` the width of the quantizer after its BatchNorm.
    ``block{i}.add``: ``act_bits`` of the QuantReLU that re-quantizes the sum of a residual block.
    ``pool``: ``act_bits`` of the quantizer after global pooling (the classifier's input).
    ``classifier``: ``weight_bits`` of the final QuantLinear (bias int32, output not quantized).

Cheap stems: ``stem_stride`` / ``stem_pool`` (vgg10: conv0's stride and the max-pool after it) and a block's
``pool`` (compact: a max-pool after the block's output quantizer) shorten every later layer's input, where
most MACs are. ``MODEL_PRESETS`` holds named specs; ``arch: <preset>`` expands to one.
"""

from __future__ import annotations

import os
import copy
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from amcprune.errors import AmcpruneError
from amcprune.models.registry import ARCHITECTURES
from amcprune.utils.atomic import write_text_atomic
from amcprune.utils.config import read_yaml_mapping, validation_message

# The one set of model defaults, shared by ModelSpec, every CLI command and the pipeline: the 2021 challenge
# baseline (VGG10, 8-bit weights and activations, 8-bit input quantizer over [-2, 2]). Changing one changes
# what a spec file, a bare state dict or a trial config that does not name the value means: don't.
DEFAULT_ARCH = "vgg10"
DEFAULT_BITS = 8  # weight and activation bits
DEFAULT_INPUT_BITS = 8  # the input quantizer (QuantHardTanh), set only by input_bits / --input-bits

VGG10_CONV_LAYERS = 7
VGG10_DENSE_LAYERS = 2
BIT_KEYS = ("weight_bits", "act_bits")
MAX_BITS = 32


class BlockSpec(BaseModel):
    """One block of the ``compact`` architecture."""

    model_config = ConfigDict(extra="forbid")

    channels: int = Field(ge=1, description="output channels of the block")
    kernel: int = Field(default=3, ge=1, description="kernel size (odd, 'same' padding)")
    stride: int = Field(default=1, ge=1, description="stride of the (depthwise) convolution")
    separable: bool = Field(default=True, description="depthwise + pointwise (true) or one full conv (false)")
    residual: bool = Field(default=False, description="add the block input (needs stride 1, same channels)")
    pool: int = Field(default=1, ge=1, description="max-pool size (and stride) after the block's output quantizer")

    @model_validator(mode="after")
    def _check(self) -> "BlockSpec":
        if self.kernel % 2 == 0:
            raise ValueError(f"kernel must be odd ('same' padding), got {self.kernel}")
        if self.residual and self.pool != 1:
            raise ValueError("a residual block cannot pool (its output length must equal its input's)")
        return self


# Default ``compact`` configuration: a full conv stem then depthwise-separable blocks, stride-2 downsampling
# from 1024 to 16 samples, one residual block; 21,040 weights (22,423 parameters quantized).
DEFAULT_COMPACT_BLOCKS: list[dict[str, Any]] = [
    {"channels": 32, "kernel": 7, "stride": 2, "separable": False},  # 1024 -> 512
    {"channels": 32, "kernel": 5, "stride": 2},  # -> 256
    {"channels": 48, "kernel": 5, "stride": 2},  # -> 128
    {"channels": 64, "kernel": 5, "stride": 2},  # -> 64
    {"channels": 64, "kernel": 3, "stride": 1, "residual": True},  # 64
    {"channels": 64, "kernel": 3, "stride": 2},  # -> 32
    {"channels": 64, "kernel": 3, "stride": 2},  # -> 16
]

# The 2021 winner's topology (BacalhauNet, docs/architectures.md): 5 depthwise-separable blocks, kernels
# 27/21/15/9/9, strides 2/1/2/1/2, channels 24/24/48/48/48, residual where the stride is 1, global max
# pooling, 6-bit weights and activations, 8-bit input. Unlike the original every MAC input is re-quantized
# (the residual sums by ``block{i}.add``), so no layer is billed at 32 bits.
_WINNER_BLOCKS: list[dict[str, Any]] = [
    {"channels": 24, "kernel": 27, "stride": 2},
    {"channels": 24, "kernel": 21, "stride": 1, "residual": True},
    {"channels": 48, "kernel": 15, "stride": 2},
    {"channels": 48, "kernel": 9, "stride": 1, "residual": True},
    {"channels": 48, "kernel": 9, "stride": 2},
]
_WINNER = {"arch": "compact", "weight_bits": 6, "act_bits": 6, "input_bits": 8, "global_pool": "max"}

# Named model presets: data for ``ModelSpec`` (``arch: <preset>`` in a spec, a trial config or ``--arch``
# expands to these fields; explicit options such as ``--bits`` still apply on top).
MODEL_PRESETS: dict[str, dict[str, Any]] = {
    "compact-winner": {**_WINNER, "blocks": _WINNER_BLOCKS},
    # The same with a cheap stem: the first block pools its output by 2 (every later layer sees half the
    # samples) and is narrower (16 channels), where most of the MACs are; block 1 then widens 16 -> 24 and
    # cannot be residual.
    "compact-winner-stem": {**_WINNER, "blocks": [
        {**_WINNER_BLOCKS[0], "channels": 16, "pool": 2},
        {**_WINNER_BLOCKS[1], "residual": False},
        *_WINNER_BLOCKS[2:],
    ]},
}


def preset_fields(name: str) -> dict[str, Any]:
    """The ``ModelSpec`` fields of the model preset ``name`` (a copy)."""
    return copy.deepcopy(MODEL_PRESETS[name])


class ModelSpec(BaseModel):
    """Architecture, widths and bit widths of a model. ``model_dump(mode="json")`` round-trips."""

    model_config = ConfigDict(extra="forbid")

    arch: str = Field(description="registered architecture: 'vgg10' or 'compact' (a preset name expands to one)")
    quantized: bool = True
    input_bits: int = DEFAULT_INPUT_BITS
    weight_bits: int = DEFAULT_BITS
    act_bits: int = DEFAULT_BITS
    layer_bits: dict[str, dict[str, int]] = Field(default_factory=dict)
    num_classes: int = Field(default=24, ge=2)
    input_length: int = Field(default=1024, ge=1)
    # vgg10
    conv_filters: int | list[int] = 64
    dense_width: int | list[int] = 128
    # vgg10 cheap stem: stride of conv0 and size of the max-pool after it (1 and 2: the challenge's graph)
    stem_stride: int = Field(default=1, ge=1)
    stem_pool: int = Field(default=2, ge=1)
    # compact (None: DEFAULT_COMPACT_BLOCKS)
    blocks: list[BlockSpec] | None = None
    global_pool: Literal["avg", "max"] = "avg"

    @model_validator(mode="before")
    @classmethod
    def _expand_preset(cls, data: Any) -> Any:
        # A preset name in ``arch`` is shorthand for its fields; fields given beside it win.
        if isinstance(data, dict) and data.get("arch") in MODEL_PRESETS:
            data = {**preset_fields(data["arch"]), **{k: v for k, v in data.items() if k != "arch"}}
        return data

    @model_validator(mode="after")
    def _check(self) -> "ModelSpec":
        if ARCHITECTURES and self.arch not in ARCHITECTURES:
            raise ValueError(f"unknown arch {self.arch!r}; available: {', '.join(sorted(ARCHITECTURES))}"
                             f" (presets: {', '.join(MODEL_PRESETS)})")
        for name in ("input_bits", "weight_bits", "act_bits"):
            _check_bits(name, getattr(self, name))
        if self.arch == "vgg10":
            self._check_vgg10()
        elif self.arch == "compact":
            self._check_compact()
        allowed = layer_bit_names(self)
        for layer, bits in self.layer_bits.items():
            if allowed is not None and layer not in allowed:
                raise ValueError(
                    f"layer_bits: unknown layer {layer!r} for {self.arch}; layers: {', '.join(allowed)}"
                )
            for key, value in bits.items():
                if key not in BIT_KEYS:
                    raise ValueError(f"layer_bits[{layer!r}]: unknown key {key!r} (use weight_bits, act_bits)")
                if allowed is not None and key not in allowed[layer]:
                    raise ValueError(f"layer_bits[{layer!r}]: {layer} has no {key} (only {', '.join(allowed[layer])})")
                _check_bits(f"layer_bits[{layer!r}][{key!r}]", value, weights=key == "weight_bits")
        return self

    def _check_vgg10(self) -> None:
        if self.blocks is not None:
            raise ValueError("blocks is a compact setting; vgg10 uses conv_filters and dense_width")
        _check_widths("conv_filters", self.conv_filters, VGG10_CONV_LAYERS)
        _check_widths("dense_width", self.dense_width, VGG10_DENSE_LAYERS)
        if self.global_pool != "avg":
            raise ValueError("global_pool is a compact setting; vgg10 flattens into its dense layers")
        if self.vgg10_flat_length() < 1:
            raise ValueError(f"vgg10 with stem_stride {self.stem_stride} and stem_pool {self.stem_pool} leaves no "
                             f"samples of input_length {self.input_length} after its 7 max-pools")

    def vgg10_lengths(self) -> list[int]:
        """vgg10: the length after each conv block (conv0 strided by ``stem_stride`` and pooled by
        ``stem_pool``, the others pooled by 2; padding 1 keeps a stride-1 conv's length)."""
        length = (self.input_length - 1) // self.stem_stride + 1
        out = [length // self.stem_pool]
        for _ in range(VGG10_CONV_LAYERS - 1):
            out.append(out[-1] // 2)
        return out

    def vgg10_flat_length(self) -> int:
        """vgg10: samples per channel at the Flatten."""
        return self.vgg10_lengths()[-1]

    def _check_compact(self) -> None:
        blocks = self.compact_blocks()
        if not blocks:
            raise ValueError("compact needs at least one block")
        if self.stem_stride != 1 or self.stem_pool != 2:
            raise ValueError("stem_stride and stem_pool are vgg10 settings; compact's stem is blocks[0] (stride, pool)")
        c_in = 2
        length = self.input_length
        for i, block in enumerate(blocks):
            if block.residual and (block.stride != 1 or block.channels != c_in):
                raise ValueError(
                    f"blocks[{i}]: a residual block needs stride 1 and channels equal to its input ({c_in}),"
                    f" got stride {block.stride}, channels {block.channels}"
                )
            length = ((length - 1) // block.stride + 1) // block.pool
            if length < 1:
                raise ValueError(f"blocks[{i}]: no samples of input_length {self.input_length} are left")
            c_in = block.channels

    def compact_lengths(self) -> list[int]:
        """compact: the length after each block (odd kernels with 'same' padding, then the block's pool)."""
        out = []
        length = self.input_length
        for block in self.compact_blocks():
            length = ((length - 1) // block.stride + 1) // block.pool
            out.append(length)
        return out

    # ---- resolved views -------------------------------------------------------------------------
    def filters_list(self) -> list[int]:
        """vgg10: the seven conv widths."""
        return _as_list(self.conv_filters, VGG10_CONV_LAYERS)

    def dense_list(self) -> list[int]:
        """vgg10: the two hidden dense widths."""
        return _as_list(self.dense_width, VGG10_DENSE_LAYERS)

    def compact_blocks(self) -> list[BlockSpec]:
        """compact: the block list (the default one when ``blocks`` is None)."""
        if self.blocks is not None:
            return list(self.blocks)
        return [BlockSpec.model_validate(b) for b in DEFAULT_COMPACT_BLOCKS]

    def bits(self, layer: str) -> dict[str, int]:
        """``{"weight_bits": .., "act_bits": ..}`` of ``layer`` (global values with overrides applied)."""
        out = {"weight_bits": self.weight_bits, "act_bits": self.act_bits}
        out.update(self.layer_bits.get(layer, {}))
        return out

    def weight_bits_of(self, layer: str) -> int:
        return self.bits(layer)["weight_bits"]

    def act_bits_of(self, layer: str) -> int:
        return self.bits(layer)["act_bits"]


def _check_bits(name: str, value: int, weights: bool | None = None) -> None:
    if weights is None:
        weights = name == "weight_bits"
    low = 2 if weights else 1
    if not low <= value <= MAX_BITS:
        why = " (1-bit narrow-range signed weights have no non-zero level)" if weights and value == 1 else ""
        raise ValueError(f"{name} must be in {low}..{MAX_BITS}, got {value}{why}")


def _check_widths(name: str, value: int | list[int], n: int) -> None:
    values = value if isinstance(value, list) else [value]
    if isinstance(value, list) and len(value) != n:
        raise ValueError(f"{name} must be an int or a list of {n} ints, got a list of {len(value)}")
    if any(v < 1 for v in values):
        raise ValueError(f"{name} widths must be >= 1, got {value}")


def _as_list(value: int | list[int], n: int) -> list[int]:
    return list(value) if isinstance(value, list) else [value] * n


def layer_bit_names(spec: ModelSpec) -> dict[str, tuple[str, ...]] | None:
    """The layer names ``layer_bits`` accepts for ``spec.arch`` and the keys each takes (None: unknown arch)."""
    both = ("weight_bits", "act_bits")
    if spec.arch == "vgg10":
        names = {f"conv{i}": both for i in range(VGG10_CONV_LAYERS)}
        names.update({f"dense{i}": both for i in range(VGG10_DENSE_LAYERS)})
        names[f"dense{VGG10_DENSE_LAYERS}"] = ("weight_bits",)
        return names
    if spec.arch == "compact":
        names = {}
        blocks = spec.blocks if spec.blocks is not None else [BlockSpec.model_validate(b) for b in DEFAULT_COMPACT_BLOCKS]
        for i, block in enumerate(blocks):
            if block.separable:
                names[f"block{i}.dw"] = both
                names[f"block{i}.pw"] = both
            else:
                names[f"block{i}.conv"] = both
            if block.residual:
                names[f"block{i}.add"] = ("act_bits",)
        names["pool"] = ("act_bits",)
        names["classifier"] = ("weight_bits",)
        return names
    return None


def validate_spec(data: dict[str, Any] | ModelSpec, source: str = "model spec") -> ModelSpec:
    """``ModelSpec.model_validate`` with a one-line ``AmcpruneError`` on bad input."""
    if isinstance(data, ModelSpec):
        return data
    if not isinstance(data, dict):
        raise AmcpruneError(f"{source}: expected a mapping, found {type(data).__name__}")
    try:
        return ModelSpec.model_validate(data)
    except ValidationError as exc:
        raise AmcpruneError(f"{source}: invalid model spec: {validation_message(exc)}") from None


def spec_from_yaml(path: str | os.PathLike) -> ModelSpec:
    """Read a ``ModelSpec`` from YAML (either the spec itself or a mapping with a ``model`` section)."""
    data = read_yaml_mapping(path, "model spec")
    if isinstance(data, dict) and "arch" not in data and isinstance(data.get("model"), dict):
        data = data["model"]
    return validate_spec(data, str(path))


def spec_to_yaml(spec: ModelSpec, path: str | os.PathLike | None = None) -> str:
    """The YAML text of ``spec``; also written atomically to ``path`` when given."""
    text = yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)
    if path is not None:
        write_text_atomic(path, text)
    return text


# ---- the one bridge from options (CLI flags, trial config shortcuts) to a ModelSpec -----------------------------
# option name -> how the user wrote it (CLI flag; the trial config's shortcut is the option name itself)
OPTION_FLAGS = {
    "arch": "--arch", "bits": "--bits", "weight_bits": "--weight-bits", "act_bits": "--act-bits",
    "input_bits": "--input-bits", "float_model": "--float", "filters": "--filters", "dense": "--dense",
    "num_classes": "--num-classes", "input_length": "--input-length",
}
BIT_OPTIONS = ("bits", "weight_bits", "act_bits", "input_bits")
VGG10_ONLY_OPTIONS = ("filters", "dense")


def option_fields(*, arch: str | None = None, bits: int | None = None, weight_bits: int | None = None,
                  act_bits: int | None = None, input_bits: int | None = None, float_model: bool = False,
                  filters: int | list[int] | None = None, dense: int | list[int] | None = None,
                  num_classes: int | None = None, input_length: int | None = None) -> dict[str, Any]:
    """The ``ModelSpec`` fields that the given options set (None / False: not given).

    ``bits`` sets ``weight_bits`` and ``act_bits``, never ``input_bits``. Options that contradict each other
    (``bits`` with ``weight_bits`` or ``act_bits``; ``float_model`` with any bit width) raise ``AmcpruneError``.
    """
    given_bits = [OPTION_FLAGS[k] for k, v in (("bits", bits), ("weight_bits", weight_bits), ("act_bits", act_bits),
                                               ("input_bits", input_bits)) if v is not None]
    if bits is not None and (weight_bits is not None or act_bits is not None):
        raise AmcpruneError("--bits sets both weight and activation bits: give either --bits or "
                            "--weight-bits/--act-bits, not both")
    if float_model and given_bits:
        raise AmcpruneError(f"--float is the unquantized model, which has no bit widths: drop {'/'.join(given_bits)}, "
                            "or drop --float")
    fields: dict[str, Any] = {}
    if arch is not None:
        fields["arch"] = arch
    if bits is not None:
        fields["weight_bits"] = fields["act_bits"] = bits
    for key, value in (("weight_bits", weight_bits), ("act_bits", act_bits), ("input_bits", input_bits),
                       ("conv_filters", filters), ("dense_width", dense), ("num_classes", num_classes),
                       ("input_length", input_length)):
        if value is not None:
            fields[key] = value
    if float_model:
        fields["quantized"] = False
    return fields


def spec_from_options(base: ModelSpec | dict[str, Any] | None = None, *, source: str = "model options",
                      **options: Any) -> ModelSpec:
    """The ``ModelSpec`` for ``options`` (see :func:`option_fields`) over ``base``.

    ``base`` (a spec file, the model section of a trial config, the spec of a run resumed or of an
    ``--init-from`` checkpoint) gives every field the options leave unset; without one, the defaults are
    ``ModelSpec``'s (``DEFAULT_ARCH``, ``DEFAULT_BITS``, ``DEFAULT_INPUT_BITS``). Used by ``amcprune train``,
    ``export``, ``cost`` and the pipeline, so that the same options mean the same model everywhere.
    """
    fields = option_fields(**options)
    if isinstance(base, ModelSpec):
        data = base.model_dump(mode="json")
    else:
        data = dict(base or {})
    data.setdefault("arch", DEFAULT_ARCH)
    bit_options = [OPTION_FLAGS[k] for k in BIT_OPTIONS if options.get(k) is not None]
    if data.get("quantized") is False and bit_options and "quantized" not in fields:
        raise AmcpruneError(f"{source}: the model is unquantized (quantized: false) and has no bit widths: "
                            f"drop {'/'.join(bit_options)}")
    data.update(fields)
    vgg_only = [OPTION_FLAGS[k] for k in VGG10_ONLY_OPTIONS if options.get(k) is not None]
    if vgg_only and data["arch"] != "vgg10":
        raise AmcpruneError(f"{'/'.join(vgg_only)} set vgg10 widths; {data['arch']} takes its widths from a spec "
                            "file (--spec)")
    return validate_spec(data, source)


def check_spec_options(spec: ModelSpec, source: str, **options: Any) -> None:
    """Raise ``AmcpruneError`` when options given for a model that brings its own spec (an amcprune checkpoint,
    a run directory) disagree with that spec; options that agree are accepted and change nothing."""
    fields = option_fields(**options)
    bit_fields = [k for k in ("weight_bits", "act_bits", "input_bits") if k in fields]
    if not spec.quantized and bit_fields:
        raise AmcpruneError(f"{source}: is an unquantized model, which has no bit widths: drop {', '.join(bit_fields)}")
    wrong = []
    for key, value in fields.items():
        have = getattr(spec, key)
        if key == "arch" and value in MODEL_PRESETS:
            preset = validate_spec({"arch": value}, f"preset {value!r}").model_dump(mode="json")
            mine = spec.model_dump(mode="json")
            same = all(mine[k] == preset[k] for k in MODEL_PRESETS[value])
        elif key == "conv_filters" and spec.arch == "vgg10":
            same = _as_list(value, VGG10_CONV_LAYERS) == spec.filters_list()
        elif key == "dense_width" and spec.arch == "vgg10":
            same = _as_list(value, VGG10_DENSE_LAYERS) == spec.dense_list()
        else:
            same = value == have
        if same:
            continue
        if key == "quantized":
            wrong.append("--float (it is quantized)")
        else:
            wrong.append(f"{key} {value} (it has {have})")
    if wrong:
        raise AmcpruneError(f"{source}: brings its own model spec, and the options disagree with it: "
                            f"{'; '.join(wrong)}; drop them")
