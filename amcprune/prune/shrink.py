"""Physical shrinking after structured pruning: remove dead channels, keep every trained value.

A channel (output of a conv filter or a linear neuron) is *dead* when its filter row, its bias (if any) and the
gamma and beta of the BatchNorm after it are all zero; the structured criterion masks exactly these
(:func:`amcprune.prune.criteria.mask_channel`). A dead channel outputs ``BN(0) = 0``, which ReLU, the
activation quantizer and MaxPool keep at 0, so the next layer receives zeros from it and the channel can be
removed without changing any output:

- the layer's output channels (filter rows, bias), the BatchNorm entries (gamma, beta, running mean and
  variance) and any per-channel quantizer parameters of the modules in between are sliced;
- the next layer's input channels are sliced; across ``Flatten`` each conv channel ``c`` owns the ``L``
  consecutive features ``c*L .. c*L+L-1`` of the first dense layer's input (``L`` the length after pooling);
- everything else (activation quantizer scales, BatchNorm statistics, unstructured masks) is copied.

The new model is built from the updated ``ModelSpec`` (per-layer widths), loaded with the sliced state and
swapped into the original ``nn.Sequential`` in place, so references to the model object stay valid (call
``Trainer.reset_optimizer()`` afterwards: the parameters are new tensors). The published FMP script instead
re-initialised the shrunk model and threw the trained weights away.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn
from torch.nn.utils import prune

from amcprune.errors import AmcpruneError
from amcprune.models import build_model, validate_spec
from amcprune.prune.criteria import following_batchnorm, prunable_layers
from amcprune.utils.checkpoint import split_masks


@dataclass
class ShrinkResult:
    widths_before: dict[str, int]
    widths_after: dict[str, int]
    kept: dict[str, list[int]]  # layer -> indices of the kept output channels

    @property
    def removed(self) -> int:
        return sum(self.widths_before[k] - self.widths_after[k] for k in self.widths_before)

    def as_dict(self) -> dict[str, Any]:
        return {"widths_before": self.widths_before, "widths_after": self.widths_after, "removed": self.removed}


def effective(module: nn.Module, param: str) -> torch.Tensor | None:
    """``module.<param>`` with its mask applied (recomputed, not the value cached at the last forward)."""
    orig = getattr(module, param + "_orig", None)
    if orig is not None:
        return (orig * getattr(module, param + "_mask")).detach()
    value = getattr(module, param, None)
    return None if value is None else value.detach()


def alive_channels(model: nn.Module, layer_name: str) -> torch.Tensor:
    """Bool per output channel of ``layer_name``: False where the channel is dead (always outputs 0)."""
    modules = dict(model.named_modules())
    module = modules[layer_name]
    w = effective(module, "weight")
    alive = w.reshape(w.shape[0], -1).ne(0).any(dim=1)
    bias = effective(module, "bias") if getattr(module, "bias", None) is not None or hasattr(module, "bias_orig") else None
    if bias is not None:
        alive |= bias.ne(0)
    bn = following_batchnorm(model, layer_name)
    if bn is not None:
        bn_mod = bn[1]
        if not bn_mod.affine:
            return torch.ones_like(alive)  # BN(0) = -mean/sqrt(var+eps) != 0: nothing is removable
        alive |= effective(bn_mod, "weight").ne(0) | effective(bn_mod, "bias").ne(0)
    return alive


def _chain(model: nn.Module) -> tuple[list[str], list[str]]:
    if not isinstance(model, nn.Sequential):
        raise AmcpruneError(
            f"structured shrinking needs an nn.Sequential model (a plain chain of layers), got {type(model).__name__}"
        )
    children = [name for name, _ in model.named_children()]
    layers = [name for name, _ in prunable_layers(model)]
    for name in layers:
        if name not in children:
            raise AmcpruneError(
                f"structured shrinking supports chains of top-level layers only; {name!r} is nested"
            )
        if getattr(getattr(model, name), "groups", 1) != 1:
            raise AmcpruneError(f"structured shrinking of grouped/depthwise convolution {name!r} is not supported")
    return children, layers


def plan_shrink(model: nn.Module) -> dict[str, list[int]]:
    """For every prunable layer but the last, the indices of its channels to keep (at least one)."""
    _, layers = _chain(model)
    kept: dict[str, list[int]] = {}
    for name in layers[:-1]:
        alive = alive_channels(model, name)
        idx = torch.nonzero(alive).flatten().tolist()
        kept[name] = idx if idx else [0]
    return kept


def _index(t: torch.Tensor, dim: int, keep: list[int]) -> torch.Tensor:
    return t.index_select(dim, torch.as_tensor(keep, dtype=torch.long, device=t.device))


def shrink_state(
    model: nn.Module, kept: dict[str, list[int]]
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, int]]:
    """Slice the burned state dict and masks of ``model`` to the kept channels.

    Returns ``(state, masks, widths)`` where ``widths`` maps every prunable layer to its new output width.
    """
    children, layers = _chain(model)
    modules = dict(model.named_children())
    old_width = {name: int(getattr(modules[name], "weight_orig", modules[name].weight).shape[0]) for name in layers}
    new_width = {name: len(kept.get(name, range(old_width[name]))) for name in layers}

    # For every top-level child: (own output keep, old width) and the keep of its input.
    out_keep: dict[str, tuple[list[int], int] | None] = {}
    in_keep: dict[str, tuple[list[int], int] | None] = {}
    current: tuple[list[int], int] | None = None
    for child in children:
        if child in layers:
            in_keep[child] = current
            k = kept.get(child)
            current = (k, old_width[child]) if k is not None and len(k) != old_width[child] else None
            out_keep[child] = current
        else:
            out_keep[child] = current  # modules after a layer carry its channels

    def slice_tensor(key: str, t: torch.Tensor) -> torch.Tensor:
        child = key.split(".", 1)[0]
        if child not in out_keep or not isinstance(t, torch.Tensor) or t.dim() == 0:
            return t
        own = out_keep[child]
        if child in layers:
            if own is not None and t.shape[0] == own[1]:
                t = _index(t, 0, own[0])
            inp = in_keep[child]
            if inp is not None and t.dim() >= 2:
                keep, width = inp
                n_in = t.shape[1]
                if n_in == width:
                    t = _index(t, 1, keep)
                elif n_in % width == 0:  # across Flatten: channel c owns features c*L .. c*L+L-1
                    length = n_in // width
                    flat = [c * length + j for c in keep for j in range(length)]
                    t = _index(t, 1, flat)
                else:
                    raise AmcpruneError(
                        f"cannot map {width} channels onto the {n_in} inputs of layer {child!r} when shrinking"
                    )
            return t
        if own is not None:
            keep, width = own
            for d in range(t.dim()):
                if t.shape[d] == width:
                    t = _index(t, d, keep)
        return t

    burned, masks = split_masks(model.state_dict())
    state = {k: slice_tensor(k, v) for k, v in burned.items()}
    new_masks = {}
    for k, m in masks.items():
        m = slice_tensor(k, m)
        if not bool(m.all()):  # an all-ones mask enforces nothing: drop it
            new_masks[k] = m
    return state, new_masks, new_width


def load_state_with_masks(model: nn.Module, state: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]) -> None:
    """Strictly load a burned state dict into a mask-free model, then re-apply masks."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise AmcpruneError(f"shrunk state does not fit the rebuilt model: {' '.join(first[:3])}") from None
    modules = dict(model.named_modules())
    for name, mask in masks.items():
        module_name, _, param = name.rpartition(".")
        module = modules[module_name]
        prune.custom_from_mask(module, param, mask.to(getattr(module, param).device, getattr(module, param).dtype))


