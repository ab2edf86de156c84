"""The ``revgnn`` command line: ``params``, ``train``, ``data``, ``memory``, ``evaluate``, ``records``.

Each subcommand lives in ``revgnn.commands.<name>`` with ``add_parser(subparsers)`` and ``run(args) -> int``.
Building the parser imports no torch (each command imports what it needs in ``run``), so ``--help`` and argument
errors answer at once. Bad input (an argument error, ValueError, an OSError such as a full disk) becomes one line on
stderr and exit status 2, without a traceback; Ctrl-C or SIGTERM during training saves a checkpoint and exits with
130 or 143 and a line saying how to resume.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys

COMMANDS = ("params", "train", "data", "memory", "evaluate", "records")


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (the usage is on ``--help``), exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="revgnn", description="Reversible GNNs with 1000 layers (Li et al., 2021)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(COMMANDS) + "}")
    for name in COMMANDS:
        importlib.import_module(f"revgnn.commands.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = build_parser().parse_args(argv)
    prefix = f"revgnn {args.command}"
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError) as err:  # FileNotFoundError, a full disk, a read-only folder
        print(f"{prefix}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # outside training (training turns SIGINT into a checkpoint and a clean exit)
        print(f"{prefix}: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT


if __name__ == "__main__":
    sys.exit(main())
