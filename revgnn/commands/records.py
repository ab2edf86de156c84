"""``revgnn records``: the committed records of ``results/`` (issue 26), from their registry
(:mod:`revgnn.measure.registry`).

Examples::

    revgnn records list                        # every record: kinds, cost, file, where it is shown
    revgnn records check                       # one line per stale record, with its command; exit 1 if any
    revgnn records check fig2-memory accuracy-fig1
    revgnn records regenerate fig2-memory      # run its command, then write its fingerprint
    revgnn records regenerate accuracy-fig1 --memory   # only the memory part of a training record
    revgnn records regenerate stale            # every record that check finds stale (`make records`)
    revgnn records index                       # rewrite the quoted passages (python -m revgnn.book.quotes)

A timing record (``timing`` among its kinds) is fresh while the numbers of its computation are; regenerating one
re-times it on this machine, so ``regenerate`` refuses it unless the machine is idle (load average below 1.2) or
``--force`` is given, and it must run on the CPU the record names.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("records", help="list, check and regenerate the committed records of results/",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=("list", "check", "regenerate", "fingerprint", "index"))
    p.add_argument("names", nargs="*", help="records (default: all; regenerate: a name, 'stale' or 'all')")
    p.add_argument("--memory", action="store_true", help="regenerate: only the memory part (memory_command)")
    p.add_argument("--force", action="store_true", help="regenerate: re-time a timing record on a loaded machine")
    p.set_defaults(func=run)


def parse_train_command(command: str):
    """A recorded ``revgnn train ...`` command as today's parser reads it: (ModelConfig, TrainConfig)."""
    from revgnn.cli import build_parser
    from revgnn.commands.train import model_config, train_config

    words = shlex.split(command)
    if words[:2] != ["revgnn", "train"]:
        raise ValueError(f"not a revgnn train command: {command!r}")
    args = build_parser().parse_args(words[1:])
    return model_config(args), train_config(args)


def _selected(names: list[str]):
    from revgnn.measure.registry import REGISTRY, get

    return list(REGISTRY) if not names or names == ["all"] else [get(n) for n in names]


def run(args) -> int:
    from revgnn.measure import freshness
    from revgnn.measure.registry import REGISTRY

    if args.action == "list":
        for r in _selected(args.names):
            print(f"{r.name:24s} {'+'.join(r.kinds):16s} {r.cost_s:6d} s  {r.file}  shown on: {', '.join(r.shown_on)}")
        return 0
    if args.action == "index":
        # The book's quotes writer, in its own process: the book imports the command line (to read records'
        # commands), so the command line does not import the book.
        done = freshness.run_command([sys.executable, "-m", "revgnn.book.quotes", "--root", str(freshness.ROOT),
                                      "--all"], {}, freshness.ROOT)
        print(done.stdout, end="")
        if done.returncode:
            raise RuntimeError(f"python -m revgnn.book.quotes failed: {done.stderr.strip()[-800:]}")
        return 0
    if args.action == "check":
        stale = 0
        for r in _selected(args.names):
            problems = freshness.check(r, parse_train_command)
            print(freshness.stale_line(r, problems) if problems else f"{r.file}: fresh", flush=True)
            stale += bool(problems)
        return 1 if stale else 0
    if args.action == "fingerprint":
        for r in _selected(args.names):
            freshness.attach_fingerprint(r, parse_train_command)
            print(f"{r.file}: fingerprint written")
        return 0
    if args.names == ["stale"]:
        todo = [r for r in REGISTRY if freshness.check(r, parse_train_command)]
    elif not args.names:
        raise ValueError("name the records to regenerate, 'stale' or 'all'")
    else:
        todo = _selected(args.names)
    for r in todo:
        load = os.getloadavg()[0]
        if "timing" in r.kinds and not args.memory and load > 1.2 and not args.force:
            raise ValueError(f"{r.name} is a timing record: regenerate it on an idle machine (load average now "
                             f"{load:.1f}) on {r.cpu or 'its CPU'}, or pass --force and say so in the record's page")
        done = freshness.regenerate(r, parse_train_command, memory_only=args.memory)
        print(f"{r.file}: regenerated in {done['seconds']:.0f} s (load average {done['loadavg_start'][0]:.1f} -> "
              f"{done['loadavg_end'][0]:.1f})")
    return 0
