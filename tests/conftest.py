"""Shared fixtures: tiny ogbn-proteins, ogbn-arxiv and ogbn-products in ogb's raw layout, written offline."""
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


def write_tiny_ogbn_nodes(root: Path, name: str, num_nodes: int = 60, num_edges: int = 200, seed: int = 0) -> Path:
    """Write ogb's raw layout of ogbn-arxiv (directed citations, 128 features, 40 classes, node_year, time split) or
    ogbn-products (edges stored once, 100 features, 47 classes, sales_ranking split); labels are a noisy function of
    the features, so a model can learn them."""
    from revgnn.data.ogbn_nodes import OGBN

    spec = OGBN[name]
    rng = np.random.default_rng(seed)
    folder = root / spec.folder
    src = rng.integers(0, num_nodes, num_edges)
    dst = (src + rng.integers(1, num_nodes, num_edges)) % num_nodes
    x = np.round(rng.standard_normal((num_nodes, spec.num_features)), 4)
    y = np.abs(np.round(x[:, 0] * 7)).astype(int) % spec.num_classes
    _write_csv_gz(folder / "raw" / "edge.csv.gz", np.stack([src, dst], 1))
    _write_csv_gz(folder / "raw" / "node-feat.csv.gz", x)
    _write_csv_gz(folder / "raw" / "node-label.csv.gz", y)
    _write_csv_gz(folder / "raw" / "num-node-list.csv.gz", [num_nodes])
    _write_csv_gz(folder / "raw" / "num-edge-list.csv.gz", [num_edges])
    if "node_year" in spec.node_files:
        _write_csv_gz(folder / "raw" / "node_year.csv.gz", 2010 + np.arange(num_nodes) * 10 // num_nodes)
    idx = rng.permutation(num_nodes)
    a, b = int(0.6 * num_nodes), int(0.8 * num_nodes)
    for part, ids in (("train", idx[:a]), ("valid", idx[a:b]), ("test", idx[b:])):
        _write_csv_gz(folder / "split" / spec.split / f"{part}.csv.gz", np.sort(ids))
    (folder / "RELEASE_v1.txt").write_text(f"{name} release 1 (tiny test copy written by revgnn tests)\n")
    return folder


@pytest.fixture
def tiny_arxiv_root(tmp_path):
    write_tiny_ogbn_nodes(tmp_path, "ogbn-arxiv")
    return tmp_path


@pytest.fixture
def tiny_products_root(tmp_path):
    write_tiny_ogbn_nodes(tmp_path, "ogbn-products")
    return tmp_path
