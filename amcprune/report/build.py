"""Turn :class:`ReportData` into an ordered list of sections (tables, figures, notes) for the renderers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from amcprune.report import plots, tables
from amcprune.outputs.names import COST_DENSE_FILE, COST_FINAL_FILE, EVAL_FILE, FINAL_ONNX, METRICS_FILE, RECORDS_FILE
from amcprune.report.collect import EVAL_DENSE_DIRS, EVAL_FINAL_DIRS, ReportData
from amcprune.report.tables import Table


@dataclass
class FigureBlock:
    name: str  # stable identifier, e.g. "accuracy_vs_snr"
    png: bytes
    caption: str


@dataclass
class Note:
    text: str


@dataclass
class Pre:
    summary: str
    text: str


Block = Union[Table, FigureBlock, Note, Pre]


@dataclass
class Section:
    id: str
    title: str
    blocks: list[Block] = field(default_factory=list)


def _eval_sources(data: ReportData) -> str:
    return ", ".join(ev.source for ev in (data.eval_dense, data.eval_final) if ev is not None)


def _models(data: ReportData) -> str:
    if data.kind == "train":
        return "trained model"
    labels = [label for ev, label in ((data.eval_dense, "dense"), (data.eval_final, "final")) if ev is not None]
    return " and ".join(labels) + (" models" if len(labels) > 1 else " model")


def _cost_models(data: ReportData) -> str:
    if data.kind == "train":
        return "trained model"
    labels = [label for c, label in ((data.cost_dense, "dense"), (data.cost_final, "final")) if c is not None]
    return " and ".join(labels) + (" models" if len(labels) > 1 else " model")


EVALUATE_HINT = (
    f"`amcprune evaluate MODEL --out RUN_DIR/DIR` adds one (DIR: {', '.join(EVAL_DENSE_DIRS + EVAL_FINAL_DIRS)})"
)


def build_sections(data: ReportData) -> list[Section]:
    sections: list[Section] = []

    # Configuration and data, with what is wrong with the run itself on top.
    s = Section("config", "Configuration and data", [Note(f"Warning: {w}") for w in data.warnings])
    s.blocks.append(tables.run_table(data))
    if data.config_text:
        s.blocks.append(Pre("config.yaml", data.config_text))
    sections.append(s)

    # Dense vs final.
    s = Section("models", "Dense vs final model" if data.kind == "prune" else "Model")
    table = tables.model_table(data.dense, data.final, data.judge_on)
    if table is None:
        s.blocks.append(Note("No model numbers found (no summary, cost or evaluation JSON)."))
    else:
        if data.kind == "prune" and data.final is None:
            s.blocks.append(Note("No final model numbers found."))
        s.blocks.append(table)
    sections.append(s)

    if data.eval_dense is None and data.eval_final is None:
        # One note instead of three "not found" sections: a prune run alone has no per-SNR or per-class numbers.
        sections.append(Section("evaluation", "Accuracy per SNR and class, confusion matrix", [Note(
            f"No evaluation found (no {EVAL_FILE}): accuracy per SNR, per class and the confusion matrix need "
            f"one; {EVALUATE_HINT}."
        )]))
    else:
        sections.extend(_evaluation_sections(data))

    # Pruning trajectory (prune runs only).
    if data.kind == "prune":
        s = Section("trajectory", "Pruning trajectory")
        final = data.final.extra if data.final is not None else None
        png, marked = plots.trajectory(data.records, final)
        if png is not None:
            split = f"the {data.judge_on} split" if data.judge_on else "the criterion split"
            s.blocks.append(FigureBlock(
                "trajectory", png,
                f"Per record (iteration end, rewind or stage end): sparsity, accuracy on {split} (and on test) "
                "against the target (crosses mark models that missed it), and the challenge score"
                + ("; the green line marks the model kept as final." if marked else "."),
            ))
        table = tables.stages_table(data.stages)
        if table is not None:
            s.blocks.append(table)
        table = tables.trajectory_table(data.records, data.criterion)
        if table is not None:
            table.caption = "Pruning records" + (f" ({table.caption})" if table.caption else "") + "."
            s.blocks.append(table)
        if not data.records:
            s.blocks.insert(0, Note(f"No pruning records found ({RECORDS_FILE} is missing or empty)."))
        sections.append(s)

    # Training history (train runs, or prune runs that carry metrics.jsonl).
    if data.metrics or data.kind == "train":
        s = Section("training", "Training history")
        png = plots.training_history(data.metrics)
        if png is not None:
            s.blocks.append(FigureBlock("training", png, "Accuracy and loss per epoch."))
        table = tables.metrics_table(data.metrics)
        if table is not None:
            table.caption = "Epochs" + (f" ({table.caption})" if table.caption else "") + "."
            s.blocks.append(table)
        if not s.blocks:
            s.blocks.append(Note(f"No epoch metrics found ({METRICS_FILE} is missing or empty)."))
        sections.append(s)

    # Per-layer cost.
    s = Section("cost", "Per-layer cost")
    png = plots.layer_costs(data.cost_dense, data.cost_final)
    if png is not None:
        s.blocks.append(FigureBlock(
            "layer_costs", png, f"BOPs and weight bits of each layer of the {_cost_models(data)} "
            f"(from {', '.join(c.source for c in (data.cost_dense, data.cost_final) if c is not None)}).",
        ))
    table = tables.layer_table(data.cost_dense, data.cost_final)
    if table is not None:
        table.caption = "Per-layer cost."
        s.blocks.append(table)
    if table is None:
        totals = tables.cost_totals_table(data.dense, data.final)
        if totals is not None:
            source = data.summary_cost.source if data.summary_cost is not None else RECORDS_FILE
            totals.caption = f"Totals (from {source}); no per-layer cost file."
            s.blocks.append(totals)
            s.blocks.append(Note(
                f"Per layer: `amcprune cost RUN_DIR/{FINAL_ONNX} --json > RUN_DIR/{COST_FINAL_FILE}` "
                f"(and {COST_DENSE_FILE} for the dense model) adds it."
            ))
    warnings: dict[str, list[str]] = {}
    for cost in (data.cost_dense, data.cost_final or data.summary_cost):
        if cost is not None:
            for warning in cost.warnings:
                warnings.setdefault(warning, []).append(cost.source)
    for warning, sources in warnings.items():
        s.blocks.append(Note(f"{', '.join(sources)}: {warning}"))
    if not s.blocks:
        s.blocks.append(Note(
            f"No per-layer cost found: `amcprune cost MODEL --json > RUN_DIR/{COST_FINAL_FILE}` "
            f"(or {COST_DENSE_FILE}) adds it."
        ))
    sections.append(s)
    return sections


def _evaluation_sections(data: ReportData) -> list[Section]:
    sections: list[Section] = []

    # Accuracy vs SNR.
    s = Section("snr", "Accuracy vs SNR")
    png = plots.accuracy_vs_snr(data.eval_dense, data.eval_final)
    if png is None:
        s.blocks.append(Note(f"No per-SNR accuracy found (no {EVAL_FILE}): {EVALUATE_HINT}."))
    else:
        s.blocks.append(FigureBlock(
            "accuracy_vs_snr", png,
            f"Test accuracy per SNR of the {_models(data)} (from {_eval_sources(data)}).",
        ))
        snr = tables.snr_table(data.eval_dense, data.eval_final)
        if snr is not None:
            snr.caption = "Accuracy per SNR"
            snr.collapsed = True
            s.blocks.append(snr)
    sections.append(s)

    # Per-class accuracy heat maps.
    s = Section("classes", "Per-class accuracy over SNR")
    png = plots.class_snr_heatmaps(data.eval_dense, data.eval_final)
    if png is not None:
        s.blocks.append(FigureBlock(
            "class_snr", png,
            f"Accuracy (%) of each class (rows) at each SNR (columns) of the {_models(data)} "
            f"(from {_eval_sources(data)}).",
        ))
    if not s.blocks:
        s.blocks.append(Note(f"No per-class per-SNR accuracy found (no {EVAL_FILE}): {EVALUATE_HINT}."))
    sections.append(s)

    # Confusion matrices.
    s = Section("confusion", "Confusion matrix")
    png = plots.confusion_matrices(data.eval_dense, data.eval_final)
    if png is None:
        s.blocks.append(Note(f"No confusion matrix found (no {EVAL_FILE}): {EVALUATE_HINT}."))
    else:
        s.blocks.append(FigureBlock(
            "confusion", png,
            f"Confusion matrix over all SNRs of the {_models(data)}, each row normalized to 100 % of the true "
            f"class (from {_eval_sources(data)}).",
        ))
    sections.append(s)
    return sections
