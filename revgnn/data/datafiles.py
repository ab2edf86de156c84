"""Dataset files that are never deleted, checked before use, and cached atomically (the safety rules of
:mod:`revgnn.data.datasets`).

- Nothing the program did not create in the same call is deleted. A file that cannot be used is named, with what to
  do, as a :class:`DatasetError` (one line, exit 2 on the command line).
- gzip CSV tables: :func:`first_line_problem` is cheap enough to run before every parse (header row, column count);
  :func:`table_problem` reads the whole file again, only to explain a failure.
- Processed caches are written into a fresh staging folder and moved into place with ``os.replace``
  (:func:`build_in_stage`), so a full disk or a kill never leaves a truncated cache behind; a damaged cache left by an
  older version is rebuilt from the raw files, which are never touched.
- A read-only root or a full disk is reported as such (:func:`disk_error`), not as bad files.
- No code runs from a dataset file: caches are read with ``torch.load(weights_only=True)``, and a raw pickle (PyG's
  Planetoid files) is first read by :func:`pickle_problem`, which refuses every global outside a short allow-list.
- A cache is used only while the raw files it was built from are unchanged: :func:`write_manifest` records their size,
  mtime and SHA-256 next to it, and :func:`manifest_problem` compares them on every load.
"""
from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import io
import json
import logging
import os
import pickle
import shutil
import tempfile
import warnings
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)

READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
LOW_SPACE = 64 * 2**20  # bytes; below this a failed write is put down to a full disk
MANIFEST = "revgnn_raw_manifest.json"  # next to a processed cache: the raw files it was built from
# The globals a raw Planetoid pickle may name (numpy arrays, scipy CSR matrices, the adjacency defaultdict of lists);
# the module names are as written in the file (Python 2 pickles name ``__builtin__``; Python 3 writes an array's bytes
# at protocol 2 through ``_codecs.encode``, a pure text-to-bytes codec, as torch's weights_only unpickler also allows).
PICKLE_GLOBALS = frozenset({
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"), ("scipy.sparse.csr", "csr_matrix"), ("scipy.sparse._csr", "csr_matrix"),
    ("collections", "defaultdict"), ("__builtin__", "list"), ("builtins", "list"), ("__builtin__", "dict"),
    ("builtins", "dict"), ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"), ("__builtin__", "object"),
    ("builtins", "object"), ("_codecs", "encode"),
})


class DatasetError(ValueError):
    """A dataset's files cannot be used (bad or damaged content, a root that cannot be written, a full disk).

    The message names the file and says what to do. A ``ValueError``, so the CLI reports it in one line (exit 2).
    """


def gzip_problem(path: Path) -> str | None:
    """Why ``path`` is not a whole, valid gzip stream (not gzip, CRC error, truncated, corrupt), or None.

    Decompresses the file once without keeping it (16 MiB at a time); used only to explain a failure.
    """
    try:
        with gzip.open(path, "rb") as f:
            while f.read(1 << 24):
                pass
    except gzip.BadGzipFile as err:
        return "is not a valid gzip file (" + ("CRC error" if "CRC" in str(err) else f"{err}") + ")"
    except EOFError:
        return "is not a valid gzip file (truncated: the compressed stream ends early)"
    except zlib.error as err:
        return f"is not a valid gzip file (corrupt compressed data: {err})"
    except OSError as err:
        return f"cannot be read ({err.strerror or err})"
    return None


def first_line_problem(path: Path, columns: int, what: str) -> str | None:
    """Why the first line of a gzip CSV is not ``columns`` numbers (a header row, a wrong column count), or None.

    Reads one line, so it is cheap enough to run before every parse of the real files.
    """
    try:
        with gzip.open(path, "rt") as f:
            line = f.readline().strip()
    except (OSError, EOFError, zlib.error, UnicodeDecodeError):
        return gzip_problem(path) or "cannot be read as text"
    if not line:
        return "is empty"
    fields = line.split(",")
    try:
        [float(v) for v in fields]
    except ValueError:
        return f"starts with a header or text row ({line[:60]!r}); ogb's files have none, each row is {what}"
    if len(fields) != columns:
        return f"has {len(fields)} columns on line 1, expected {columns} ({what})"
    return None


