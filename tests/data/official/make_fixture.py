"""Write the official-checkpoint fixtures of tests/test_official.py from the authors' own code.

Usage (the official code is NOT part of revgnn; give a checkout of lightaime/deep_gcns_torch at commit 4f6681e):

    python tests/data/official/make_fixture.py /path/to/deep_gcns_torch tests/data/official

It runs the official ``RevGCN`` (examples/ogb_eff/ogbn_proteins/model_rev.py) with its own dataset pipeline
(``OGBNDataset``: one-hot species by ``LabelEncoder``, node features by ``extract_node_features('add')``) on a
fabricated ogbn-proteins in ogb's raw layout, and writes:

- ``ogbn_proteins/``: the fabricated dataset (raw + species split), 64 nodes with the 8 real taxon ids, isolated
  nodes, a duplicate edge and a self loop;
- ``revgcn_L3_D16_C2.pth``: a checkpoint saved as the official ``utils/ckpt_util.save_ckpt`` saves one
  (``epoch``, ``model_state_dict``, ``optimizer_state_dict``, ``loss``), every parameter perturbed from its init;
- ``expected.pth``: the official inputs (one-hot x, node features, edge_index, edge_attr, taxon ids) and logits on the
  whole graph in float32 and float64, and ogb's ``Evaluator`` ROC-AUC of the float32 logits per split.

``torch_scatter``, ``torch_cluster`` and ``h5py`` are not installed here; small stand-ins are put in ``sys.modules``
(``scatter`` with plain torch; the other two are imported but never called on this path).
"""
import gzip
import os
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch
import torch_geometric  # noqa: F401  (imported before the stand-in, so PyG does not take it for torch_scatter)

TAXA = np.array([3702, 4932, 6239, 7227, 7955, 9606, 10090, 511145])
N, E, T = 64, 180, 112


def _scatter(src, index, dim=0, out=None, dim_size=None, reduce="sum"):
    from torch_geometric.utils import scatter
    return scatter(src, index, dim=dim, dim_size=dim_size, reduce={"add": "sum"}.get(reduce, reduce))


def _stand_ins():
    ts = types.ModuleType("torch_scatter")
    ts.scatter = _scatter
    ts.scatter_add = lambda src, index, dim=0, out=None, dim_size=None: _scatter(src, index, dim, None, dim_size, "sum")
    ts.scatter_mean = lambda src, index, dim=0, out=None, dim_size=None: _scatter(src, index, dim, None, dim_size,
                                                                                  "mean")
    ts.scatter_max = lambda src, index, dim=0, out=None, dim_size=None: (_scatter(src, index, dim, None, dim_size,
                                                                                  "max"), None)

    def scatter_softmax(src, index, dim=0):
        from torch_geometric.utils import softmax
        return softmax(src, index, dim=dim)
    ts.scatter_softmax = scatter_softmax
    tc = types.ModuleType("torch_cluster")
    tc.knn_graph = None
    sys.modules.update({"torch_scatter": ts, "torch_cluster": tc, "h5py": types.ModuleType("h5py")})


