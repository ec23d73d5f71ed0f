"""What a stage kind is, and the registry that turns a recipe's ``kind:`` into one.

A stage kind is two small things: a settings model (a pydantic :class:`StageSpec` subclass whose fields are the
stage's block in a recipe) and a :class:`StageKind` that advances a prune run one step at a time. The run loop
(:mod:`amcprune.prune.engine`) knows neither: it asks the registry for the current stage's kind, calls
``start`` once and then ``step`` until the kind ends the stage, saving the run's state after every call so a
killed run resumes between steps. Adding a kind is one module that subclasses both and calls
:func:`register_stage_kind`; the CLI, the engine and the report stay as they are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from amcprune.errors import AmcpruneError
from amcprune.utils.config import validation_message

if TYPE_CHECKING:  # the engine imports this module; a runtime import back would be circular
    from amcprune.prune.engine import PruneRun


class StageSpec(BaseModel):
    """One stage's block in a recipe. Subclasses add the fields of their kind; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    kind: str

    @property
    def criterion_name(self) -> str | None:
        """Which weights the stage ranks (records and logs show it beside the kind); None if it prunes none."""
        return getattr(self, "criterion", None)

    @property
    def needs_measurer(self) -> bool:
        """The stage asks the run's measurer for costs (checked before the run starts)."""
        return False

    def describe(self) -> str:
        return self.kind


class FinetuneRate(BaseModel):
    """The fine-tuning rate of a stage: given, or a fraction of the dense run's train rate (shared by every kind
    that fine-tunes)."""

    model_config = ConfigDict(extra="forbid")

    finetune_lr: float | None = Field(None, gt=0, description="fine-tuning rate (default finetune_lr_scale x train lr)")
    finetune_lr_scale: float = Field(0.3, gt=0, le=1, description="fine-tuning rate as a fraction of the train lr")

    def finetune_lr_for(self, train_lr: float) -> float:
        return self.finetune_lr if self.finetune_lr is not None else self.finetune_lr_scale * train_lr


class StageKind:
    """How a stage of one kind advances a run.

    ``start`` runs once when the stage begins, with the starting model already judged (``acc``) and saved as the
    stage's fallback result (typically it prunes that model). ``step`` runs until the kind calls
    ``run.end_stage(...)``; each call should be one bounded piece of work (one epoch) so
    that the state saved after it is a fine-grained resume point. Kinds keep what they must remember between
    calls in ``run.st.kind_state`` (JSON-able), never in attributes: the instance is shared by every run.
    """

    names: ClassVar[tuple[str, ...]] = ()
    spec: ClassVar[type[StageSpec]] = StageSpec

    def check(self, model: Any, model_spec: Any, spec: StageSpec) -> None:
        """Refuse settings that cannot work on this model before anything is trained or written."""

    def start(self, run: "PruneRun", spec: StageSpec, acc: float) -> None:
        raise NotImplementedError

    def step(self, run: "PruneRun", spec: StageSpec) -> None:
        raise NotImplementedError

    def progress(self, run: "PruneRun", spec: StageSpec) -> dict[str, Any]:
        """``iteration`` and ``p`` for the records written during the stage."""
        state = run.st.kind_state or {}
        return {"iteration": int(state.get("iteration", 0)), "p": state.get("p")}


_KINDS: dict[str, StageKind] = {}


def register_stage_kind(cls: type[StageKind]) -> type[StageKind]:
    """Class decorator: make ``cls`` available to recipes under each of its ``names``."""
    if not cls.names:
        raise ValueError(f"{cls.__name__} has no names")
    for name in cls.names:
        if name in _KINDS and type(_KINDS[name]) is not cls:
            raise ValueError(f"stage kind {name!r} is already registered by {type(_KINDS[name]).__name__}")
        _KINDS[name] = cls()
    return cls


def stage_kinds() -> list[str]:
    return sorted(_KINDS)


def stage_kind(name: str) -> StageKind:
    try:
        return _KINDS[name]
    except KeyError:
        raise AmcpruneError(f"unknown stage kind {name!r} (known: {', '.join(stage_kinds())})") from None


def parse_stage(data: Any, where: str) -> StageSpec:
    """A recipe's stage block as its kind's settings model; one error line naming the stage and the field."""
    if isinstance(data, StageSpec):
        return data
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping with a 'kind', got {type(data).__name__}")
    kind = data.get("kind")
    if kind is None:
        raise ValueError(f"{where}: no 'kind' (known: {', '.join(stage_kinds())})")
    if kind not in _KINDS:
        raise ValueError(f"{where}: unknown stage kind {kind!r} (known: {', '.join(stage_kinds())})")
    try:
        return _KINDS[kind].spec.model_validate(data)
    except ValidationError as exc:
        raise ValueError(f"{where} ({kind}): {validation_message(exc)}") from None
