"""Data safety (issue 10): bad dataset files are named, never deleted; bad content and disk errors are one line."""
import builtins
import gzip
import hashlib
import urllib.request
from pathlib import Path

import pytest
import torch

from revgnn.cli import main
from revgnn.data import load_dataset
from revgnn.datafiles import DatasetError


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    def refuse(*_, **__):
        raise AssertionError("a loader waited for a prompt or opened a URL")
    monkeypatch.setattr(builtins, "input", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def unchanged(before: dict[str, str], root: Path) -> bool:
    """Every file that was there before is still there with the same bytes (new files may appear)."""
    after = hashes(root)
    return all(after.get(k) == v for k, v in before.items())


def data_cli(root: Path, capsys) -> tuple[int, str]:
    rc = main(["data", "ogbn-proteins", "--root", str(root)])
    return rc, capsys.readouterr().err.strip()


def zero_crc(path: Path) -> None:
    """The issue's repro: overwrite the gzip trailer's CRC-32 (the last 8 bytes hold CRC-32 and size) with zeros."""
    raw = bytearray(path.read_bytes())
    raw[-8:-4] = b"\0\0\0\0"
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("processed_first", [False, True], ids=["raw-only", "processed"])
def test_a_bad_crc_is_named_and_nothing_is_deleted(tiny_proteins_root, capsys, processed_first):
    if processed_first:
        load_dataset("ogbn-proteins", root=tiny_proteins_root)
    zero_crc(tiny_proteins_root / "ogbn_proteins" / "split" / "species" / "train.csv.gz")
    before = hashes(tiny_proteins_root)
    rc, err = data_cli(tiny_proteins_root, capsys)
    assert rc == 2 and len(err.splitlines()) == 1, "one line, exit 2"
    assert "ogbn_proteins/split/species/train.csv.gz" in err and "CRC" in err, "the bad file and its fault are named"
    assert "download" not in err and "revgnn data ogbn-proteins --root" in err, "no download blamed; says what to do"
    assert unchanged(before, tiny_proteins_root), "every file is still there, bytes unchanged"


def test_a_file_that_is_not_gzip_is_named_and_nothing_is_deleted(tiny_proteins_root, capsys):
    (tiny_proteins_root / "ogbn_proteins" / "raw" / "edge.csv.gz").write_bytes(b"not gzip")
    before = hashes(tiny_proteins_root)
    rc, err = data_cli(tiny_proteins_root, capsys)
    assert rc == 2 and "ogbn_proteins/raw/edge.csv.gz is not a valid gzip file" in err, "the file is named"
    assert unchanged(before, tiny_proteins_root), "every file is still there, bytes unchanged"
    with pytest.raises(DatasetError, match="raw/edge.csv.gz"):
        load_dataset("ogbn-proteins", root=tiny_proteins_root)


def test_a_processed_copy_without_raw_files_loads_offline_and_is_kept(tiny_proteins_root, capsys):
    load_dataset("ogbn-proteins", root=tiny_proteins_root)
    for f in (tiny_proteins_root / "ogbn_proteins" / "raw").iterdir():
        f.unlink()  # ogb would download (and delete the folder) because raw/ is empty
    before = hashes(tiny_proteins_root)
    rc, err = data_cli(tiny_proteins_root, capsys)
    assert rc == 0, f"the processed copy is enough offline: {err}"
    assert hashes(tiny_proteins_root) == before, "nothing deleted or rewritten"


def rewrite(path: Path, edit) -> None:
    """Rewrite a gzip CSV through ``edit(lines) -> lines`` (lines without newlines)."""
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    path.write_bytes(gzip.compress(("\n".join(edit(lines)) + "\n").encode()))


def set_line(i: int, text: str):
    return lambda lines: lines[:i] + [text] + lines[i + 1:]


def set_field(i: int, j: int, value: str):
    def edit(lines):
        row = lines[i].split(",")
        row[j] = value
        return set_line(i, ",".join(row))(lines)
    return edit


def flip_middle(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    mid = len(raw) // 2
    raw[mid:mid + 16] = bytes(b ^ 0xFF for b in raw[mid:mid + 16])
    path.write_bytes(bytes(raw))


# (file in ogbn_proteins/, how it is broken, what the one-line error must say)
BAD_CONTENT = {
    "edge-3-columns": ("raw/edge.csv.gz", lambda ls: [s + ",0" for s in ls], "has 3 columns on line 1, expected 2"),
    "edge-ragged-row": ("raw/edge.csv.gz", lambda ls: set_line(5, ls[5] + ",7")(ls), "is not a CSV of 2 columns"),
    "negative-id": ("raw/edge.csv.gz", set_line(2, "-1,5"), "negative or missing node id on line 3"),
    "id-out-of-range": ("raw/edge.csv.gz", set_line(2, "40,5"), "node id 40 (line 3), but num-node-list.csv.gz gives"),
    "num-node-list-small": ("raw/num-node-list.csv.gz", set_line(0, "20"), "num-node-list.csv.gz gives 20 nodes"),
    "split-id-too-large": ("split/species/train.csv.gz", lambda ls: ls + ["40"], "train.csv.gz has node id 40"),
    "split-header": ("split/species/valid.csv.gz", lambda ls: ["node"] + ls, "valid.csv.gz starts with a header"),
    "label-text": ("raw/node-label.csv.gz", set_field(6, 3, "x"), "non-numeric value 'x' on line 7"),
    "label-nan": ("raw/node-label.csv.gz", set_field(5, 0, "nan"), "NaN or non-0/1 label on line 6"),
    "label-empty": ("raw/node-label.csv.gz", set_field(5, 0, ""), "NaN or non-0/1 label on line 6"),
    "label-2": ("raw/node-label.csv.gz", set_field(9, 0, "2"), "NaN or non-0/1 label on line 10"),
    "111-labels": ("raw/node-label.csv.gz", lambda ls: [s.rsplit(",", 1)[0] for s in ls], "has 111 columns"),
    "7-edge-features": ("raw/edge-feat.csv.gz", lambda ls: [s.rsplit(",", 1)[0] for s in ls], "has 7 columns"),
    "edge-feature-nan": ("raw/edge-feat.csv.gz", set_field(3, 2, "nan"), "NaN or infinite value on line 4"),
    "edge-feature-empty": ("raw/edge-feat.csv.gz", set_field(3, 2, ""), "NaN or infinite value on line 4"),
    "edge-feature-rows": ("raw/edge-feat.csv.gz", lambda ls: ls[:-1], "has 119 rows, but edge.csv.gz has 120"),
    "header-row": ("raw/edge.csv.gz", lambda ls: ["src,dst"] + ls, "starts with a header or text row ('src,dst')"),
    "zlib-corrupt": ("raw/edge-feat.csv.gz", None, "edge-feat.csv.gz is not a valid gzip file"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONTENT))
def test_bad_ogbn_proteins_content_is_one_line_at_data_time(tiny_proteins_root, capsys, case):
    rel, edit, says = BAD_CONTENT[case]
    path = tiny_proteins_root / "ogbn_proteins" / rel
    good = path.read_bytes()
    flip_middle(path) if edit is None else rewrite(path, edit)
    before = hashes(tiny_proteins_root)
    rc, err = data_cli(tiny_proteins_root, capsys)
    assert rc == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, f"one line, exit 2: {err}"
    assert "ogbn_proteins/" in err and Path(rel).name in err and says in err, f"names the file and fault: {err}"
    assert unchanged(before, tiny_proteins_root), "nothing deleted or changed"
    cache = tiny_proteins_root / "ogbn_proteins" / "processed" / "geometric_data_processed.pt"
    assert rel.startswith("split/") or not cache.exists(), "no cache is written from bad raw files"
    path.write_bytes(good)
    assert load_dataset("ogbn-proteins", root=tiny_proteins_root).num_nodes == 40, "the repaired copy loads"


def test_bad_content_in_an_old_cache_is_rebuilt_from_good_raw_files(tiny_proteins_root, caplog):
    load_dataset("ogbn-proteins", root=tiny_proteins_root)
    cache = tiny_proteins_root / "ogbn_proteins" / "processed" / "geometric_data_processed.pt"
    data, slices = torch.load(cache, weights_only=False)[:2]
    data["edge_attr"][3, 2] = float("nan")  # a cache an older version wrote from bad raw files
    torch.save((data, slices, *torch.load(cache, weights_only=False)[2:]), cache)
    ds = load_dataset("ogbn-proteins", root=tiny_proteins_root)
    assert bool(torch.isfinite(ds.data.edge_attr).all()), "the cache was rebuilt from the raw files"
    assert "edge-feat.csv.gz" in caplog.text and "re-processing" in caplog.text, "the rebuild is logged"
