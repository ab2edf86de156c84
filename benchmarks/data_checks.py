"""Cost of the ogbn-proteins content checks at the real graph's size (issue 10: validate cheaply).

Builds random tensors of ogbn-proteins' processed shapes (132,534 nodes, 79,122,504 directed edges, 8 edge features,
112 tasks) and times :func:`revgnn.ogbn_proteins.proteins_graph_problem` against the node-feature sum the loader
computes anyway (``scatter`` of the edge features), interleaved, median of ``--repeats``. Prints one JSON object.

    OMP_NUM_THREADS=1 python benchmarks/data_checks.py [--edges 79122504] [--repeats 5]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch_geometric.data import Data
from torch_geometric.utils import scatter

from revgnn.ogbn_proteins import proteins_graph_problem

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import provenance  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=132_534)
    p.add_argument("--edges", type=int, default=79_122_504)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    g = torch.Generator().manual_seed(0)
    n, e = args.nodes, args.edges
    data = Data(edge_index=torch.randint(0, n, (2, e), generator=g), edge_attr=torch.rand(e, 8, generator=g),
                y=torch.randint(0, 2, (n, 112), generator=g), node_species=torch.randint(0, 8, (n, 1), generator=g),
                num_nodes=n)
    times = {"checks": [], "feature_sum": []}
    for _ in range(args.repeats):
        t = time.perf_counter()
        assert proteins_graph_problem(data) is None
        times["checks"].append(time.perf_counter() - t)
        t = time.perf_counter()
        scatter(data.edge_attr, data.edge_index[0], dim=0, dim_size=n, reduce="sum")
        times["feature_sum"].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(json.dumps({"nodes": n, "edges": e, "seconds": times, "median_s": med,
                      "checks_over_feature_sum": med["checks"] / med["feature_sum"],
                      "loadavg": os.getloadavg(), "provenance": provenance("cpu")}, indent=1))


if __name__ == "__main__":
    main()
