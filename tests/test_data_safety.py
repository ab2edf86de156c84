"""Data safety (issue 10): bad dataset files are named, never deleted; bad content and disk errors are one line."""
import builtins
import hashlib
import urllib.request
from pathlib import Path

import pytest

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
