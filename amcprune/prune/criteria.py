"""Pruning criteria, all through ``torch.nn.utils.prune`` masks.

Three criteria (``CRITERIA``):

``global``
    Global L1 unstructured: one magnitude threshold over the weights of every selected conv and linear
    layer together (``prune.global_unstructured`` with ``prune.L1Unstructured``). Layers with their own
    rate (``layer_rates``) are pruned layer-wise at that rate instead.
``layer``
    Layer-wise L1 unstructured: the same fraction of every selected layer (``prune.l1_unstructured``).
``structured``
    L1-norm structured: whole filters (conv output channels) or neurons (linear outputs) with the
    smallest L1 norm (``prune.ln_structured(n=1, dim=0)``), per layer. The whole *channel* is masked:
    the filter, its bias if any, the gamma and beta of the BatchNorm that follows it, and the next layer's
    weights reading it (else they would still set that layer's abs-max weight scale). A masked channel
    therefore outputs exactly ``BN(0) = 0 * (0 - mean) / sqrt(var + eps) + 0 = 0``, ReLU/quantizer/MaxPool keep
    the zero, and removing the channel (:mod:`amcprune.prune.shrink`) changes no output. (Masking only the
    filter would leave the channel emitting the constant ``beta - gamma * mean / sqrt(var + eps)``, which is
    generally not zero, and removing it would change the network.) The classifier's outputs are the
    classes, so the last prunable layer is never pruned structurally. Channels tied by the architecture
    (:mod:`amcprune.models.channels`: depthwise channels and their pointwise inputs, the channels on both sides
    of a residual add) are one group, selected by its first producer layer and ranked by the summed L1 norms
    of its producers' rows; depthwise layers are not selected on their own.

The rate ``p`` always applies to the *remaining* (unmasked) weights or channels, as in iterative magnitude
pruning: pruning 20% twice leaves 64%. The number removed is exactly ``round_half_up(p * remaining)``
(per layer for ``layer``/``structured``, over all selected layers for ``global``); a structured layer
always keeps at least one channel.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import torch
from torch import nn
from torch.nn.utils import prune

from amcprune.errors import AmcpruneError
from amcprune.models import VGG10_LAYER_INDEX
from amcprune.models import prunable_layers as models_prunable_layers
from amcprune.models.channels import ChannelGroup, channel_groups

CRITERIA = ("global", "layer", "structured")
CRITERION_ALIASES = {
    "global": "global",
    "global-l1": "global",
    "unstructured": "global",
    "layer": "layer",
    "layerwise": "layer",
    "layer-l1": "layer",
    "structured": "structured",
    "l1-structured": "structured",
    "filter": "structured",
}


def canonical_criterion(name: str) -> str:
    key = str(name).strip().lower()
    if key not in CRITERION_ALIASES:
        raise AmcpruneError(f"unknown pruning criterion {name!r}; choose from {', '.join(CRITERIA)}")
    return CRITERION_ALIASES[key]


def is_structured(criterion: str) -> bool:
    return canonical_criterion(criterion) == "structured"


# ---------------------------------------------------------------------------------------------------
# layers
# ---------------------------------------------------------------------------------------------------
def prunable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The conv and linear layers whose ``weight`` pruning acts on (the models stage decides)."""
    return list(models_prunable_layers(model))


def layer_aliases(spec: Any | None) -> dict[str, str]:
    """Friendly layer names (``conv0`` .. ``dense2`` for vgg10) -> module names."""
    if spec is None or getattr(spec, "arch", None) != "vgg10":
        return {}
    return {k: str(v) for k, v in VGG10_LAYER_INDEX.items()}


def resolve_layers(
    selectors: Iterable[str], names: Sequence[str], aliases: Mapping[str, str] | None = None
) -> list[str]:
    """Module names matched by ``selectors``: a module name, an alias (``conv3``), ``first``, ``last``
    (also ``classifier``) or a glob pattern. An unmatched selector is a user error."""
    aliases = dict(aliases or {})
    out: list[str] = []
    for sel in selectors:
        sel = str(sel).strip()
        if not sel:
            continue
        if sel in ("last", "classifier"):
            matched = [names[-1]] if names else []
        elif sel == "first":
            matched = [names[0]] if names else []
        elif sel in aliases:
            matched = [aliases[sel]] if aliases[sel] in names else []
        elif sel in names:
            matched = [sel]
        else:
            matched = [n for n in names if fnmatch.fnmatchcase(n, sel)]
        if not matched:
            known = ", ".join(list(aliases) + [n for n in names if n not in aliases.values()]) or "none"
            raise AmcpruneError(f"no prunable layer matches {sel!r} (layers: {known}, first, last)")
        out.extend(m for m in matched if m not in out)
    return out


