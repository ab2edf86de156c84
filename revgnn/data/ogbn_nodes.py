"""ogbn-arxiv and ogbn-products (Hu et al., 2020), the paper's other two datasets (Li et al., ICML 2021, Sec. 5.3),
read from ogb's raw layout with the safety rules of :mod:`revgnn.data.datafiles` and :mod:`revgnn.data.ogbn_proteins`.

- ogbn-arxiv: 169,343 papers, 1,166,243 citations (directed, stored once), 128 features, 40 subject classes, a time
  split (train up to 2017, valid 2018, test 2019); ``raw/node_year.csv.gz`` holds each paper's year.
- ogbn-products: 2,449,029 products, 61,859,140 co-purchase edges (stored once, doubled on load as ogb does),
  100 features, 47 categories, a sales-rank split.

The raw tables are read with pandas, as ogb reads them, and every value is checked (:func:`read_ogbn_raw`): a header
row or wrong column count, text, empty, fractional or negative ids, ids beyond ``num-node-list``, features that are
NaN or beyond float32, class ids outside ``0..C-1`` and counts that disagree are one :class:`DatasetError` line naming
the file and line. Nothing is unpickled (the cache and ``split_dict.pt`` are read with ``weights_only=True``), nothing
in the folder is renamed or deleted, and only ``processed/`` is written, through a staging folder with a record of
the raw files (rebuilt when they change). ogb is used only to download into a folder that does not exist.
"""
from __future__ import annotations

import gzip
import logging
import socket
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data

from .datafiles import (
    MANIFEST,
    DatasetError,
    build_in_stage,
    download_ogb,
    first_line_problem,
    make_dirs,
    manifest_problem,
    raw_record,
    warn_foreign_pyg_files,
    write_manifest,
)
from .ogbn_proteins import PROTEINS_PROCESSED, read_pyg_cache, split_problem
from .proteins_raw import read_table

log = logging.getLogger(__name__)

PROCESSED = PROTEINS_PROCESSED  # ogb's cache name: ogb reads the cache too


@dataclass(frozen=True)
class OgbnSpec:
    """What ogb's ``master.csv`` says of one node-classification dataset, and its published size."""

    name: str
    folder: str                 # root/<folder>: ogb's layout (RELEASE_v1.txt, raw/, split/<split>/)
    url: str
    unpacked: str               # the folder the zip unpacks into
    num_features: int
    num_classes: int
    split: str
    add_inverse_edge: bool      # edges stored once, doubled on load
    node_files: tuple[str, ...]  # additional per-node tables in raw/
    num_nodes: int              # published sizes (the book quotes them; the loader reads the files' own)
    num_edges: int


OGBN = {
    "ogbn-arxiv": OgbnSpec("ogbn-arxiv", "ogbn_arxiv", "http://snap.stanford.edu/ogb/data/nodeproppred/arxiv.zip",
                           "arxiv", 128, 40, "time", False, ("node_year",), 169_343, 1_166_243),
    "ogbn-products": OgbnSpec("ogbn-products", "ogbn_products",
                              "http://snap.stanford.edu/ogb/data/nodeproppred/products.zip", "products", 100, 47,
                              "sales_ranking", True, (), 2_449_029, 61_859_140),
}
NODE_FILE_WHAT = {"node_year": "a paper's year"}


def _tables(spec: OgbnSpec) -> dict[str, tuple[int, str]]:
    """raw file -> (columns, what a row holds), in the order they are read."""
    return {"raw/num-node-list.csv.gz": (1, "the node count"), "raw/num-edge-list.csv.gz": (1, "the edge count"),
            "raw/edge.csv.gz": (2, "an edge: two node ids"),
            "raw/node-feat.csv.gz": (spec.num_features, f"{spec.num_features} node features"),
            "raw/node-label.csv.gz": (1, f"a node's class id in 0..{spec.num_classes - 1}"),
            **{f"raw/{f}.csv.gz": (1, NODE_FILE_WHAT.get(f, "one integer")) for f in spec.node_files}}


def split_files(spec: OgbnSpec) -> list[str]:
    return [f"split/{spec.split}/{part}.csv.gz" for part in ("train", "valid", "test")]


def _kept(spec: OgbnSpec) -> str:
    return (f" Nothing was deleted: fix the file or replace it with a good copy (on a connected machine run `revgnn "
            f"data {spec.name} --root DIR` and copy it from DIR/{spec.folder}/).")


