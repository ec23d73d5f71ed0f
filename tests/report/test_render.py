import base64
import html as html_lib
import io
import json
import re

import matplotlib.image
import torch

from amcprune.cost import model_cost
from amcprune.models import ModelSpec, build_model
from amcprune.report import collect_report_data, plots, write_report
from amcprune import outputs as C
from amcprune.report.build import build_sections
from amcprune.report.collect import EvalData
from report_fixtures import make_prune_run


def _is_png(data: bytes) -> bool:
    if not data.startswith(plots.PNG_SIGNATURE):
        return False
    image = matplotlib.image.imread(io.BytesIO(data), format="png")
    return image.shape[0] > 0 and image.shape[1] > 0


def test_plots_are_pngs_or_none(prune_run):
    data = collect_report_data(prune_run)
    for png in (
        plots.accuracy_vs_snr(data.eval_dense, data.eval_final),
        plots.class_snr_heatmaps(data.eval_dense, data.eval_final),
        plots.confusion_matrices(None, data.eval_final),
        plots.trajectory(data.records, final=data.final.extra)[0],
        plots.layer_costs(data.cost_dense, None),
    ):
        assert _is_png(png)
    assert plots.accuracy_vs_snr(None, None) is None
    assert plots.class_snr_heatmaps(None, None) is None
    assert plots.confusion_matrices(None, None) is None
    assert plots.trajectory([]) == (None, False)
    assert plots.trajectory([{"iteration": 0, "method": "imp"}]) == (None, False)
    assert plots.trajectory(data.records, final=data.final.extra)[1] is True
    assert plots.layer_costs(None, None) is None
    assert plots.training_history([]) is None
    assert plots.accuracy_vs_snr(EvalData("x", None, [0], [], [None], None, None), None) is None


def _img_sources(html: str) -> list[str]:
    return re.findall(r'<img [^>]*src="([^"]*)"', html)


def test_html_is_self_contained(prune_run):
    html_path, md_path = write_report(prune_run)
    assert html_path == prune_run / "report.html" and md_path == prune_run / "report.md"
    html = html_path.read_text()
    assert "<script" not in html and "<link" not in html
    assert not re.search(r'(src|href)="(?!data:|#)', html), "only data: URIs and in-page links"
    assert "url(" not in html
    sources = _img_sources(html)
    assert len(sources) == 5  # snr, heat maps, confusion, trajectory, per-layer
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert _is_png(base64.b64decode(src.split(",", 1)[1]))
    for heading in ("Dense vs final model", "Accuracy vs SNR", "Per-class accuracy over SNR", "Confusion matrix",
                    "Pruning trajectory", "Per-layer cost", "3f2a9c1be07d44aa0c8e", "Stages."):
        assert heading in html
    assert (prune_run / "report.html").stat().st_mode & 0o044  # readable by others like a plain file


def test_markdown_summary(prune_run):
    _, md_path = write_report(prune_run)
    md = md_path.read_text()
    assert md.startswith("# amcprune report: prune")
    assert "| accuracy (test) |" in md and "| accuracy (val) |" in md and "| BOPs |" in md
    assert "final vs dense" in md
    assert "data fingerprint | 3f2a9c1be07d44aa0c8e" in md
    assert "## Pruning trajectory" in md and "| event |" in md and "| rewind |" in md
    assert "data:image" not in md


def test_out_dir_and_no_leftover_temp_files(prune_run, tmp_path):
    out = tmp_path / "out" / "nested"
    html_path, md_path = write_report(prune_run, out)
    assert html_path.parent == out and html_path.exists() and md_path.exists()
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.md"]
    assert not (prune_run / "report.html").exists()


def test_train_run_report_omits_pruning(train_run):
    html_path, md_path = write_report(train_run)
    html = html_path.read_text()
    assert "Pruning trajectory" not in html
    assert "Training history" in html
    assert 'class="note"' in html  # the heat map, confusion and cost sections say why they are empty
    assert len(_img_sources(html)) == 2  # accuracy per SNR (from summary.json) and the training curves


def test_sections_missing_are_notes_not_crashes(tmp_path):
    run = make_prune_run(tmp_path / "r", n_classes=3, snrs=[0, 10], evals=False, costs=False, records=False)
    sections = {s.id: s for s in build_sections(collect_report_data(run))}
    assert [type(b).__name__ for b in sections["evaluation"].blocks] == ["Note"]
    assert not {"snr", "classes", "confusion"} & set(sections)
    # No cost file: the totals of summary.json's final_cost and its warning instead.
    assert [type(b).__name__ for b in sections["cost"].blocks] == ["Table", "Note", "Note"]
    # No records: a note, then the stages table from summary.json.
    assert [type(b).__name__ for b in sections["trajectory"].blocks] == ["Note", "Table"]
    html_path, _ = write_report(run)
    assert "<img" not in html_path.read_text()
    # Only a config file: still a run directory, every section a note.
    only = tmp_path / "only"
    only.mkdir()
    (only / C.CONFIG_FILE).write_text("model: {arch: vgg10}\n")
    html_path, _ = write_report(only)
    assert "No model numbers found" in html_path.read_text()


JUNK = [None, "x", -1, 0, float("nan"), [], {}, [1, "a"], {"a": 1}, True, [[1, 2], [3]]]


def _mutate(obj, rng, rate):
    if isinstance(obj, dict):
        return {k: rng.choice(JUNK) if rng.random() < rate else _mutate(v, rng, rate)
                for k, v in obj.items() if rng.random() > rate / 3}
    if isinstance(obj, list):
        return [rng.choice(JUNK) if rng.random() < rate else _mutate(v, rng, rate) for v in obj]
    return obj


def test_garbled_files_never_crash(tmp_path):
    """Values of the wrong type, NaN, missing keys: the report is still written."""
    import json
    import random

    for seed in range(4):
        rng = random.Random(seed)
        run = make_prune_run(tmp_path / f"r{seed}", n_classes=3, snrs=[-10, 0, 10])
        for f in [*run.rglob("*.json"), *run.rglob("*.jsonl")]:
            if f.suffix == ".json":
                f.write_text(json.dumps(_mutate(json.loads(f.read_text()), rng, 0.2)))
            else:
                lines = [json.dumps(_mutate(json.loads(line), rng, 0.2)) for line in f.read_text().splitlines()]
                f.write_text("\n".join(lines) + "\n")
        html_path, md_path = write_report(run)
        assert html_path.stat().st_size > 0 and md_path.stat().st_size > 0


def test_cost_warnings_are_lines_in_the_report(prune_run):
    """`amcprune cost --json` of a model with 12-bit weights, as cost_final.json: each MAC-width warning,
    with its layer and share of the bops, is a line of the per-layer cost section."""
    torch.manual_seed(0)
    cost = model_cost(build_model(ModelSpec(arch="vgg10", conv_filters=4, dense_width=8, weight_bits=12)))
    wide = [w for w in cost.warnings if "MACs wider than 8 bits" in w]
    assert len(wide) == len(cost.per_layer) == 10 and "% of the total" in wide[0]
    (prune_run / C.COST_FINAL_FILE).write_text(json.dumps(cost.to_dict()))
    html_path, md_path = write_report(prune_run)
    md, html = md_path.read_text(), html_path.read_text()
    cost_section = md[md.index("## Per-layer cost"):]
    for warning in wide:
        assert f"> **Note:** {C.COST_FINAL_FILE}: {warning}\n" in cost_section
        assert f'<p class="note">{html_lib.escape(f"{C.COST_FINAL_FILE}: {warning}", quote=True)}</p>' in html