# ---------------------------------------------------------------------------------------------------
# counting
# ---------------------------------------------------------------------------------------------------
def round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def weight_mask(module: nn.Module, name: str = "weight") -> torch.Tensor:
    """The live mask of ``module.<name>`` (all ones when it has none)."""
    mask = getattr(module, name + "_mask", None)
    if mask is None:
        return torch.ones_like(getattr(module, name), dtype=torch.bool)
    return mask.bool()


def remaining_weights(module: nn.Module) -> int:
    return int(weight_mask(module).sum())


def remaining_channels(module: nn.Module) -> int:
    mask = weight_mask(module)
    return int(mask.reshape(mask.shape[0], -1).any(dim=1).sum())


@dataclass
class LayerPrune:
    name: str
    total: int  # weights (or channels, structured) in the layer
    before: int  # remaining before this step
    after: int  # remaining after this step
    rate: float

    @property
    def pruned(self) -> int:
        return self.before - self.after


@dataclass
class PruneReport:
    """What one pruning step did (weights for unstructured criteria, channels for ``structured``)."""

    criterion: str
    amount: float
    unit: str  # "weights" or "channels"
    layers: list[LayerPrune] = field(default_factory=list)

    @property
    def pruned(self) -> int:
        return sum(layer.pruned for layer in self.layers)

    @property
    def before(self) -> int:
        return sum(layer.before for layer in self.layers)

    def as_dict(self) -> dict[str, Any]:
        return {
            "criterion": self.criterion,
            "amount": self.amount,
            "unit": self.unit,
            "pruned": self.pruned,
            "layers": {
                layer.name: {"before": layer.before, "after": layer.after, "rate": layer.rate} for layer in self.layers
            },
        }


# ---------------------------------------------------------------------------------------------------
# pruning
# ---------------------------------------------------------------------------------------------------
def _check_rate(rate: float, what: str) -> float:
    rate = float(rate)
    if not 0.0 <= rate < 1.0:
        raise AmcpruneError(f"{what} must be in [0, 1), got {rate}")
    return rate


def _plan(
    model: nn.Module,
    amount: float,
    exclude: Iterable[str],
    layer_rates: Mapping[str, float] | None,
    spec: Any | None,
    structured: bool,
) -> tuple[list[tuple[str, nn.Module]], dict[str, float]]:
    """(layers pruned at ``amount``, {layer: own rate}) after exclusions."""
    layers = prunable_layers(model)
    if not layers:
        raise AmcpruneError("the model has no prunable (conv or linear) layers")
    names = [n for n, _ in layers]
    aliases = layer_aliases(spec)
    excluded = set(resolve_layers(exclude, names, aliases))
    own: dict[str, float] = {}
    for sel, rate in (layer_rates or {}).items():
        rate = _check_rate(rate, f"rate of layer {sel!r}")
        for name in resolve_layers([sel], names, aliases):
            own[name] = rate
    if structured:
        # The classifier's outputs are the classes: never remove them.
        excluded.add(names[-1])
        own.pop(names[-1], None)
    shared = [(n, m) for n, m in layers if n not in excluded and n not in own]
    own = {n: r for n, r in own.items() if n not in excluded}
    if not shared and not any(rate > 0 for rate in own.values()):
        raise AmcpruneError(
            f"the exclusions and layer rates leave no layer to prune (layers: {', '.join(names)})"
        )
    return shared, own


def check_selection(model: nn.Module, criterion: str, exclude: Iterable[str] = (),
                    layer_rates: Mapping[str, float] | None = None, spec: Any | None = None) -> None:
    """Raise ``AmcpruneError`` unless ``exclude`` / ``layer_rates`` leave ``criterion`` something to prune."""
    _plan(model, 0.0, exclude, layer_rates, spec, canonical_criterion(criterion) == "structured")


