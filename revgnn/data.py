"""Datasets for "Training Graph Neural Networks with 1000 Layers" (Li et al., ICML 2021), behind one entry point.

:func:`load_dataset` returns a :class:`GraphDataset`: one PyG ``Data`` graph, its split, its metric and task count.

- ``ogbn-proteins``: the paper's benchmark, read by ogb's own ``PygNodePropPredDataset`` (species split, 112 binary
  tasks, ROC-AUC). Node input as in the paper: the sum of each node's incident 8-dim edge features (``x``, (N, 8)),
  plus the species index (``species``, (N,), one-hot encoded inside the model). Offline, missing files raise
  :class:`FileNotFoundError` with instructions instead of letting ogb prompt or download; a file that cannot be used
  (bad gzip, header row, wrong column count, node id out of range, NaN, ...) raises
  :class:`revgnn.datafiles.DatasetError` naming it. Nothing the loader did not create in the same call is deleted.
- ``synthetic-proteins`` (and ``synthetic-proteins-full``, ogbn-proteins' exact size): see :mod:`revgnn.synthetic`.
- ``ppi``: the node2vec human PPI graph shipped in ``revgnn/datasets/node2vec_PPI`` (3,890 nodes, 50 labels,
  ROC-AUC), seeded 60/20/20 split. It has no node features; ``x`` is the standardised log-degree (N, 1). Training
  adds label reuse and learnable embeddings on top (:class:`revgnn.train.TrainConfig`).
- ``cora``: Planetoid Cora shipped in ``revgnn/datasets/Cora`` (public split, accuracy); ``planetoid:NAME`` reads
  Cora, CiteSeer or PubMed in PyG's raw Planetoid layout from ``root/NAME/raw``.

Shipped files are copied to ``root`` (default ``$REVGNN_DATA`` or ``~/.cache/revgnn``) before PyG or ogb writes
``processed/`` next to them, so the package directory may be read-only. ``processed/`` is written through a staging
folder (:func:`revgnn.datafiles.build_in_stage`); a damaged one is rebuilt from ``raw/``. A root that cannot be
written is needed only until ``processed/`` exists.
"""
from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data
from torch_geometric.utils import coalesce, degree, remove_self_loops, scatter

from revgnn.datafiles import DatasetError, build_in_stage, disk_error, make_dirs, quiet, usable_root
from revgnn.metrics import rocauc
from revgnn.ogbn_proteins import load_ogbn_proteins
from revgnn.synthetic import FULL_SIZE, SyntheticProteinsConfig, generate_synthetic_proteins

log = logging.getLogger(__name__)

SHIPPED = Path(__file__).parent / "datasets"
DATASETS = ("ogbn-proteins", "synthetic-proteins", "synthetic-proteins-full", "ppi", "cora", "planetoid:NAME")
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
        name: ``ogbn-proteins``, ``synthetic-proteins``, ``synthetic-proteins-full``, ``ppi``, ``cora`` or
            ``planetoid:NAME``.
        root: Writable directory for dataset files; default :func:`default_root`.
        download: Allow ogb to download ogbn-proteins when its files are absent.
        **kwargs: ``synthetic-proteins`` only: fields of :class:`revgnn.synthetic.SyntheticProteinsConfig`.

    Raises:
        ValueError: unknown name or bad parameters.
        FileNotFoundError: files absent offline (the message says where to put them and how to fetch them).
        DatasetError: a file that cannot be used (the message names it and says what to do); nothing is deleted.
    """
    key = name.lower()
    uses_root = root is not None or key in ("ogbn-proteins", "cora") or key.startswith("planetoid:")
    root = Path(root) if root is not None else default_root()
    if uses_root:
        usable_root(root)
    if kwargs and not key.startswith("synthetic-proteins"):
        raise ValueError(f"dataset {name!r} takes no parameters, got {sorted(kwargs)}")
    if key == "ogbn-proteins":
        return _load_ogbn_proteins(root, download)
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
    ds = None
    if (processed / "data.pt").is_file():
        try:
            with quiet():
                ds = Planetoid(str(root), name, transform=NormalizeFeatures())
                data = ds[0]
        except Exception as err:  # a truncated or garbage cache: RuntimeError, EOFError, UnpicklingError, ...
            ds = None
            log.warning("Planetoid %s: %s cannot be used (%s: %s), as a full disk or a kill can leave it; "
                        "re-processing it from %s", name, processed / "data.pt", type(err).__name__, err, raw)
    if ds is None:
        with quiet():
            staged = partial(_staged, Planetoid, root=str(root), name=name, transform=NormalizeFeatures())
            try:
                ds = build_in_stage(staged, processed, "data.pt", root)
            except DatasetError:
                raise
            except Exception as err:  # unreadable or truncated raw pickles
                raise _unreadable_planetoid(raw, name, err) from err
            data = ds[0]
    split = {k: m.nonzero().view(-1) for k, m in
             (("train", data.train_mask), ("valid", data.val_mask), ("test", data.test_mask))}
    data = Data(x=data.x, edge_index=data.edge_index, y=data.y, num_nodes=data.num_nodes)
    return GraphDataset(name.lower(), data, split, "acc", ds.num_classes)


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
