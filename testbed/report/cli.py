"""`testbed report RUN_DIR`: rebuild report.html from a run folder (no training, no network).
`testbed compare RUN_DIR RUN_DIR ...`: one page over several run folders."""

from __future__ import annotations

import argparse
from pathlib import Path

from testbed.report.page import PLOTLY_JS_MODES, build_report

PLOTLY_HELP = ("inline (default): plotly.js inside the page, which works offline on its own; shared: plotly.js "
               "written once into the reports folder and linked (4.8 MB less per report)")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `testbed report` and `testbed compare` to the top-level parser."""
    p = subparsers.add_parser("report", help="rebuild report.html from a run folder (several: a comparison)",
                              description=__doc__)
    p.add_argument("run_dirs", metavar="RUN_DIR", type=Path, nargs="+",
                   help="a run folder, e.g. reports/edge3level/latest; two or more make a comparison (as `testbed compare`)")
    p.add_argument("--plotly-js", choices=PLOTLY_JS_MODES, default="inline", help=PLOTLY_HELP)
    p.set_defaults(func=run_report)
    c = subparsers.add_parser("compare", help="one report over several run folders (curves, time to target, provenance)",
                              description=__doc__)
    c.add_argument("run_dirs", metavar="RUN_DIR", type=Path, nargs="+", help="two or more run folders")
    c.add_argument("--out", type=Path, default=None,
                   help="the page to write (default: <reports>/compare/compare-<hash>.html)")
    c.add_argument("--plotly-js", choices=PLOTLY_JS_MODES, default="inline", help=PLOTLY_HELP)
    c.set_defaults(func=run_compare)


def run_report(args: argparse.Namespace) -> int:
    if len(args.run_dirs) > 1:
        args.out = None
        return run_compare(args)
    path = build_report(args.run_dirs[0], plotly_js=args.plotly_js)
    print(path)  # the one line a user (or make) needs: where the report is
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from testbed.report.compare import compare_runs

    print(compare_runs(args.run_dirs, args.out, plotly_js=args.plotly_js))
    return 0
