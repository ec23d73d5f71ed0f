"""The report of a plain `amcprune prune` run (issue 13 item 8): no eval or cost files, only what the prune run
itself writes (config.yaml, records.jsonl, summary.json with final_cost)."""

from __future__ import annotations

import json

import yaml
from matplotlib.transforms import Bbox

from amcprune import outputs as C
from amcprune.report import collect_report_data, plots, write_report
from amcprune.report.build import Note, build_sections
from amcprune.report.tables import Table
from report_fixtures import fake_records, make_prune_run


def _plain(tmp_path):
    return make_prune_run(tmp_path / "plain", n_classes=4, snrs=[0, 10], evals=False, costs=False)


def test_sections_are_filled_from_what_the_run_has(tmp_path):
    sections = build_sections(collect_report_data(_plain(tmp_path)))
    empty = [s.id for s in sections if all(isinstance(b, Note) for b in s.blocks)]
    assert empty == ["evaluation"]  # one note for the three evaluation figures, not three "not found"s
    cost = next(s for s in sections if s.id == "cost")
    table = next(b for b in cost.blocks if isinstance(b, Table))
    assert table.headers == ["", "dense", "final"] and table.rows[0][0] == "BOPs"
    assert all(cell != "–" for row in table.rows for cell in row)  # dense from record 0, final from final_cost


def test_the_cost_warnings_of_summary_json_are_shown(tmp_path):
    run = _plain(tmp_path)
    warning = json.loads((run / C.SUMMARY_FILE).read_text())["final_cost"]["warnings"][0]
    _, md_path = write_report(run)
    md = md_path.read_text()
    assert f"> **Note:** summary.json (final_cost): {warning}\n" in md[md.index("## Per-layer cost"):]


def test_the_criterion_is_shown_as_the_user_gave_it(tmp_path):
    run = _plain(tmp_path)
    config = yaml.safe_load((run / C.CONFIG_FILE).read_text())
    config["prune"].update(target=None, max_drop=0.1)
    (run / C.CONFIG_FILE).write_text(yaml.safe_dump(config))
    summary = json.loads((run / C.SUMMARY_FILE).read_text())
    summary.update(dense_acc=0.2361, threshold=0.1361)
    (run / C.SUMMARY_FILE).write_text(json.dumps(summary))
    data = collect_report_data(run)
    assert data.criterion == "val accuracy ≥ 13.61 % (--max-drop 0.1: the dense model's 23.61 % minus 10 points)"
    html = write_report(run)[0].read_text()
    assert html.count("--max-drop 0.1") >= 2  # the run table and the records' caption
    config["prune"].update(target=0.56, max_drop=None)
    (run / C.CONFIG_FILE).write_text(yaml.safe_dump(config))
    summary["threshold"] = 0.56
    (run / C.SUMMARY_FILE).write_text(json.dumps(summary))
    assert collect_report_data(run).criterion == "val accuracy ≥ 56.00 % (--target 0.56)"
    config["recipe"] = config.pop("prune")  # config.yaml of the recipe engine
    (run / C.CONFIG_FILE).write_text(yaml.safe_dump(config))
    assert collect_report_data(run).criterion == "val accuracy ≥ 56.00 % (--target 0.56)"


def test_duplicated_record_numbers_are_a_warning(tmp_path):
    run = _plain(tmp_path)
    with open(run / C.RECORDS_FILE, "a") as fh:
        fh.write(json.dumps(fake_records()[3]) + "\n")
    data = collect_report_data(run)
    assert len(data.records) == 9
    assert len(data.warnings) == 1 and "duplicated record numbers (3)" in data.warnings[0]
    config = build_sections(data)[0]
    assert isinstance(config.blocks[0], Note) and config.blocks[0].text.startswith("Warning: records.jsonl")
    assert "duplicated record numbers (3)" in write_report(run)[1].read_text()


def test_no_legend_hides_a_mark():
    """Misses early in a run at low accuracy sat under the legend (lower left) of the accuracy panel."""
    records = fake_records()
    for r in records[1:4]:
        r.update(event="failed", met=False, criterion_acc=0.30, test_acc=0.29)
    fig, _ = plots.trajectory_figure(records, final={"checkpoint": records[6]["checkpoint"]})
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    checked = 0
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is None:
            continue
        box: Bbox = legend.get_window_extent(renderer)
        for line in ax.get_lines():
            for x, y in line.get_xydata():
                if x == x and y == y:  # not NaN
                    px, py = ax.transData.transform((x, y))
                    assert not box.contains(px, py), (ax.get_title(), line.get_label(), x, y)
                    checked += 1
    assert checked > 20
