"""Datasets, evaluator and random partitions (Li et al., ICML 2021: ogbn-proteins protocol)."""
import builtins
import hashlib
import os
import re
import shutil
from pathlib import Path

import pytest
import torch
from torch_geometric.utils import scatter

from revgnn.data.datafiles import DatasetError
from revgnn.data.datasets import SHIPPED, evaluate, load_dataset
from revgnn.data.partition import partition_subgraphs, random_partition
from revgnn.data.synthetic import (
    MAX_HOPS,
    NUM_MARKS,
    SyntheticProteinsConfig,
    generate_synthetic_proteins,
    oracle_rocauc,
)


@pytest.fixture(autouse=True)
def no_prompt(monkeypatch):
    def refuse(*_):
        raise AssertionError("a loader called input(); it must never wait for a prompt")
    monkeypatch.setattr(builtins, "input", refuse)


def test_synthetic_proteins_has_the_ogbn_proteins_schema():
    ds = load_dataset("synthetic-proteins", num_nodes=800, num_edges=16_000)
    d = ds.data
    assert d.edge_index.shape == (2, 16_000) and d.edge_attr.shape == (16_000, 8), "ogbn-proteins edge shapes"
    assert float(d.edge_attr.min()) >= 0 and float(d.edge_attr.max()) <= 1, "edge features lie in [0, 1]"
    assert d.y.shape == (800, 112) and set(d.y.unique().tolist()) == {0, 1}, "112 binary tasks"
    assert ds.num_species == 8 and ds.metric == "rocauc" and ds.num_tasks == 112, "8 species, ROC-AUC"
    assert bool((d.edge_index[0] != d.edge_index[1]).all()), "no self-loops"
    x = scatter(d.edge_attr, d.edge_index[0], dim=0, dim_size=800, reduce="sum")
    assert torch.allclose(d.x, x), "node input is the sum of incident edge features (the paper's)"
    half = d.edge_index.size(1) // 2
    assert torch.equal(d.edge_index[:, :half].flip(0), d.edge_index[:, half:]), "every edge in both directions"
    assert torch.equal(d.edge_attr[:half], d.edge_attr[half:]), "both directions carry the same features"
    sp = d.species
    assert bool((sp[d.edge_index[0]] == sp[d.edge_index[1]]).all()), "edges stay inside a species"
    assert set(sp[ds.split["train"]].tolist()) == set(range(6)), "six training species"
    assert set(sp[ds.split["valid"]].tolist()) == {6} and set(sp[ds.split["test"]].tolist()) == {7}, "species split"
    assert torch.equal(torch.cat(list(ds.split.values())).sort().values, torch.arange(800)), \
        "split covers every node once"
    rate = d.y[ds.split["test"]].float().mean(0)
    assert int(((rate > 0) & (rate < 1)).sum()) >= 100, "almost every task has test positives and negatives"


def test_synthetic_proteins_is_deterministic_by_seed():
    a, _ = generate_synthetic_proteins(SyntheticProteinsConfig(num_nodes=500, num_edges=6000, seed=3))
    b, _ = generate_synthetic_proteins(SyntheticProteinsConfig(num_nodes=500, num_edges=6000, seed=3))
    c, _ = generate_synthetic_proteins(SyntheticProteinsConfig(num_nodes=500, num_edges=6000, seed=4))
    assert all(torch.equal(a[k], b[k]) for k in ("edge_index", "edge_attr", "y")), "same seed, same graph"
    assert not torch.equal(a.y, c.y), "another seed, another graph"


def test_synthetic_proteins_pathways_and_marks_are_readable_from_edge_features():
    d, _ = generate_synthetic_proteins(SyntheticProteinsConfig(num_nodes=800, num_edges=12_800, pathway_length=16))
    f = d.functional
    partners = torch.bincount(d.edge_index[0, f], minlength=800)
    assert int(partners.max()) <= 2 and float((partners == 2).float().mean()) > 0.8, "pathways are chains"
    assert 700 < int(f.sum()) // 2 < 800, "about one functional link per protein (chains of 16)"
    ev = d.edge_attr[:, :3]
    assert bool((ev[f] >= 0.5).all()) and bool((ev[~f] < 0.5).all()), "evidence channels separate pathway links"
    src, dst = d.edge_index
    marked = d.marks[src] | d.marks[dst]  # (E, M)
    assert bool((d.edge_attr[:, 3:][marked] >= 0.8).all()), "a mark raises its channel on every incident edge"
    assert float(d.edge_attr[:, 3:][~marked].mean()) == pytest.approx(0.5, abs=0.02), "otherwise uniform"
    rate = d.marks.float().mean(0)
    assert bool((rate[1:] > rate[:1]).all()) and 0.005 < float(rate[0]) < 0.04, "mark rates rise from about 2 %"