def prune_model(
    model: nn.Module,
    criterion: str,
    amount: float,
    *,
    exclude: Iterable[str] = (),
    layer_rates: Mapping[str, float] | None = None,
    spec: Any | None = None,
    weight_costs: Mapping[str, float] | None = None,
) -> PruneReport:
    """Prune ``amount`` of the remaining weights (or channels) of ``model`` in place with ``criterion``.

    ``exclude`` names layers left alone (names, aliases such as ``conv3``/``dense2``, ``first``, ``last``,
    globs); ``layer_rates`` gives layers their own rate (0 keeps a layer dense). ``weight_costs`` (``global``
    only) ranks each weight by its magnitude divided by what one weight of its layer costs (layer name ->
    positive number) instead of by magnitude alone. Returns a report of the counts before and after for every
    layer touched.
    """
    criterion = canonical_criterion(criterion)
    amount = _check_rate(amount, "pruning rate p")
    structured = criterion == "structured"
    shared, own = _plan(model, amount, exclude, layer_rates, spec, structured)
    modules = dict(model.named_modules())
    report = PruneReport(criterion=criterion, amount=amount, unit="channels" if structured else "weights")

    if structured:
        for group, rate in _structured_targets(model, shared, own, amount):
            report.layers.append(_prune_structured(model, group, rate))
        return report

    if weight_costs is not None and criterion != "global":
        raise AmcpruneError(f"weight costs rank weights across layers: they need the global criterion, not {criterion}")
    if criterion == "global" and shared:
        befores = {n: remaining_weights(m) for n, m in shared}
        n_prune = round_half_up(amount * sum(befores.values()))
        scores = None
        if weight_costs is not None:
            missing = [n for n, _ in shared if not weight_costs.get(n, 0) > 0]
            if missing:
                raise AmcpruneError(f"no positive weight cost for layer(s) {', '.join(missing)}")
            scores = {(m, "weight"): m.weight.detach().abs() / weight_costs[n] for n, m in shared}
        if n_prune > 0:
            prune.global_unstructured(
                [(m, "weight") for _, m in shared], pruning_method=prune.L1Unstructured, amount=n_prune,
                importance_scores=scores,
            )
        for n, m in shared:
            report.layers.append(LayerPrune(n, m.weight.numel(), befores[n], remaining_weights(m), amount))
    else:
        for name, module in shared:
            report.layers.append(_prune_layer_l1(name, module, amount))
    for name, rate in own.items():
        report.layers.append(_prune_layer_l1(name, modules[name], rate))
    return report


def prune_below(model: nn.Module, threshold: float, *, relative: bool = True, exclude: Iterable[str] = (),
                spec: Any | None = None) -> PruneReport:
    """Mask every remaining weight whose magnitude is below ``threshold`` (with ``relative``, a fraction of its
    layer's largest remaining magnitude; else absolute), in every prunable layer not excluded."""
    if threshold < 0:
        raise AmcpruneError(f"threshold must be >= 0, got {threshold}")
    shared, _ = _plan(model, 0.0, exclude, None, spec, False)
    report = PruneReport(criterion="threshold", amount=float(threshold), unit="weights")
    for name, module in shared:
        before = remaining_weights(module)
        alive = weight_mask(module)
        magnitude = module.weight.detach().abs()
        limit = threshold * float(magnitude[alive].max()) if relative and before else threshold
        _set_mask(module, "weight", alive & (magnitude >= limit))
        report.layers.append(LayerPrune(name, module.weight.numel(), before, remaining_weights(module),
                                        1.0 - remaining_weights(module) / before if before else 0.0))
    return report


def _prune_layer_l1(name: str, module: nn.Module, rate: float) -> LayerPrune:
    before = remaining_weights(module)
    n_prune = round_half_up(rate * before)
    if n_prune > 0:
        prune.l1_unstructured(module, "weight", amount=n_prune)
    return LayerPrune(name, module.weight.numel(), before, remaining_weights(module), rate)


def _structured_targets(model: nn.Module, shared: list[tuple[str, nn.Module]], own: dict[str, float],
                        amount: float) -> list[tuple[ChannelGroup, float]]:
    """The channel groups to prune and their rates: a group is selected through its first producer (its own
    rate from any of its producers), and left alone when any of its producers is excluded."""
    selected = {n for n, _ in shared} | set(own)
    out = []
    for group in channel_groups(model):
        if not all(p in selected for p in group.producers):
            continue
        rates = [own[p] for p in group.producers if p in own]
        out.append((group, rates[0] if rates else amount))
    return out


def _prune_structured(model: nn.Module, group: ChannelGroup, rate: float) -> LayerPrune:
    modules = dict(model.named_modules())
    module = modules[group.name]
    before = remaining_channels(module)
    n_prune = min(round_half_up(rate * before), before - 1)
    if n_prune > 0:
        scores = None
        if len(group.producers) > 1:
            # channels tied by residual adds: rank by the L1 norms of every producer's rows, summed
            norms = sum(_row_l1(modules[p]) for p in group.producers)
            scores = norms.reshape([-1] + [1] * (module.weight.dim() - 1)).expand_as(module.weight).contiguous()
        prune.ln_structured(module, "weight", amount=n_prune, n=1, dim=0, importance_scores=scores)
    mask = weight_mask(module)
    alive = mask.reshape(mask.shape[0], -1).any(dim=1)
    mask_channel(model, group.name, alive)
    return LayerPrune(group.name, int(mask.shape[0]), before, int(alive.sum()), rate)


