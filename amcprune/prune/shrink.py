"""Physical shrinking after structured pruning: remove dead channels, keep every trained value.

Channels are removed per channel group (:mod:`amcprune.models.channels`: one per layer of a plain chain such
as vgg10; for ``compact`` the stream between blocks, with depthwise channels tied to their pointwise inputs and
both sides of a residual add tied together). A channel is *dead* when every tensor that writes it is zero: the
rows (and biases) of the group's producers and depthwise carriers and the gamma and beta of their BatchNorms;
the structured criterion masks exactly these (:func:`amcprune.prune.criteria.mask_channel`). A dead channel is
``BN(0) = 0`` wherever it appears, which ReLU, the activation quantizers, MaxPool, pooling and residual adds
keep at 0, so its readers receive zeros from it and it can be removed without changing any output:

- the producers' and carriers' rows (and biases, and any per-output-channel weight-quantizer parameters) are
  sliced, and so is every tensor of the group's width in the modules in between (BatchNorm entries, running
  statistics, per-channel activation-quantizer parameters);
- the consumers' input channels are sliced; across ``Flatten`` each conv channel ``c`` owns the ``L``
  consecutive features ``c*L .. c*L+L-1`` of the first dense layer's input (``L`` the length after pooling);
- everything else (per-tensor quantizer scales, unstructured masks) is copied.

The new model is built from the updated ``ModelSpec`` (per-layer widths, or the compact blocks' channels),
loaded with the sliced state and swapped into the original container in place, so references to the model
object stay valid (call ``Trainer.reset_optimizer()`` afterwards: the parameters are new tensors). The
published FMP script instead re-initialised the shrunk model and threw the trained weights away.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn
from torch.nn.utils import prune

from amcprune.errors import AmcpruneError
from amcprune.models import build_model, validate_spec
from amcprune.models.channels import ChannelGroup, channel_groups
from amcprune.prune.criteria import prunable_layers
from amcprune.utils.checkpoint import split_masks


@dataclass
class ShrinkResult:
    widths_before: dict[str, int]
    widths_after: dict[str, int]
    kept: dict[str, list[int]]  # group (its first producer) -> indices of the kept channels

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


def _group_of(model: nn.Module, layer_name: str) -> ChannelGroup:
    for group in channel_groups(model):
        if layer_name in group.layers():
            return group
    raise AmcpruneError(f"layer {layer_name!r} belongs to no prunable channel group")


def group_alive(model: nn.Module, group: ChannelGroup) -> torch.Tensor:
    """Bool per channel of ``group``: False where the channel is dead (every tensor writing it is zero)."""
    modules = dict(model.named_modules())
    alive = None
    for name in group.layers():
        module = modules[name]
        w = effective(module, "weight")
        rows = w.reshape(w.shape[0], -1).ne(0).any(dim=1)
        bias = effective(module, "bias")
        if bias is not None:
            rows |= bias.ne(0)
        alive = rows if alive is None else alive | rows
    for name in group.batchnorms:
        bn = modules[name]
        if not bn.affine:
            return torch.ones_like(alive)  # BN(0) = -mean/sqrt(var+eps) != 0: nothing is removable
        alive |= effective(bn, "weight").ne(0) | effective(bn, "bias").ne(0)
    return alive


def alive_channels(model: nn.Module, layer_name: str) -> torch.Tensor:
    """Bool per output channel of ``layer_name`` (a producer or depthwise carrier of a channel group): False
    where the channel is dead (always outputs 0)."""
    return group_alive(model, _group_of(model, layer_name))


def plan_shrink(model: nn.Module) -> dict[str, list[int]]:
    """For every channel group (keyed by its first producer), the indices of its channels to keep (at least one)."""
    kept: dict[str, list[int]] = {}
    for group in channel_groups(model):
        idx = torch.nonzero(group_alive(model, group)).flatten().tolist()
        kept[group.name] = idx if idx else [0]
    return kept


def _index(t: torch.Tensor, dim: int, keep: list[int]) -> torch.Tensor:
    return t.index_select(dim, torch.as_tensor(keep, dtype=torch.long, device=t.device))


def _owner(key: str, names: list[str]) -> str | None:
    """The longest module name in ``names`` that ``key`` (a state-dict key) lies under."""
    best = None
    for name in names:
        if key.startswith(name + ".") and (best is None or len(name) > len(best)):
            best = name
    return best


def shrink_state(
    model: nn.Module, kept: dict[str, list[int]]
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, int]]:
    """Slice the burned state dict and masks of ``model`` to the kept channels.

    Returns ``(state, masks, widths)`` where ``widths`` maps every prunable layer to its new output width.
    """
    modules = dict(model.named_modules())
    layers = [name for name, _ in prunable_layers(model)]
    widths = {name: int(getattr(modules[name], "weight_orig", modules[name].weight).shape[0]) for name in layers}
    rows: dict[str, tuple[list[int], int]] = {}  # layer -> (keep, width) of its output rows
    cols: dict[str, tuple[list[int], int]] = {}  # layer -> (keep, width) of its input channels
    chans: dict[str, tuple[list[int], int]] = {}  # module -> (keep, width) of its per-channel tensors
    for group in channel_groups(model):
        keep = kept.get(group.name)
        width = widths[group.name]
        if keep is None or len(keep) == width:
            continue
        for name in group.layers():
            rows[name] = (keep, width)
            widths[name] = len(keep)
        for name in group.consumers:
            cols[name] = (keep, width)
        for name in group.per_channel:
            chans[name] = (keep, width)
    owners = sorted(set(rows) | set(cols) | set(chans))

    def slice_tensor(key: str, t: torch.Tensor) -> torch.Tensor:
        owner = _owner(key, owners)
        if owner is None or not isinstance(t, torch.Tensor) or t.dim() == 0:
            return t
        param = key[len(owner) + 1 :]
        if owner in rows or owner in cols:
            if param in ("weight", "bias"):
                if owner in rows:
                    t = _index(t, 0, rows[owner][0])
                if owner in cols and param == "weight":
                    t = _slice_inputs(t, *cols[owner], owner)
            elif owner in rows and t.shape[0] == rows[owner][1] and t.numel() > 1:
                t = _index(t, 0, rows[owner][0])  # per-output-channel quantizer parameters of the layer
            return t
        keep, width = chans[owner]
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
    return state, new_masks, widths


def _slice_inputs(t: torch.Tensor, keep: list[int], width: int, owner: str) -> torch.Tensor:
    n_in = t.shape[1]
    if n_in == width:
        return _index(t, 1, keep)
    if n_in % width == 0:  # across Flatten: channel c owns features c*L .. c*L+L-1
        length = n_in // width
        return _index(t, 1, [c * length + j for c in keep for j in range(length)])
    raise AmcpruneError(f"cannot map {width} channels onto the {n_in} inputs of layer {owner!r} when shrinking")


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
    before = {name: int(getattr(m, "weight_orig", m.weight).shape[0]) for name, m in prunable_layers(model)}
    state, masks, widths = shrink_state(model, kept)
    device = next(model.parameters()).device
    was_training = model.training
    # Building a model draws initial weights: keep the global RNG untouched (resume must replay exactly).
    with torch.random.fork_rng(devices=[]):
        fresh = rebuild(widths)
    if type(fresh) is not type(model):
        raise AmcpruneError(f"rebuilding a {type(model).__name__} gave a {type(fresh).__name__}")
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
    """A copy of ``spec`` with the output widths of ``widths`` (prunable layer name -> output channels)."""
    layers = [name for name, _ in prunable_layers(model)]
    if spec.arch == "vgg10":
        n_conv = len(spec.filters_list())
        n_dense = len(spec.dense_list())
        if len(layers) != n_conv + n_dense + 1:
            raise AmcpruneError(f"model has {len(layers)} prunable layers, spec expects {n_conv + n_dense + 1}")
        conv = [widths[name] for name in layers[:n_conv]]
        dense = [widths[name] for name in layers[n_conv : n_conv + n_dense]]
        return spec.model_copy(update={"conv_filters": conv, "dense_width": dense})
    if spec.arch == "compact":
        blocks = []
        for i, block in enumerate(spec.compact_blocks()):
            layer = f"blocks.{i}.{'pw' if block.separable else 'conv'}"
            if layer not in widths:
                raise AmcpruneError(f"no width for {layer!r} of compact block {i}")
            blocks.append(block.model_copy(update={"channels": widths[layer]}))
        return spec.model_copy(update={"blocks": blocks})
    raise AmcpruneError(f"structured pruning supports the vgg10 and compact architectures, not {spec.arch!r}")


def check_structured(spec: Any) -> None:
    """Raise ``AmcpruneError`` unless models of ``spec`` can be shrunk after structured pruning."""
    if getattr(spec, "arch", None) not in ("vgg10", "compact"):
        raise AmcpruneError(f"structured pruning (physical shrinking) supports the vgg10 and compact architectures, "
                            f"not {getattr(spec, 'arch', None)!r}; use --criterion global or layer")


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
