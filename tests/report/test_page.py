import re

import plotly.offline

from testbed.report import REPORT_FILE, Section, build_report, load_run, render_page
from testbed.report.sections import DEFAULT_SECTIONS

EVIL = "<script>alert(1)</script>"
PLOTLYJS = plotly.offline.get_plotlyjs()


def _without_plotlyjs(page: str) -> str:
    assert page.count(PLOTLYJS) == 1, "plotly.js must be embedded exactly once"
    return page.replace(PLOTLYJS, "")


def test_build_report_writes_one_self_contained_page(run_dir):
    path = build_report(run_dir)
    assert path == run_dir / REPORT_FILE
    page = _without_plotlyjs(path.read_text(encoding="utf-8"))
    assert not re.search(r"<script[^>]*\bsrc=", page) and "<link" not in page  # nothing fetched
    assert "http://" not in page and "https://" not in page
    for anchor in ("accuracy-time", "accuracy-iterations", "time-to-target", "breakdown", "topology", "traces", "config"):
        assert f'<section id="{anchor}">' in page
    figures = re.findall(r'<div class="plot" id="(fig-[a-z0-9-]+)"', page)
    assert figures == ["fig-accuracy-time", "fig-accuracy-iterations", "fig-breakdown", "fig-topology", "fig-traces-rtt", "fig-traces-bandwidth"]
    assert page.count("<script") == len(figures) + 1  # one per figure plus plotly.js
    for text in ("edge3level", "quick", "0123456789abcdef", "2024-05-01T12:00:00+00:00", "0, 1"):
        assert text in page
    assert "speed-up vs local SGD P=2" in page and "speed-up vs local SGD P=40" in page
    assert "(failed)" not in page
    assert [p.name for p in run_dir.iterdir() if p.name.startswith(".")] == []  # no temp file left


def test_user_text_is_escaped_in_html_and_in_figure_json(make_run):
    run_dir = make_run(evil=True)  # evil algorithm label, topology node name and config value
    page = _without_plotlyjs(build_report(run_dir).read_text(encoding="utf-8"))
    assert EVIL not in page
    assert "alert(1)</script>" not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 3  # header, tables, config
    # Only our own script tags exist: each one is plotly.js or a figure's drawing code.
    for body in re.findall(r"<script[^>]*>(.*?)</script>", page, flags=re.S):
        assert body == "" or body.startswith("(function () {")
    for figure_json in re.findall(r"var fig = (.*?);\n", page):
        assert "</" not in figure_json and "<" not in figure_json


def test_report_without_optional_files_says_what_is_missing(make_run):
    page = build_report(make_run(files=())).read_text(encoding="utf-8")
    assert "topology.json not found or unreadable" in page
    assert "no trace files in" in page
    assert "events.csv not found: no per-level aggregation counts." in page
    assert "fig-accuracy-time" in page


def test_report_without_target_or_baselines(make_run):
    run = load_run(make_run(target_acc=0.5))
    page = render_page(run, DEFAULT_SECTIONS)
    assert "time to 50%" in page
    # A run whose config has no target gets a message instead of a table.
    run_dir = make_run("no-target")
    cfg = (run_dir / "config.json").read_text().replace('"target_acc": 0.5,', "")
    (run_dir / "config.json").write_text(cfg)
    assert "config.json has no numeric target_acc" in build_report(run_dir).read_text()


def test_extra_sections_are_appended_and_none_is_left_out(run_dir):
    def theory(run):
        return Section("theory", "Theory", f"<p>{len(run.algorithms)} algorithms</p>")

    page = build_report(run_dir, extra_sections=[theory, lambda run: None]).read_text()
    assert page.index('<section id="config">') < page.index('<section id="theory">')
    assert "<p>4 algorithms</p>" in page


def test_a_failing_section_shows_its_error_and_the_rest_still_renders(run_dir, caplog):
    def broken(run):
        raise RuntimeError("no <b>divergence</b> columns")

    page = build_report(run_dir, extra_sections=[broken]).read_text()
    assert "broken (failed)" in page
    assert "RuntimeError: no &lt;b&gt;divergence&lt;/b&gt; columns" in page
    assert "fig-topology" in page
    assert "report section broken failed" in caplog.text
