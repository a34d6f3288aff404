"""The `testbed` command line. Each subsystem registers its own subcommands.

Exit codes: 0 success, 2 bad input (one line on stderr naming the file/key and the rule),
1 the machine refused a write (disk full, read-only file system: one line naming the file).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

# Modules exposing `register(subparsers)`; each adds its own subcommands.
SUBCOMMAND_MODULES = (
    "testbed.experiment.cli",
    "testbed.report.cli",
    "testbed.net.cli",
    "testbed.theory.cli",
)
# The module of each command whose module is known to be light: `testbed topo show` then
# imports only the network layer, not torch (seconds). Other commands load every module.
COMMAND_MODULES = {"topo": "testbed.net.cli", "trace": "testbed.net.cli", "bound": "testbed.theory.cli"}


class UserError(ValueError):
    """Bad input from the user: reported as one line and exit code 2, never a traceback."""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or only of ``command`` where its module is in COMMAND_MODULES."""
    parser = argparse.ArgumentParser(prog="testbed", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = [COMMAND_MODULES[command]] if command in COMMAND_MODULES else SUBCOMMAND_MODULES
    for name in modules:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(next((a for a in argv if not a.startswith("-")), None))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    world = None
    try:
        world = launched_world(args.command)
        return int(args.func(args) or 0)
    except RuntimeError as err:
        from testbed.engine.world import RankLost, lost_message

        if world is None or not isinstance(err, RankLost):
            raise
        from testbed.experiment.distributed import resume_hint

        # torchrun: another rank stopped (a collective failed, or torchrun's SIGTERM)
        print(f"testbed {args.command}: error: {one_line(lost_message(world, err, resume_hint(world)))}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as err:
        print(f"testbed {args.command}: error: {one_line(err)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`testbed topo list | head -1`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit-time flush cannot fail
        return 1
    except OSError as err:  # the machine refused: disk full, read-only file system, I/O error
        print(f"testbed {args.command}: error: {one_line(err)}", file=sys.stderr)
        return 1
    finally:
        if world is not None:  # a rank leaving with gloo's threads alive aborts at exit (SIGABRT)
            from testbed.engine import world as process_group

            process_group.shutdown()


def launched_world(command: str):
    """Under torchrun: join the process group (other ranks then print only warnings and
    errors); None in a plain process."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:  # torchrun sets it; a plain process has none
        return None
    if command != "experiment":
        raise ValueError(f"torchrun launches `testbed experiment` only; run `testbed {command}` as one process")
    from testbed.engine import world

    joined = world.init()
    if not joined.primary:  # rank 0 speaks for the run; the others only report problems
        logging.getLogger().setLevel(logging.WARNING)
        sys.stdout = open(os.devnull, "w")
    return joined


def one_line(err: BaseException | str) -> str:
    """The message of a refusal on one line (a file name may hold a newline)."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        text = f"{err.filename}: {err.strerror}"
    else:
        text = str(err)
    return text.replace("\r", "\\r").replace("\n", "\\n")
