"""The `leadtime` command: each area of the package registers its own subcommands."""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that define `register(subparsers)`; each adds its subcommands and sets `func` on them.
SUBCOMMAND_MODULES: tuple[str, ...] = ("leadtime.api.cli", "leadtime.emulator.cli", "leadtime.run_cli", "leadtime.sim.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="leadtime", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in SUBCOMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CliError as err:
        print(f"leadtime {args.command}: error: {err}", file=sys.stderr)
        return 2


class CliError(Exception):
    """A user error: printed as one line and exit code 2, never a traceback."""


if __name__ == "__main__":
    # Run as `python -m leadtime.cli`, this file is `__main__`, whose CliError is not the one the
    # subcommands raise (`leadtime.cli.CliError`): go through the imported module.
    from leadtime.cli import main as imported_main

    raise SystemExit(imported_main())
