"""ogbn-proteins (Hu et al., 2020), the benchmark of Li et al. (ICML 2021), read from ogb's raw layout with the safety
rules of :mod:`revgnn.datafiles`.

- The raw tables are read here (:func:`read_proteins_raw`), into the same graph as ogb's ``PygNodePropPredDataset``
  (tested), because ogb's reader renames ``raw/species.csv.gz`` over ``raw/node_species.csv.gz`` and truncates float
  ids and labels without a word. Nothing in the folder is renamed or written but ``processed/``; ogb is used only to
  download into a folder that does not exist yet.
- What is checked, each failure one :class:`DatasetError` line naming the file and line: the first line of each table
  before parsing (header row, column count); then every value: integer node ids in ``0..N-1``, finite edge features
  within float32's range, labels exactly 0 or 1; and the counts across files (``num-node-list`` = label rows =
  species rows, ``num-edge-list`` = edge rows = edge-feature rows). The species split is checked on every load
  (:func:`split_problem`): integer ids in range, none twice, the three parts non-empty and disjoint.
- No code runs from the folder: the processed cache and ``split_dict.pt`` are read with ``weights_only=True`` (only
  PyG's graph classes allow-listed), and PyG's ``processed/pre_transform.pt`` and ``pre_filter.pt`` are never read.
- The cache (ogb's format, so ogb reads it too) is built in a staging folder and moved into place with a record of
  the raw files' size, mtime and SHA-256; it is rebuilt from ``raw/`` when it is damaged, fails a check, or a raw file
  changed. The checks cost about 2.5 s at the real size (79M directed edges), against about 34 s for the node-feature
  sum the loader computes anyway (``benchmarks/data_checks.py``, 2-core Xeon under load).
"""
from __future__ import annotations

import contextlib
import gzip
import itertools
import logging
import os
import shutil
import socket
import zlib
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data

from revgnn.datafiles import (MANIFEST, DatasetError, build_in_stage, first_line_problem, make_dirs, manifest_problem, quiet,
                              raw_record, table_problem, write_manifest)

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
        row = int(ea.abs().amax(1).argmax())  # every value finite, but their sum overflows float32
        return "edge-feat.csv.gz", (f"has edge features too large to sum in float32 (largest {float(ea.abs().max()):.3g}"
                                    f" on line {row // 2 + 1}); ogbn-proteins' features lie in [0, 1]")
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


def split_problem(split: dict, num_nodes: int, names: dict[str, str] | None = None, unit: str = "line"
                  ) -> tuple[str, str] | None:
    """Check a node split: three non-empty 1-D integer tensors ``train``/``valid``/``test`` of ids in ``0..N-1``, no id
    twice, the parts disjoint (a test node trained on is no test); (where, what is wrong) or None.

    Args:
        split: ``train``/``valid``/``test`` -> node ids.
        num_nodes: N.
        names: part -> where it was read (default ``split/species/<part>.csv.gz``).
        unit: what an index into a part is called in messages (``line`` for a CSV, 1-based).
    """
    names = names or {part: f"split/species/{part}.csv.gz" for part in ("train", "valid", "test")}
    if not isinstance(split, dict) or sorted(split) != ["test", "train", "valid"]:
        keys = sorted(split) if isinstance(split, dict) else type(split).__name__
        return "split", f"holds {keys}, expected the parts train, valid and test"
    for part in ("train", "valid", "test"):
        idx, rel = split[part], names[part]
        if not isinstance(idx, torch.Tensor) or idx.dim() != 1 or idx.is_floating_point() or idx.dtype == torch.bool:
            return rel, "does not hold one integer node id per " + unit
        if idx.numel() == 0:
            return rel, "holds no node ids"
        out = (idx < 0) | (idx >= num_nodes)
        if bool(out.any()):
            i = int(out.nonzero()[0])
            return rel, f"has node id {int(idx[i])} on {unit} {i + 1}, outside 0..{num_nodes - 1}"
        order = torch.sort(idx, stable=True)
        dup = (order.values[1:] == order.values[:-1]).nonzero()
        if dup.numel():
            j = int(dup[0])
            a, b = sorted((int(order.indices[j]) + 1, int(order.indices[j + 1]) + 1))
            return rel, f"lists node id {int(order.values[j])} twice ({unit}s {a} and {b})"
    for part, other in itertools.combinations(("train", "valid", "test"), 2):
        a, b = split[part], split[other]
        both = torch.isin(b, a)
        if bool(both.any()):
            if a.numel() == b.numel() and bool(both.all()):
                return names[other], f"holds the same node ids as {names[part]}: the parts must be disjoint"
            j = int(both.nonzero()[0])
            i = int((a == b[j]).nonzero()[0])
            return names[other], (f"has node id {int(b[j])} on {unit} {j + 1}, which {names[part]} also lists ({unit} "
                                  f"{i + 1}): the parts must be disjoint, or the model is scored on nodes it saw")
    return None