def table_problem(path: Path, columns: int, what: str) -> str | None:
    """Why a gzip CSV is not a table of ``columns`` numbers: bad gzip, ragged or short rows, text, empty values.

    Reads the whole file (pandas, as ogb does); used only to explain a failure.
    """
    import numpy as np
    import pandas as pd

    bad = gzip_problem(path)
    if bad:
        return bad
    try:
        df = pd.read_csv(path, compression="gzip", header=None)
    except (ValueError, pd.errors.ParserError) as err:  # ragged rows, undecodable bytes
        return f"is not a CSV of {columns} columns ({str(err).strip()})"
    if df.shape[1] != columns:
        return f"has {df.shape[1]} columns, expected {columns} ({what})"
    values = df.apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)  # text -> NaN
    text = df.isna().to_numpy() != np.isnan(values)
    if text.any():
        r, c = np.argwhere(text)[0]
        return f"has a non-numeric value {df.iat[r, c]!r} on line {r + 1}; each row is {what}"
    if np.isnan(values).any():
        return f"has an empty or NaN value on line {int(np.argwhere(np.isnan(values))[0, 0]) + 1}; each row is {what}"
    return None


@contextlib.contextmanager
def quiet():
    """Send the prints, progress bars and warnings of PyG/ogb dataset processing to the debug log."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            if out.getvalue().strip():
                log.debug("dataset processing: %s", out.getvalue().strip())


def disk_error(err: BaseException, where: Path) -> DatasetError | None:
    """A :class:`DatasetError` where ``err`` comes from a read-only location or a full disk, else None.

    torch's own file writer reports a full disk as a ``RuntimeError`` without errno; that one is put down to a full
    disk when less than 64 MiB is free.
    """
    code = getattr(err, "errno", None)
    if code in READ_ONLY:
        return DatasetError(f"cannot write to {where} ({os.strerror(code)}): the data root must be "
                            f"writable to process the raw files once. Pass --root DIR, a writable folder, holding a "
                            f"copy of the dataset's folder")
    free = free_bytes(where)
    if code in DISK_FULL or (isinstance(err, RuntimeError) and free is not None and free < LOW_SPACE):
        left = "" if free is None else f", {free / 2**20:.0f} MiB free"
        return DatasetError(f"the disk holding {where} is full ({err}{left}): free some space or pass --root DIR on "
                            f"another disk; the partial files were removed")
    return None


def free_bytes(where: Path) -> int | None:
    """Free bytes on the disk holding ``where`` (or its nearest existing parent), or None."""
    for p in (where, *where.parents):
        if p.exists():
            try:
                return shutil.disk_usage(p).free
            except OSError:
                return None
    return None


def usable_root(root: Path) -> None:
    """Raise :class:`DatasetError` where ``root`` or a parent of it is a file, not a folder."""
    for p in (root, *root.parents):
        if p.exists():
            if not p.is_dir():
                raise DatasetError(f"data root {root}: {p} is a file, not a folder; pass --root DIR with a folder")
            return


def make_dirs(path: Path) -> None:
    """``mkdir -p`` that reports a read-only location or a full disk as a :class:`DatasetError`."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        if (disk := disk_error(err, path)) is None:
            raise
        raise disk from err