def bad_file(spec: OgbnSpec, path: Path, problem: str) -> DatasetError:
    return DatasetError(f"{spec.name}: {path} {problem}.{_kept(spec)}")


def ogbn_missing(folder: Path, spec: OgbnSpec) -> list[str]:
    """Files that ``folder`` needs to load ``spec`` without a network."""
    need = ["RELEASE_v1.txt", *split_files(spec)]
    if not (folder / "processed" / PROCESSED).is_file():
        need += list(_tables(spec))
    return [f for f in need if not (folder / f).is_file()]


def _ids_problem(edge: np.ndarray, n: int) -> str | None:
    """Why the (E, 2) edge table is not node ids in 0..n-1 (1-based line numbers), or None."""
    if edge.size == 0:
        return None
    low = (edge < 0).any(1)
    if low.any():
        return f"has a negative node id on line {int(low.argmax()) + 1}"
    high = (edge >= n).any(1)
    if high.any():
        line = int(high.argmax())
        return f"has node id {int(edge[line].max())} on line {line + 1}, but num-node-list.csv.gz gives {n} nodes " \
               f"(ids 0..{n - 1})"
    return None


def read_ogbn_raw(folder: Path, spec: OgbnSpec) -> Data:
    """Read ogb's raw tables of ``spec`` in ``folder/raw`` into the graph ogb's ``PygNodePropPredDataset`` builds.

    Returns ``edge_index`` (2, E), or (2, 2E) with each edge followed by its inverse where ogb adds inverse edges;
    ``x`` (N, F) float32; ``y`` (N, 1) int64 class ids; the additional node tables (``node_year`` (N, 1) int64);
    ``num_nodes`` N. Raises :class:`DatasetError` naming the file and line of the first problem.
    """
    tables = _tables(spec)
    for rel, (columns, what) in tables.items():
        if bad := first_line_problem(folder / rel, columns, what):
            raise bad_file(spec, folder / rel, bad)

    def read(rel: str, integer: bool) -> np.ndarray:
        return read_table(folder / rel, *tables[rel], integer=integer,
                          bad=lambda path, problem: bad_file(spec, path, problem))

    counts = {}
    for rel, noun in (("raw/num-node-list.csv.gz", "nodes"), ("raw/num-edge-list.csv.gz", "edges")):
        v = read(rel, integer=True)
        if v.shape[0] != 1 or v[0, 0] < (1 if noun == "nodes" else 0):
            got = f"{v.shape[0]} lines" if v.shape[0] != 1 else f"{int(v[0, 0])} {noun}"
            raise bad_file(spec, folder / rel, f"gives {got}; {spec.name} is one graph: one line, its {noun} count")
        counts[noun] = int(v[0, 0])
    n, e = counts["nodes"], counts["edges"]
    edge = read("raw/edge.csv.gz", integer=True)                             # (E, 2)
    if edge.shape[0] != e:
        raise bad_file(spec, folder / "raw/edge.csv.gz", f"has {edge.shape[0]} rows, but num-edge-list.csv.gz gives "
                                                          f"{e} edges")
    if bad := _ids_problem(edge, n):
        raise bad_file(spec, folder / "raw/edge.csv.gz", bad)
    x = read("raw/node-feat.csv.gz", integer=False)                          # (N, F)
    if x.shape[0] != n:
        raise bad_file(spec, folder / "raw/node-feat.csv.gz", f"has {x.shape[0]} rows, but num-node-list.csv.gz "
                                                               f"gives {n} nodes")
    with np.errstate(over="ignore", invalid="ignore"):
        x32 = x.astype(np.float32)
    if (bad := ~np.isfinite(x32).all(1)).any():
        r = int(bad.argmax())
        raise bad_file(spec, folder / "raw/node-feat.csv.gz", f"has an empty, NaN, infinite or beyond-float32 value "
                                                               f"on line {r + 1}")
    del x
    y = read("raw/node-label.csv.gz", integer=True)                          # (N, 1)
    if y.shape[0] != n:
        raise bad_file(spec, folder / "raw/node-label.csv.gz", f"has {y.shape[0]} rows, but num-node-list.csv.gz "
                                                                f"gives {n} nodes")
    if (bad := (y < 0) | (y >= spec.num_classes)).any():
        r = int(bad.argmax())
        raise bad_file(spec, folder / "raw/node-label.csv.gz", f"has class id {int(y[r, 0])} on line {r + 1}; "
                                                                f"{spec.name} has classes 0..{spec.num_classes - 1}")
    extra = {}
    for name in spec.node_files:
        rel = f"raw/{name}.csv.gz"
        v = read(rel, integer=True)
        if v.shape[0] != n:
            raise bad_file(spec, folder / rel, f"has {v.shape[0]} rows, but num-node-list.csv.gz gives {n} nodes")
        extra[name] = torch.from_numpy(np.ascontiguousarray(v).copy())
    edge_index = edge.T.copy()
    if spec.add_inverse_edge:                                                # (2, 2E): each edge, then its inverse
        edge_index = np.repeat(edge.T, 2, axis=1)
        edge_index[0, 1::2], edge_index[1, 1::2] = edge[:, 1], edge[:, 0]
    return Data(num_nodes=n, edge_index=torch.from_numpy(edge_index), x=torch.from_numpy(x32),
                y=torch.from_numpy(y.copy()), **extra)


