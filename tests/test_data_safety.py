"""Data safety (issue 10): bad dataset files are named, never deleted; bad content and disk errors are one line."""
import builtins
import errno
import gzip
import hashlib
import io
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest
import torch

from revgnn.cli import main
from revgnn.data.datafiles import DatasetError
from revgnn.data.datasets import SHIPPED, load_dataset


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


def read_only(mp: pytest.MonkeyPatch, root: Path) -> None:
    """Make ``root`` behave as a read-only file system (through ``mp``): creating, writing or renaming under it
    raises EROFS. Root ignores chmod, so the refusal is simulated at the os/open calls (an existing folder still gives
    EEXIST, as the kernel does)."""
    top = str(root.resolve())

    def inside(path) -> bool:
        return isinstance(path, (str, os.PathLike)) and os.path.abspath(os.fspath(path)).startswith(top)

    def refuse(path):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(path))

    mkdir, opener = os.mkdir, builtins.open

    def fake_mkdir(path, *args, **kwargs):
        if inside(path):
            if os.path.exists(path):
                raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), os.fspath(path))
            refuse(path)
        return mkdir(path, *args, **kwargs)

    def fake_open(file, mode="r", *args, **kwargs):
        if inside(file) and any(c in mode for c in "wax+"):
            refuse(file)
        return opener(file, mode, *args, **kwargs)

    def fake_move(move):
        def moved(src, dst, *args, **kwargs):
            if inside(src) or inside(dst):
                refuse(dst)
            return move(src, dst, *args, **kwargs)
        return moved

    mp.setattr(os, "mkdir", fake_mkdir)
    mp.setattr(builtins, "open", fake_open)
    mp.setattr(os, "replace", fake_move(os.replace))
    mp.setattr(os, "rename", fake_move(os.rename))


def test_a_read_only_root_is_reported_as_such_and_a_processed_copy_still_loads(tiny_proteins_root, capsys,
                                                                                monkeypatch):
    before = hashes(tiny_proteins_root)
    with monkeypatch.context() as mp:
        read_only(mp, tiny_proteins_root)
        rc, err = data_cli(tiny_proteins_root, capsys)
    assert rc == 2 and len(err.splitlines()) == 1, f"one line, exit 2: {err}"
    assert "Read-only file system" in err and "--root DIR" in err and "not a valid" not in err, \
        f"a read-only root is not blamed on the files or a download: {err}"
    assert hashes(tiny_proteins_root) == before, "nothing deleted, nothing written"
    load_dataset("ogbn-proteins", root=tiny_proteins_root)  # writable again: processes once
    read_only(monkeypatch, tiny_proteins_root)
    rc, err = data_cli(tiny_proteins_root, capsys)
    assert rc == 0, f"a processed copy loads from a read-only root: {err}"


