"""Per-layer bit lowering: the ``bits`` stage kind.

One quantizer at a time (a layer's weights, the activation quantizer after it, or the input quantizer) steps down
its ladder of widths (8 -> 6 -> 5 -> 4 -> 3 -> 2 by default). Each step rebuilds the model for the new spec
(Brevitas quantizers take their width from it, the export carries it, the cost tool bills it), keeps the weights,
masks and learned scales, fine-tunes, and is judged by the run's criterion: a step that fails is rolled back and
that quantizer is lowered no further.

Order: when the stage starts, every candidate step is tried on a copy of the model without training, and the
steps are taken by the score they save (measured by the run's measurer on the candidate itself) per point of
criterion accuracy they cost (at least one frame's worth, so a free step is not infinitely good but simply
first). After a step is kept, the same quantizer's next step is measured and queued in its place; the other
estimates are kept (measuring them again after every step would cost as much as the fine-tuning).
"""

from __future__ import annotations

from fnmatch import fnmatch
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from amcprune.errors import AmcpruneError
from amcprune.models.spec import layer_bit_names, validate_spec
from amcprune.prune.stages.base import FinetuneRate, StageKind, StageSpec, register_stage_kind

if TYPE_CHECKING:
    from amcprune.prune.engine import PruneRun

INPUT_LAYER = "input"  # the input quantizer, whose width is the spec's input_bits


class BitsStage(FinetuneRate, StageSpec):
    """Lower per-layer bit widths one step at a time under the run's criterion."""

    kind: Literal["bits"]
    ladder: list[int] = Field(default_factory=lambda: [8, 6, 5, 4, 3, 2],
                              description="widths a quantizer steps down through (from its current width)")
    targets: Literal["both", "weights", "activations"] = Field(
        "both", description="lower weight widths, activation widths (with the input quantizer), or both")
    layers: list[str] = Field(default_factory=list, description="only these layers (names or globs; default all)")
    exclude: list[str] = Field(default_factory=list, description="layers never lowered (names or globs)")
    max_epochs: int = Field(1, ge=1, description="fine-tuning epochs after each step")
    max_iterations: int | None = Field(None, ge=0, description="most steps tried (kept or rolled back)")
    finetune: Literal["cosine", "constant"] = "cosine"

    @field_validator("ladder")
    @classmethod
    def _check_ladder(cls, v: list[int]) -> list[int]:
        if not v or any(b < 1 for b in v):
            raise ValueError("ladder needs at least one width >= 1")
        return sorted(set(v), reverse=True)

    @property
    def needs_measurer(self) -> bool:
        return True  # steps are ordered by the score they save

    def describe(self) -> str:
        return f"bits: lower {self.targets} widths one step at a time down {self.ladder}"


def candidate_quantizers(model_spec: Any, stage: BitsStage) -> list[tuple[str, str]]:
    """(layer, key) of every quantizer the stage may lower; key is weight_bits, act_bits or input_bits."""
    names = layer_bit_names(model_spec) or {}
    out: list[tuple[str, str]] = []
    wanted = {"both": ("weight_bits", "act_bits"), "weights": ("weight_bits",), "activations": ("act_bits",)}
    for layer, keys in names.items():
        out += [(layer, key) for key in keys if key in wanted[stage.targets]]
    if stage.targets != "weights":
        out.append((INPUT_LAYER, "input_bits"))

    def chosen(layer: str) -> bool:
        if stage.layers and not any(fnmatch(layer, pat) for pat in stage.layers):
            return False
        return not any(fnmatch(layer, pat) for pat in stage.exclude)

    return [(layer, key) for layer, key in out if chosen(layer)]


def width_of(model_spec: Any, layer: str, key: str) -> int:
    return int(model_spec.input_bits) if layer == INPUT_LAYER else int(model_spec.bits(layer)[key])


def with_width(model_spec: Any, layer: str, key: str, bits: int) -> Any:
    """``model_spec`` with one quantizer's width changed."""
    data = model_spec.model_dump(mode="json")
    if layer == INPUT_LAYER:
        data["input_bits"] = bits
    else:
        data["layer_bits"] = {k: dict(v) for k, v in data["layer_bits"].items()}
        data["layer_bits"].setdefault(layer, {})[key] = bits
    return validate_spec(data, f"{layer} {key} {bits}")


def next_width(ladder: list[int], current: int, key: str) -> int | None:
    low = 2 if key == "weight_bits" else 1  # narrow-range signed 1-bit weights have no non-zero level
    lower = [b for b in ladder if low <= b < current]
    return max(lower) if lower else None


