"""Open report.html in headless Chromium: no console errors, every figure drawn, a screenshot.

Needs Debian's ``chromium`` (``make browser`` installs it). Without it the test is skipped,
unless ``TESTBED_INSTALL_BROWSER=1``, in which case it tries ``apt-get install chromium`` once.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from testbed.report import build_report

log = logging.getLogger(__name__)

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Enough virtual time for plotly to draw every figure; virtual time runs faster than real.
BUDGET_MS = 20_000
TIMEOUT_S = 180
# Chromium prints page console messages (console.error, uncaught exceptions) as CONSOLE lines.
CONSOLE_LINE = re.compile(r":CONSOLE(?:\(\d+\)|:\d+)?\]\s*(.*)")


def _find_browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def _try_install() -> None:
    """apt-get chromium, once per session, only when asked to (it needs root and a network)."""
    commands = (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"])
    for cmd in commands:
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
        except (OSError, subprocess.TimeoutExpired) as err:
            log.warning("%s failed: %s", " ".join(cmd), err)
            return
        if done.returncode != 0:
            log.warning("%s failed (exit %d): %s", " ".join(cmd), done.returncode, done.stderr[-500:])
            return


@pytest.fixture(scope="session")
def chromium() -> str:
    path = _find_browser()
    if path is None and os.environ.get("TESTBED_INSTALL_BROWSER") == "1":
        _try_install()
        path = _find_browser()
    if path is None:
        pytest.skip(
            "headless Chromium not found (looked for " + ", ".join(BROWSERS) + "); install it with `make browser` "
            "(Debian's chromium package) or set TESTBED_INSTALL_BROWSER=1 to let this test apt-get it"
        )
    return path


def _run_browser(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [
        browser, "--headless", "--no-sandbox",  # no-sandbox: containers and root have no user namespaces
        "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars", "--no-first-run",
        f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
        f"--virtual-time-budget={BUDGET_MS}", *args,
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)


class _PlotScan(HTMLParser):
    """Which ``div.plot`` elements contain an ``svg.main-svg`` (plotly drew them)."""

    def __init__(self) -> None:
        super().__init__()
        self.plots: dict[str, bool] = {}
        self.errors: list[str] = []
        self._stack: list[str | None] = []  # for each open element: the plot id it opens, else None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "div" and "plot" in classes:
            self.plots[a.get("id") or f"unnamed-{len(self.plots)}"] = False
            if "plot-error" in classes:
                self.errors.append(a.get("id") or "?")
            self._stack.append(a.get("id"))
        elif tag not in VOID:
            self._stack.append(None)
        if tag == "svg" and "main-svg" in classes:
            open_plots = [p for p in self._stack if p is not None]
            if open_plots:
                self.plots[open_plots[-1]] = True

    def handle_endtag(self, tag: str) -> None:
        if tag not in VOID and self._stack:
            self._stack.pop()


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr",
        "path", "rect", "circle", "line", "polyline", "polygon", "ellipse", "stop", "use", "image"}  # fmt: skip


def test_report_renders_in_headless_chromium(chromium, make_run, tmp_path):
    # The hostile run: a <script> label and node name, a diverged seed.
    report = build_report(make_run(evil=True, diverge=True))
    expected = re.findall(r'<div class="plot" id="(fig-[a-z0-9-]+)"', report.read_text(encoding="utf-8"))
    url = report.resolve().as_uri()

    dom_run = _run_browser(chromium, tmp_path / "profile-dom", "--dump-dom", url)
    assert dom_run.returncode == 0, f"chromium --dump-dom failed (exit {dom_run.returncode}): {dom_run.stderr[-2000:]}"
    console = [m.group(1) for line in dom_run.stderr.splitlines() if (m := CONSOLE_LINE.search(line))]
    assert console == [], "console messages from the report:\n" + "\n".join(console)

    scan = _PlotScan()
    scan.feed(dom_run.stdout)
    assert list(scan.plots) == expected, "the DOM does not hold the figure divs of the page"
    assert scan.errors == [], f"figures that failed to draw: {scan.errors}"
    assert [p for p, drawn in scan.plots.items() if not drawn] == [], "figures without a plotly svg"
    assert "<script>alert(1)</script>" not in dom_run.stdout  # the label stayed text

    shot = tmp_path / "report.png"
    shot_run = _run_browser(chromium, tmp_path / "profile-shot", "--window-size=1300,5600", f"--screenshot={shot}", url)
    assert shot_run.returncode == 0 and shot.is_file(), f"no screenshot: {shot_run.stderr[-2000:]}"
    assert shot.stat().st_size > 50_000  # a blank page compresses to a few KB
    log.info("screenshot of the report: %s", shot)


def _hierarchy(fanouts: list[int]):
    from testbed.net.builders import hierarchy_graph

    links = [{"latency_ms": 35.0, "bandwidth_mbps": 1000.0}, {"latency_ms": 4.0, "bandwidth_mbps": 1000.0},
             {"latency_ms": 8.0, "up_mbps": 20.0, "down_mbps": 100.0}]
    g = hierarchy_graph(fanouts, [40, 10, 2], links)
    for node, attrs in g.nodes(data=True):
        if attrs["role"] == "server":
            attrs["tier"] = "regional" if node.startswith("s1_") else "edge"
    return g


@pytest.mark.parametrize("fanouts", [[3, 2, 4], [4, 5, 5]], ids=["24-workers", "100-workers"])
def test_report_reads_at_a_glance(chromium, make_run, tmp_path, fanouts):
    """The verdict, the time to target with each seed's crossing and a readable topology
    (tier rows, link figures written on the drawing, workers grouped above 24) are on the page."""
    import json

    import networkx as nx

    run = make_run(seeds=(0, 1, 2))
    graph = _hierarchy(fanouts)
    (run / "topology.json").write_text(json.dumps(nx.node_link_data(graph, edges="links")))
    url = build_report(run).resolve().as_uri()
    dom = _run_browser(chromium, tmp_path / "profile-dom", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = dom.stdout
    section = {name: page[page.index(f'<section id="{name}"'):] for name in ("verdict", "time-to-target", "topology")}
    for name in section:
        section[name] = section[name][: section[name].index("</section>")]
    assert "reaches 50% test accuracy first" in section["verdict"]
    assert "per seed: median (min–max)" in section["time-to-target"]
    assert re.search(r"\d s \(\d[\d.]* s–\d[\d.]* s\)", section["time-to-target"])  # median (min–max)
    assert re.search(r"0: [\d.]+ s; 1: [\d.]+ s; 2: [\d.]+ s", section["time-to-target"])  # each seed's own
    n_workers = int(np.prod(fanouts))
    drawn = re.sub(r"<[^>]+>", " ", section["topology"])  # the svg's text, as a reader sees it
    for text in ("cloud", "regional", "edge", f"{n_workers} workers", "links: 4 ms", "1 Gbit/s", "↑20 Mbit/s ↓100 Mbit/s"):
        assert text in drawn, text
    assert ("×5" in drawn) == (n_workers > 24)  # 100 workers: one node per edge server

    shot = tmp_path / "report.png"
    done = _run_browser(chromium, tmp_path / "profile-shot", "--window-size=1300,5600", f"--screenshot={shot}", url)
    assert done.returncode == 0 and shot.stat().st_size > 50_000  # a blank page compresses to a few KB
