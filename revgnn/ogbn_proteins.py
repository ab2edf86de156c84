"""ogbn-proteins (Hu et al., 2020), the benchmark of Li et al. (ICML 2021), read through ogb with the safety rules of
:mod:`revgnn.datafiles`.

- ogb's ``PygNodePropPredDataset`` parses the raw files; it never downloads into, or deletes, a folder that exists.
- Before ogb parses them, the first line of each raw file is checked (header row, column count); after, the graph it
  built is checked by :func:`proteins_graph_problem` (shapes, node ids in ``0..N-1``, finite edge features, 0/1
  labels), vectorised: about 2.5 s at the real size (79M directed edges), against about 34 s for the node-feature sum
  the loader computes anyway (``benchmarks/data_checks.py``, 2-core Xeon under load). The species split is checked on
  every load (:func:`split_problem`). A failure is one :class:`DatasetError` line naming the file and line.
- The processed cache is built in a staging folder and moved into place; a damaged one is rebuilt from ``raw/``.
"""
from __future__ import annotations

import contextlib
import gzip
import logging
import shutil
import socket
import zlib
from pathlib import Path

import torch
from torch_geometric.data import Data

from revgnn.datafiles import DatasetError, build_in_stage, first_line_problem, make_dirs, quiet, table_problem

log = logging.getLogger(__name__)

PROTEINS_URL = "http://snap.stanford.edu/ogb/data/nodeproppred/proteins.zip"
PROTEINS_RAW = ("edge.csv.gz", "edge-feat.csv.gz", "node-label.csv.gz", "num-node-list.csv.gz", "num-edge-list.csv.gz")
PROTEINS_PROCESSED = "geometric_data_processed.pt"
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
    """Check the graph ogb built from the raw ogbn-proteins files; (raw file, what is wrong) or None.

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
    if ei is None or ei.dim() != 2 or ei.size(0) != 2:
        return "edge.csv.gz", f"has {None if ei is None else ei.size(0)} columns, expected 2 (two node ids)"
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
        line = int((~torch.isfinite(ea)).any(1).nonzero()[0]) // 2 + 1
        return "edge-feat.csv.gz", f"has an empty, NaN or infinite value on line {line}"
    if y is None or y.dim() != 2 or y.size(1) != PROTEINS_TASKS:
        return "node-label.csv.gz", f"has {None if y is None else y.size(-1)} columns, expected {PROTEINS_TASKS} tasks"
    if y.size(0) != n:
        return "node-label.csv.gz", f"has {y.size(0)} rows, but num-node-list.csv.gz gives {n} nodes"
    lo, hi = torch.aminmax(y)  # ogb gives int64 labels, float only where a label is empty or NaN
    if lo < 0 or hi > 1 or y.is_floating_point() and not bool(((y == 0) | (y == 1)).all()):
        line = int(((y != 0) & (y != 1)).any(1).nonzero()[0]) + 1  # NaN != 0 too
        return "node-label.csv.gz", f"has an empty, NaN or non-0/1 label on line {line}"
    if sp is None or sp.shape != (n, 1) or sp.is_floating_point():
        shape = None if sp is None else tuple(sp.shape)
        return "node_species.csv.gz", f"gives species of shape {shape}, expected ({n}, 1) integer taxon ids"
    return None


def split_problem(split: dict[str, torch.Tensor], num_nodes: int) -> tuple[str, str] | None:
    """Check ogb's species split: integer node ids in ``0..N-1``; (split file, what is wrong) or None."""
    for part, idx in split.items():
        rel = f"split/species/{part}.csv.gz"
        if idx.dim() != 1 or idx.is_floating_point():
            return rel, "does not hold one integer node id per line"
        out = (idx < 0) | (idx >= num_nodes)
        if bool(out.any()):
            i = int(out.nonzero()[0])
            return rel, f"has node id {int(idx[i])} on line {i + 1}, outside 0..{num_nodes - 1}"
    return None


