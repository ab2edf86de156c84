"""ogbn-proteins (Hu et al., 2020), the benchmark of Li et al. (ICML 2021): its folder, cache, split and download,
with the safety rules of :mod:`revgnn.data.datafiles`.

- The raw tables are read and checked by :mod:`revgnn.data.proteins_raw` into the graph ogb builds (tested). Nothing in
  the folder is renamed or written but ``processed/``; ogb is used only to download into a folder that does not exist.
- No code runs from the folder: the processed cache and ``split_dict.pt`` are read with ``weights_only=True`` (only
  PyG's graph classes allow-listed, :func:`read_pyg_cache`), and PyG's ``processed/pre_transform.pt`` and
  ``pre_filter.pt``, which PyG's ``Dataset`` unpickles as full pickles (code and all), are never read.
- The cache (ogb's format, so ogb reads it too) is built in a staging folder and moved into place with a record of
  the raw files' size, mtime and SHA-256; it is rebuilt from ``raw/`` when it is damaged, fails
  :func:`~revgnn.data.proteins_raw.proteins_graph_problem`, or a raw file's size or SHA-256 changed. At the real size
  (79M directed edges) the checks of every load took 1.7 s (graph), 0.2 s (split) and 0.9 s (SHA-256 of 300 MB of raw
  files), against 44 s for the node-feature sum the loader computes anyway (medians of 3, ``benchmarks/data_checks.py``,
  one thread of a 2-core Xeon at load average 7-9).
- The species split is checked on every load (:func:`split_problem`): integer ids in range, none twice, the three
  parts non-empty and disjoint. A failure is one :class:`DatasetError` line naming the file and line.
"""
from __future__ import annotations

import contextlib
import gzip
import itertools
import logging
import shutil
import socket
import zlib
from pathlib import Path

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
    table_problem,
    warn_foreign_pyg_files,
    write_manifest,
)
from .proteins_raw import (
    KEPT,
    PROTEINS_TABLES,
    SPLIT_FILES,
    bad_proteins_file,
    proteins_graph_problem,
    proteins_raw_files,
    proteins_raw_missing,
    read_proteins_raw,
    read_table,
)

log = logging.getLogger(__name__)

PROTEINS_URL = "http://snap.stanford.edu/ogb/data/nodeproppred/proteins.zip"
PROTEINS_PROCESSED = "geometric_data_processed.pt"


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
    if not isinstance(split, dict) or set(split) != {"train", "valid", "test"}:
        keys = sorted(map(str, split)) if isinstance(split, dict) else type(split).__name__
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
        missing += proteins_raw_missing(folder)
    return missing


def _unreadable_proteins(folder: Path, err: BaseException) -> DatasetError:
    """The error for files in ``folder`` that could not be read, naming the first bad one (reads them all again)."""
    order = [*SPLIT_FILES, *(f for f in PROTEINS_TABLES if f not in SPLIT_FILES)]  # the small files first
    for rel in order:
        path = folder / rel
        if not path.is_file() and rel == "raw/node_species.csv.gz":
            path = folder / "raw" / "species.csv.gz"
        bad = table_problem(path, *PROTEINS_TABLES[rel]) if path.is_file() else None
        if bad:
            return bad_proteins_file(path, bad)
    return DatasetError(f"ogbn-proteins: cannot read the files in {folder} ({err!r}). Nothing was deleted: replace "
                        f"the bad file with a good copy (`revgnn data ogbn-proteins --root DIR` on a connected "
                        f"machine).")


def _cached_proteins(folder: Path) -> Data | None:
    """The graph in the processed cache, or None where it must be rebuilt from raw/ (logged: damaged, failing a
    check, or built from raw files that changed since); raises where it cannot be rebuilt."""
    cache = folder / "processed" / PROTEINS_PROCESSED
    warn_foreign_pyg_files(folder / "processed")
    missing = proteins_raw_missing(folder)
    raw_here = [f for f in proteins_raw_files(folder) if (folder / f).is_file()]
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
        record = raw_record(folder, proteins_raw_files(folder))  # before reading: an edit during it is seen later
        data = read_proteins_raw(folder)
        torch.save((data, None), stage / PROTEINS_PROCESSED)  # ogb's own layout: (graph, slices of one graph)
        write_manifest(stage, PROTEINS_PROCESSED, record)
        return data

    return build_in_stage(build, folder / "processed", PROTEINS_PROCESSED, root)


def _download(root: Path, folder: Path) -> None:
    """Download and unzip ogb's proteins.zip into ``folder`` (which does not exist) with ogb's own functions."""
    download_ogb(root, folder, PROTEINS_URL, "proteins", "ogbn-proteins")


def _proteins_split(folder: Path, num_nodes: int) -> dict[str, torch.Tensor]:
    """ogb's species split: ``split_dict.pt`` where it exists (ogb's rule; read with ``weights_only=True``), else the
    three CSV files; checked by :func:`split_problem`."""
    saved = folder / "split" / "species" / "split_dict.pt"
    if saved.is_file():
        try:
            split = torch.load(saved, map_location="cpu", weights_only=True)
        except Exception as err:  # pickled code is refused unread, as is garbage
            raise bad_proteins_file(saved, f"cannot be read as tensors only ({type(err).__name__}: "
                                            f"{str(err).splitlines()[0] if str(err) else ''}); ogb reads it before "
                                            f"the CSV files: move it away to use split/species/*.csv.gz") from err
        names = {part: f"split/species/split_dict.pt['{part}']" for part in ("train", "valid", "test")}
        if bad := split_problem(split, num_nodes, names, unit="position"):
            raise bad_proteins_file(folder / bad[0] if bad[0] != "split" else saved, bad[1])
        return split
    split = {}
    for rel in SPLIT_FILES:
        if bad := first_line_problem(folder / rel, 1, "a node id"):
            raise bad_proteins_file(folder / rel, bad)
        ids = read_table(folder / rel, 1, "a node id", integer=True)[:, 0].copy()  # (n,)
        split[Path(rel).name.split(".")[0]] = torch.from_numpy(ids)
    if bad := split_problem(split, num_nodes):
        raise bad_proteins_file(folder / bad[0], bad[1])
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
