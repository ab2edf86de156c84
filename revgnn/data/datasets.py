"""Datasets for "Training Graph Neural Networks with 1000 Layers" (Li et al., ICML 2021), behind one entry point.

:func:`load_dataset` returns a :class:`GraphDataset`: one PyG ``Data`` graph, its split, its metric and task count.

- ``ogbn-proteins``: the paper's benchmark, read from ogb's raw files into the graph ogb's ``PygNodePropPredDataset``
  builds (:mod:`revgnn.data.ogbn_proteins`; species split, 112 binary tasks, ROC-AUC). Node input as in the paper: the
  sum of each node's incident 8-dim edge features (``x``, (N, 8)), plus the species index (``species``, (N,), one-hot
  encoded inside the model). Offline, missing files raise :class:`FileNotFoundError` with instructions instead of
  letting ogb prompt or download; a file that cannot be used
  (bad gzip, header row, counts that disagree across files, a non-integer id, a label other than 0/1, overlapping
  splits, ...) raises :class:`revgnn.data.datafiles.DatasetError` naming it. Nothing the loader did not create in the
  same call is deleted, and no file but ``processed/`` is renamed or written.
- ``ogbn-arxiv`` and ``ogbn-products``: the paper's other datasets, read from ogb's raw files with the same rules
  (:mod:`revgnn.data.ogbn_nodes`; accuracy by ogb's Evaluator). The graph is the one the paper's code trains on:
  ogbn-arxiv's citations made undirected (the official RevGAT's ``dgl.to_bidirected``), ogbn-products' co-purchases
  as ogb doubles them; both with one self-loop per node (PyG's ``AddSelfLoops``, the official code's
  ``add_self_loop``). ``y`` is (N,) class ids; ogbn-products trains on 10 random parts per epoch and evaluates on the
  whole graph (PyG's ``examples/rev_gnn.py``), ogbn-arxiv trains and evaluates on the whole graph.
- ``synthetic-proteins`` (and ``synthetic-proteins-full``, ogbn-proteins' exact size): see :mod:`revgnn.data.synthetic`.
- ``ppi``: the node2vec human PPI graph shipped in ``revgnn/data/shipped/node2vec_PPI`` (3,890 nodes, 50 labels,
  ROC-AUC), seeded 60/20/20 split. It has no node features; ``x`` is the standardised log-degree (N, 1). Training
  adds label reuse and learnable embeddings on top (:class:`revgnn.training.config.TrainConfig`).
- ``cora``: Planetoid Cora shipped in ``revgnn/data/shipped/Cora`` (public split, accuracy); ``planetoid:NAME`` reads
  Cora, CiteSeer or PubMed in PyG's raw Planetoid layout from ``root/NAME/raw``.

Shipped files are copied to ``root`` (default ``$REVGNN_DATA`` or ``~/.cache/revgnn``) before PyG or ogb writes
``processed/`` next to them, so the package directory may be read-only. ``processed/`` is written through a staging
folder (:func:`revgnn.data.datafiles.build_in_stage`); a damaged one, or one whose raw files changed since (a record of
their size, mtime and SHA-256 lies next to it), is rebuilt from ``raw/``. A root that cannot be written is needed
only until ``processed/`` exists. No code runs from a dataset folder: caches are read here with
``torch.load(weights_only=True)``, never through PyG's ``Dataset``, which unpickles ``processed/pre_transform.pt``
in full; raw Planetoid pickles may name only numpy, scipy and container types
(:func:`revgnn.data.datafiles.pickle_problem`), and must agree with each other (rows, columns, 0/1 labels, test ids).
"""
from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data
from torch_geometric.utils import add_self_loops, coalesce, degree, remove_self_loops, scatter, to_undirected

from .datafiles import (
    DatasetError,
    build_in_stage,
    disk_error,
    make_dirs,
    manifest_problem,
    pickle_problem,
    quiet,
    raw_record,
    safe_unpickle,
    usable_root,
    warn_foreign_pyg_files,
    write_manifest,
)
from .metrics import rocauc
from .ogbn_nodes import OGBN, load_ogbn_nodes
from .ogbn_proteins import load_ogbn_proteins, read_pyg_cache, split_problem
from .synthetic import FULL_SIZE, SyntheticProteinsConfig, generate_synthetic_proteins

log = logging.getLogger(__name__)

