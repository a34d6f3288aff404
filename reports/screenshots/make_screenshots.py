"""Screenshots of the report's first read: verdict, time to target, topology.

    python reports/screenshots/make_screenshots.py RUN_DIR NAME [RUN_DIR NAME ...]

Renders those three sections of each run's report into a page next to it and takes a
headless-Chromium screenshot of it as reports/screenshots/NAME.png.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from testbed.report import load_run, render_page
from testbed.report.sections import target_section, topology_section, verdict_section

HERE = Path(__file__).resolve().parent


def shoot(run_dir: str, name: str, height_px: int = 2250) -> Path:
    run = load_run(run_dir)
    page = run.path / "glance.html"
    page.write_text(render_page(run, (verdict_section, target_section, topology_section)), encoding="utf-8")
    browser = next(p for b in ("chromium", "chromium-browser", "google-chrome") if (p := shutil.which(b)))
    out = HERE / f"{name}.png"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={profile}",
                        "--virtual-time-budget=20000", f"--window-size=1300,{height_px}", f"--screenshot={out}", page.as_uri()],
                       check=True, capture_output=True, timeout=180)
    page.unlink()
    return out


if __name__ == "__main__":
    args = sys.argv[1:]
    for run_dir, name in zip(args[::2], args[1::2]):
        print(shoot(run_dir, name))
