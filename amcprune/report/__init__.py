"""The report stage: one self-contained HTML page and a Markdown summary of a train or prune run.

``collect_report_data(run_dir) -> ReportData`` reads the run directory through the records of
:mod:`amcprune.outputs`; ``write_report(run_dir, out_dir=None) -> (html_path, md_path)`` writes
``report.html`` and ``report.md``.
"""

from amcprune.report.collect import ReportData, collect_report_data
from amcprune.report.write import write_report

__all__ = ["ReportData", "collect_report_data", "write_report"]
