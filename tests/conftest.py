"""Shared fixtures: a tiny ogbn-proteins in ogb's raw layout, written offline."""
import gzip
from pathlib import Path

import numpy as np
import pytest


def _write_csv_gz(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as f:
        for r in rows:
            f.write(",".join(str(v) for v in np.atleast_1d(r)) + "\n")


def write_tiny_ogbn_proteins(root: Path, num_nodes: int = 40, num_edges: int = 120, num_tasks: int = 112,
                             seed: int = 0) -> Path:
    """Write ogb's raw ogbn-proteins layout (undirected edges, 8-dim features, taxon ids, species split)."""
    rng = np.random.default_rng(seed)
    folder = root / "ogbn_proteins"
    taxa = np.array([3702, 4932, 6239, 7227, 7955, 9606, 10090, 511145])
    species = taxa[np.arange(num_nodes) % 8]
    src = rng.integers(0, num_nodes, num_edges)
    dst = (src + rng.integers(1, num_nodes, num_edges)) % num_nodes
    _write_csv_gz(folder / "raw" / "edge.csv.gz", np.stack([src, dst], 1))
    _write_csv_gz(folder / "raw" / "edge-feat.csv.gz", np.round(rng.random((num_edges, 8)), 3))
    _write_csv_gz(folder / "raw" / "node-label.csv.gz", rng.integers(0, 2, (num_nodes, num_tasks)))
    _write_csv_gz(folder / "raw" / "node_species.csv.gz", species)
    _write_csv_gz(folder / "raw" / "num-node-list.csv.gz", [num_nodes])
    _write_csv_gz(folder / "raw" / "num-edge-list.csv.gz", [num_edges])
    idx = np.arange(num_nodes)
    for part, ids in (("train", idx[np.isin(species, taxa[:6])]), ("valid", idx[species == taxa[6]]),
                      ("test", idx[species == taxa[7]])):
        _write_csv_gz(folder / "split" / "species" / f"{part}.csv.gz", ids)
    (folder / "RELEASE_v1.txt").write_text("ogbn-proteins release 1 (tiny test copy written by revgnn tests)\n")
    return folder


@pytest.fixture
def tiny_proteins_root(tmp_path):
    write_tiny_ogbn_proteins(tmp_path)
    return tmp_path
