"""``compact``: a small depthwise-separable 1D CNN in the spirit of the 2021 winner (BacalhauNet).

Built from ``spec.compact_blocks()`` (default ``DEFAULT_COMPACT_BLOCKS``)::

    input_quant (QuantHardTanh, fixed [-2, 2], input_bits)
    blocks[i]:  separable:  dw  QuantConv1d(c, c, k, stride, groups=c) -> dw_bn -> dw_act (QuantReLU)
                            pw  QuantConv1d(c, c_out, 1)              -> pw_bn -> pw_act
                full conv:  conv QuantConv1d(c, c_out, k, stride)      -> bn    -> act (QuantReLU)
                residual:   pw_act is a signed QuantIdentity, then add_act = QuantReLU(pw_act(..) + x)
                pool > 1:   out_pool MaxPool1d(pool) after the block's output quantizer (a cheap stem)
    pool (AvgPool1d or MaxPool1d over the whole remaining length, ``global_pool``) -> flatten
    -> pool_act (QuantReLU) -> classifier QuantLinear (int32 bias)

Every tensor that feeds a multiply-accumulate comes straight from a quantizer (after each BatchNorm, after
each residual add and after pooling), so qonnx ``inference_cost`` bills no MAC at 32 bits. Pooling is a
fixed-size ``AvgPool1d`` rather than ``AdaptiveAvgPool1d``: the latter exports as ``GlobalAveragePool``, an op
the cost tool does not know, which would mark every score as not comparable (likewise ``MaxPool1d`` for max).

Structured pruning (``channel_groups``): the channels of the stream between blocks form one group per
stretch of residual blocks; a separable block's depthwise channels are its input channels (tied to the
group it reads, and to its pointwise inputs), and a residual block's output channels are its input channels.
``quantized=False`` gives the same topology with torch.nn layers (quantizers become ReLU / Identity).
"""

from __future__ import annotations

import brevitas.nn as qnn
import torch
from torch import nn

from amcprune.models.channels import ChannelGroup
from amcprune.models.quantizers import SignedActQuant
from amcprune.models.registry import register_arch
from amcprune.models.spec import BlockSpec, ModelSpec
from amcprune.models.vgg10 import conv1d, input_quantizer, linear, relu


def _signed_quant(spec: ModelSpec, bits: int) -> nn.Module:
    if not spec.quantized:
        return nn.Identity()
    return qnn.QuantIdentity(act_quant=SignedActQuant, bit_width=bits)


class CompactBlock(nn.Module):
    def __init__(self, spec: ModelSpec, index: int, block: BlockSpec, c_in: int) -> None:
        super().__init__()
        self.separable = block.separable
        self.residual = block.residual
        c_out = block.channels
        if block.separable:
            dw_bits = spec.bits(f"block{index}.dw")
            pw_bits = spec.bits(f"block{index}.pw")
            self.dw = conv1d(spec, c_in, c_in, block.kernel, dw_bits["weight_bits"], stride=block.stride, groups=c_in)
            self.dw_bn = nn.BatchNorm1d(c_in)
            self.dw_act = relu(spec, dw_bits["act_bits"])
            self.pw = conv1d(spec, c_in, c_out, 1, pw_bits["weight_bits"])
            self.pw_bn = nn.BatchNorm1d(c_out)
            out_bits = pw_bits["act_bits"]
        else:
            bits = spec.bits(f"block{index}.conv")
            self.conv = conv1d(spec, c_in, c_out, block.kernel, bits["weight_bits"], stride=block.stride)
            self.bn = nn.BatchNorm1d(c_out)
            out_bits = bits["act_bits"]
        # the quantizer after the last BatchNorm: signed when a residual sum follows (re-quantized by add_act)
        out_act = _signed_quant(spec, out_bits) if block.residual else relu(spec, out_bits)
        if block.separable:
            self.pw_act = out_act
        else:
            self.act = out_act
        if block.residual:
            self.add_act = relu(spec, spec.act_bits_of(f"block{index}.add"))
        # max-pooling quantized values keeps them on the same grid: the next MAC still reads a quantized tensor
        self.out_pool = nn.MaxPool1d(block.pool) if block.pool > 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.separable:
            y = self.pw_act(self.pw_bn(self.pw(self.dw_act(self.dw_bn(self.dw(x))))))
        else:
            y = self.act(self.bn(self.conv(x)))
        if self.residual:
            y = self.add_act(y + x)
        if self.out_pool is not None:
            y = self.out_pool(y)
        return y


def compact_output_length(spec: ModelSpec) -> int:
    """Length of the feature map after the last block (odd kernels with ``padding = kernel // 2``)."""
    return spec.compact_lengths()[-1]


class CompactNet(nn.Module):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.input_quant = input_quantizer(spec)
        blocks = []
        c_in = 2
        for i, block in enumerate(spec.compact_blocks()):
            blocks.append(CompactBlock(spec, i, block, c_in))
            c_in = block.channels
        self.blocks = nn.Sequential(*blocks)
        length = compact_output_length(spec)
        self.pool = nn.MaxPool1d(length) if spec.global_pool == "max" else nn.AvgPool1d(length)
        self.flatten = nn.Flatten()
        # the int32 bias quantizer needs the input scale: hand the classifier a QuantTensor
        self.pool_act = relu(spec, spec.act_bits_of("pool"), return_quant_tensor=True)
        self.classifier = linear(spec, c_in, spec.num_classes, spec.weight_bits_of("classifier"), bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.input_quant(x))
        return self.classifier(self.pool_act(self.flatten(self.pool(x))))

    def channel_groups(self) -> list[ChannelGroup]:
        """The channel groups of the block stream (see the module docstring), in block order."""
        groups: list[ChannelGroup] = []
        stream = ChannelGroup(fixed=True)  # the model input: its two channels stay
        for i, block in enumerate(self.blocks):
            p = f"blocks.{i}"
            present = {name for name, _ in block.named_children()}

            def here(*names: str) -> list[str]:
                return [f"{p}.{n}" for n in names if n in present]

            if block.separable:
                # depthwise channel j reads stream channel j only and feeds pointwise input j
                stream.carriers += here("dw")
                stream.batchnorms += here("dw_bn")
                stream.per_channel += here("dw_bn", "dw_act")
                reader, out_bn, out_mods = f"{p}.pw", "pw_bn", ("pw_bn", "pw_act", "add_act", "out_pool")
            else:
                reader, out_bn, out_mods = f"{p}.conv", "bn", ("bn", "act", "add_act", "out_pool")
            stream.consumers.append(reader)
            if not block.residual:
                groups.append(stream)
                stream = ChannelGroup()
            # a residual block's output channel j is its input channel j plus its own output j: one group
            stream.producers.append(reader)
            stream.batchnorms += here(out_bn)
            stream.per_channel += here(*out_mods)
        stream.consumers.append("classifier")
        stream.per_channel += ["pool", "pool_act"]
        groups.append(stream)
        return groups


@register_arch("compact")
def build_compact(spec: ModelSpec) -> CompactNet:
    return CompactNet(spec)
