"""Cached execution of the revgnn book's notebooks: a notebook runs again only when what its output depends on changed.

Part of the book of "Training Graph Neural Networks with 1000 Layers" (Li et al., ICML 2021), after the cached
execution of QuantEcon's Jupyter Books. jupyter-cache keys a notebook by its cells alone, and would miss a change in
``revgnn/``; here a notebook's cached run is reused only when all of these are as they were:

- the notebook (``notebooks/<name>.ipynb``, byte for byte), its parameters, its parameter set and file;
- every file of the repository the run read (each module of ``revgnn`` it imported, each record under ``results/``,
  the shipped data; content hashes, so a ``touch`` alone changes nothing), every path whose existence it asked and
  every folder it listed, as :mod:`revgnn.book.trace` recorded them in the kernel and in the processes it started;
- the environment: the versions of the Python packages the kernel imported (and of papermill, nbclient, nbformat and
  jupyter_client, which run it), Python, the CPU (model and vector extensions: the native kernel's rounding depends
  on them) and the variables that steer the package (``REVGNN_*``, ``OMP_NUM_THREADS``).

A run is stored in ``_build/_cache/notebooks/<name>/`` (the executed notebook as papermill wrote it, and a manifest
with the inputs' fingerprints, when it ran, how long, on which revision), at most :data:`KEEP` per notebook, so a
switch between parameter sets, or a change undone, finds the earlier run. :func:`lookup` says, per notebook, cached
or not and why (the first inputs that differ). Imports: :mod:`revgnn.book.trace`, :mod:`revgnn.training.records` and
the standard library.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from . import trace

__all__ = ["CACHE_DIR", "OUTPUT_DIRS", "KEEP", "Plan", "Decision", "lookup", "touch", "store", "prepare_trace",
           "trace_environment", "fingerprint_inputs", "environment_key"]

CACHE_DIR = Path("_build") / "_cache"
OUTPUT_DIRS = ("_build", "book/_executed", "book/_generated")  # what the build writes: never an input
KEEP = 4  # stored runs per notebook (the least recently used goes first)
FORMAT = 1  # bump when a manifest's meaning changes: every stored run is then executed again
RUNNERS = ("papermill", "nbclient", "nbformat", "jupyter_client")  # run the kernel from outside it
STEERING = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES")
_NOT_STEERING = ("REVGNN_BOOK_", "REVGNN_MATHJAX_")  # the build's own variables (trace file, repository, MathJax)
_VECTOR_FLAGS = ("avx512f", "avx512vl", "avx512bw", "avx512dq", "avx2", "fma", "neon", "asimd")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


@dataclass
class Plan:
    """One notebook of the build, with what it will run with.

    Args:
        name: notebook stem, e.g. ``fig1_auc_vs_memory``.
        source: ``notebooks/<name>.ipynb``.
        parameters: the injected parameters (empty: the notebook's defaults).
        params_set: the set's name ('' = none).
        params_file: the yaml file the parameters came from, relative to the repository, or None.
    """

    name: str
    source: Path
    parameters: dict = field(default_factory=dict)
    params_set: str = ""
    params_file: str | None = None

    def notebook_sha(self) -> str:
        return _sha(self.source.read_bytes())

    def key(self) -> str:
        """What the run is asked to be: the notebook, its parameters, its set and file (its inputs come after)."""
        return _sha(_canonical({"format": FORMAT, "notebook": self.notebook_sha(), "parameters": self.parameters,
                                "set": self.params_set, "file": self.params_file}).encode())[:20]


@dataclass
class Decision:
    """Whether a notebook's stored run stands in for executing it, and why.

    Args:
        name: the notebook.
        cached: True when ``entry`` is reused.
        reason: one line: what changed (executed), or what was checked (cached).
        entry: the stored run's manifest (cached), else None.
    """

    name: str
    cached: bool
    reason: str
    entry: dict | None = None

    @property
    def notebook(self) -> Path | None:
        """The stored executed notebook of a cached decision."""
        return Path(self.entry["notebook_path"]) if self.entry else None


# --- the environment -------------------------------------------------------------------------------------------

def _cpu() -> dict:
    """The CPU's model and vector extensions (``/proc/cpuinfo``), else what :mod:`platform` knows."""
    from revgnn.training.records import cpu_name

    flags: list[str] = []
    try:
        with open("/proc/cpuinfo") as f:
            line = next((ln for ln in f if ln.startswith(("flags", "Features"))), "")
        flags = sorted(set(line.split(":", 1)[-1].split()) & set(_VECTOR_FLAGS))
    except OSError:
        pass
    return {"model": cpu_name(), "machine": platform.machine(), "vector": flags}


@functools.lru_cache(maxsize=1)
def _owners() -> dict[str, list[str]]:
    from importlib import metadata

    return metadata.packages_distributions()


def _distributions(packages) -> set[str]:
    """The distributions that provide importable top-level packages (``PIL`` -> ``pillow``); unknown names dropped."""
    return {dist for name in packages for dist in _owners().get(name, [])}


def _versions(distributions) -> dict[str, str]:
    """{distribution: version}; 'absent' for one that is not installed."""
    from importlib import metadata

    found = {}
    for dist in distributions:
        try:
            found[dist.lower()] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist.lower()] = "absent"
    return dict(sorted(found.items()))


