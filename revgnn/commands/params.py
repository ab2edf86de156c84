"""``revgnn params``: parameter count of a named preset (Li et al., 2021, Tables 1-2)."""
from __future__ import annotations

import json

from revgnn.nn.presets import PAPER_PARAMS, build_model, count_parameters, get_preset, list_presets


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("params", help="parameter count of a preset, or --list the presets")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--preset", help="preset name, e.g. revgnn-deep")
    g.add_argument("--list", action="store_true", help="list the presets with their configurations")
    p.add_argument("--json", action="store_true", help='print {"preset": ..., "params": N} as JSON')
    p.set_defaults(func=run)


def run(args) -> int:
    if args.list:
        for name in list_presets():
            c = get_preset(name)
            paper, mark = PAPER_PARAMS[name]
            line = (f"{name:20s} model={c.model:7s} L={c.num_layers:<5d} D={c.hidden_channels:<4d} "
                    f"C={c.num_groups} paper={paper:,} [{mark}]")
            print(json.dumps({"preset": name, "config": vars(c)}) if args.json else line)
        return 0
    config = get_preset(args.preset)
    n = count_parameters(build_model(config))
    if args.json:
        print(json.dumps({"preset": args.preset, "params": n}))
    else:
        print(f"{args.preset}: {n:,} parameters")
    return 0
