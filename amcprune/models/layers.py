"""Which layers pruning acts on."""

from __future__ import annotations

from torch import nn

PRUNABLE_TYPES = (nn.Conv1d, nn.Conv2d, nn.Linear)  # Brevitas QuantConv1d / QuantLinear subclass these


def prunable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every conv / linear layer (quantized or float) with a ``weight``, in forward order.

    The built-in architectures register their modules in forward order, so this is ``named_modules`` order.
    A layer under live ``torch.nn.utils.prune`` reparametrisation (``weight_orig`` + mask) is included too.
    """
    out = []
    for name, module in model.named_modules():
        if isinstance(module, PRUNABLE_TYPES) and (
            isinstance(getattr(module, "weight", None), nn.Parameter) or hasattr(module, "weight_orig")
        ):
            out.append((name, module))
    return out