@contextlib.contextmanager
def _ogb_compatible_torch_load():
    """Let ogb 1.3.6 read its own PyG caches under torch >= 2.6 (``weights_only=True`` by default).

    ogb calls ``torch.load`` on a pickled ``(Data, slices)`` tuple; the PyG classes are allow-listed here for the
    duration of the load only (snap-stanford/ogb#497).
    """
    from torch_geometric.data.data import Data as PygData
    from torch_geometric.data.data import DataEdgeAttr, DataTensorAttr
    from torch_geometric.data.storage import EdgeStorage, GlobalStorage, NodeStorage

    safe = [PygData, DataEdgeAttr, DataTensorAttr, GlobalStorage, NodeStorage, EdgeStorage]
    ctx = torch.serialization.safe_globals(safe) if hasattr(torch.serialization, "safe_globals") else \
        contextlib.nullcontext()
    with ctx:
        yield


def proteins_missing(folder: Path) -> list[str]:
    """Files that ogb needs in ``folder`` (``root/ogbn_proteins``) to load ogbn-proteins without a network."""
    need = ["RELEASE_v1.txt", *SPLIT_FILES]
    missing = [f for f in need if not (folder / f).is_file()]
    if not (folder / "processed" / PROTEINS_PROCESSED).is_file():
        missing += _proteins_raw_missing(folder)
    return missing


def _proteins_raw_missing(folder: Path) -> list[str]:
    need = [f"raw/{f}" for f in PROTEINS_RAW]
    if not (folder / "raw" / "species.csv.gz").is_file():
        need.append("raw/node_species.csv.gz")
    return [f for f in need if not (folder / f).is_file()]


def _proteins_class(stage: Path | None, fetch: bool):
    """ogb's dataset class, processing into ``stage`` where given, and downloading only where ``fetch``: ogb's
    ``download`` deletes the dataset folder before unpacking, so it never runs on a folder that already exists."""
    from ogb.nodeproppred import PygNodePropPredDataset

    attrs = {} if fetch else {"download": lambda self: None}
    if stage is not None:
        attrs["processed_dir"] = property(lambda self: str(stage))
    return type("OgbnProteins", (PygNodePropPredDataset,), attrs)


KEPT = (" Nothing was deleted: fix the file or replace it with a good copy (on a connected machine run `revgnn data "
        "ogbn-proteins --root DIR` and copy it from DIR/ogbn_proteins/).")


def _bad_proteins_file(path: Path, problem: str) -> DatasetError:
    return DatasetError(f"ogbn-proteins: {path} {problem}.{KEPT}")


def _unreadable_proteins(folder: Path, err: BaseException) -> DatasetError:
    """The error for files in ``folder`` that ogb could not read, naming the first bad one (reads them all again)."""
    order = [*SPLIT_FILES, *(f for f in PROTEINS_TABLES if f not in SPLIT_FILES)]  # the small files first
    for rel in order:
        path = folder / rel
        if not path.is_file() and rel == "raw/node_species.csv.gz":
            path = folder / "raw" / "species.csv.gz"  # ogb renames it on first processing
        bad = table_problem(path, *PROTEINS_TABLES[rel]) if path.is_file() else None
        if bad:
            return _bad_proteins_file(path, bad)
    return DatasetError(f"ogbn-proteins: cannot read the files in {folder} ({err!r}). Nothing was deleted: replace "
                        f"the bad file with a good copy (`revgnn data ogbn-proteins --root DIR` on a connected "
                        f"machine).")


def _cached_proteins(root: Path, folder: Path):
    """ogb's dataset and graph from the processed cache, or (None, None) where the cache is damaged and can be
    rebuilt from raw/ (logged); raises where it cannot."""
    try:
        with quiet(), _ogb_compatible_torch_load():
            ds = _proteins_class(None, fetch=False)("ogbn-proteins", root=str(root))
            data = ds[0]
        bad = proteins_graph_problem(data)
        why = None if bad is None else f"its graph fails a check: {bad[0]} {bad[1]}"
    except MemoryError:
        raise
    except Exception as err:  # a truncated or garbage cache: RuntimeError, EOFError, UnpicklingError, ...
        why = f"{type(err).__name__}: {err}"
    if why is None:
        return ds, data
    cache = folder / "processed" / PROTEINS_PROCESSED
    missing = _proteins_raw_missing(folder)
    if missing:
        raise DatasetError(f"ogbn-proteins: {cache} cannot be used ({why}) and cannot be rebuilt: {folder} lacks "
                           f"{', '.join(missing)}. Put ogb's raw files there (`revgnn data ogbn-proteins --root DIR` "
                           f"on a connected machine, then copy DIR/ogbn_proteins/raw/); the cache is then rebuilt.")
    log.warning("ogbn-proteins: %s cannot be used (%s), as a full disk or a kill can leave it; re-processing it from "
                "%s", cache, why, folder / "raw")
    return None, None