@pytest.mark.parametrize("max_hops", [MAX_HOPS, 12])
def test_synthetic_proteins_labels_are_the_reach_of_a_mark_along_pathways(max_hops):
    d, _ = generate_synthetic_proteins(SyntheticProteinsConfig(num_nodes=400, num_edges=4000, label_noise=0.0,
                                                               pathway_length=2 * max_hops + 8, seed=1,
                                                               max_hops=max_hops))
    n = d.num_nodes
    adj = torch.zeros(n, n, dtype=torch.bool)
    adj[d.edge_index[0, d.functional], d.edge_index[1, d.functional]] = True
    within = torch.eye(n, dtype=torch.bool)  # within[i, j]: j lies within k functional hops of i
    expected = {}
    for k in range(1, max_hops + 1):  # grow the balls by boolean matrix products, independently of the generator
        within = within | ((within.float() @ adj.float()) > 0)
        expected[k] = (within.float() @ d.marks.float()) > 0  # (N, M)
    for t in range(d.y.size(1)):
        k, m = int(d.hop[t]), int(d.mark[t])
        assert torch.equal(d.y[:, t].bool(), expected[k][:, m]), f"task {t}: mark {m} within {k} hops"
    assert sorted(set(d.hop.tolist())) == list(range(1, max_hops + 1)), "radii 1..max_hops"
    assert sorted(set(d.mark.tolist())) == list(range(NUM_MARKS)), "every mark is asked about"


def test_synthetic_proteins_depth_matters_for_a_predictor_that_knows_the_truth():
    d, split = generate_synthetic_proteins()  # the default size
    auc = {h: oracle_rocauc(d, split["test"], h) for h in (0, 1, 2, 4, MAX_HOPS)}
    assert auc[0] < auc[1] < auc[2] < auc[4] < auc[MAX_HOPS], "each extra hop of knowledge helps"
    assert auc[MAX_HOPS] > 0.93, "knowing every hop nearly solves it; only the 2 % label noise remains"
    assert auc[MAX_HOPS] - auc[2] > 0.12, "a 2-hop predictor (1-layer RevGNN, C = 2) is far from the ceiling"
    clean, s2 = generate_synthetic_proteins(SyntheticProteinsConfig(label_noise=0.0))
    assert oracle_rocauc(clean, s2["test"], MAX_HOPS) == pytest.approx(1.0), "without noise the oracle is exact"
    with pytest.raises(ValueError, match="hops"):
        oracle_rocauc(d, split["test"], -1)


def test_synthetic_proteins_with_16_hops_gives_8_layers_something_to_gain_over_4():
    d, split = generate_synthetic_proteins(SyntheticProteinsConfig(max_hops=16, pathway_length=40))
    auc = {h: oracle_rocauc(d, split["test"], h) for h in (2, 4, 8, 16)}
    # what RevGNNs (C = 2) of 1, 2, 4 and 8 layers can know at best: each doubling of depth raises the ceiling
    assert auc[4] - auc[2] > 0.05 and auc[8] - auc[4] > 0.05 and auc[16] - auc[8] > 0.03, auc
    assert auc[16] > 0.93, "knowing every hop nearly solves it"
    default, s8 = generate_synthetic_proteins()
    assert oracle_rocauc(default, s8["test"], 16) == oracle_rocauc(default, s8["test"], 8), \
        "on the default graph nothing lies beyond 8 hops"
    with pytest.raises(ValueError, match="max_hops"):
        SyntheticProteinsConfig(max_hops=0)


def test_synthetic_proteins_rejects_bad_sizes():
    with pytest.raises(ValueError, match="even"):
        load_dataset("synthetic-proteins", num_nodes=500, num_edges=6001)
    with pytest.raises(TypeError):
        load_dataset("synthetic-proteins", bogus=1)
    with pytest.raises(ValueError, match="label_noise"):
        load_dataset("synthetic-proteins", label_noise=0.5)
    with pytest.raises(ValueError, match="pathway_length"):
        load_dataset("synthetic-proteins", pathway_length=1)