@contextlib.contextmanager
def _ogb_compatible_torch_load():
    """Allow-list PyG's graph classes for ``torch.load(weights_only=True)`` of an ogb/PyG cache (a pickled
    ``(Data, slices)`` tuple), for the duration of the load only (snap-stanford/ogb#497); nothing else may load."""
    from torch_geometric.data.data import Data as PygData
    from torch_geometric.data.data import DataEdgeAttr, DataTensorAttr
    from torch_geometric.data.storage import EdgeStorage, GlobalStorage, NodeStorage

    safe = [PygData, DataEdgeAttr, DataTensorAttr, GlobalStorage, NodeStorage, EdgeStorage]
    with torch.serialization.safe_globals(safe):
        yield


def read_pyg_cache(path: Path) -> Data:
    """The graph in an ogb/PyG cache: ``(Data, slices)`` as ogb writes it, or ``(dict, slices, cls)`` as PyG >= 2.4's
    ``InMemoryDataset.save`` does; read with ``weights_only=True``, so a file holding anything but tensors, containers
    and PyG's graph classes is refused unread (``pickle.UnpicklingError``). Raises ``ValueError`` on another layout."""
    with _ogb_compatible_torch_load():
        obj = torch.load(path, map_location="cpu", weights_only=True)
    data = obj[0] if isinstance(obj, tuple) and len(obj) in (2, 3) else obj
    if isinstance(data, dict):
        data = Data.from_dict(data)
    if not isinstance(data, Data):
        raise ValueError(f"it holds a {type(obj).__name__}, not a PyG graph")
    return data


def proteins_missing(folder: Path) -> list[str]:
    """Files that ``folder`` (``root/ogbn_proteins``) needs to load ogbn-proteins without a network."""
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


def _species_file(folder: Path) -> str:
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


def _proteins_raw_files(folder: Path) -> list[str]:
    return [f"raw/{f}" for f in PROTEINS_RAW] + [_species_file(folder)]


KEPT = (" Nothing was deleted: fix the file or replace it with a good copy (on a connected machine run `revgnn data "
        "ogbn-proteins --root DIR` and copy it from DIR/ogbn_proteins/).")


def _bad_proteins_file(path: Path, problem: str) -> DatasetError:
    return DatasetError(f"ogbn-proteins: {path} {problem}.{KEPT}")


