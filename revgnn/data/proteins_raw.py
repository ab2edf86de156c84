"""ogbn-proteins' raw tables (Hu et al., 2020; the benchmark of Li et al., ICML 2021), read into the graph ogb's
``PygNodePropPredDataset`` builds, with every value checked (:func:`read_proteins_raw`).

ogb's own reader renames ``raw/species.csv.gz`` over ``raw/node_species.csv.gz``, slices the edges by
``num-edge-list`` whatever ``edge.csv.gz`` holds, and casts float ids and labels to integers without a word; this one
reads the files where they are and refuses, in one :class:`DatasetError` line naming the file and line: a header
row or wrong column count (first line, before parsing); text, empty, fractional or negative node ids; ids beyond
``num-node-list``; edge features that are NaN, beyond float32's range or too large to sum; labels other than 0/1;
and counts that disagree (``num-node-list`` = label rows = species rows, ``num-edge-list`` = edge rows = feature rows).
"""
from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data

from .datafiles import DatasetError, first_line_problem, table_problem

PROTEINS_RAW = ("edge.csv.gz", "edge-feat.csv.gz", "node-label.csv.gz", "num-node-list.csv.gz", "num-edge-list.csv.gz")
PROTEINS_EDGE_DIM = 8
PROTEINS_TASKS = 112
SPLIT_FILES = tuple(f"split/species/{s}.csv.gz" for s in ("train", "valid", "test"))
# ogbn-proteins tables in the order ogb reads them: path in the dataset folder -> (columns, what a row holds)
PROTEINS_TABLES = {
    "raw/edge.csv.gz": (2, "an edge: two node ids"),
    "raw/num-node-list.csv.gz": (1, "the node count"),
    "raw/num-edge-list.csv.gz": (1, "the edge count"),
    "raw/edge-feat.csv.gz": (PROTEINS_EDGE_DIM, f"{PROTEINS_EDGE_DIM} edge features"),
    "raw/node_species.csv.gz": (1, "a node's taxon id"),
    "raw/node-label.csv.gz": (PROTEINS_TASKS, f"{PROTEINS_TASKS} 0/1 labels"),
    **{f: (1, "a node id") for f in SPLIT_FILES},
}


def proteins_graph_problem(data) -> tuple[str, str] | None:
    """Check an ogbn-proteins graph (built from the raw files, or read from a cache); (raw file, what is wrong) or None.

    Vectorised reductions only (min/max of the edge ids, one column sum of the edge features), so the real graph
    (79M directed edges) costs seconds (module docstring). ogb stores each undirected edge twice: directed edge ``j``
    comes from line ``j // 2 + 1`` of ``edge.csv.gz`` and ``edge-feat.csv.gz``.

    Args:
        data: ogb's PyG graph: ``edge_index`` (2, 2E), ``edge_attr`` (2E, 8), ``y`` (N, 112),
            ``node_species`` (N, 1), ``num_nodes`` N.
    """
    n = int(data.num_nodes or 0)
    ei, ea, y, sp = data.edge_index, data.edge_attr, data.y, getattr(data, "node_species", None)
    if n <= 0:
        return "num-node-list.csv.gz", f"gives {n} nodes"
    if ei is None or ei.dim() != 2 or ei.size(0) != 2 or ei.is_floating_point():
        return "edge.csv.gz", f"gives edges of shape {None if ei is None else tuple(ei.shape)}, expected two node ids"
    if ea is None or ea.dim() != 2 or ea.size(1) != PROTEINS_EDGE_DIM:
        return "edge-feat.csv.gz", f"has {None if ea is None else ea.size(-1)} columns, expected {PROTEINS_EDGE_DIM}"
    if ea.size(0) != ei.size(1):
        return "edge-feat.csv.gz", f"has {ea.size(0) // 2} rows, but edge.csv.gz has {ei.size(1) // 2} edges"
    if ei.numel():
        lo, hi = torch.aminmax(ei)
        if lo < 0:
            line = int((ei < 0).any(0).nonzero()[0]) // 2 + 1
            return "edge.csv.gz", f"has a negative or missing node id on line {line}"
        if hi >= n:
            line = int((ei >= n).any(0).nonzero()[0]) // 2 + 1
            return "edge.csv.gz", (f"has node id {int(hi)} (line {line}), but num-node-list.csv.gz gives {n} nodes "
                                   f"(ids 0..{n - 1})")
    if ea.is_floating_point() and not bool(torch.isfinite(ea.sum(0)).all()):  # NaN/inf propagate into the sums
        rows = (~torch.isfinite(ea)).any(1).nonzero()
        if rows.numel():
            return "edge-feat.csv.gz", f"has an empty, NaN or infinite value on line {int(rows[0]) // 2 + 1}"
        big = ea.abs().amax(1)  # (2E,) every value finite, but their sum overflows float32
        row = int(big.argmax())
        return "edge-feat.csv.gz", (f"has edge features too large to sum in float32 (largest {float(big[row]):.3g} "
                                    f"on line {row // 2 + 1}); ogbn-proteins' features lie in [0, 1]")
    if y is None or y.dim() != 2 or y.size(1) != PROTEINS_TASKS:
        return "node-label.csv.gz", f"has {None if y is None else y.size(-1)} columns, expected {PROTEINS_TASKS} tasks"
    if y.size(0) != n:
        return "node-label.csv.gz", f"has {y.size(0)} rows, but num-node-list.csv.gz gives {n} nodes"
    if y.numel() and not bool(((y == 0) | (y == 1)).all()):  # NaN != 0 too
        line = int(((y != 0) & (y != 1)).any(1).nonzero()[0]) + 1
        return "node-label.csv.gz", f"has an empty, NaN or non-0/1 label on line {line}"
    if sp is None or sp.shape != (n, 1) or sp.is_floating_point():
        shape = None if sp is None else tuple(sp.shape)
        return "node_species.csv.gz", f"gives species of shape {shape}, expected ({n}, 1) integer taxon ids"
    return None