def environment_key(packages=(), distributions=()) -> dict:
    """The part of the environment a run's output depends on: the versions of the distributions of ``packages``
    (top-level import names, as traced), of ``distributions`` and of the runners, Python, the CPU and the steering
    environment variables."""
    steering = {k: v for k, v in os.environ.items()
                if k in STEERING or (k.startswith("REVGNN_") and not k.startswith(_NOT_STEERING))}
    dists = _distributions(packages) | set(distributions) | set(RUNNERS)
    return {"python": platform.python_version(), "cpu": _cpu(), "env": dict(sorted(steering.items())),
            "packages": _versions(dists)}


def _environment_changes(old: dict, new: dict) -> list[str]:
    changes = []
    for name in sorted(set(old.get("packages", {})) | set(new.get("packages", {}))):
        was, now = old.get("packages", {}).get(name), new.get("packages", {}).get(name)
        if was != now:
            changes.append(f"{name} {was or 'not imported'} -> {now or 'not imported'}")
    for part in ("python", "cpu", "env"):
        if old.get(part) != new.get(part):
            changes.append(f"{part} {_canonical(old.get(part))} -> {_canonical(new.get(part))}")
    return changes


# --- the inputs ------------------------------------------------------------------------------------------------

def _kind(path: Path) -> str:
    try:
        return "file" if path.is_file() else "folder" if path.is_dir() else "absent"
    except OSError:  # not a name a file can have (IPython asks whether a displayed text is a file)
        return "absent"


def _listing(path: Path, made: set[str]) -> str:
    """The names in a folder (without those the run made), hashed; 'absent' for a folder that is not there."""
    if not path.is_dir():
        return "absent"
    names = sorted(n for n in os.listdir(path) if n != "__pycache__" and not n.startswith("."))
    return _sha("\n".join(n for n in names if n not in made).encode())[:16]


def fingerprint_inputs(root: Path, traced: dict[str, set[str]]) -> dict:
    """The fingerprints of a run's inputs from its trace (:func:`revgnn.book.trace.read_trace`): content hashes of
    the files it read, the kind of each path it asked about, a hash of the names in each folder it listed; the
    files it wrote are left out."""
    made = traced["w"]
    read = sorted(p for p in traced["r"] if p not in made and (root / p).is_file())
    asked = sorted(p for p in traced["s"] if p not in made and p not in traced["r"])
    return {"files": {p: _sha((root / p).read_bytes()) for p in read},
            "paths": {p: _kind(root / p) for p in asked},
            "folders": {p: _listing(root / p, {Path(m).name for m in made if Path(m).parent == Path(p)})
                        for p in sorted(traced["l"])},
            "written": sorted(made)}


