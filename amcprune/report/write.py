"""``write_report``: collect a run directory and write ``report.html`` and ``report.md`` atomically."""

from __future__ import annotations

from pathlib import Path

from amcprune.errors import AmcpruneError
from amcprune.report.build import build_sections
from amcprune.report.collect import collect_report_data
from amcprune.report.html import render_html
from amcprune.report.markdown import render_markdown
from amcprune.utils.atomic import atomic_path

HTML_NAME = "report.html"
MD_NAME = "report.md"


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_report(run_dir: str | Path, out_dir: str | Path | None = None, overwrite: bool = True) -> tuple[Path, Path]:
    """Write the HTML report and the Markdown summary of ``run_dir``; return their paths.

    They go to ``out_dir`` (created if needed), by default the run directory itself. Existing reports
    there are replaced only with ``overwrite`` (the CLI passes its ``--force``; the pipeline rewrites its
    own report on every resume).
    """
    out = Path(out_dir) if out_dir is not None else Path(run_dir)
    if out.exists() and not out.is_dir():
        raise AmcpruneError(f"output path is not a directory: {out}")
    if not overwrite:
        found = [name for name in (HTML_NAME, MD_NAME) if (out / name).exists()]
        if found:
            raise AmcpruneError(f"{out / found[0]}: already exists; use --force to replace it")
    data = collect_report_data(run_dir)
    sections = build_sections(data)
    html_path, md_path = out / HTML_NAME, out / MD_NAME
    try:
        _write_text(html_path, render_html(data, sections))
        _write_text(md_path, render_markdown(data, sections, html_name=HTML_NAME))
    except OSError as exc:
        raise AmcpruneError(f"cannot write the report to {out}: {exc.strerror or exc}") from exc
    return html_path, md_path