def proteins_raw_missing(folder: Path) -> list[str]:
    need = [f"raw/{f}" for f in PROTEINS_RAW]
    if not (folder / "raw" / "species.csv.gz").is_file():
        need.append("raw/node_species.csv.gz")
    return [f for f in need if not (folder / f).is_file()]


def species_file(folder: Path) -> str:
    """The species table to read: ``node_species.csv.gz``, or ``species.csv.gz`` (an older ogb name, read where it
    is, never renamed); both only where they hold the same rows (ogb would rename one over the other)."""
    new, old = folder / "raw" / "node_species.csv.gz", folder / "raw" / "species.csv.gz"
    if not old.is_file():
        return "raw/node_species.csv.gz"
    if not new.is_file():
        return "raw/species.csv.gz"
    try:
        with gzip.open(new, "rb") as a, gzip.open(old, "rb") as b:
            same = a.read() == b.read()
    except (OSError, EOFError, zlib.error):
        same = False
    if not same:
        raise DatasetError(f"ogbn-proteins: {folder / 'raw'} holds both species.csv.gz and node_species.csv.gz, and "
                           f"they differ (ogb would rename species.csv.gz over node_species.csv.gz). Keep the right "
                           f"one and move the other out of raw/; nothing was changed.")
    return "raw/node_species.csv.gz"


def proteins_raw_files(folder: Path) -> list[str]:
    return [f"raw/{f}" for f in PROTEINS_RAW] + [species_file(folder)]


KEPT = (" Nothing was deleted: fix the file or replace it with a good copy (on a connected machine run `revgnn data "
        "ogbn-proteins --root DIR` and copy it from DIR/ogbn_proteins/).")


def bad_proteins_file(path: Path, problem: str) -> DatasetError:
    return DatasetError(f"ogbn-proteins: {path} {problem}.{KEPT}")


def read_table(path: Path, columns: int, what: str, integer: bool,
               bad: Callable[[Path, str], DatasetError] = bad_proteins_file) -> np.ndarray:
    """A gzip CSV of ``columns`` numbers per row, as ogb reads it (pandas), refusing what ogb would cast silently.

    Returns (rows, columns) int64 where ``integer`` (a fractional or empty value is refused, not truncated), else
    float64 (empty values are NaN, for the caller to name). ``bad(path, problem)`` makes the error (the dataset's
    name and advice).
    """
    import pandas as pd
    from pandas.api.types import is_bool_dtype, is_integer_dtype, is_numeric_dtype

    try:
        df = pd.read_csv(path, compression="gzip", header=None)
    except (OSError, EOFError, zlib.error, ValueError, pd.errors.ParserError) as err:
        raise bad(path, table_problem(path, columns, what) or f"cannot be read ({err})") from err
    if df.shape[1] != columns:
        raise bad(path, f"has {df.shape[1]} columns, expected {columns} ({what})")
    if not all(is_numeric_dtype(t) and not is_bool_dtype(t) for t in df.dtypes):
        raise bad(path, table_problem(path, columns, what) or f"has a non-numeric value; each row is {what}")
    if not integer or all(is_integer_dtype(t) for t in df.dtypes):
        return df.to_numpy(np.int64 if integer else np.float64)
    values = df.to_numpy(np.float64)
    fractional = ~(np.isfinite(values) & (values == np.round(values)))
    if fractional.any():
        r, c = (int(i) for i in np.argwhere(fractional)[0])
        v = df.iat[r, c]
        kind = "an empty or NaN value" if np.isnan(v) else f"a non-integer value {float(v):g}"
        raise bad(path, f"has {kind} on line {r + 1}; each row is {what}, integers only")
    return values.astype(np.int64)


