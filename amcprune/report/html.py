"""Render the report as one self-contained HTML page: inline CSS, figures as base64 PNG data URIs.

The page loads nothing from anywhere: no scripts, no external style sheets, fonts or images.
"""

from __future__ import annotations

import base64
import html as _html

from amcprune import __version__
from amcprune.report.build import FigureBlock, Note, Pre, Section
from amcprune.report.collect import ReportData
from amcprune.report.tables import Table

CSS = """
:root { --fg: #1d2330; --muted: #5b6474; --line: #d9dde5; --bg-alt: #f5f7fa; --accent: #1f5fa8; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff;
       font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1240px; margin: 0 auto; padding: 24px 28px 60px; }
header { border-bottom: 2px solid var(--accent); margin-bottom: 8px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 36px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
.sub { color: var(--muted); margin: 0 0 12px; font-size: 14px; }
nav { font-size: 14px; margin: 8px 0 0; }
nav a { color: var(--accent); text-decoration: none; margin-right: 14px; }
table { border-collapse: collapse; margin: 10px 0 18px; font-size: 13.5px; }
caption { caption-side: top; text-align: left; color: var(--muted); padding: 0 0 4px; font-size: 13px; }
th, td { border: 1px solid var(--line); padding: 4px 8px; vertical-align: top; }
th { background: var(--bg-alt); text-align: left; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody tr:nth-child(even) td { background: #fafbfc; }
table.kv td:first-child { font-weight: 600; background: var(--bg-alt); white-space: nowrap; }
table.kv td { word-break: break-all; }
.scroll { overflow-x: auto; max-width: 100%; width: fit-content; }
.scroll.tall { max-height: 480px; overflow-y: auto; }
figure { margin: 12px 0 22px; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: 13px; margin-top: 6px; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: 6px 12px; margin: 8px 0; font-size: 14px; }
.notes { margin: 16px 0; }
details { margin: 8px 0 16px; }
summary { cursor: pointer; color: var(--accent); }
pre { background: var(--bg-alt); border: 1px solid var(--line); padding: 10px 12px; overflow-x: auto;
      font-size: 12.5px; line-height: 1.4; }
footer { color: var(--muted); font-size: 12px; margin-top: 40px; border-top: 1px solid var(--line); padding-top: 8px; }
"""


def _e(text: object) -> str:
    return _html.escape(str(text), quote=True)


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def render_table(table: Table, kv: bool = False) -> str:
    parts = []
    if table.collapsed:
        parts.append(f"<details><summary>{_e(table.caption or 'table')}</summary>")
    tall = len(table.rows) > 16
    scroll_class = "scroll tall" if tall else "scroll"
    table_attr = ' class="kv"' if kv else ""
    parts.append(f'<div class="{scroll_class}"><table{table_attr}>')
    if table.caption and not table.collapsed:
        parts.append(f"<caption>{_e(table.caption)}</caption>")
    if not kv:
        cells = "".join(
            f'<th class="num">{_e(h)}</th>' if num else f"<th>{_e(h)}</th>"
            for h, num in zip(table.headers, table.numeric)
        )
        parts.append(f"<thead><tr>{cells}</tr></thead>")
    parts.append("<tbody>")
    for row in table.rows:
        cells = "".join(
            f'<td class="num">{_e(c)}</td>' if num else f"<td>{_e(c)}</td>"
            for c, num in zip(row, table.numeric)
        )
        parts.append(f"<tr>{cells}</tr>")
    parts.append("</tbody></table></div>")
    if table.collapsed:
        parts.append("</details>")
    return "".join(parts)


def render_block(block, section_id: str) -> str:
    if isinstance(block, Table):
        return render_table(block, kv=section_id == "config" and block.headers == ["", ""])
    if isinstance(block, FigureBlock):
        return (
            f'<figure id="fig-{_e(block.name)}"><img src="{data_uri(block.png)}" alt="{_e(block.caption)}">'
            f"<figcaption>{_e(block.caption)}</figcaption></figure>"
        )
    if isinstance(block, Note):
        return f'<p class="note">{_e(block.text)}</p>'
    if isinstance(block, Pre):
        return f"<details><summary>{_e(block.summary)}</summary><pre>{_e(block.text)}</pre></details>"
    raise TypeError(f"unknown block {type(block).__name__}")


def render_html(data: ReportData, sections: list[Section]) -> str:
    nav = "".join(f'<a href="#{_e(s.id)}">{_e(s.title)}</a>' for s in sections)
    body = []
    if data.notes:
        body.append('<div class="notes">' + "".join(f'<p class="note">{_e(n)}</p>' for n in data.notes) + "</div>")
    for s in sections:
        body.append(f'<section id="{_e(s.id)}"><h2>{_e(s.title)}</h2>')
        body.extend(render_block(b, s.id) for b in s.blocks)
        body.append("</section>")
    subtitle = f"{data.kind} run · {data.run_dir}"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(data.title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
        f"<header><h1>{_e(data.title)}</h1><p class=\"sub\">{_e(subtitle)}</p><nav>{nav}</nav></header>\n"
        + "\n".join(body)
        + f"\n<footer>Generated by amcprune {_e(__version__)} (<code>amcprune report</code>).</footer>\n"
        "</main>\n</body>\n</html>\n"
    )