@pytest.mark.slow
def test_synthetic_proteins_scales_to_ogbn_proteins_node_count():
    ds = load_dataset("synthetic-proteins", num_nodes=132_534, num_edges=7_912_250)
    assert ds.data.x.shape == (132_534, 8) and ds.data.y.shape == (132_534, 112), "ogbn-proteins node shapes"
    assert [v.numel() for v in ds.split.values()] == [86_619, 21_236, 24_679], "ogbn-proteins split sizes"
    assert ds.data.edge_index.size(1) == 7_912_250, "exactly the edges asked for"


def test_tiny_ogbn_proteins_loads_through_ogb_offline(tiny_proteins_root):
    for _ in range(2):  # first call reads raw/, second the cache (ogb's layout, weights_only=True)
        ds = load_dataset("ogbn-proteins", root=tiny_proteins_root)
        d = ds.data
        assert d.edge_index.size(1) == 240, "ogb adds the inverse of each undirected edge"
        assert d.y.shape == (40, 112) and ds.num_tasks == 112 and ds.metric == "rocauc", "112 tasks"
        x = scatter(d.edge_attr, d.edge_index[0], dim=0, dim_size=40, reduce="sum")
        assert torch.allclose(d.x, x), "node input is the sum of incident edge features"
        assert d.species.min() == 0 and d.species.max() == 7, "taxon ids mapped to 8 species indices"
        assert [v.numel() for v in ds.split.values()] == [30, 5, 5], "ogb's species split is read"


def test_missing_ogbn_proteins_fails_fast_with_instructions(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"revgnn data ogbn-proteins --root"):
        load_dataset("ogbn-proteins", root=tmp_path)
    (tmp_path / "ogbn_proteins" / "raw").mkdir(parents=True)  # ogb would prompt here: no RELEASE_v1.txt
    with pytest.raises(FileNotFoundError, match="RELEASE_v1.txt"):
        load_dataset("ogbn-proteins", root=tmp_path, download=True)


def test_unreadable_ogbn_proteins_files_give_a_clear_error(tiny_proteins_root):
    (tiny_proteins_root / "ogbn_proteins" / "raw" / "edge.csv.gz").write_bytes(b"not gzip")
    with pytest.raises(DatasetError, match="raw/edge.csv.gz is not a valid gzip file"):
        load_dataset("ogbn-proteins", root=tiny_proteins_root)


@pytest.mark.ogbn_proteins
def test_real_ogbn_proteins():
    root = Path(os.environ.get("REVGNN_DATA", Path.home() / ".cache" / "revgnn"))
    if not (root / "ogbn_proteins" / "RELEASE_v1.txt").is_file():
        pytest.skip(f"real ogbn-proteins files absent from {root}/ogbn_proteins (run `revgnn data ogbn-proteins`)")
    ds = load_dataset("ogbn-proteins", root=root)
    assert ds.num_nodes == 132_534 and ds.data.edge_index.size(1) == 79_122_504, "paper's graph size"
    assert [v.numel() for v in ds.split.values()] == [86_619, 21_236, 24_679], "species split sizes"


def test_ppi_is_the_shipped_node2vec_graph():
    ds = load_dataset("ppi")
    assert ds.num_nodes == 3890 and ds.num_tasks == 50 and ds.metric == "rocauc", "3,890 proteins, 50 labels"
    assert ds.data.edge_attr is None and ds.num_features == 1, "structure only: log-degree input"
    sizes = [v.numel() for v in ds.split.values()]
    assert sizes == [2334, 778, 778], "seeded 60/20/20 split"
    allidx = torch.cat(list(ds.split.values()))
    assert allidx.unique().numel() == 3890, "split parts are disjoint and cover all nodes"
    assert torch.equal(load_dataset("ppi").split["test"], ds.split["test"]), "the split is deterministic"


@pytest.mark.parametrize("name", ["node2vec_PPI", "Cora"])
def test_shipped_files_match_their_readme_checksums(name):
    folder = SHIPPED / name
    readme = (folder / "README.md").read_text()
    rows = re.findall(r"\| (\S+) \| (\d+) \| ([0-9a-f]{64}) \|", readme)
    assert rows, "the README lists sha256 checksums"
    for rel, size, digest in rows:
        data = (folder / rel).read_bytes()
        assert len(data) == int(size) and hashlib.sha256(data).hexdigest() == digest, f"{rel} matches its README"
    assert list(folder.glob("LICENSE*")), "the licence ships with the data"