def build_in_stage(build: Callable[[Path], T], processed: Path, done_file: str, stage_parent: Path) -> T:
    """Process a dataset into a fresh staging folder, then move the files into ``processed`` atomically.

    The staging folder starts empty, so PyG's ``Dataset._process`` finds no ``pre_transform.pt`` or ``pre_filter.pt``
    to unpickle there (it loads those as full pickles, code and all); the ones it writes replace any in ``processed``.

    ``build(stage)`` writes the processed files into the empty folder ``stage`` (made here, in ``stage_parent``, on
    the same disk) and returns the loaded dataset; it may raise to reject what it built. The files then move into
    ``processed`` with ``os.replace``, ``done_file`` (whose presence means "processed") last, so no reader ever sees a
    partial cache; a cache already there (damaged) is replaced. A :data:`MANIFEST` moves last: a reader that sees a
    new cache with the old record rebuilds it, never the reverse. On any failure the stage, which this call made, is
    removed, and a read-only location or a full disk raises :func:`disk_error`'s message. A stage left by a killed
    run is named in a warning, not deleted (another call made it).
    """
    base = f".{processed.parent.name}.{processed.name}.tmp"
    for old in stage_parent.glob(base + "*"):
        pid = old.name[len(base):].split("-")[0]
        if pid.isdigit() and not _running(int(pid)):
            log.warning("%s was left by an interrupted run (process %s); delete it to free its space", old, pid)
    try:
        stage = Path(tempfile.mkdtemp(prefix=f"{base}{os.getpid()}-", dir=stage_parent))
    except OSError as err:
        if (disk := disk_error(err, stage_parent)) is None:
            raise
        raise disk from err
    try:
        result = build(stage)
        processed.mkdir(exist_ok=True)
        for name in sorted(os.listdir(stage), key=lambda f: (f == MANIFEST, f == done_file)):  # the record last
            os.replace(stage / name, processed / name)
        stage.rmdir()
    except BaseException as err:
        disk = disk_error(err, stage_parent) if isinstance(err, (OSError, RuntimeError)) else None  # before freeing
        shutil.rmtree(stage, ignore_errors=True)
        if disk:
            raise disk from err
        raise
    return result


def download_ogb(root: Path, folder: Path, url: str, unpacked: str, dataset: str) -> None:
    """Download ogb's zip ``url`` into ``root``, unzip it (into ``root/unpacked``) and move that to ``folder`` (which
    does not exist), with ogb's own functions; the zip is removed. Refuses where ``root/unpacked`` exists (it is not
    ours to overwrite)."""
    import ogb.nodeproppred.dataset_pyg as ogb_dataset

    if (root / unpacked).exists():
        raise DatasetError(f"{dataset}: {root / unpacked} exists, and ogb's download unpacks into it; move it away or "
                           f"pass another --root")
    if not ogb_dataset.decide_download(url):
        raise FileNotFoundError(f"{dataset}: the download from {url} was declined")
    with quiet():
        zipped = ogb_dataset.download_url(url, str(root))
        ogb_dataset.extract_zip(zipped, str(root))
    os.unlink(zipped)
    shutil.move(str(root / unpacked), str(folder))


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


class _RefusingUnpickler(pickle.Unpickler):
    """An unpickler that imports only :data:`PICKLE_GLOBALS` (the Python documentation's "restricting globals")."""

    def find_class(self, module: str, name: str):
        if (module, name) not in PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"it names {module}.{name}, which a data file has no need of")
        return super().find_class(module, name)


def safe_unpickle(path: Path):
    """Unpickle ``path`` through a refusing unpickler: only :data:`PICKLE_GLOBALS` may load, so nothing in the file
    runs. Raises ``pickle.UnpicklingError`` naming a refused global, ``OSError``, or whatever garbage bytes raise."""
    with open(path, "rb") as f, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy.core is deprecated in numpy 2
        return _RefusingUnpickler(f, encoding="latin1").load()


def pickle_problem(path: Path) -> str | None:
    """Why the pickle ``path`` may not be unpickled (it names a global outside :data:`PICKLE_GLOBALS`, so loading it
    could run code; or it is not a pickle), or None. Reads the file with :func:`safe_unpickle`, so nothing in it runs;
    a file that passes can name only the allow-listed numpy, scipy and container types."""
    try:
        safe_unpickle(path)
    except pickle.UnpicklingError as err:
        return f"is refused unread ({err})" if "names" in str(err) else f"is not a valid pickle ({err})"
    except OSError as err:
        return f"cannot be read ({err.strerror or err})"
    except Exception as err:  # truncated or garbage bytes: EOFError, ValueError, TypeError, ...
        return f"is not a valid pickle ({type(err).__name__}: {err})"
    return None


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read 16 MiB at a time."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            h.update(chunk)
    return h.hexdigest()