def _row_l1(module: nn.Module) -> torch.Tensor:
    # recomputed from weight_orig: ``module.weight`` is the value cached at the last forward, before the step
    w = (getattr(module, "weight_orig", module.weight) * weight_mask(module)).detach()
    return w.reshape(w.shape[0], -1).abs().sum(dim=1)


def mask_channel(model: nn.Module, layer_name: str, alive: torch.Tensor) -> None:
    """Mask the channels of the group of ``layer_name`` (a producer) that are not ``alive``: the producers' and
    depthwise carriers' rows and biases, the gamma and beta of their BatchNorms, and the consumers' weights
    that read these channels."""
    modules = dict(model.named_modules())
    group = next((g for g in channel_groups(model) if layer_name in g.producers), None)
    if group is None:
        raise AmcpruneError(f"layer {layer_name!r} produces no prunable channel group")
    alive = alive.bool()
    if bool(alive.all()):
        return
    for name in group.layers():
        module = modules[name]
        w_mask = weight_mask(module).clone()
        w_mask[~alive.to(w_mask.device)] = False
        _set_mask(module, "weight", w_mask)
        if getattr(module, "bias", None) is not None:
            _set_mask(module, "bias", weight_mask(module, "bias") & alive.to(module.bias.device))
    for name in group.batchnorms:
        bn_module = modules[name]
        if not bn_module.affine:
            raise AmcpruneError(
                f"structured pruning of {layer_name!r} needs affine BatchNorms ({name} is not) to zero the channel"
            )
        for param in ("weight", "bias"):
            _set_mask(bn_module, param, weight_mask(bn_module, param) & alive.to(getattr(bn_module, param).device))
    # The weights that read the channel in the consumers multiply zeros: mask them too. They would otherwise
    # still set the consumer's per-tensor weight-quantizer scale (abs max), and removing them later would
    # change that scale and so every quantized weight of the layer.
    n_ch = alive.numel()
    for name in group.consumers:
        next_module = modules[name]
        w = getattr(next_module, "weight")
        n_in = w.shape[1]
        if n_in % n_ch != 0 or getattr(next_module, "groups", 1) != 1:
            raise AmcpruneError(f"cannot map the {n_ch} channels of {layer_name!r} onto the {n_in} inputs of {name!r}")
        per_channel = n_in // n_ch  # > 1 across Flatten: channel c feeds inputs c*L .. c*L+L-1
        cols = alive.to(w.device).repeat_interleave(per_channel)
        shape = [1, n_in] + [1] * (w.dim() - 2)
        _set_mask(next_module, "weight", weight_mask(next_module) & cols.reshape(shape))


def _set_mask(module: nn.Module, param: str, mask: torch.Tensor) -> None:
    """Apply ``mask`` to ``module.<param>`` (combining with an existing mask keeps it: new mask is a subset)."""
    current = weight_mask(module, param)
    if torch.equal(current, mask.bool()):
        if hasattr(module, param + "_mask"):
            return
        if bool(mask.all()):
            return
    prune.custom_from_mask(module, param, mask.to(getattr(module, param).dtype))


# ---------------------------------------------------------------------------------------------------
# masks
# ---------------------------------------------------------------------------------------------------
def masked_parameters(model: nn.Module) -> list[tuple[str, nn.Module, str]]:
    """``(module_name, module, param)`` for every parameter re-parametrised by a pruning mask."""
    out = []
    for name, module in model.named_modules():
        for key in list(module._parameters):
            if key.endswith("_orig") and hasattr(module, key[: -len("_orig")] + "_mask"):
                out.append((name, module, key[: -len("_orig")]))
    return out


def refresh_masked_weights(model: nn.Module) -> None:
    """Recompute ``weight = weight_orig * mask`` of every masked parameter. torch.nn.utils.prune does it only in
    a forward pass, so after an optimizer step the attribute lags one step behind until the next forward;
    magnitudes read then (pruning without a judgment in between) would differ from the saved, resumed model's."""
    with torch.no_grad():
        for _, module, param in masked_parameters(model):
            setattr(module, param, getattr(module, param + "_orig") * getattr(module, param + "_mask"))


def remove_masks(model: nn.Module) -> None:
    """Burn every mask into its parameter (``prune.remove``): zeros stay, but they are no longer enforced."""
    for _, module, param in masked_parameters(model):
        prune.remove(module, param)


def mask_summary(model: nn.Module) -> dict[str, int]:
    """Total and unmasked weights of the prunable layers."""
    total = remaining = 0
    for _, module in prunable_layers(model):
        total += module.weight.numel()
        remaining += remaining_weights(module)
    return {"weights": total, "unmasked": remaining}
