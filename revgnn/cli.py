"""The ``revgnn`` command line: ``params``, ``train``, ``data``, ``memory``.

Each subcommand lives in ``revgnn.commands.<name>`` with ``add_parser(subparsers)`` and ``run(args) -> int``.
Bad input (ValueError, FileNotFoundError) becomes a one-line message and exit status 2, without a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

COMMANDS = ("params", "train", "data", "memory")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="revgnn", description="Reversible GNNs with 1000 layers (Li et al., 2021)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(COMMANDS) + "}")
    for name in COMMANDS:
        importlib.import_module(f"revgnn.commands.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as err:
        print(f"revgnn {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
