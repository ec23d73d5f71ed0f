"""The 2021 challenge VGG10 written with plain Brevitas, as a 2021 checkpoint was made."""

from torch import nn


def challenge_vgg10(weight_bits=8, act_bits=8, input_bits=8, filters=64, dense=128, classes=24) -> nn.Sequential:
    """The 2021 challenge notebook's VGG10, written here with plain Brevitas (not amcprune.models), so
    that its state dict is a genuine "2021 layout" checkpoint for the loader to accept."""
    import brevitas.nn as qnn
    from brevitas.inject.defaults import Int8ActPerTensorFloatMinMaxInit
    from brevitas.inject.enum import ScalingImplType
    from brevitas.quant import Int32Bias

    class InputQuantizer(Int8ActPerTensorFloatMinMaxInit):
        bit_width = input_bits
        min_val = -2.0
        max_val = 2.0
        scaling_impl_type = ScalingImplType.CONST

    layers: list[nn.Module] = [qnn.QuantHardTanh(act_quant=InputQuantizer)]
    c_in = 2
    for _ in range(7):
        layers += [
            qnn.QuantConv1d(c_in, filters, 3, padding=1, weight_bit_width=weight_bits, bias=False),
            nn.BatchNorm1d(filters),
            qnn.QuantReLU(bit_width=act_bits),
            nn.MaxPool1d(2),
        ]
        c_in = filters
    layers += [
        nn.Flatten(),
        qnn.QuantLinear(filters * 8, dense, weight_bit_width=weight_bits, bias=False),
        nn.BatchNorm1d(dense),
        qnn.QuantReLU(bit_width=act_bits),
        qnn.QuantLinear(dense, dense, weight_bit_width=weight_bits, bias=False),
        nn.BatchNorm1d(dense),
        qnn.QuantReLU(bit_width=act_bits, return_quant_tensor=True),
        qnn.QuantLinear(dense, classes, weight_bit_width=weight_bits, bias=True, bias_quant=Int32Bias),
    ]
    return nn.Sequential(*layers)