def _read_table(path: Path, columns: int, what: str, integer: bool) -> np.ndarray:
    """A gzip CSV of ``columns`` numbers per row, as ogb reads it (pandas), refusing what ogb would cast silently.

    Returns (rows, columns) int64 where ``integer`` (a fractional or empty value is refused, not truncated), else
    float64 (empty values are NaN, for the caller to name).
    """
    import pandas as pd
    from pandas.api.types import is_bool_dtype, is_integer_dtype, is_numeric_dtype

    try:
        df = pd.read_csv(path, compression="gzip", header=None)
    except (OSError, EOFError, zlib.error, ValueError, pd.errors.ParserError) as err:
        raise _bad_proteins_file(path, table_problem(path, columns, what) or f"cannot be read ({err})") from err
    if df.shape[1] != columns:
        raise _bad_proteins_file(path, f"has {df.shape[1]} columns, expected {columns} ({what})")
    if not all(is_numeric_dtype(t) and not is_bool_dtype(t) for t in df.dtypes):
        raise _bad_proteins_file(path, table_problem(path, columns, what) or f"has a non-numeric value; each row is "
                                                                              f"{what}")
    if not integer or all(is_integer_dtype(t) for t in df.dtypes):
        return df.to_numpy(np.int64 if integer else np.float64)
    values = df.to_numpy(np.float64)
    bad = ~(np.isfinite(values) & (values == np.round(values)))
    if bad.any():
        r, c = (int(i) for i in np.argwhere(bad)[0])
        v = df.iat[r, c]
        kind = "an empty or NaN value" if np.isnan(v) else f"a non-integer value {float(v):g}"
        raise _bad_proteins_file(path, f"has {kind} on line {r + 1}; each row is {what}, integers only")
    return values.astype(np.int64)


def read_proteins_raw(folder: Path) -> Data:
    """Read ogb's raw ogbn-proteins tables in ``folder/raw`` into ogb's graph, checking what the module docstring lists.

    Returns the graph ogb's ``PygNodePropPredDataset`` builds: ``edge_index`` (2, 2E) int64, each edge followed by its
    inverse; ``edge_attr`` (2E, 8) float32; ``node_species`` (N, 1) int64 taxon ids; ``y`` (N, 112) int64 in {0, 1};
    ``num_nodes`` N. Raises :class:`DatasetError` naming the file and line of the first problem.
    """
    species = _species_file(folder)
    order = ["raw/num-node-list.csv.gz", "raw/num-edge-list.csv.gz", "raw/edge.csv.gz", "raw/edge-feat.csv.gz",
             species, "raw/node-label.csv.gz"]
    for rel in order:
        columns, what = PROTEINS_TABLES[rel.replace("raw/species", "raw/node_species")]
        if bad := first_line_problem(folder / rel, columns, what):
            raise _bad_proteins_file(folder / rel, bad)
    tables = {rel: (folder / rel, *PROTEINS_TABLES[rel.replace("raw/species", "raw/node_species")]) for rel in order}

    def read(rel: str, integer: bool) -> np.ndarray:
        return _read_table(*tables[rel], integer=integer)

    counts = {}
    for rel, noun in (("raw/num-node-list.csv.gz", "nodes"), ("raw/num-edge-list.csv.gz", "edges")):
        v = read(rel, integer=True)
        if v.shape[0] != 1 or v[0, 0] < (1 if noun == "nodes" else 0):
            got = f"{v.shape[0]} lines" if v.shape[0] != 1 else f"{int(v[0, 0])} {noun}"
            raise _bad_proteins_file(folder / rel, f"gives {got}; ogbn-proteins is one graph: one line, its {noun} "
                                                   f"count")
        counts[noun] = int(v[0, 0])
    n, e = counts["nodes"], counts["edges"]
    edge = read("raw/edge.csv.gz", integer=True)  # (E, 2)
    if edge.shape[0] != e:
        raise _bad_proteins_file(folder / "raw/edge.csv.gz", f"has {edge.shape[0]} rows, but num-edge-list.csv.gz "
                                                             f"gives {e} edges")
    feat = read("raw/edge-feat.csv.gz", integer=False)  # (E, 8)
    if feat.shape[0] != e:
        raise _bad_proteins_file(folder / "raw/edge-feat.csv.gz", f"has {feat.shape[0]} rows, but edge.csv.gz has "
                                                                  f"{e} edges")
    if (nan := np.isnan(feat).any(1)).any():
        raise _bad_proteins_file(folder / "raw/edge-feat.csv.gz", f"has an empty, NaN or infinite value on line "
                                                                  f"{int(nan.argmax()) + 1}")
    with np.errstate(over="ignore"):
        feat32 = feat.astype(np.float32)
    if (over := ~np.isfinite(feat32).all(1)).any():
        r = int(over.argmax())
        v = feat[r][~np.isfinite(feat32[r])][0]
        raise _bad_proteins_file(folder / "raw/edge-feat.csv.gz", f"has {v:g} on line {r + 1}, beyond float32's range "
                                                                  f"(|x| < 3.4e38); ogbn-proteins' features lie in "
                                                                  f"[0, 1]")
    del feat
    sp = read(species, integer=True)  # (N, 1) taxon ids
    if sp.shape[0] != n:
        raise _bad_proteins_file(folder / species, f"has {sp.shape[0]} rows, but num-node-list.csv.gz gives {n} nodes")
    y = read("raw/node-label.csv.gz", integer=False)  # (N, 112)
    if y.shape[0] != n:
        raise _bad_proteins_file(folder / "raw/node-label.csv.gz", f"has {y.shape[0]} rows, but num-node-list.csv.gz "
                                                                   f"gives {n} nodes")
    if (bad := ((y != 0) & (y != 1)).any(1)).any():
        r = int(bad.argmax())
        v = y[r][(y[r] != 0) & (y[r] != 1)][0]
        raise _bad_proteins_file(folder / "raw/node-label.csv.gz", f"has an empty, NaN or non-0/1 label on line "
                                                                   f"{r + 1} ({v:g}); labels are 0 or 1")
    edge_index = np.repeat(edge.T, 2, axis=1)  # (2, 2E): ogb's order, each edge then its inverse
    edge_index[0, 1::2], edge_index[1, 1::2] = edge[:, 1], edge[:, 0]
    data = Data(num_nodes=n, edge_index=torch.from_numpy(edge_index),
                edge_attr=torch.from_numpy(np.repeat(feat32, 2, axis=0)), node_species=torch.from_numpy(sp.copy()),
                y=torch.from_numpy(y.astype(np.int64)))
    if bad := proteins_graph_problem(data):
        raise _bad_proteins_file(folder / "raw" / bad[0], bad[1])
    return data