def read_proteins_raw(folder: Path) -> Data:
    """Read ogb's raw ogbn-proteins tables in ``folder/raw`` into ogb's graph, checking what the module docstring lists.

    Returns the graph ogb's ``PygNodePropPredDataset`` builds: ``edge_index`` (2, 2E) int64, each edge followed by its
    inverse; ``edge_attr`` (2E, 8) float32; ``node_species`` (N, 1) int64 taxon ids; ``y`` (N, 112) int64 in {0, 1};
    ``num_nodes`` N. Raises :class:`DatasetError` naming the file and line of the first problem.
    """
    species = species_file(folder)
    order = ["raw/num-node-list.csv.gz", "raw/num-edge-list.csv.gz", "raw/edge.csv.gz", "raw/edge-feat.csv.gz",
             species, "raw/node-label.csv.gz"]
    for rel in order:
        columns, what = PROTEINS_TABLES[rel.replace("raw/species", "raw/node_species")]
        if bad := first_line_problem(folder / rel, columns, what):
            raise bad_proteins_file(folder / rel, bad)
    tables = {rel: (folder / rel, *PROTEINS_TABLES[rel.replace("raw/species", "raw/node_species")]) for rel in order}

    def read(rel: str, integer: bool) -> np.ndarray:
        return read_table(*tables[rel], integer=integer)

    counts = {}
    for rel, noun in (("raw/num-node-list.csv.gz", "nodes"), ("raw/num-edge-list.csv.gz", "edges")):
        v = read(rel, integer=True)
        if v.shape[0] != 1 or v[0, 0] < (1 if noun == "nodes" else 0):
            got = f"{v.shape[0]} lines" if v.shape[0] != 1 else f"{int(v[0, 0])} {noun}"
            raise bad_proteins_file(folder / rel, f"gives {got}; ogbn-proteins is one graph: one line, its {noun} "
                                                   f"count")
        counts[noun] = int(v[0, 0])
    n, e = counts["nodes"], counts["edges"]
    edge = read("raw/edge.csv.gz", integer=True)  # (E, 2)
    if edge.shape[0] != e:
        raise bad_proteins_file(folder / "raw/edge.csv.gz", f"has {edge.shape[0]} rows, but num-edge-list.csv.gz "
                                                             f"gives {e} edges")
    feat = read("raw/edge-feat.csv.gz", integer=False)  # (E, 8)
    if feat.shape[0] != e:
        raise bad_proteins_file(folder / "raw/edge-feat.csv.gz", f"has {feat.shape[0]} rows, but edge.csv.gz has "
                                                                  f"{e} edges")
    if (nan := np.isnan(feat).any(1)).any():
        raise bad_proteins_file(folder / "raw/edge-feat.csv.gz", f"has an empty, NaN or infinite value on line "
                                                                  f"{int(nan.argmax()) + 1}")
    with np.errstate(over="ignore"):
        feat32 = feat.astype(np.float32)
    if (over := ~np.isfinite(feat32).all(1)).any():
        r = int(over.argmax())
        v = feat[r][~np.isfinite(feat32[r])][0]
        raise bad_proteins_file(folder / "raw/edge-feat.csv.gz", f"has {v:g} on line {r + 1}, beyond float32's range "
                                                                  f"(|x| < 3.4e38); ogbn-proteins' features lie in "
                                                                  f"[0, 1]")
    del feat
    sp = read(species, integer=True)  # (N, 1) taxon ids
    if sp.shape[0] != n:
        raise bad_proteins_file(folder / species, f"has {sp.shape[0]} rows, but num-node-list.csv.gz gives {n} nodes")
    y = read("raw/node-label.csv.gz", integer=False)  # (N, 112)
    if y.shape[0] != n:
        raise bad_proteins_file(folder / "raw/node-label.csv.gz", f"has {y.shape[0]} rows, but num-node-list.csv.gz "
                                                                   f"gives {n} nodes")
    if (bad := ((y != 0) & (y != 1)).any(1)).any():
        r = int(bad.argmax())
        v = y[r][(y[r] != 0) & (y[r] != 1)][0]
        raise bad_proteins_file(folder / "raw/node-label.csv.gz", f"has an empty, NaN or non-0/1 label on line "
                                                                   f"{r + 1} ({v:g}); labels are 0 or 1")
    edge_index = np.repeat(edge.T, 2, axis=1)  # (2, 2E): ogb's order, each edge then its inverse
    edge_index[0, 1::2], edge_index[1, 1::2] = edge[:, 1], edge[:, 0]
    data = Data(num_nodes=n, edge_index=torch.from_numpy(edge_index),
                edge_attr=torch.from_numpy(np.repeat(feat32, 2, axis=0)), node_species=torch.from_numpy(sp.copy()),
                y=torch.from_numpy(y.astype(np.int64)))
    if bad := proteins_graph_problem(data):
        raise bad_proteins_file(folder / "raw" / bad[0], bad[1])
    return data