def _csv(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as f:
        for r in rows:
            f.write(",".join(str(v) for v in np.atleast_1d(r)) + "\n")


def write_dataset(root: Path) -> None:
    rng = np.random.default_rng(16)
    folder = root / "ogbn_proteins"
    species = TAXA[rng.permutation(np.arange(N) % 8)]          # taxa interleaved, not sorted by node id
    isolated = {60, 61, 62, 63}
    nodes = np.array([v for v in range(N) if v not in isolated])
    src = rng.choice(nodes, E - 2)
    dst = rng.choice(nodes, E - 2)
    dst = np.where(dst == src, rng.choice(nodes, E - 2), dst)
    src = np.append(src, [src[0], 5])                           # a duplicate of edge 0 and a self loop on node 5
    dst = np.append(dst, [dst[0], 5])
    _csv(folder / "raw" / "edge.csv.gz", np.stack([src, dst], 1))
    _csv(folder / "raw" / "edge-feat.csv.gz", np.round(rng.random((E, 8)), 3))
    logit = rng.normal(size=(N, T)) + (species[:, None] % 7 == np.arange(T) % 7)   # labels with some signal
    _csv(folder / "raw" / "node-label.csv.gz", (logit > 0.5).astype(int))
    _csv(folder / "raw" / "node_species.csv.gz", species)
    _csv(folder / "raw" / "num-node-list.csv.gz", [N])
    _csv(folder / "raw" / "num-edge-list.csv.gz", [E])
    idx = np.arange(N)
    for part, ids in (("train", idx[np.isin(species, TAXA[:6])]), ("valid", idx[species == TAXA[6]]),
                      ("test", idx[species == TAXA[7]])):
        _csv(folder / "split" / "species" / f"{part}.csv.gz", ids)
    (folder / "RELEASE_v1.txt").write_text("ogbn-proteins release 1 (fabricated by tests/data/official)\n")


def main(official: str, out: str) -> None:
    official, out = Path(official).resolve(), Path(out).resolve()
    _stand_ins()
    sys.path[:0] = [str(official), str(official / "examples" / "ogb_eff" / "ogbn_proteins")]
    write_dataset(out)
    work = Path(tempfile.mkdtemp())
    import shutil
    shutil.copytree(out / "ogbn_proteins", work / "dataset" / "ogbn_proteins")
    os.chdir(work)                                              # OGBNDataset reads ./dataset and writes ./*.pt
    from dataset import OGBNDataset
    from model_rev import RevGCN
    from ogb.nodeproppred import Evaluator
    from torch_geometric.data.data import Data, DataEdgeAttr, DataTensorAttr
    from torch_geometric.data.storage import EdgeStorage, GlobalStorage, NodeStorage

    with torch.serialization.safe_globals([Data, DataEdgeAttr, DataTensorAttr, GlobalStorage, NodeStorage,
                                           EdgeStorage]):   # ogb 1.3.6 reads its own cache under torch >= 2.6
        ds = OGBNDataset("ogbn-proteins")
    nf_path = ds.extract_node_features("add")
    args = types.SimpleNamespace(num_layers=3, dropout=0.2, group=2, hidden_channels=16, num_tasks=ds.num_tasks,
                                 gcn_aggr="max", t=1.0, learn_t=False, p=1.0, learn_p=False, y=0.0, learn_y=False,
                                 msg_norm=False, learn_msg_scale=False, conv_encode_edge=True, norm="layer",
                                 mlp_layers=2, nf_path=nf_path, use_one_hot_encoding=True, device="cpu")
    torch.manual_seed(16)
    model = RevGCN(args)
    with torch.no_grad():
        for p in model.parameters():                           # LayerNorms off their init, so every map matters
            p.add_(0.3 * torch.randn_like(p))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    ckpt = {"epoch": 7, "model_state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
            "optimizer_state_dict": optimizer.state_dict(), "loss": 0.5}   # utils/ckpt_util.save_ckpt's layout
    torch.save(ckpt, out / "revgcn_L3_D16_C2.pth")

    model.eval()
    node_index = torch.arange(ds.total_no_of_nodes)
    with torch.no_grad():
        logits32 = model(ds.x.float(), node_index, ds.edge_index, ds.edge_attr)
        model64 = RevGCN(args).double()
        model64.load_state_dict(ckpt["model_state_dict"])
        model64.node_features = model64.node_features.double()
        model64.eval()
        logits64 = model64(ds.x.double(), node_index, ds.edge_index, ds.edge_attr.double())
    ev = Evaluator("ogbn-proteins")
    y = ds.y.numpy()
    rocauc = {s: float(ev.eval({"y_true": y[idx.numpy()], "y_pred": logits32[idx].numpy()})["rocauc"])
              for s, idx in (("train", ds.train_idx), ("valid", ds.valid_idx), ("test", ds.test_idx))}
    torch.save({"x_one_hot": ds.x.float(), "node_features": torch.load(nf_path), "edge_index": ds.edge_index,
                "edge_attr": ds.edge_attr, "taxa": ds.species.view(-1), "logits": logits32, "logits64": logits64,
                "rocauc_train": torch.tensor(rocauc["train"], dtype=torch.float64),
                "rocauc_valid": torch.tensor(rocauc["valid"], dtype=torch.float64),
                "rocauc_test": torch.tensor(rocauc["test"], dtype=torch.float64)}, out / "expected.pth")
    print("official full-graph ROC-AUC:", rocauc)


if __name__ == "__main__":
    main(*sys.argv[1:3])