def ogbn_graph_problem(data, spec: OgbnSpec) -> tuple[str, str] | None:
    """Check a graph read from a cache: (raw file it comes from, what is wrong) or None. Vectorised reductions only."""
    n = int(data.num_nodes or 0)
    ei, x, y = data.edge_index, data.x, data.y
    if n <= 0:
        return "num-node-list.csv.gz", f"gives {n} nodes"
    if ei is None or ei.dim() != 2 or ei.size(0) != 2 or ei.is_floating_point():
        return "edge.csv.gz", f"gives edges of shape {None if ei is None else tuple(ei.shape)}"
    if ei.numel() and (int(ei.min()) < 0 or int(ei.max()) >= n):
        return "edge.csv.gz", f"has node ids outside 0..{n - 1}"
    if x is None or x.shape != (n, spec.num_features) or not x.is_floating_point() or not bool(x.isfinite().all()):
        return "node-feat.csv.gz", f"is not ({n}, {spec.num_features}) finite features"
    if y is None or y.shape != (n, 1) or y.is_floating_point() or (y.numel() and not (
            0 <= int(y.min()) and int(y.max()) < spec.num_classes)):
        return "node-label.csv.gz", f"is not ({n}, 1) class ids in 0..{spec.num_classes - 1}"
    for name in spec.node_files:
        v = getattr(data, name, None)
        if v is None or v.shape != (n, 1):
            return f"{name}.csv.gz", f"is not ({n}, 1)"
    return None


def _cached(folder: Path, spec: OgbnSpec) -> Data | None:
    """The graph in the processed cache, or None where it must be rebuilt from raw/ (logged)."""
    cache = folder / "processed" / PROCESSED
    warn_foreign_pyg_files(folder / "processed")
    raw_here = [f for f in _tables(spec) if (folder / f).is_file()]
    missing = [f for f in _tables(spec) if f not in raw_here]
    check = raw_here and ((folder / "processed" / MANIFEST).is_file() or not missing)
    why = manifest_problem(folder / "processed", folder, raw_here, PROCESSED) if check else None
    if why is None:
        try:
            data = read_pyg_cache(cache)
            bad = ogbn_graph_problem(data, spec)
            why = None if bad is None else f"its graph fails a check: {bad[0]} {bad[1]}"
        except MemoryError:
            raise
        except Exception as err:  # truncated, garbage, or refused by weights_only (pickled code): never run
            why = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        if why is None:
            return data
    if missing:
        raise DatasetError(f"{spec.name}: {cache} cannot be used ({why}) and cannot be rebuilt: {folder} lacks "
                           f"{', '.join(missing)}. Put ogb's raw files there (`revgnn data {spec.name} --root DIR` on "
                           f"a connected machine, then copy DIR/{spec.folder}/raw/); the cache is then rebuilt.")
    log.warning("%s: %s cannot be used (%s); re-processing it from %s", spec.name, cache, why, folder / "raw")
    return None


def _process(root: Path, folder: Path, spec: OgbnSpec) -> Data:
    def build(stage: Path) -> Data:
        record = raw_record(folder, list(_tables(spec)))  # before reading: an edit during it is seen later
        data = read_ogbn_raw(folder, spec)
        torch.save((data, None), stage / PROCESSED)        # ogb's own layout: (graph, slices of one graph)
        write_manifest(stage, PROCESSED, record)
        return data

    return build_in_stage(build, folder / "processed", PROCESSED, root)