SHIPPED = Path(__file__).parent / "shipped"
DATASETS = ("ogbn-proteins", "ogbn-arxiv", "ogbn-products", "synthetic-proteins", "synthetic-proteins-full", "ppi",
            "cora", "planetoid:NAME")
PLANETOID = {"cora": "Cora", "citeseer": "CiteSeer", "pubmed": "PubMed"}
PLANETOID_RAW = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")
PLANETOID_URL = "https://github.com/kimiyoung/planetoid/tree/master/data"
PPI_SPLIT_SEED = 0


@dataclass
class GraphDataset:
    """One graph, its split and its metric.

    Args:
        name: Dataset name as given to :func:`load_dataset`.
        data: PyG graph: ``x`` (N, F) or None, ``edge_index`` (2, E), ``edge_attr`` (E, edge_dim) or None,
            ``species`` (N,) or None, ``y`` (N, T) in {0, 1} (multi-label) or (N,) class ids (multi-class).
        split: ``train``/``valid``/``test`` node indices.
        metric: ``"rocauc"`` (mean over tasks) or ``"acc"``.
        num_tasks: Output channels: tasks (multi-label) or classes (multi-class).
        train_parts: Default random partition size in training (the paper: 10 on ogbn-proteins).
        eval_parts: Default partition size at test time (the paper: 5; 1 = full graph).
    """

    name: str
    data: Data
    split: dict[str, torch.Tensor]
    metric: str
    num_tasks: int
    train_parts: int = 1
    eval_parts: int = 1

    @property
    def multilabel(self) -> bool:
        return self.metric == "rocauc"

    @property
    def num_nodes(self) -> int:
        return int(self.data.num_nodes)

    @property
    def num_features(self) -> int:
        return 0 if self.data.x is None else int(self.data.x.size(1))

    @property
    def edge_dim(self) -> int | None:
        return None if self.data.edge_attr is None else int(self.data.edge_attr.size(1))

    @property
    def num_species(self) -> int | None:
        s = getattr(self.data, "species", None)
        return None if s is None else int(s.max()) + 1


def evaluate(metric: str, y_true: torch.Tensor, y_pred: torch.Tensor, reference: bool = False) -> float:
    """Score predictions: ROC-AUC averaged over any number of tasks, or accuracy (ogb's ``Evaluator`` rules).

    Args:
        metric: ``"rocauc"`` or ``"acc"``.
        y_true: (n, T) labels in {0, 1} for ROC-AUC; (n,) class ids for accuracy.
        y_pred: (n, T) scores (logits) for ROC-AUC; (n, C) logits for accuracy.
        reference: Call ogb's ``Evaluator`` itself (ROC-AUC through scikit-learn, one task at a time) instead of
            the vectorised :func:`rocauc`, which returns the same value.
    """
    if metric == "rocauc" and not reference:
        return rocauc(y_true, y_pred)
    from ogb.nodeproppred import Evaluator

    if metric == "rocauc":
        ev = Evaluator("ogbn-proteins")
        ev.num_tasks = int(y_true.size(1))  # ogb hard-codes 112; its per-task loop works for any count
        return float(ev.eval({"y_true": y_true, "y_pred": y_pred})["rocauc"])
    if metric == "acc":
        ev = Evaluator("ogbn-arxiv")
        pred = y_pred.argmax(-1, keepdim=True) if y_pred.dim() == 2 and y_pred.size(1) > 1 else y_pred.view(-1, 1)
        return float(ev.eval({"y_true": y_true.view(-1, 1), "y_pred": pred})["acc"])
    raise ValueError(f"unknown metric {metric!r}; expected 'rocauc' or 'acc'")


def default_root() -> Path:
    """Writable data root: ``$REVGNN_DATA`` if set, else ``~/.cache/revgnn``."""
    return Path(os.environ.get("REVGNN_DATA", Path.home() / ".cache" / "revgnn"))