def _unreadable_proteins(folder: Path, err: BaseException) -> DatasetError:
    """The error for files in ``folder`` that could not be read, naming the first bad one (reads them all again)."""
    order = [*SPLIT_FILES, *(f for f in PROTEINS_TABLES if f not in SPLIT_FILES)]  # the small files first
    for rel in order:
        path = folder / rel
        if not path.is_file() and rel == "raw/node_species.csv.gz":
            path = folder / "raw" / "species.csv.gz"
        bad = table_problem(path, *PROTEINS_TABLES[rel]) if path.is_file() else None
        if bad:
            return _bad_proteins_file(path, bad)
    return DatasetError(f"ogbn-proteins: cannot read the files in {folder} ({err!r}). Nothing was deleted: replace "
                        f"the bad file with a good copy (`revgnn data ogbn-proteins --root DIR` on a connected "
                        f"machine).")


def _cached_proteins(folder: Path) -> Data | None:
    """The graph in the processed cache, or None where it must be rebuilt from raw/ (logged: damaged, failing a
    check, or built from raw files that changed since); raises where it cannot be rebuilt."""
    cache = folder / "processed" / PROTEINS_PROCESSED
    missing = _proteins_raw_missing(folder)
    raw_here = [f for f in _proteins_raw_files(folder) if (folder / f).is_file()]
    recorded = (folder / "processed" / MANIFEST).is_file()
    check = raw_here and (recorded or not missing)  # a cache without a record and raw/ incomplete: checks only
    why = manifest_problem(folder / "processed", folder, raw_here, PROTEINS_PROCESSED) if check else None
    if why is None:
        try:
            data = read_pyg_cache(cache)
            bad = proteins_graph_problem(data)
            why = None if bad is None else f"its graph fails a check: {bad[0]} {bad[1]}"
        except MemoryError:
            raise
        except Exception as err:  # truncated, garbage, or refused by weights_only (pickled code): never run
            why = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        if why is None:
            return data
    if missing:
        raise DatasetError(f"ogbn-proteins: {cache} cannot be used ({why}) and cannot be rebuilt: {folder} lacks "
                           f"{', '.join(missing)}. Put ogb's raw files there (`revgnn data ogbn-proteins --root DIR` "
                           f"on a connected machine, then copy DIR/ogbn_proteins/raw/); the cache is then rebuilt.")
    log.warning("ogbn-proteins: %s cannot be used (%s); re-processing it from %s", cache, why, folder / "raw")
    return None


