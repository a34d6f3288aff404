"""`testbed report RUN_DIR`: rebuild report.html from a run folder (no training, no network)."""

from __future__ import annotations

import argparse
from pathlib import Path

from testbed.report.page import build_report


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `testbed report` to the top-level parser."""
    p = subparsers.add_parser(
        "report",
        help="rebuild report.html from a run folder",
        description=__doc__,
    )
    p.add_argument("run_dir", metavar="RUN_DIR", type=Path, help="a run folder, e.g. reports/edge3level/latest")
    p.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    path = build_report(args.run_dir)
    print(path)  # the one line a user (or make) needs: where the report is
    return 0