def raw_record(folder: Path, raw: Iterable[str]) -> dict[str, dict]:
    """Size, mtime and SHA-256 of each raw file ``folder / rel``; taken before the files are read, so a file edited
    while a cache is built is seen as changed on the next load."""
    files = {}
    for rel in raw:
        st = (folder / rel).stat()
        files[rel] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256(folder / rel)}
    return files


def write_manifest(stage: Path, cache: str, files: dict[str, dict]) -> None:
    """Write ``stage/MANIFEST``: the raw files (:func:`raw_record`) the cache ``stage / cache`` was built from, and
    the cache's size (a cache copied with ``cp -r`` keeps its size, not its mtime)."""
    record = {"cache": cache, "cache_size": (stage / cache).stat().st_size, "raw": files}
    (stage / MANIFEST).write_text(json.dumps(record, indent=1) + "\n")


def manifest_problem(processed: Path, folder: Path, raw: Iterable[str], cache: str) -> str | None:
    """Why the cache ``processed / cache`` may not match the raw files ``folder / rel`` now there, or None.

    A raw file absent now is not compared (a processed copy without ``raw/`` still loads); one present is compared by
    size, then SHA-256 (an edit that keeps the size and mtime is still seen; a copy that changes only the mtime is not
    an edit). Reads the record as JSON only.
    """
    path = processed / MANIFEST
    raw = list(raw)
    if not path.is_file():
        return f"there is no record ({MANIFEST}) of the raw files it was built from, as ogb and older revgnn leave it"
    try:
        record = json.loads(path.read_text())
        files, size = dict(record["raw"]), int(record["cache_size"])
        if record["cache"] != cache:
            raise ValueError(f"it describes {record['cache']!r}")
        if not all(isinstance(v, dict) for v in files.values()):
            raise TypeError("a raw file's entry is not an object")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        return f"its record {path} cannot be read ({err})"
    if (processed / cache).stat().st_size != size:
        return f"it is not the cache that {path} describes"
    here = [rel for rel in raw if (folder / rel).is_file()]
    if set(here) - set(files):
        return f"{folder / sorted(set(here) - set(files))[0]} was not among the raw files it was built from"
    for rel in here:
        was, st = files[rel], (folder / rel).stat()
        if st.st_size != was.get("size"):
            return (f"{folder / rel} changed after the cache was built ({was.get('size')} -> {st.st_size} bytes)")
        if sha256(folder / rel) != was.get("sha256"):
            touched = "" if st.st_mtime_ns != was.get("mtime_ns") else ", same size and mtime"
            return f"{folder / rel} changed after the cache was built (SHA-256 differs{touched})"
    return None


def warn_foreign_pyg_files(processed: Path) -> None:
    """Log a warning for each PyG ``pre_transform.pt`` / ``pre_filter.pt`` in ``processed`` that is not the plain
    string (or None) PyG writes there. revgnn never uses them; the check reads them with ``weights_only=True``, so
    nothing in them runs, but PyG's own ``Dataset`` would unpickle them in full on its next use of the folder."""
    import torch

    for name in ("pre_transform.pt", "pre_filter.pt"):
        path = processed / name
        if not path.is_file():
            continue
        try:
            plain = isinstance(torch.load(path, map_location="cpu", weights_only=True), (str, type(None)))
        except Exception:  # refused (pickled code or foreign classes), truncated, garbage
            plain = False
        if not plain:
            log.warning("%s is not the plain string PyG writes there: revgnn does not read it, but PyG's Dataset would "
                        "unpickle it, code and all; delete it, and check where this folder came from", path)
