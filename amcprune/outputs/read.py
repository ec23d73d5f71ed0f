"""Read run-directory files into the typed records of :mod:`amcprune.outputs.models`.

Strict readers (``read_*``) raise one :class:`AmcpruneError` line naming the file and the first bad field;
``scan_jsonl`` and ``load_json`` return the problems as lines instead, for readers that must go on (the report).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from amcprune.errors import AmcpruneError
from amcprune.outputs import names
from amcprune.outputs.models import (
    CostFile,
    EvalFile,
    PruneEpoch,
    PruneRecord,
    PruneSummary,
    TrainMetrics,
    TrainSummary,
    TrialState,
)

M = TypeVar("M", bound=BaseModel)


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_error(exc: ValidationError) -> str:
    """The first error of ``exc`` as ``field a.b.0: message (got X)``, plus how many more there are."""
    errors = exc.errors()
    first = errors[0]
    loc = ".".join(str(part) for part in first["loc"]) or "(top level)"
    text = f"field {loc}: {first['msg']}"
    if first["type"] not in ("missing", "extra_forbidden") and "input" in first:
        text += f" (got {_short(first['input'])})"
    if first["type"] == "extra_forbidden":
        text = f"field {loc}: not a field amcprune writes"
    if len(errors) > 1:
        text += f" (and {len(errors) - 1} more)"
    return text


def check(model: type[M], data: Any, source: str | os.PathLike) -> M:
    """``data`` validated as ``model``; a mismatch is one AmcpruneError line naming ``source`` and the field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise AmcpruneError(f"{source}: {describe_error(exc)}") from None


def _load_json_text(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise AmcpruneError(f"{path}: not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AmcpruneError(f"{path}: not readable JSON ({type(exc).__name__}: {exc})") from None


def read_json(path: str | os.PathLike, model: type[M]) -> M:
    path = Path(path)
    return check(model, _load_json_text(path), path)


def load_json(path: str | os.PathLike, model: type[M]) -> tuple[M | None, str | None]:
    """``(record, None)``, or ``(None, problem line)`` for a file that is unreadable or does not match."""
    try:
        return read_json(path, model), None
    except AmcpruneError as exc:
        return None, str(exc)


def scan_jsonl(path: str | os.PathLike, model: type[M]) -> tuple[list[M], list[str]]:
    """Every line of ``path`` that matches ``model``, and one problem line per line that does not.

    A missing file is no lines. A torn last line (a kill during a write; the writers fsync every line) is
    skipped silently, like :func:`amcprune.utils.atomic.read_jsonl`.
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return [], []
    except (OSError, UnicodeDecodeError) as exc:
        return [], [f"{path}: not readable ({type(exc).__name__}: {exc})"]
    numbered = [(i + 1, line.strip()) for i, line in enumerate(lines) if line.strip()]
    out: list[M] = []
    problems: list[str] = []
    for k, (lineno, line) in enumerate(numbered):
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            if k == len(numbered) - 1:
                break
            problems.append(f"{path} line {lineno}: not JSON")
            continue
        try:
            out.append(model.model_validate(data))
        except ValidationError as exc:
            problems.append(f"{path} line {lineno}: {describe_error(exc)}")
    return out, problems


def read_jsonl(path: str | os.PathLike, model: type[M]) -> list[M]:
    """Every line of ``path`` as ``model``; the first bad line raises (a missing file is no lines)."""
    out, problems = scan_jsonl(path, model)
    if problems:
        more = f" (and {len(problems) - 1} more lines)" if len(problems) > 1 else ""
        raise AmcpruneError(problems[0] + more)
    return out


# --- one function per file ---------------------------------------------------------------------------
def read_prune_summary(run_dir: str | os.PathLike) -> PruneSummary:
    return read_json(Path(run_dir) / names.SUMMARY_FILE, PruneSummary)


def read_records(run_dir: str | os.PathLike) -> list[PruneRecord]:
    return read_jsonl(Path(run_dir) / names.RECORDS_FILE, PruneRecord)


def read_epochs(run_dir: str | os.PathLike) -> list[PruneEpoch]:
    return read_jsonl(Path(run_dir) / names.EPOCHS_FILE, PruneEpoch)


def read_train_summary(run_dir: str | os.PathLike) -> TrainSummary:
    return read_json(Path(run_dir) / names.SUMMARY_FILE, TrainSummary)


def read_metrics(run_dir: str | os.PathLike) -> list[TrainMetrics]:
    return read_jsonl(Path(run_dir) / names.METRICS_FILE, TrainMetrics)


def read_eval(eval_dir: str | os.PathLike) -> EvalFile:
    """``eval.json`` in ``eval_dir`` (the directory ``write_eval`` wrote to)."""
    return read_json(Path(eval_dir) / names.EVAL_FILE, EvalFile)


def read_cost(path: str | os.PathLike) -> CostFile:
    return read_json(path, CostFile)


def read_trial_state(trial_dir: str | os.PathLike) -> TrialState:
    return read_json(Path(trial_dir) / names.TRIAL_FILE, TrialState)