def _process_proteins(root: Path, folder: Path) -> Data:
    """Read and check the raw files, and write the cache and its record through a staging folder."""
    def build(stage: Path) -> Data:
        record = raw_record(folder, _proteins_raw_files(folder))  # before reading: an edit during it is seen later
        data = read_proteins_raw(folder)
        torch.save((data, None), stage / PROTEINS_PROCESSED)  # ogb's own layout: (graph, slices of one graph)
        write_manifest(stage, PROTEINS_PROCESSED, record)
        return data

    return build_in_stage(build, folder / "processed", PROTEINS_PROCESSED, root)


def _download(root: Path, folder: Path) -> None:
    """Download and unzip ogb's proteins.zip into ``folder`` (which does not exist) with ogb's own functions."""
    import ogb.nodeproppred.dataset_pyg as ogb_dataset

    if (root / "proteins").exists():
        raise DatasetError(f"ogbn-proteins: {root / 'proteins'} exists, and ogb's download unpacks into it; move it "
                           f"away or pass another --root")
    if not ogb_dataset.decide_download(PROTEINS_URL):
        raise FileNotFoundError(f"ogbn-proteins: the download from {PROTEINS_URL} was declined")
    with quiet():
        zipped = ogb_dataset.download_url(PROTEINS_URL, str(root))
        ogb_dataset.extract_zip(zipped, str(root))
    os.unlink(zipped)
    shutil.move(str(root / "proteins"), str(folder))


def _proteins_split(folder: Path, num_nodes: int) -> dict[str, torch.Tensor]:
    """ogb's species split: ``split_dict.pt`` where it exists (ogb's rule; read with ``weights_only=True``), else the
    three CSV files; checked by :func:`split_problem`."""
    saved = folder / "split" / "species" / "split_dict.pt"
    if saved.is_file():
        try:
            split = torch.load(saved, map_location="cpu", weights_only=True)
        except Exception as err:  # pickled code is refused unread, as is garbage
            raise _bad_proteins_file(saved, f"cannot be read as tensors only ({type(err).__name__}: "
                                            f"{str(err).splitlines()[0] if str(err) else ''}); ogb reads it before "
                                            f"the CSV files: move it away to use split/species/*.csv.gz") from err
        names = {part: f"split/species/split_dict.pt['{part}']" for part in ("train", "valid", "test")}
        if bad := split_problem(split, num_nodes, names, unit="position"):
            raise _bad_proteins_file(folder / bad[0] if bad[0] != "split" else saved, bad[1])
        return split
    split = {}
    for rel in SPLIT_FILES:
        if bad := first_line_problem(folder / rel, 1, "a node id"):
            raise _bad_proteins_file(folder / rel, bad)
        split[Path(rel).name.split(".")[0]] = torch.from_numpy(_read_table(folder / rel, 1, "a node id", True)[:, 0].copy())
    if bad := split_problem(split, num_nodes):
        raise _bad_proteins_file(folder / bad[0], bad[1])
    return split


def load_ogbn_proteins(root: Path, download: bool = False) -> tuple[Data, dict[str, torch.Tensor]]:
    """ogb's ogbn-proteins graph (``edge_index`` (2, 2E), ``edge_attr`` (2E, 8), ``y`` (N, 112), ``node_species``
    (N, 1) taxon ids) and species split, checked; see the module docstring for what is checked and never changed."""
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
        if fetch:
            _download(root, folder)
        data = None
        if (folder / "processed" / PROTEINS_PROCESSED).is_file():
            data = _cached_proteins(folder)
        if data is None:
            data = _process_proteins(root, folder)
        split = _proteins_split(folder, int(data.num_nodes))
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
