"""ogbn-arxiv and ogbn-products from ogb's raw layout (fabricated tiny copies, offline): the graph ogb builds, the graph
the paper's code trains on, and one clear line (exit 2) for every corrupt or inconsistent file, nothing deleted."""
import builtins
import gzip
import hashlib
import json
import urllib.request
from pathlib import Path

import pytest
import torch

from revgnn.cli import main
from revgnn.data.datasets import load_dataset
from revgnn.data.ogbn_nodes import OGBN, read_ogbn_raw


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    def refuse(*_, **__):
        raise AssertionError("a loader waited for a prompt or opened a URL")
    monkeypatch.setattr(builtins, "input", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def lines(path: Path) -> list[str]:
    with gzip.open(path, "rt") as f:
        return f.read().splitlines()


def rewrite(path: Path, edit) -> None:
    text = "\n".join(edit(lines(path))) + "\n"
    with gzip.open(path, "wt") as f:
        f.write(text)


def test_arxiv_reads_as_ogb_builds_it_and_trains_undirected_with_self_loops(tiny_arxiv_root):
    folder = tiny_arxiv_root / "ogbn_arxiv"
    raw = read_ogbn_raw(folder, OGBN["ogbn-arxiv"])
    edges = [tuple(map(int, s.split(","))) for s in lines(folder / "raw" / "edge.csv.gz")]
    assert raw.edge_index.t().tolist() == [list(e) for e in edges], "directed citations, in the file's order"
    assert raw.x.shape == (60, 128) and raw.x.dtype == torch.float32 and raw.node_year.shape == (60, 1)
    ds = load_dataset("ogbn-arxiv", root=tiny_arxiv_root)
    assert ds.metric == "acc" and ds.num_tasks == 40 and ds.data.y.shape == (60,)
    pairs = set(map(tuple, ds.data.edge_index.t().tolist()))
    assert all((d, s) in pairs and (s, d) in pairs for s, d in edges), "every citation in both directions"
    assert all((i, i) in pairs for i in range(60)), "one self-loop per node"
    assert len(pairs) == ds.data.edge_index.size(1), "no parallel edges (dgl.to_bidirected)"
    assert ds.train_parts == 1 and ds.eval_parts == 1, "full-batch training and evaluation"


def test_products_doubles_its_edges_as_ogb_and_adds_self_loops(tiny_products_root):
    folder = tiny_products_root / "ogbn_products"
    raw = read_ogbn_raw(folder, OGBN["ogbn-products"])
    edges = [tuple(map(int, s.split(","))) for s in lines(folder / "raw" / "edge.csv.gz")]
    assert raw.edge_index.size(1) == 2 * len(edges), "each stored edge and its inverse (ogb's add_inverse_edge)"
    assert raw.edge_index[:, 1].tolist() == [edges[0][1], edges[0][0]]
    ds = load_dataset("ogbn-products", root=tiny_products_root)
    assert ds.data.edge_index.size(1) == 2 * len(edges) + 60 and ds.num_tasks == 47
    assert ds.train_parts == 10 and ds.eval_parts == 1, "10 random parts in training, the whole graph at evaluation"


@pytest.mark.parametrize("name", sorted(OGBN))
def test_data_command_prints_the_summary_and_the_cache_is_reused(tmp_path, capsys, name):
    from conftest import write_tiny_ogbn_nodes

    write_tiny_ogbn_nodes(tmp_path, name)
    assert main(["data", name, "--root", str(tmp_path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["num_nodes"] == 60 and info["num_tasks"] == OGBN[name].num_classes and info["metric"] == "acc"
    cache = tmp_path / OGBN[name].folder / "processed" / "geometric_data_processed.pt"
    assert cache.is_file() and (cache.parent / "revgnn_raw_manifest.json").is_file(), "cache with its raw record"
    stamp = cache.stat().st_mtime_ns
    assert load_dataset(name, root=tmp_path).num_nodes == 60
    assert cache.stat().st_mtime_ns == stamp, "the second load reads the cache"


def set_line(i, text):
    def edit(ls):
        ls = list(ls)
        ls[i] = text
        return ls
    return edit


# (file in ogbn_arxiv/, how it is broken, what the one-line error must say)
BAD = {
    "edge-3-columns": ("raw/edge.csv.gz", lambda ls: [s + ",0" for s in ls], "has 3 columns on line 1, expected 2"),
    "negative-id": ("raw/edge.csv.gz", set_line(2, "-1,5"), "negative node id on line 3"),
    "id-out-of-range": ("raw/edge.csv.gz", set_line(2, "60,5"), "node id 60 on line 3, but num-node-list.csv.gz"),
    "fractional-id": ("raw/edge.csv.gz", set_line(4, "1.5,2"), "non-integer value 1.5 on line 5"),
    "edge-count": ("raw/num-edge-list.csv.gz", set_line(0, "199"), "has 200 rows, but num-edge-list.csv.gz gives 199"),
    "header-row": ("raw/edge.csv.gz", lambda ls: ["src,dst"] + ls, "starts with a header or text row"),
    "feature-columns": ("raw/node-feat.csv.gz", lambda ls: [s.rsplit(",", 1)[0] for s in ls], "has 127 columns"),
    "feature-nan": ("raw/node-feat.csv.gz", lambda ls: set_line(3, "nan," + ls[3].split(",", 1)[1])(ls),
                    "NaN, infinite or beyond-float32 value on line 4"),
    "feature-rows": ("raw/node-feat.csv.gz", lambda ls: ls[:-1], "has 59 rows, but num-node-list.csv.gz gives 60"),
    "class-40": ("raw/node-label.csv.gz", set_line(7, "40"), "class id 40 on line 8; ogbn-arxiv has classes 0..39"),
    "class-text": ("raw/node-label.csv.gz", set_line(7, "cs.LG"), "non-numeric value 'cs.LG' on line 8"),
    "year-rows": ("raw/node_year.csv.gz", lambda ls: ls[:-2], "has 58 rows, but num-node-list.csv.gz gives 60"),
    "split-overlap": ("split/time/test.csv.gz", lambda ls: ls + [lines_of_train()[0]], "also lists"),
    "split-out-of-range": ("split/time/valid.csv.gz", lambda ls: ls + ["60"], "node id 60"),
    "not-gzip": ("raw/node-label.csv.gz", None, "is not a valid gzip file"),
}
_TRAIN: list[str] = []


def lines_of_train() -> list[str]:
    return _TRAIN


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_corrupt_arxiv_file_is_one_line_and_nothing_is_deleted(tiny_arxiv_root, capsys, case):
    rel, edit, says = BAD[case]
    folder = tiny_arxiv_root / "ogbn_arxiv"
    _TRAIN[:] = lines(folder / "split" / "time" / "train.csv.gz")
    path = folder / rel
    good = path.read_bytes()
    if edit is None:
        path.write_bytes(b"not gzip at all")
    else:
        rewrite(path, edit)
    before = hashes(tiny_arxiv_root)
    rc = main(["data", "ogbn-arxiv", "--root", str(tiny_arxiv_root)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, f"one line, exit 2: {err}"
    assert Path(rel).name in err and says in err, f"names the file and the fault: {err}"
    after = hashes(tiny_arxiv_root)
    assert all(after.get(k) == v for k, v in before.items()), "nothing deleted, renamed or changed"
    cache = folder / "processed" / "geometric_data_processed.pt"
    assert rel.startswith("split/") or not cache.exists(), "no cache is written from bad raw files"
    path.write_bytes(good)
    assert load_dataset("ogbn-arxiv", root=tiny_arxiv_root).num_nodes == 60, "the repaired copy loads"


def test_a_changed_raw_file_rebuilds_the_cache(tiny_products_root):
    load_dataset("ogbn-products", root=tiny_products_root)
    label = tiny_products_root / "ogbn_products" / "raw" / "node-label.csv.gz"
    rewrite(label, set_line(0, "46"))
    ds = load_dataset("ogbn-products", root=tiny_products_root)
    assert int(ds.data.y[0]) == 46, "the cache follows the raw files (its record of their SHA-256)"


def test_a_cache_holding_code_is_refused_unread_and_rebuilt(tiny_products_root, caplog):
    load_dataset("ogbn-products", root=tiny_products_root)
    cache = tiny_products_root / "ogbn_products" / "processed" / "geometric_data_processed.pt"
    torch.save({"x": Path("/")}, cache)  # an object weights_only refuses
    ds = load_dataset("ogbn-products", root=tiny_products_root)
    assert ds.num_nodes == 60 and "re-processing" in caplog.text, "the cache was rebuilt from raw/, nothing ran"


def test_missing_files_say_where_to_get_them(tmp_path, capsys):
    (tmp_path / "ogbn_products" / "raw").mkdir(parents=True)
    rc = main(["data", "ogbn-products", "--root", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "RELEASE_v1.txt" in err and "revgnn data ogbn-products --root DIR" in err
