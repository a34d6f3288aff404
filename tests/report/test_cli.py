import argparse
import json
import re
from pathlib import Path

import pytest

from testbed import cli as top_cli
from testbed.report import cli


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="testbed")
    cli.register(parser.add_subparsers(dest="command"))
    return parser


def test_report_subcommand_rebuilds_the_page(run_dir, capsys):
    args = _parser().parse_args(["report", str(run_dir)])
    assert args.func(args) == 0
    assert capsys.readouterr().out.strip() == str(run_dir / "report.html")
    assert (run_dir / "report.html").stat().st_size > 1_000_000  # plotly.js is inside


def test_report_subcommand_on_a_missing_folder_raises_a_named_error(tmp_path):
    args = _parser().parse_args(["report", str(tmp_path / "nope")])
    with pytest.raises(FileNotFoundError, match="nope does not exist"):
        args.func(args)


@pytest.mark.skipif("testbed.report.cli" not in top_cli.SUBCOMMAND_MODULES, reason="testbed.report.cli not yet wired into testbed.cli")
def test_testbed_main_report(run_dir, tmp_path, capsys):
    assert top_cli.main(["report", str(run_dir)]) == 0
    assert capsys.readouterr().out.strip().endswith("report.html")
    assert top_cli.main(["report", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def _reports_tree(make_run, tmp_path):
    """Two run folders laid out as the runner does: <reports>/<topology>/<run>."""
    a = make_run("reports/edge3level/run-a")
    b = make_run("reports/edge3level/run-b", seeds=(0, 1, 2))
    for run, extra in ((a, {"tcp_model": "tcp"}), (b, {"tcp_model": "fluid"})):
        config = json.loads((run / "config.json").read_text())
        config["config"].update(extra)
        config["retimed_from"] = str(a) if run == b else None
        (run / "config.json").write_text(json.dumps(config))
    return tmp_path / "reports", a, b


def test_compare_puts_runs_side_by_side_with_their_provenance(make_run, tmp_path, capsys):
    reports, a, b = _reports_tree(make_run, tmp_path)
    assert top_cli.main(["compare", str(a), str(b)]) == 0
    page = Path(capsys.readouterr().out.strip())
    assert page.parent == reports / "compare" and page.name.startswith("compare-")
    html = page.read_text(encoding="utf-8")
    for text in ("edge3level/run-a", "edge3level/run-b", "retimed from", str(a), "fluid max-min flows",
                 "TCP slow start", "Time to target, side by side", "fig-compare-accuracy-time"):
        assert text in html, text
    names = [n.encode().decode("unicode_escape") for n in re.findall(r'"name":"([^"]*run-[ab])"', html)]
    assert {"H-SGD (40,10,2) — edge3level/run-a", "H-SGD (40,10,2) — edge3level/run-b"} <= set(names)  # a curve per run
    # `testbed report A B` is the same comparison, written to the same place
    assert top_cli.main(["report", str(a), str(b)]) == 0
    assert capsys.readouterr().out.strip() == str(page)
    assert top_cli.main(["compare", str(a)]) == 2
    assert "at least two run folders" in capsys.readouterr().err


def test_shared_plotly_js_is_written_once_per_reports_folder(make_run, tmp_path, capsys):
    reports, a, b = _reports_tree(make_run, tmp_path)
    for run in (a, b):
        assert top_cli.main(["report", str(run), "--plotly-js", "shared"]) == 0
    (shared,) = reports.glob("plotly-*.min.js")
    assert shared.stat().st_size > 1_000_000
    for run in (a, b):
        html = (run / "report.html").read_text(encoding="utf-8")
        assert f'src="../../{shared.name}"' in html and len(html) < 1_000_000
    assert top_cli.main(["report", str(a)]) == 0  # the default stays one self-contained file
    assert (a / "report.html").stat().st_size > 1_000_000
