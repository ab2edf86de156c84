"""``revgnn data NAME --root DIR``: prepare a dataset (downloads an OGB dataset where a network exists).

Bad or damaged files, a read-only root and a full disk are one line naming the file and what to do (exit 2); nothing
that this command did not create is deleted.
"""
from __future__ import annotations

import json
import sys


def add_parser(subparsers):
    p = subparsers.add_parser("data", help="prepare a dataset and print its summary",
                              description=__doc__)
    p.add_argument("name", help="ogbn-proteins, ogbn-arxiv, ogbn-products, synthetic-proteins[-full], ppi, cora, "
                                "planetoid:NAME")
    p.add_argument("--root", help="data root (default $REVGNN_DATA or ~/.cache/revgnn)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from revgnn.data.datasets import default_root, load_dataset

    try:
        ds = load_dataset(args.name, root=args.root, download=True)
    except (ValueError, OSError) as err:  # DatasetError (bad files, read-only root, full disk) is a ValueError
        sys.stderr.write(f"revgnn data: error: {err}\n")
        return 2
    info = {"dataset": ds.name, "root": str(args.root or default_root()), "num_nodes": ds.num_nodes,
            "num_edges": int(ds.data.edge_index.size(1)), "num_features": ds.num_features, "edge_dim": ds.edge_dim,
            "num_species": ds.num_species, "num_tasks": ds.num_tasks, "metric": ds.metric,
            "split": {k: int(v.numel()) for k, v in ds.split.items()}}
    sys.stdout.write((json.dumps(info) if args.json else "\n".join(f"{k}: {v}" for k, v in info.items())) + "\n")
    return 0
