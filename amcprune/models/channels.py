"""Channel groups: the channels structured pruning removes together, per architecture.

A group is a set of channel indices shared by several tensors: removing channel ``j`` of the group removes
row ``j`` of every *producer* (the layers whose outputs are these channels: one for a plain chain, several
when residual adds tie their outputs together), row ``j`` of every *carrier* (a depthwise convolution: its
channel ``j`` reads only channel ``j``), entry ``j`` of every per-channel tensor of the modules in between
(BatchNorm, per-channel quantizers) and input ``j`` of every *consumer* (the layers that read the group; across
a Flatten, input block ``j``). A channel can be removed without changing any output exactly when every tensor
that writes it is zero: the producers' and carriers' rows and biases and the gamma and beta of their BatchNorms.

``channel_groups(model)`` asks the model (``model.channel_groups()``, e.g. ``CompactNet``) or derives the
groups of a plain ``nn.Sequential`` chain (vgg10): each layer but the last is a group of its own, read by the
next layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from amcprune.errors import AmcpruneError
from amcprune.models.layers import prunable_layers


@dataclass
class ChannelGroup:
    producers: list[str] = field(default_factory=list)
    carriers: list[str] = field(default_factory=list)
    consumers: list[str] = field(default_factory=list)
    batchnorms: list[str] = field(default_factory=list)  # BN after each producer / carrier: gamma, beta masked
    per_channel: list[str] = field(default_factory=list)  # modules whose tensors of the group's width are sliced
    fixed: bool = False  # the model input flows through: its channels cannot be removed

    @property
    def name(self) -> str:
        """The group's name: its first producer (what ``exclude`` and ``layer_rates`` select)."""
        return self.producers[0]

    def layers(self) -> list[str]:
        """Every layer whose rows are the group's channels."""
        return [*self.producers, *self.carriers]


def channel_groups(model: nn.Module) -> list[ChannelGroup]:
    """The prunable channel groups of ``model`` (groups through which the model input flows are left out)."""
    if hasattr(model, "channel_groups"):
        groups = model.channel_groups()
    elif isinstance(model, nn.Sequential):
        groups = _chain_groups(model)
    else:
        raise AmcpruneError(
            f"structured pruning needs to know which channels are tied together: {type(model).__name__} is neither "
            "an nn.Sequential chain nor has channel_groups()"
        )
    return [g for g in groups if not g.fixed and g.producers]


def _chain_groups(model: nn.Sequential) -> list[ChannelGroup]:
    children = [name for name, _ in model.named_children()]
    layers = [name for name, _ in prunable_layers(model)]
    for name in layers:
        if name not in children:
            raise AmcpruneError(f"structured pruning of a chain supports top-level layers only; {name!r} is nested")
        if getattr(getattr(model, name), "groups", 1) != 1:
            raise AmcpruneError(f"structured pruning of grouped/depthwise convolution {name!r} in a chain is not "
                                "supported (the architecture must say which channels it ties: channel_groups())")
    groups = []
    for layer, nxt in zip(layers[:-1], layers[1:]):
        between = children[children.index(layer) + 1 : children.index(nxt)]
        bns = [c for c in between if isinstance(getattr(model, c), nn.modules.batchnorm._BatchNorm)]
        groups.append(ChannelGroup(producers=[layer], consumers=[nxt], batchnorms=bns[:1], per_channel=between))
    return groups