def _input_changes(root: Path, inputs: dict) -> list[str]:
    """What differs now from a stored run's inputs, in the order a reader looks for it (files first)."""
    changes = []
    for path, digest in inputs.get("files", {}).items():
        here = root / path
        if not here.is_file():
            changes.append(f"{path} is gone")
        elif _sha(here.read_bytes()) != digest:
            changes.append(f"{path} changed")
    for path, kind in inputs.get("paths", {}).items():
        now = _kind(root / path)
        if now != kind:
            changes.append(f"{path} is {'now a ' + now if now != 'absent' else 'gone'} (was {kind})")
    made = {Path(m) for m in inputs.get("written", [])}
    for path, digest in inputs.get("folders", {}).items():
        if _listing(root / path, {m.name for m in made if m.parent == Path(path)}) != digest:
            changes.append(f"{path}/ holds other files")
    return changes


# --- tracing a run ---------------------------------------------------------------------------------------------

_SITECUSTOMIZE = '''\
"""Written by revgnn.book.cache: trace what a book notebook reads (revgnn/book/trace.py), then run the
sitecustomize this one shadows, if there is one."""
import importlib.machinery as _machinery
import importlib.util as _util
import os as _os
import sys as _sys

if _os.environ.get("REVGNN_BOOK_TRACE"):
    _spec = _util.spec_from_file_location("_revgnn_book_trace", {trace_py!r})
    _tracer = _util.module_from_spec(_spec)
    _spec.loader.exec_module(_tracer)
    _tracer.install(_os.environ["REVGNN_BOOK_TRACE"], {root!r}, {skip!r})
_here = _os.path.dirname(_os.path.abspath(__file__))
_spec = _machinery.PathFinder.find_spec(
    "sitecustomize", [p for p in _sys.path if _os.path.abspath(p or ".") != _here])
if _spec is not None and _spec.loader is not None:
    _spec.loader.exec_module(_util.module_from_spec(_spec))
'''


def prepare_trace(root: Path) -> Path:
    """Write the ``sitecustomize`` that installs :func:`revgnn.book.trace.install` in every Python process started
    with its folder first on ``PYTHONPATH`` and ``REVGNN_BOOK_TRACE`` set; returns that folder."""
    folder = root / CACHE_DIR / "site"
    folder.mkdir(parents=True, exist_ok=True)
    text = _SITECUSTOMIZE.format(trace_py=str(Path(trace.__file__).resolve()), root=str(root.resolve()),
                                 skip=OUTPUT_DIRS)
    target = folder / "sitecustomize.py"
    if not target.is_file() or target.read_text() != text:
        target.write_text(text)
    return folder


def trace_environment(site: Path, trace_file: Path) -> dict[str, str]:
    """The variables that make a kernel (and the Python processes it starts) write its trace to ``trace_file``."""
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH", "")]))
    return {"PYTHONPATH": path, "REVGNN_BOOK_TRACE": str(trace_file)}


# --- stored runs -----------------------------------------------------------------------------------------------

def _entries(root: Path, name: str) -> list[dict]:
    """The stored runs of a notebook, most recently used first."""
    folder = root / CACHE_DIR / "notebooks" / name
    entries = []
    for manifest in folder.glob("*.json"):
        try:
            entry = json.loads(manifest.read_text())
        except (OSError, ValueError):
            continue
        notebook = manifest.with_suffix(".ipynb")
        if entry.get("format") == FORMAT and notebook.is_file():
            entry["notebook_path"] = str(notebook)
            entries.append(entry)
    return sorted(entries, key=lambda e: e.get("last_used", ""), reverse=True)


def _parameter_changes(old: dict, plan: Plan) -> list[str]:
    changes = []
    if old.get("params_set", "") != plan.params_set:
        changes.append(f"parameter set {old.get('params_set') or 'none'} -> {plan.params_set or 'none'}")
    was, now = old.get("parameters", {}), plan.parameters
    for name in sorted(set(was) | set(now)):
        if was.get(name) != now.get(name):
            changes.append(f"{name} {_canonical(was[name]) if name in was else 'default'} -> "
                           f"{_canonical(now[name]) if name in now else 'default'}")
    return changes