def swap_children(target: nn.Module, source: nn.Module) -> None:
    """Make ``target`` hold ``source``'s children (in place, so references to ``target`` stay valid)."""
    for name in list(target._modules):
        del target._modules[name]
    for name, child in source.named_children():
        target.add_module(name, child)


def shrink_model(
    model: nn.Module, rebuild: Callable[[dict[str, int]], nn.Module], kept: dict[str, list[int]] | None = None
) -> ShrinkResult:
    """Remove the dead channels of ``model`` in place. ``rebuild(widths)`` builds a fresh model with the new
    output widths of the prunable layers; the sliced state is loaded into it and its children replace
    ``model``'s."""
    kept = plan_shrink(model) if kept is None else kept
    _, layers = _chain(model)
    modules = dict(model.named_children())
    before = {name: int(getattr(modules[name], "weight_orig", modules[name].weight).shape[0]) for name in layers}
    state, masks, widths = shrink_state(model, kept)
    device = next(model.parameters()).device
    was_training = model.training
    # Building a model draws initial weights: keep the global RNG untouched (resume must replay exactly).
    with torch.random.fork_rng(devices=[]):
        fresh = rebuild(widths)
    fresh.to(device)
    load_state_with_masks(fresh, state, masks)
    fresh.train(was_training)
    swap_children(model, fresh)
    return ShrinkResult(
        widths_before=before,
        widths_after=dict(widths),
        kept={k: list(v) for k, v in kept.items()},
    )


# ---------------------------------------------------------------------------------------------------
# specs
# ---------------------------------------------------------------------------------------------------
def spec_with_widths(spec: Any, model: nn.Module, widths: dict[str, int]) -> Any:
    """A copy of ``spec`` with the per-layer widths of ``widths`` (layer name -> output channels)."""
    layers = [name for name, _ in prunable_layers(model)]
    if spec.arch != "vgg10":
        raise AmcpruneError(f"structured pruning supports the vgg10 architecture only, not {spec.arch!r}")
    n_conv = len(spec.filters_list())
    n_dense = len(spec.dense_list())
    if len(layers) != n_conv + n_dense + 1:
        raise AmcpruneError(f"model has {len(layers)} prunable layers, spec expects {n_conv + n_dense + 1}")
    conv = [widths[name] for name in layers[:n_conv]]
    dense = [widths[name] for name in layers[n_conv : n_conv + n_dense]]
    return spec.model_copy(update={"conv_filters": conv, "dense_width": dense})


def shrink_with_spec(model: nn.Module, spec: Any) -> tuple[Any, ShrinkResult]:
    """Shrink ``model`` (built from ``spec``) in place; returns the updated spec and what was removed."""
    spec = validate_spec(spec)
    layer_names = [name for name, _ in prunable_layers(model)]

    def rebuild(widths: dict[str, int]) -> nn.Module:
        full = {name: widths[name] for name in layer_names}
        return build_model(spec_with_widths(spec, model, full))

    # Compute the new spec from the plan before the children are swapped.
    kept = plan_shrink(model)
    result = shrink_model(model, rebuild, kept)
    new_spec = validate_spec(spec_with_widths(spec, model, result.widths_after).model_dump(mode="json"))
    model.spec = new_spec  # the model was shrunk in place: the spec it carries must say so
    return new_spec, result
