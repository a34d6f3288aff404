"""The HTML report of a run folder: one self-contained page that works offline.

    from testbed.report import build_report, load_run
    run = load_run("reports/edge3level/latest")     # typed view of the folder
    path = build_report("reports/edge3level/latest")  # writes report.html, returns its path

Sections are builders ``RunFolder -> Section | None`` listed in
``testbed.report.sections.DEFAULT_SECTIONS``; pass more with ``build_report(...,
extra_sections=[...])``.
"""

from testbed.report.markup import Section
from testbed.report.page import REPORT_FILE, build_report, render_page
from testbed.report.runfolder import AlgorithmInfo, RunFolder, Trace, load_run
from testbed.report.sections import DEFAULT_SECTIONS, SectionBuilder

__all__ = [
    "DEFAULT_SECTIONS",
    "REPORT_FILE",
    "AlgorithmInfo",
    "RunFolder",
    "Section",
    "SectionBuilder",
    "Trace",
    "build_report",
    "load_run",
    "render_page",
]