def load_dataset(name: str, root: str | os.PathLike | None = None, download: bool = False, **kwargs) -> GraphDataset:
    """Load a dataset by name (see the module docstring for the list).

    Args:
        name: ``ogbn-proteins``, ``ogbn-arxiv``, ``ogbn-products``, ``synthetic-proteins``,
            ``synthetic-proteins-full``, ``ppi``, ``cora`` or ``planetoid:NAME``.
        root: Writable directory for dataset files; default :func:`default_root`.
        download: Allow ogb to download an OGB dataset when its files are absent.
        **kwargs: ``synthetic-proteins`` only: fields of :class:`revgnn.data.synthetic.SyntheticProteinsConfig`.

    Raises:
        ValueError: unknown name or bad parameters.
        FileNotFoundError: files absent offline (the message says where to put them and how to fetch them).
        DatasetError: a file that cannot be used (the message names it and says what to do); nothing is deleted.
    """
    key = name.lower()
    uses_root = root is not None or key in ("ogbn-proteins", "cora", *OGBN) or key.startswith("planetoid:")
    root = Path(root) if root is not None else default_root()
    if uses_root:
        usable_root(root)
    if kwargs and not key.startswith("synthetic-proteins"):
        raise ValueError(f"dataset {name!r} takes no parameters, got {sorted(kwargs)}")
    if key == "ogbn-proteins":
        return _load_ogbn_proteins(root, download)
    if key in OGBN:
        return _load_ogbn_nodes(root, key, download)
    if key in ("synthetic-proteins", "synthetic-proteins-full"):
        params = {**(FULL_SIZE if key.endswith("-full") else {}), **kwargs}
        data, split = generate_synthetic_proteins(SyntheticProteinsConfig(**params))
        big = data.num_nodes > 20_000
        return GraphDataset(key, data, split, "rocauc", data.y.size(1), train_parts=10 if big else 1,
                            eval_parts=5 if big else 1)
    if key == "ppi":
        return _load_ppi()
    if key == "cora":
        return _load_planetoid(root, "Cora", shipped=True)
    if key.startswith("planetoid:"):
        sub = key.split(":", 1)[1]
        if sub not in PLANETOID:
            raise ValueError(f"unknown Planetoid dataset {sub!r}; choose one of {sorted(PLANETOID.values())}")
        return _load_planetoid(root, PLANETOID[sub], shipped=False)
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


def _load_ppi() -> GraphDataset:
    raw = SHIPPED / "node2vec_PPI" / "raw"
    try:
        edges = np.loadtxt(raw / "node2vec_PPI.edgelist", usecols=(0, 1), dtype=np.int64)
        rows = (raw / "node2vec_PPI_labels.txt").read_text().split("\n")
    except (OSError, ValueError) as err:
        raise FileNotFoundError(f"cannot read the shipped PPI files in {raw} ({err}); reinstall revgnn") from err
    rows = [list(map(int, r.split())) for r in rows if r.strip()]
    num_nodes = len(rows)
    y = torch.zeros(num_nodes, 50, dtype=torch.long)
    for r in rows:
        y[r[0] - 1, torch.tensor(r[1:]) - 1] = 1
    edge_index = torch.from_numpy(edges.T - 1)
    edge_index, _ = remove_self_loops(edge_index)  # 894 self-loops; the models' residuals keep a node's own state
    edge_index = coalesce(edge_index, num_nodes=num_nodes)
    deg = torch.log1p(degree(edge_index[0], num_nodes))
    x = ((deg - deg.mean()) / deg.std()).view(-1, 1)  # (N, 1) standardised log-degree
    perm = torch.from_numpy(np.random.default_rng(PPI_SPLIT_SEED).permutation(num_nodes))
    n_train, n_valid = round(0.6 * num_nodes), round(0.2 * num_nodes)
    split = {"train": perm[:n_train].sort().values, "valid": perm[n_train:n_train + n_valid].sort().values,
             "test": perm[n_train + n_valid:].sort().values}
    return GraphDataset("ppi", Data(x=x, edge_index=edge_index, y=y, num_nodes=num_nodes), split, "rocauc", 50)