def _process_proteins(root: Path, folder: Path, fetch: bool):
    """Process (and where ``fetch``, download) ogbn-proteins through ogb into a staged cache; check it first."""
    if not fetch:
        for rel, (columns, what) in PROTEINS_TABLES.items():
            path = folder / rel
            if rel == "raw/node_species.csv.gz" and not path.is_file():
                path = folder / "raw" / "species.csv.gz"
            if rel.startswith("raw/") and (bad := first_line_problem(path, columns, what)):
                raise _bad_proteins_file(path, bad)

    def build(stage: Path):
        ds = _proteins_class(stage, fetch)("ogbn-proteins", root=str(root))
        data = ds[0]
        bad = proteins_graph_problem(data)
        if bad:
            raise _bad_proteins_file(folder / "raw" / bad[0], bad[1])
        return ds, data

    return build_in_stage(build, folder / "processed", PROTEINS_PROCESSED, root)


def _proteins_split(ds, folder: Path, num_nodes: int) -> dict[str, torch.Tensor]:
    for rel in SPLIT_FILES:
        if bad := first_line_problem(folder / rel, 1, "a node id"):
            raise _bad_proteins_file(folder / rel, bad)
    split = ds.get_idx_split()
    if bad := split_problem(split, num_nodes):
        raise _bad_proteins_file(folder / bad[0], bad[1])
    return split


def load_ogbn_proteins(root: Path, download: bool = False) -> tuple[Data, dict[str, torch.Tensor]]:
    """ogb's ogbn-proteins graph (``edge_index`` (2, 2E), ``edge_attr`` (2E, 8), ``y`` (N, 112), ``node_species``
    (N, 1) taxon ids) and species split, checked; see the module docstring for what is checked and never deleted."""
    folder = root / ("ogbn_proteins_pyg" if (root / "ogbn_proteins_pyg").is_dir() else "ogbn_proteins")
    missing = proteins_missing(folder)
    if missing and (folder.exists() or not download):
        hint = (f"On a connected machine run `revgnn data ogbn-proteins --root DIR` (or download and unzip "
                f"{PROTEINS_URL} into DIR so that DIR/ogbn_proteins/ holds RELEASE_v1.txt, raw/, split/), then copy "
                f"DIR/ogbn_proteins to {folder}.")
        if folder.exists():
            hint += f" {folder} exists but is incomplete: delete it and fetch it again."
        raise FileNotFoundError(f"ogbn-proteins: missing {', '.join(missing)} in {folder}. {hint}")
    fetch = not folder.exists()  # only then may ogb download, into a folder this call creates
    created = [p for p in (folder, root / "proteins.zip", root / "proteins") if not p.exists()]
    make_dirs(root)
    old_timeout = socket.getdefaulttimeout()
    try:
        socket.setdefaulttimeout(60)  # a dead network fails instead of hanging
        ds = data = None
        if (folder / "processed" / PROTEINS_PROCESSED).is_file():
            ds, data = _cached_proteins(root, folder)
        with quiet(), _ogb_compatible_torch_load():
            if ds is None:
                ds, data = _process_proteins(root, folder, fetch)
            split = _proteins_split(ds, folder, int(data.num_nodes))
    except (OSError, RuntimeError, ValueError, TypeError, IndexError, EOFError, zlib.error) as err:
        network = isinstance(err, OSError) and not isinstance(err, gzip.BadGzipFile)
        bad = err if isinstance(err, DatasetError) else None if fetch and network else _unreadable_proteins(folder, err)
        if not fetch:
            if bad is err:
                raise
            raise bad from err
        for p in created:  # everything under these paths was made by this call
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
        if bad is None:
            raise FileNotFoundError(f"ogbn-proteins: download from {PROTEINS_URL} failed ({err}). Fetch it on a "
                                    f"connected machine with `revgnn data ogbn-proteins --root DIR`.") from err
        raise DatasetError(f"{str(bad).replace(KEPT, '')} The files downloaded by this call were removed; fetch them "
                           f"again.") from err
    finally:
        socket.setdefaulttimeout(old_timeout)
    return data, split