def _split(folder: Path, spec: OgbnSpec, num_nodes: int) -> dict[str, torch.Tensor]:
    """ogb's split: ``split_dict.pt`` where it exists (ogb's rule; read with ``weights_only=True``), else the three
    CSV files; checked by :func:`~revgnn.data.ogbn_proteins.split_problem`."""
    saved = folder / "split" / spec.split / "split_dict.pt"
    if saved.is_file():
        try:
            split = torch.load(saved, map_location="cpu", weights_only=True)
        except Exception as err:  # pickled code is refused unread, as is garbage
            raise bad_file(spec, saved, f"cannot be read as tensors only ({type(err).__name__}); ogb reads it before "
                                        f"the CSV files: move it away to use split/{spec.split}/*.csv.gz") from err
        names = {part: f"split/{spec.split}/split_dict.pt['{part}']" for part in ("train", "valid", "test")}
        if bad := split_problem(split, num_nodes, names, unit="position"):
            raise bad_file(spec, folder / bad[0] if bad[0] != "split" else saved, bad[1])
        return split
    split, names = {}, {}
    for rel in split_files(spec):
        if bad := first_line_problem(folder / rel, 1, "a node id"):
            raise bad_file(spec, folder / rel, bad)
        part = Path(rel).name.split(".")[0]
        ids = read_table(folder / rel, 1, "a node id", integer=True, bad=lambda p, m: bad_file(spec, p, m))
        split[part], names[part] = torch.from_numpy(ids[:, 0].copy()), rel
    if bad := split_problem(split, num_nodes, names):
        raise bad_file(spec, folder / bad[0], bad[1])
    return split


def load_ogbn_nodes(name: str, root: Path, download: bool = False) -> tuple[Data, dict[str, torch.Tensor]]:
    """ogb's graph of ``name`` (``ogbn-arxiv`` or ``ogbn-products``, see :func:`read_ogbn_raw`) and its split,
    checked; see the module docstring for what is checked and never changed."""
    spec = OGBN[name]
    folder = root / (f"{spec.folder}_pyg" if (root / f"{spec.folder}_pyg").is_dir() else spec.folder)
    missing = ogbn_missing(folder, spec)
    if missing and (folder.exists() or not download):
        hint = (f"On a connected machine run `revgnn data {spec.name} --root DIR` (or download and unzip {spec.url} "
                f"into DIR so that DIR/{spec.folder}/ holds RELEASE_v1.txt, raw/, split/), then copy DIR/{spec.folder} "
                f"to {folder}.")
        if folder.exists():
            hint += f" {folder} exists but is incomplete: fetch it again."
        raise FileNotFoundError(f"{spec.name}: missing {', '.join(missing)} in {folder}. {hint}")
    fetch = not folder.exists()  # only then may ogb download, into a folder this call creates
    created = [p for p in (folder, root / f"{spec.unpacked}.zip", root / spec.unpacked) if not p.exists()]
    make_dirs(root)
    old_timeout = socket.getdefaulttimeout()
    try:
        socket.setdefaulttimeout(60)  # a dead network fails instead of hanging
        if fetch:
            download_ogb(root, folder, spec.url, spec.unpacked, spec.name)
        data = _cached(folder, spec) if (folder / "processed" / PROCESSED).is_file() else None
        if data is None:
            data = _process(root, folder, spec)
        split = _split(folder, spec, int(data.num_nodes))
    except (OSError, RuntimeError, ValueError, TypeError, IndexError, EOFError, zlib.error) as err:
        if fetch:
            _remove(created)  # everything under these paths was made by this call
        if isinstance(err, DatasetError) and fetch:
            raise DatasetError(f"{str(err).replace(_kept(spec), '')} The files downloaded by this call were removed; "
                               f"fetch them again.") from err
        if isinstance(err, DatasetError) or (isinstance(err, OSError) and not isinstance(err, gzip.BadGzipFile)
                                             and not fetch):
            raise
        if fetch and isinstance(err, OSError) and not isinstance(err, gzip.BadGzipFile):
            raise FileNotFoundError(f"{spec.name}: download from {spec.url} failed ({err}). Fetch it on a connected "
                                    f"machine with `revgnn data {spec.name} --root DIR`.") from err
        raise DatasetError(f"{spec.name}: cannot read the files in {folder} ({type(err).__name__}: {err}).{_kept(spec)}"
                           ) from err
    finally:
        socket.setdefaulttimeout(old_timeout)
    return data, split


def _remove(paths: list[Path]) -> None:
    import shutil

    for p in paths:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