def _said(changes: list[str], limit: int = 3) -> str:
    more = len(changes) - limit
    return "; ".join(changes[:limit]) + (f" and {more} more" if more > 0 else "")


def lookup(root: Path, plan: Plan, fresh: bool = False) -> Decision:
    """Whether ``plan`` can be served from a stored run; if not, why it runs (one line)."""
    if fresh:
        return Decision(plan.name, False, "fresh build asked (FRESH=1 / --fresh): the cache is not read")
    entries = _entries(root, plan.name)
    if not entries:
        return Decision(plan.name, False, "no stored run")
    key = plan.key()
    same = [e for e in entries if e["key"] == key]
    if not same:
        last = entries[0]
        changes = ([f"notebooks/{plan.name}.ipynb changed"] if last.get("notebook") != plan.notebook_sha() else [])
        changes += _parameter_changes(last, plan)
        return Decision(plan.name, False, _said(changes or ["parameter file changed"]) + " since its last run")
    first = None
    for entry in same:  # several runs of one plan: e.g. before and after a change that was then undone
        changes = _input_changes(root, entry["inputs"])
        changes += [f"environment: {c}" for c in
                    _environment_changes(entry["environment"],
                                         environment_key(distributions=entry["environment"]["packages"]))]
        if not changes:
            n = len(entry["inputs"]["files"])
            return Decision(plan.name, True, f"notebook, parameters, {n} files read and the environment as on "
                                             f"{entry['executed_at']}", entry)
        first = first or (entry, changes)
    entry, changes = first
    return Decision(plan.name, False, _said(changes) + f" since its run of {entry['executed_at']}")


def touch(root: Path, entry: dict) -> None:
    """Mark a stored run as just used (the last to be dropped)."""
    manifest = Path(entry["notebook_path"]).with_suffix(".json")
    stored = {k: v for k, v in entry.items() if k != "notebook_path"}
    stored["last_used"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    _write_atomic(manifest, json.dumps(stored, indent=1))


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def store(root: Path, plan: Plan, executed: Path, trace_file: Path, started: float, seconds: float,
          revision: str) -> dict | None:
    """Keep a successful run: the executed notebook and its manifest; returns the manifest, or None when an input
    changed while the notebook ran (its output may be of the old one: it is not kept)."""
    traced = trace.read_trace(trace_file)
    changed = [p for p in traced["r"] if (root / p).is_file() and (root / p).stat().st_mtime > started]
    if changed:
        return None
    inputs = fingerprint_inputs(root, traced)
    now = datetime.now(timezone.utc)
    entry = {"format": FORMAT, "name": plan.name, "key": plan.key(), "notebook": plan.notebook_sha(),
             "parameters": plan.parameters, "params_set": plan.params_set, "params_file": plan.params_file,
             "inputs": inputs, "environment": environment_key(traced["p"]),
             "executed_at": datetime.fromtimestamp(started, timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
             "seconds": round(seconds, 1), "revision": revision, "last_used": now.isoformat(timespec="seconds")}
    folder = root / CACHE_DIR / "notebooks" / plan.name
    folder.mkdir(parents=True, exist_ok=True)
    inputs_id = _sha(_canonical([inputs, entry["environment"]]).encode())[:8]
    target = folder / f"{entry['key']}-{inputs_id}.ipynb"  # one file per plan and inputs
    shutil.copyfile(executed, target.with_name(f".{target.name}.tmp"))
    os.replace(target.with_name(f".{target.name}.tmp"), target)
    _write_atomic(target.with_suffix(".json"), json.dumps(entry, indent=1))
    for old in _entries(root, plan.name)[KEEP:]:
        Path(old["notebook_path"]).unlink(missing_ok=True)
        Path(old["notebook_path"]).with_suffix(".json").unlink(missing_ok=True)
    entry["notebook_path"] = str(target)
    return entry

