"""Cost of the ogbn-proteins checks run on every load, at the real graph's size (issues 10 and 19: validate cheaply).

Builds random tensors of ogbn-proteins' processed shapes (132,534 nodes, 79,122,504 directed edges, 8 edge features,
112 tasks, the species split's 86,619 / 21,236 / 24,679 ids) and times, interleaved, median of ``--repeats``:
:func:`revgnn.data.proteins_raw.proteins_graph_problem` on the cached graph;
:func:`revgnn.data.ogbn_proteins.split_problem` on the split; the SHA-256 of ``--raw-mb`` MB (the raw files hashed
against the cache's record, :func:`revgnn.data.datafiles.manifest_problem`; the book puts the download at a few
hundred MB); against the node-feature sum the loader computes anyway (``scatter`` of the edge features). Prints
one JSON object.

    OMP_NUM_THREADS=1 python benchmarks/data_checks.py [--edges 79122504] [--raw-mb 300] [--repeats 5]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch_geometric.data import Data
from torch_geometric.utils import scatter

from revgnn.data.ogbn_proteins import split_problem
from revgnn.data.proteins_raw import proteins_graph_problem

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import provenance  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=132_534)
    p.add_argument("--edges", type=int, default=79_122_504)
    p.add_argument("--raw-mb", type=int, default=300, help="MB of raw files hashed on each load")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    g = torch.Generator().manual_seed(0)
    n, e = args.nodes, args.edges
    data = Data(edge_index=torch.randint(0, n, (2, e), generator=g), edge_attr=torch.rand(e, 8, generator=g),
                y=torch.randint(0, 2, (n, 112), generator=g), node_species=torch.randint(0, 8, (n, 1), generator=g),
                num_nodes=n)
    perm = torch.randperm(n, generator=g)
    a, b = round(0.6536 * n), round(0.8138 * n)  # ogbn-proteins' 86,619 / 21,236 / 24,679 at n = 132,534
    split = {"train": perm[:a], "valid": perm[a:b], "test": perm[b:]}
    raw = memoryview(os.urandom(args.raw_mb * 2**20))
    times = {"checks": [], "split_checks": [], "raw_sha256": [], "feature_sum": []}
    for _ in range(args.repeats):
        t = time.perf_counter()
        assert proteins_graph_problem(data) is None
        times["checks"].append(time.perf_counter() - t)
        t = time.perf_counter()
        assert split_problem(split, n) is None
        times["split_checks"].append(time.perf_counter() - t)
        t = time.perf_counter()
        digest = hashlib.sha256()
        for i in range(0, len(raw), 1 << 24):  # as datafiles.sha256 reads a file, 16 MiB at a time
            digest.update(raw[i:i + (1 << 24)])
        times["raw_sha256"].append(time.perf_counter() - t)
        t = time.perf_counter()
        scatter(data.edge_attr, data.edge_index[0], dim=0, dim_size=n, reduce="sum")
        times["feature_sum"].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    every_load = med["checks"] + med["split_checks"] + med["raw_sha256"]
    print(json.dumps({"nodes": n, "edges": e, "raw_mb": args.raw_mb, "seconds": times, "median_s": med,
                      "checks_over_feature_sum": med["checks"] / med["feature_sum"],
                      "every_load_checks_over_feature_sum": every_load / med["feature_sum"],
                      "loadavg": os.getloadavg(), "provenance": provenance("cpu")}, indent=1))


if __name__ == "__main__":
    main()