def step_text(step: dict[str, Any]) -> str:
    return f"{step['layer']} {step['key']} {step['from']}->{step['to']}"


@register_stage_kind
class BitLowering(StageKind):
    names = ("bits",)
    spec = BitsStage

    def check(self, model: Any, model_spec: Any, spec: BitsStage) -> None:
        if model_spec is None or not getattr(model_spec, "quantized", False):
            raise AmcpruneError("a bits stage needs a quantized model built from a spec (an unquantized model has "
                                "no bit widths to lower)")
        if not candidate_quantizers(model_spec, spec):
            raise AmcpruneError(f"bits stage: no quantizer of {model_spec.arch} matches layers {spec.layers} / "
                                f"exclude {spec.exclude} / targets {spec.targets}")

    def progress(self, run: "PruneRun", spec: BitsStage) -> dict[str, Any]:
        state = run.st.kind_state or {}
        return {"iteration": int(state.get("iteration", 0)), "p": None}

    # --- the two entry points ------------------------------------------------------------------
    def start(self, run: "PruneRun", spec: BitsStage, acc: float) -> None:
        run.st.kind_state = {"iteration": 0, "queue": [], "current": None, "epoch": 0}
        if not run.keep_start(acc):
            return
        score = run.kept_score()
        steps = [self._estimate(run, spec, layer, key, acc, score)
                 for layer, key in candidate_quantizers(run.spec, spec)]
        state = dict(run.st.kind_state)
        state["queue"] = _ordered([s for s in steps if s is not None])
        run.st.kind_state = state
        run.say("bits: steps in order: " + ", ".join(f"{step_text(s)} (saves {s['saving']:.2e}, costs "
                                                      f"{s['drop'] * 100:.2f} pt)" for s in state["queue"][:8])
                + (" ..." if len(state["queue"]) > 8 else ""))

    def step(self, run: "PruneRun", spec: BitsStage) -> None:
        state = dict(run.st.kind_state)
        if state["current"] is None:
            if not state["queue"] or (spec.max_iterations is not None and state["iteration"] >= spec.max_iterations):
                reason = "no-steps-left" if not state["queue"] else "max-iterations"
                run.end_stage(reason=reason, current_is_result=True)
                return
            step, *rest = state["queue"]
            state.update(queue=rest, current=step, epoch=0, iteration=state["iteration"] + 1)
            run.set_spec(with_width(run.spec, step["layer"], step["key"], step["to"]))
            run.trainer.start_finetune(lr=spec.finetune_lr_for(run.train_config.lr), epochs=spec.max_epochs,
                                       schedule=spec.finetune)
        step = state["current"]
        state["epoch"] += 1
        run.st.kind_state = state
        acc = run.train_epoch(iteration=state["iteration"], epoch=state["epoch"], p=None,
                              desc=f"bits {step_text(step)}")
        if state["epoch"] < spec.max_epochs:
            return
        state = dict(run.st.kind_state)
        state["current"] = None
        if run.meets(acc):
            run.keep_met(acc, epochs=state["epoch"], p_applied=None, reason=step_text(step))
            following = self._estimate(run, spec, step["layer"], step["key"], acc, run.kept_score())
            if following is not None:
                state["queue"] = _ordered([*state["queue"], following])
        else:
            run.record_failed(acc, epochs=state["epoch"], reason=f"{step_text(step)} rolled back")
            run.st.kind_state = state
            run.rewind(p_applied=None)  # no next step is queued: this quantizer is lowered no further
        run.st.kind_state = state

    # --- ranking -------------------------------------------------------------------------------
    def _estimate(self, run: "PruneRun", spec: BitsStage, layer: str, key: str, acc: float,
                  score: float) -> dict[str, Any] | None:
        """The next step of one quantizer, tried on a copy of the model: the score it saves and the criterion
        accuracy it costs before any fine-tuning (None when the quantizer is at the bottom of its ladder)."""
        current = width_of(run.spec, layer, key)
        to = next_width(spec.ladder, current, key)
        if to is None:
            return None
        candidate = run.model_for(with_width(run.spec, layer, key, to))
        new_score = run.measurer.score(candidate)["score"]
        drop = acc - run.judge_model(candidate)
        saving = score - new_score
        floor = 1.0 / max(run.judged_frames, 1)
        return {"layer": layer, "key": key, "from": current, "to": to, "saving": saving, "drop": drop,
                "priority": saving / max(drop, floor)}


def _ordered(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Steps that save score, the most saved per point of accuracy first (ties: the larger saving)."""
    return sorted((s for s in steps if s["saving"] > 0), key=lambda s: (-s["priority"], -s["saving"]))