def test_cora_loads_offline_into_a_writable_root(tmp_path):
    ds = load_dataset("cora", root=tmp_path)
    assert ds.num_nodes == 2708 and ds.num_tasks == 7 and ds.metric == "acc", "Cora, 7 classes, accuracy"
    assert [v.numel() for v in ds.split.values()] == [140, 500, 1000], "Planetoid public split"
    assert (tmp_path / "Cora" / "processed").is_dir(), "PyG processed files go to the root"
    assert not (SHIPPED / "Cora" / "processed").exists(), "nothing is written into the package"


def test_planetoid_reads_a_user_copy_and_reports_missing_or_broken_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="ind.citeseer.x"):
        load_dataset("planetoid:CiteSeer", root=tmp_path)
    shutil.copytree(SHIPPED / "Cora" / "raw", tmp_path / "Cora" / "raw")
    assert load_dataset("planetoid:cora", root=tmp_path).num_nodes == 2708, "a user's raw copy loads"
    broken = tmp_path / "broken"
    shutil.copytree(SHIPPED / "Cora" / "raw", broken / "Cora" / "raw")
    (broken / "Cora" / "raw" / "ind.cora.graph").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="cannot read .*ind.cora.graph"):
        load_dataset("planetoid:cora", root=broken)


def test_unknown_dataset_is_a_value_error():
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("ogbn-nothing")
    with pytest.raises(ValueError, match="Planetoid"):
        load_dataset("planetoid:amazon")


def test_evaluator_is_ogb_rocauc_for_any_task_count_and_accuracy():
    y = torch.randint(0, 2, (50, 5))
    assert evaluate("rocauc", y, y.float()) == pytest.approx(1.0), "perfect scores give ROC-AUC 1"
    assert evaluate("rocauc", y, -y.float()) == pytest.approx(0.0), "reversed scores give ROC-AUC 0"
    c = torch.randint(0, 3, (30,))
    assert evaluate("acc", c, torch.nn.functional.one_hot(c, 3).float()) == 1.0, "argmax accuracy"


def test_random_partition_covers_each_node_once_in_balanced_parts():
    part = random_partition(103, 10, torch.Generator().manual_seed(0))
    counts = torch.bincount(part, minlength=10)
    assert part.shape == (103,) and counts.numel() == 10, "one part id in [0, 10) per node"
    assert int(counts.max() - counts.min()) <= 1, "parts have equal size to within one node"
    assert not torch.equal(part, random_partition(103, 10, torch.Generator().manual_seed(1))), "random, not fixed"
    again = random_partition(103, 10, torch.Generator().manual_seed(0))
    assert torch.equal(part, again), "same generator state, same partition"


def test_partition_subgraphs_are_the_induced_subgraphs():
    ds = load_dataset("synthetic-proteins", num_nodes=400, num_edges=8000)
    d = ds.data
    subs = list(partition_subgraphs(d, 4, torch.Generator().manual_seed(1)))
    assert torch.equal(torch.cat([s.n_id for s in subs]).sort().values, torch.arange(400)), "nodes covered once"
    kept = sum(s.edge_index.size(1) for s in subs)
    assert 0.15 < kept / 8000 < 0.35, "a random 4-way partition keeps about 1/4 of the edges"
    original = set(map(tuple, d.edge_index.t().tolist()))
    for s in subs:
        glob = s.n_id[s.edge_index]
        assert set(map(tuple, glob.t().tolist())) <= original, "subgraph edges are edges of the graph"
        assert torch.equal(s.x, d.x[s.n_id]) and torch.equal(s.y, d.y[s.n_id]), "node attributes follow n_id"
    part = torch.empty(400, dtype=torch.long)
    for k, s in enumerate(subs):
        part[s.n_id] = k
    inside = int((part[d.edge_index[0]] == part[d.edge_index[1]]).sum())
    assert inside == kept, "every edge inside a part is kept"
    full = next(partition_subgraphs(d, 1))
    assert full.edge_index is d.edge_index and torch.equal(full.n_id, torch.arange(400)), "1 part = full graph"


def test_vectorised_rocauc_equals_ogb_evaluator():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (500, 20), generator=g).float()
    y[:, 3] = 0  # a task without positives is skipped, as in ogb
    y[:7, 4] = float("nan")  # unlabeled entries are ignored, as in ogb
    p = (torch.randn(500, 20, generator=g) * 2).round() / 2  # many ties
    fast, ref = evaluate("rocauc", y, p), evaluate("rocauc", y, p, reference=True)
    assert fast == pytest.approx(ref, abs=1e-12), "vectorised ROC-AUC equals ogb's Evaluator"