def _load_planetoid(root: Path, name: str, shipped: bool) -> GraphDataset:
    from torch_geometric.datasets import Planetoid
    from torch_geometric.transforms import NormalizeFeatures

    raw = root / name / "raw"
    files = [f"ind.{name.lower()}.{s}" for s in PLANETOID_RAW]
    if shipped:
        make_dirs(raw)
        for f in files:
            if not (raw / f).exists():
                tmp = raw / f"{f}.tmp{os.getpid()}"
                try:
                    shutil.copyfile(SHIPPED / name / "raw" / f, tmp)
                    os.replace(tmp, raw / f)
                except OSError as err:
                    tmp.unlink(missing_ok=True)  # this call's partial copy
                    if (disk := disk_error(err, raw)) is None:
                        raise
                    raise disk from err
    missing = [f for f in files if not (raw / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"Planetoid {name}: missing {', '.join(missing)} in {raw}. Put PyG's raw Planetoid files there (from "
            f"{PLANETOID_URL}) or pass --root DIR holding {name}/raw/.")
    processed = root / name / "processed"
    rels = [f"raw/{f}" for f in files]
    data = None
    if (processed / "data.pt").is_file():  # read here, not by PyG: PyG unpickles pre_transform.pt with code
        warn_foreign_pyg_files(processed)
        why = manifest_problem(processed, root / name, rels, "data.pt")
        if why is None:
            try:
                data = _planetoid_graph(read_pyg_cache(processed / "data.pt"))
            except Exception as err:  # truncated, garbage, or refused by weights_only (pickled code): never run
                why = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        if data is None:
            log.warning("Planetoid %s: %s cannot be used (%s); re-processing it from %s", name, processed / "data.pt",
                        why, raw)
    if data is None:
        for f in files[:-1]:  # PyG unpickles all but test.index: only numpy, scipy and container types may load
            if bad := pickle_problem(raw / f):
                raise DatasetError(f"Planetoid {name}: cannot read {raw / f}: it {bad}; replace it with a good copy "
                                   f"(from {PLANETOID_URL}). Nothing was deleted.")
        if bad := _planetoid_raw_problem(raw, name):
            raise DatasetError(f"Planetoid {name}: {raw / bad[0]} {bad[1]}; replace the files with good copies (from "
                               f"{PLANETOID_URL}). Nothing was deleted.")

        def build(stage: Path) -> Data:
            record = raw_record(root / name, rels)  # before reading: an edit during it is seen on the next load
            ds = _staged(Planetoid, stage, root=str(root), name=name)
            write_manifest(stage, "data.pt", record)
            return ds[0]

        with quiet():
            try:
                data = _planetoid_graph(build_in_stage(build, processed, "data.pt", root))
            except DatasetError:
                raise
            except Exception as err:  # unreadable or truncated raw pickles
                raise _unreadable_planetoid(raw, name, err) from err
    split = {k: m.nonzero().view(-1) for k, m in
             (("train", data.train_mask), ("valid", data.val_mask), ("test", data.test_mask))}
    names = {"train": "train mask", "valid": "validation mask", "test": f"test mask (ind.{name.lower()}.test.index)"}
    if bad := split_problem(split, int(data.num_nodes), names, unit="position"):
        raise DatasetError(f"Planetoid {name}: the public split read from {raw}: its {bad[0]} {bad[1]}. Replace the "
                           f"files with good copies (from {PLANETOID_URL}). Nothing was deleted.")
    data = NormalizeFeatures()(Data(x=data.x, edge_index=data.edge_index, y=data.y, num_nodes=data.num_nodes))
    return GraphDataset(name.lower(), data, split, "acc", int(data.y.max()) + 1)


def _planetoid_raw_problem(raw: Path, name: str) -> tuple[str, str] | None:
    """Check that the raw Planetoid files agree (Yang et al., 2016 layout): feature rows ``x``/``tx``/``allx`` equal
    the label rows ``y``/``ty``/``ally``, ``test.index`` lists one integer per ``tx`` row, the feature and class
    counts agree across files, and labels are one-hot 0/1 rows; (file, what is wrong) or None. The pickles are read
    through :func:`revgnn.data.datafiles.safe_unpickle` (call after :func:`~revgnn.data.datafiles.pickle_problem`
    passed)."""
    f = {s: f"ind.{name.lower()}.{s}" for s in PLANETOID_RAW}
    arrays = {s: safe_unpickle(raw / f[s]) for s in ("x", "tx", "allx", "y", "ty", "ally")}
    for s, a in arrays.items():
        if len(getattr(a, "shape", ())) != 2:
            return f[s], f"holds a {type(a).__name__}, not a 2-D {'label' if 'y' in s else 'feature'} matrix"
    for feat, lab in (("x", "y"), ("tx", "ty"), ("allx", "ally")):
        if arrays[feat].shape[0] != arrays[lab].shape[0]:
            return f[lab], f"has {arrays[lab].shape[0]} rows, but {f[feat]} has {arrays[feat].shape[0]}"
    for group in (("x", "tx", "allx"), ("y", "ty", "ally")):
        cols = {s: arrays[s].shape[1] for s in group}
        if len(set(cols.values())) > 1:
            other = group[0]
            s = next(s for s in group if cols[s] != cols[other])
            return f[s], f"has {cols[s]} columns, but {f[other]} has {cols[other]}"
    for s in ("y", "ty", "ally"):
        a = np.asarray(arrays[s])
        bad = ~np.isin(a, (0, 1)).all(1)
        if bad.any():
            return f[s], f"has a label other than 0/1 in row {int(bad.argmax()) + 1}"
    lines = (raw / f["test.index"]).read_text().split()
    for i, v in enumerate(lines):
        if not v.lstrip("-").isdigit():
            return f["test.index"], f"has {v!r} on line {i + 1}; each line is one integer node id"
    if len(lines) != arrays["tx"].shape[0]:
        return f["test.index"], f"lists {len(lines)} test nodes, but {f['tx']} has {arrays['tx'].shape[0]} rows"
    return None


def _planetoid_graph(data: Data) -> Data:
    """Check that a Planetoid cache holds what PyG's Planetoid writes: ``x`` (N, F), ``edge_index`` (2, E) in
    ``0..N-1``, ``y`` (N,) class ids and the three (N,) masks; raises ``ValueError`` otherwise."""
    need = ("x", "edge_index", "y", "train_mask", "val_mask", "test_mask")
    if any(not isinstance(getattr(data, k, None), torch.Tensor) for k in need):
        raise ValueError(f"it lacks one of {', '.join(need)}")
    n = data.x.size(0)
    ei = data.edge_index
    if ei.dim() != 2 or ei.size(0) != 2 or ei.is_floating_point() or (ei.numel() and not 0 <= int(ei.min()) <= int(
            ei.max()) < n):
        raise ValueError(f"its edge_index is not (2, E) node ids in 0..{n - 1}")
    if data.y.shape != (n,) or data.y.is_floating_point() or any(data[k].shape != (n,) or data[k].dtype != torch.bool
                                                                  for k in need[3:]):
        raise ValueError(f"its labels or masks are not ({n},)")
    return data


def _staged(cls, stage: Path, **kwargs):
    """A PyG dataset ``cls(**kwargs)`` whose processing writes into ``stage`` (see :func:`build_in_stage`)."""
    return type(cls.__name__, (cls,), {"processed_dir": property(lambda self: str(stage))})(**kwargs)


def _unreadable_planetoid(raw: Path, name: str, err: BaseException) -> DatasetError:
    """The error for raw Planetoid files that PyG could not process, naming the first one that cannot be read."""
    from torch_geometric.io.planetoid import read_file

    for s in PLANETOID_RAW:
        try:
            with quiet():
                read_file(str(raw), name, s)
        except Exception as bad:  # pickle, numpy and text errors of every kind
            return DatasetError(f"Planetoid {name}: cannot read {raw / f'ind.{name.lower()}.{s}'} ({bad!r}); replace "
                                f"it with a good copy (from {PLANETOID_URL}). Nothing was deleted.")
    return DatasetError(f"Planetoid {name}: cannot read the files in {raw} ({err!r}); replace them (from "
                        f"{PLANETOID_URL}). Nothing was deleted.")


def _load_ogbn_proteins(root: Path, download: bool) -> GraphDataset:
    data, split = load_ogbn_proteins(root, download)
    species_raw = data.node_species.view(-1)
    _, species = torch.unique(species_raw, return_inverse=True)  # NCBI taxon ids -> 0..7
    x = scatter(data.edge_attr, data.edge_index[0], dim=0, dim_size=data.num_nodes, reduce="sum")  # (N, 8)
    graph = Data(x=x, edge_index=data.edge_index, edge_attr=data.edge_attr, species=species, y=data.y,
                 num_nodes=data.num_nodes)
    return GraphDataset("ogbn-proteins", graph, split, "rocauc", int(data.y.size(1)), train_parts=10, eval_parts=5)


def _load_ogbn_nodes(root: Path, name: str, download: bool) -> GraphDataset:
    data, split = load_ogbn_nodes(name, root, download)
    n = int(data.num_nodes)
    edge_index = data.edge_index
    if not OGBN[name].add_inverse_edge:
        edge_index = to_undirected(edge_index, num_nodes=n)        # the official RevGAT's dgl.to_bidirected
    edge_index, _ = remove_self_loops(edge_index)
    edge_index, _ = add_self_loops(edge_index, num_nodes=n)        # (2, E + N)
    graph = Data(x=data.x, edge_index=edge_index, y=data.y.view(-1), num_nodes=n)
    products = name == "ogbn-products"
    return GraphDataset(name, graph, split, "acc", OGBN[name].num_classes, train_parts=10 if products else 1,
                        eval_parts=1)
