"""The challenge baseline "VGG10" (ITU-ML5G-PS-007, 2021), quantized (Brevitas) or float.

An ``nn.Sequential`` whose indices match the challenge model, so 2021 state dicts load with strict=True:

====== ==========================================================================================
index  module
====== ==========================================================================================
0      QuantHardTanh input quantizer (``input_bits``, fixed range [-2, 2], constant scale)
1-28   7 x [QuantConv1d(k=3, padding=1, no bias) ``conv{i}``, BatchNorm1d, QuantReLU, MaxPool1d(2)];
       conv ``i`` is at index ``1 + 4 i``
29     Flatten
30-32  QuantLinear(filters[-1] * input_length / 128 -> dense[0], no bias) ``dense0``, BatchNorm1d, QuantReLU
33-35  QuantLinear(dense[0] -> dense[1], no bias) ``dense1``, BatchNorm1d, QuantReLU(return_quant_tensor)
36     QuantLinear(dense[1] -> num_classes, bias, int32 bias quant) ``dense2``
====== ==========================================================================================

State-dict keys (quantized): ``{1+4i}.weight``, BN ``{2+4i}.weight/bias/running_mean/running_var/
num_batches_tracked``, ReLU scale ``{3+4i}.act_quant.fused_activation_quant_proxy.tensor_quant.scaling_impl.value``,
``30.weight``, ``31.*``, ``32.act_quant...value``, ``33.weight``, ``34.*``, ``35.act_quant...value``,
``36.weight``, ``36.bias``. The input quantizer (constant scale) has no state.

``quantized=False`` gives the same indices with torch.nn layers (Hardtanh(-2, 2), Conv1d, ReLU, Linear).

Cheap stem (``stem_stride``, ``stem_pool``; defaults 1 and 2 are the challenge graph): conv0 strided and its
max-pool widened, so every later layer sees fewer samples (the second conv alone holds about half the MACs);
the indices and state-dict keys stay the same, only the first dense layer's input width follows the length.
"""

from __future__ import annotations

import brevitas.nn as qnn
from torch import nn

from amcprune.models.quantizers import INPUT_RANGE, BiasQuant, InputQuant, ReluActQuant, WeightQuant
from amcprune.models.registry import register_arch
from amcprune.models.spec import VGG10_CONV_LAYERS, ModelSpec

# Sequential indices of the named layers (see the module docstring).
VGG10_LAYER_INDEX = {f"conv{i}": 1 + 4 * i for i in range(VGG10_CONV_LAYERS)}
VGG10_LAYER_INDEX.update({"dense0": 30, "dense1": 33, "dense2": 36})


def vgg10_flat_length(input_length: int) -> int:
    """Samples left after the seven MaxPool1d(2) of the challenge graph (floor at each pool);
    ``ModelSpec.vgg10_flat_length()`` accounts for a cheap stem."""
    length = input_length
    for _ in range(VGG10_CONV_LAYERS):
        length //= 2
    return length


def input_quantizer(spec: ModelSpec, return_quant_tensor: bool = False) -> nn.Module:
    if not spec.quantized:
        return nn.Hardtanh(-INPUT_RANGE, INPUT_RANGE)
    return qnn.QuantHardTanh(act_quant=InputQuant, bit_width=spec.input_bits, return_quant_tensor=return_quant_tensor)


def relu(spec: ModelSpec, bits: int, return_quant_tensor: bool = False) -> nn.Module:
    if not spec.quantized:
        return nn.ReLU()
    return qnn.QuantReLU(act_quant=ReluActQuant, bit_width=bits, return_quant_tensor=return_quant_tensor)


def conv1d(spec: ModelSpec, c_in: int, c_out: int, kernel: int, bits: int, stride: int = 1, groups: int = 1) -> nn.Module:
    padding = kernel // 2
    if not spec.quantized:
        return nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=padding, groups=groups, bias=False)
    return qnn.QuantConv1d(
        c_in, c_out, kernel, stride=stride, padding=padding, groups=groups, bias=False,
        weight_quant=WeightQuant, weight_bit_width=bits,
    )


def linear(spec: ModelSpec, n_in: int, n_out: int, bits: int, bias: bool = False) -> nn.Module:
    if not spec.quantized:
        return nn.Linear(n_in, n_out, bias=bias)
    kwargs = {"bias_quant": BiasQuant} if bias else {}
    return qnn.QuantLinear(n_in, n_out, bias=bias, weight_quant=WeightQuant, weight_bit_width=bits, **kwargs)


@register_arch("vgg10")
def build_vgg10(spec: ModelSpec) -> nn.Sequential:
    filters = spec.filters_list()
    dense = spec.dense_list()
    layers: list[nn.Module] = [input_quantizer(spec)]
    c_in = 2
    for i, c_out in enumerate(filters):
        bits = spec.bits(f"conv{i}")
        stem = i == 0
        layers += [
            conv1d(spec, c_in, c_out, 3, bits["weight_bits"], stride=spec.stem_stride if stem else 1),
            nn.BatchNorm1d(c_out),
            relu(spec, bits["act_bits"]),
            nn.MaxPool1d(spec.stem_pool if stem else 2),
        ]
        c_in = c_out
    layers.append(nn.Flatten())
    n_in = filters[-1] * spec.vgg10_flat_length()
    for i, width in enumerate(dense):
        bits = spec.bits(f"dense{i}")
        last_hidden = i == len(dense) - 1
        layers += [
            linear(spec, n_in, width, bits["weight_bits"]),
            nn.BatchNorm1d(width),
            relu(spec, bits["act_bits"], return_quant_tensor=last_hidden),
        ]
        n_in = width
    layers.append(linear(spec, n_in, spec.num_classes, spec.weight_bits_of("dense2"), bias=True))
    return nn.Sequential(*layers)
