import argparse

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