def partial_then_fail(error: BaseException, save):
    """A stand-in for a save that fills the disk: half the bytes reach the file, then ``error`` is raised."""
    def fill(obj, path, *args, **kwargs):
        buffer = io.BytesIO()
        save(obj, buffer)
        with open(path, "wb") as f:
            f.write(buffer.getvalue()[:buffer.tell() // 2])
        raise error
    return fill


@pytest.mark.parametrize("error", ["ENOSPC", "torch"])
def test_a_full_disk_is_reported_as_such_and_leaves_no_partial_cache(tiny_proteins_root, capsys, monkeypatch, error):
    if error == "ENOSPC":  # Python's writes
        exc = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    else:  # torch's own zip writer says only this, with no errno
        exc = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
        monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(2**30, 2**30, 0))
    before = hashes(tiny_proteins_root)
    with monkeypatch.context() as mp:
        mp.setattr(torch, "save", partial_then_fail(exc, torch.save))
        rc, err = data_cli(tiny_proteins_root, capsys)
    assert rc == 2 and len(err.splitlines()) == 1, f"one line, exit 2: {err}"
    assert "is full" in err and "--root DIR" in err and "not a valid" not in err, f"a full disk, said so: {err}"
    assert hashes(tiny_proteins_root) == before, "no partial cache or staging folder is left; nothing deleted"
    assert load_dataset("ogbn-proteins", root=tiny_proteins_root).num_nodes == 40, "the next load works"


def test_a_truncated_cache_is_rebuilt_from_raw_files_and_raw_files_are_kept(tiny_proteins_root, capsys, caplog):
    load_dataset("ogbn-proteins", root=tiny_proteins_root)
    cache = tiny_proteins_root / "ogbn_proteins" / "processed" / "geometric_data_processed.pt"
    cache.write_bytes(cache.read_bytes()[:cache.stat().st_size // 2])  # as a full disk leaves it
    raw = {k: v for k, v in hashes(tiny_proteins_root).items() if "/processed/" not in k}
    rc, err = data_cli(tiny_proteins_root, capsys)
    assert rc == 0, f"a truncated cache does not block the load: {err}"
    assert "geometric_data_processed.pt cannot be used" in caplog.text and "re-processing" in caplog.text, "said so"
    assert unchanged(raw, tiny_proteins_root), "raw and split files untouched"
    caplog.clear()
    assert load_dataset("ogbn-proteins", root=tiny_proteins_root).num_nodes == 40 and not caplog.text, \
        "the rebuilt cache loads as it is"
    assert not list(tiny_proteins_root.glob(".*tmp*")), "no staging folder is left"


def test_a_truncated_cache_without_raw_files_is_kept_and_explained(tiny_proteins_root, capsys):
    load_dataset("ogbn-proteins", root=tiny_proteins_root)
    cache = tiny_proteins_root / "ogbn_proteins" / "processed" / "geometric_data_processed.pt"
    cache.write_bytes(cache.read_bytes()[:100])
    (tiny_proteins_root / "ogbn_proteins" / "raw" / "edge.csv.gz").unlink()
    before = hashes(tiny_proteins_root)
    rc, err = data_cli(tiny_proteins_root, capsys)
    assert rc == 2 and "cannot be rebuilt" in err and "raw/edge.csv.gz" in err, f"one line says why: {err}"
    assert hashes(tiny_proteins_root) == before, "the damaged cache is not deleted either"


def user_cora(root: Path) -> Path:
    shutil.copytree(SHIPPED / "Cora" / "raw", root / "Cora" / "raw")
    return root


def test_planetoid_truncated_cache_is_rebuilt_not_blamed_on_raw_files(tmp_path, caplog):
    user_cora(tmp_path)
    load_dataset("planetoid:cora", root=tmp_path)
    cache = tmp_path / "Cora" / "processed" / "data.pt"
    cache.write_bytes(cache.read_bytes()[:cache.stat().st_size // 2])
    raw = {k: v for k, v in hashes(tmp_path).items() if k.startswith("Cora/raw/")}
    ds = load_dataset("planetoid:cora", root=tmp_path)
    assert ds.num_nodes == 2708 and "re-processing" in caplog.text, "rebuilt from raw, and said so"
    assert hashes(tmp_path).items() >= raw.items(), "raw files untouched"
    caplog.clear()
    assert load_dataset("cora", root=tmp_path).num_nodes == 2708 and not caplog.text, "the rebuilt cache loads"


def test_planetoid_read_only_root_is_not_blamed_on_raw_files(tmp_path, monkeypatch, capsys):
    user_cora(tmp_path)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    read_only(monkeypatch, tmp_path)
    with pytest.raises(DatasetError, match=r"Read-only file system.*--root DIR"):
        load_dataset("planetoid:cora", root=tmp_path)
    assert main(["data", "cora", "--root", str(fresh)]) == 2, "exit 2"
    assert "Read-only file system" in capsys.readouterr().err, "the shipped copy into a read-only root, said so"


def test_planetoid_full_disk_is_reported_as_such(tmp_path, monkeypatch):
    from torch_geometric.io import fs

    user_cora(tmp_path)
    monkeypatch.setattr(fs, "torch_save", partial_then_fail(OSError(errno.ENOSPC, "No space left on device"),
                                                            torch.save))
    before = hashes(tmp_path)
    with pytest.raises(DatasetError, match="is full"):
        load_dataset("planetoid:cora", root=tmp_path)
    assert hashes(tmp_path) == before, "no partial cache left, nothing deleted"


@pytest.mark.parametrize("name", ["ogbn-proteins", "cora", "planetoid:citeseer"])
def test_a_root_that_is_a_file_is_one_line(tmp_path, capsys, name):
    file = tmp_path / "notes.txt"
    file.write_text("not a folder")
    for root in (file, file / "sub"):
        assert main(["data", name, "--root", str(root)]) == 2, "exit 2"
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "is a file, not a folder" in err, f"one line says so: {err}"
    assert file.read_text() == "not a folder", "the file is untouched"


@pytest.fixture
def fake_download(tmp_path, monkeypatch):
    """ogb's download, served from a zip of the tiny dataset in ogb's layout (proteins.zip holding proteins/)."""
    import ogb.nodeproppred.dataset_pyg as ogb_dataset
    from conftest import write_tiny_ogbn_proteins

    src = write_tiny_ogbn_proteins(tmp_path / "server")
    served = {"zip": tmp_path / "server" / "proteins.zip", "fail": False}
    with zipfile.ZipFile(served["zip"], "w") as z:  # ogb's zip unpacks to proteins/, which ogb renames
        for f in src.rglob("*.*"):
            z.write(f, "proteins/" + f.relative_to(src).as_posix())
    rewrite(src / "raw" / "edge-feat.csv.gz", lambda ls: [s.rsplit(",", 1)[0] for s in ls])  # 7 features
    served["bad"] = tmp_path / "server" / "bad.zip"
    with zipfile.ZipFile(served["bad"], "w") as z:
        for f in src.rglob("*.*"):
            z.write(f, "proteins/" + f.relative_to(src).as_posix())

    def download_url(url, folder, log=True):
        if served["fail"]:
            raise urllib.error.URLError("network is unreachable")
        path = Path(folder) / "proteins.zip"
        shutil.copyfile(served["zip"], path)
        return str(path)

    monkeypatch.setattr(ogb_dataset, "decide_download", lambda url: True)
    monkeypatch.setattr(ogb_dataset, "download_url", download_url)
    return served


def test_a_download_is_processed_through_the_stage_and_a_failed_one_removes_only_its_own_files(
        tmp_path, capsys, fake_download):
    root = tmp_path / "data"
    root.mkdir()
    (root / "keep.txt").write_text("the user's")
    assert main(["data", "ogbn-proteins", "--root", str(root)]) == 0, capsys.readouterr().err
    assert (root / "ogbn_proteins" / "processed" / "geometric_data_processed.pt").is_file(), "downloaded, processed"
    assert sorted(p.name for p in root.iterdir()) == ["keep.txt", "ogbn_proteins"], "no zip or staging folder left"
    fake_download["fail"] = True
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("the user's")
    rc, err = data_cli(other, capsys)
    assert rc == 2 and "download from" in err and "failed" in err, f"a failed download, said so: {err}"
    assert [p.name for p in other.iterdir()] == ["keep.txt"], "only what this call created is removed"
    fake_download.update(fail=False, zip=fake_download["bad"])
    rc, err = data_cli(other, capsys)
    assert rc == 2 and "edge-feat.csv.gz has 7 columns" in err and "downloaded by this call were removed" in err, err
    assert [p.name for p in other.iterdir()] == ["keep.txt"], "the bad download is removed, the user's file kept"


def test_a_stage_left_by_a_killed_run_is_named_not_deleted(tiny_proteins_root, caplog):
    left = tiny_proteins_root / ".ogbn_proteins.processed.tmp999999999-abc"  # no such process
    left.mkdir()
    (left / "geometric_data_processed.pt").write_bytes(b"partial")
    load_dataset("ogbn-proteins", root=tiny_proteins_root)
    assert str(left) in caplog.text and "interrupted run" in caplog.text, "named in a warning"
    assert (left / "geometric_data_processed.pt").read_bytes() == b"partial", "not deleted"


def test_an_unexpected_io_error_is_one_line_from_revgnn_data(monkeypatch, capsys):
    import revgnn.data.datasets

    def broken(*_, **__):
        raise OSError(errno.EIO, os.strerror(errno.EIO), "/data/ogbn_proteins/raw/edge.csv.gz")
    monkeypatch.setattr(revgnn.data.datasets, "load_dataset", broken)
    assert main(["data", "ogbn-proteins"]) == 2, "exit 2"
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Input/output error" in err and "edge.csv.gz" in err, err
