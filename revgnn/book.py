"""Build the revgnn book: execute every notebook with papermill, then render it with Jupyter Book 1, strictly.

`make book` runs ``python -m revgnn.book --params "$(PARAMS)"``:

1. each ``notebooks/<name>.ipynb`` is executed by papermill into ``book/_executed/<name>.ipynb``, with the
   parameters of ``params/<set>/<name>.yaml`` when a parameter set is named (a notebook without a file in the set
   runs at its defaults, and the log says so);
2. MathJax 3 is put into the build from the npm package ``mathjax@3.2.2`` (integrity-checked, cached in
   ``_build/_assets/``), so no page loads anything from a CDN;
3. ``jupyter-book build`` renders the book with warnings as errors (Jupyter Book does not execute anything);
4. every built page is scanned for scripts, stylesheets or images loaded from another host: the book must work
   offline.

Any failure stops the build with a non-zero exit status. Notebooks run two at a time, each on one torch thread
(``OMP_NUM_THREADS=1`` unless set): on a 2-core machine that is faster than one notebook on two threads, whose
thread pool thrashes as soon as anything else runs.

The notebooks' shared parameter checks live here too (:func:`check_parameters`, :func:`check_choice`,
:func:`check_range`, :func:`notebook_device`, :func:`notebook_dataset`): a misspelled name or a bad value stops a
notebook in its first cell with a ValueError that names the parameter and the allowed values. Before running
anything, the book checks every name of a parameter file against the notebook's ``parameters`` cell
(:func:`check_parameter_names`, with papermill's own notebook inspection).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import yaml
from tqdm import tqdm

log = logging.getLogger("revgnn.book")

MATHJAX_VERSION = "3.2.2"
# npm's dist.integrity of mathjax@3.2.2: the tarball is checked against it before it is unpacked.
MATHJAX_INTEGRITY = (
    "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw=="
)
ASSETS_DIR = Path("_build") / "_assets"  # html_static_path in _config.yml; copied to _build/html/_static/
EXECUTED_DIR = Path("book") / "_executed"  # the notebook chapters of _toc.yml
NOTEBOOK_TIMEOUT_S = 600  # per cell at the defaults (seconds each); no limit with a parameter set

# src/href of a tag that the browser fetches by itself (script, stylesheet, image, font, iframe); plain <a> links
# to the paper or OGB are fine offline, they just are not followed.
_REMOTE_ASSET = re.compile(
    r"<(script|link|img|iframe|source|embed)\b[^>]*?\b(src|href)\s*=\s*[\"']((?:https?:)?//[^\"']+)[\"']",
    re.IGNORECASE,
)
_CSS_REMOTE = re.compile(r"@import\s+url\(\s*[\"']?(?:https?:)?//|url\(\s*[\"']?(?:https?:)?//", re.IGNORECASE)


class BookError(RuntimeError):
    """A step of the book build failed; the message says which and how to fix it."""


@dataclass
class NotebookRun:
    """Record of one papermill execution.

    Args:
        name: notebook stem, e.g. ``fig1_auc_vs_memory``.
        parameters: the injected parameters (empty: the notebook's defaults).
        params_file: the yaml file they came from, or None.
        seconds: wall-clock time of the execution.
    """

    name: str
    parameters: dict
    params_file: str | None
    seconds: float


def find_root(start: Path | None = None) -> Path:
    """The repository root: the nearest folder, from ``start`` (default: cwd) upwards, with _config.yml and _toc.yml."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_config.yml").is_file() and (folder / "_toc.yml").is_file():
            return folder
    raise BookError(f"no _config.yml and _toc.yml in {here} or above: run `make book` from the repository root")


def toc_notebooks(root: Path) -> list[str]:
    """Notebook stems that _toc.yml expects in book/_executed/, in book order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("file", "root") and isinstance(value, str):
                    files.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    prefix = EXECUTED_DIR.as_posix() + "/"
    return [f[len(prefix):].removesuffix(".ipynb") for f in files if f.startswith(prefix)]


def resolve_params_set(root: Path, params: str | None) -> Path | None:
    """The folder of a parameter set: '' or None means the notebooks' defaults; a name means params/<name>/."""
    if not params:
        return None
    candidates = [root / "params" / params, Path(params)]
    for folder in candidates:
        if folder.is_dir():
            return folder.resolve()
    known = sorted(p.name for p in (root / "params").iterdir() if p.is_dir()) if (root / "params").is_dir() else []
    raise BookError(f"unknown parameter set {params!r}: expected a folder params/<set>/ (known sets: {known})")


def load_parameters(params_dir: Path | None, name: str) -> tuple[dict, Path | None]:
    """Parameters for notebook ``name`` from ``params_dir/<name>.yaml`` (a flat mapping of scalars and lists of
    scalars, e.g. ``depths: [1, 2, 4]``), or ({}, None)."""
    if params_dir is None:
        return {}, None
    path = params_dir / f"{name}.yaml"
    if not path.is_file():
        return {}, None
    values = yaml.safe_load(path.read_text()) or {}
    if not isinstance(values, dict) or any(isinstance(v, dict) for v in values.values()):
        raise BookError(f"{path}: a parameter file holds one flat mapping (name: value, lists allowed)")
    return values, path


KERNEL_START_ATTEMPTS = 3


def _execute_one(source: str, target: str, parameters: dict, timeout: int | None) -> float:
    """Run one notebook with papermill (in a worker process); returns its wall-clock seconds.

    Kernels started at the same moment by parallel workers can race for the same free TCP port (jupyter_client picks
    a port, releases it, and the kernel binds it later), and the loser dies before any cell runs ("Kernel died before
    replying to kernel_info"). Such a start is retried; a failure inside a cell is not.
    """
    import papermill

    def run() -> float:
        start = time.perf_counter()
        nb = papermill.execute_notebook(source, target, parameters=parameters, kernel_name="python3",
                                        cwd=str(Path(source).parent), progress_bar=False, execution_timeout=timeout)
        fold_injected_parameters(nb, target)
        return time.perf_counter() - start

    for attempt in range(1, KERNEL_START_ATTEMPTS):
        try:
            return run()
        except RuntimeError as err:  # a failing cell raises PapermillExecutionError, which is not a RuntimeError
            if "Kernel died before replying" not in str(err):
                raise
            log.warning("%s: the kernel did not start (%s); retrying", Path(source).stem, err)
            time.sleep(attempt)
    return run()


def fold_injected_parameters(nb, target: str) -> None:
    """Fold papermill's injected-parameters cell like the notebook's own parameters cell (MyST ``hide-input``)."""
    import nbformat

    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "injected-parameters" in tags and "hide-input" not in tags:
            tags.append("hide-input")
    nbformat.write(nb, target)


def execute_notebooks(root: Path, names: list[str], params_dir: Path | None, clear: bool = True,
                      jobs: int = 2) -> list[NotebookRun]:
    """Execute ``notebooks/<name>.ipynb`` into ``book/_executed/`` with papermill, ``jobs`` at a time.

    ``clear`` removes every executed notebook first, so none from an earlier parameter set is rendered. The first
    failure stops the build and names the cell and the error.
    """
    import papermill

    out_dir = root / EXECUTED_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    if clear:
        for stale in out_dir.glob("*.ipynb"):
            stale.unlink()
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # inherited by the kernels (see the module docstring)
    timeout = NOTEBOOK_TIMEOUT_S if params_dir is None else None  # a paper-scale cell trains for days
    plans = []
    for name in names:
        source = root / "notebooks" / f"{name}.ipynb"
        if not source.is_file():
            raise BookError(f"_toc.yml lists {EXECUTED_DIR}/{name} but notebooks/{name}.ipynb does not exist")
        parameters, params_file = load_parameters(params_dir, name)
        check_parameter_names(source, parameters)  # a misspelled name stops the build before anything runs
        if params_dir is not None and params_file is None:
            log.info("%s: no %s/%s.yaml, running at the notebook's defaults", name, params_dir.name, name)
        plans.append((name, source, parameters, params_file))
    runs = []
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(_execute_one, str(src), str(out_dir / f"{name}.ipynb"), params, timeout):
                   (name, params, pfile) for name, src, params, pfile in plans}
        bar = tqdm(as_completed(futures), total=len(futures), desc="notebooks", unit="nb")
        for future in bar:
            name, parameters, params_file = futures[future]
            try:
                seconds = future.result()
            except papermill.PapermillExecutionError as err:
                for other in futures:
                    other.cancel()
                raise BookError(
                    f"notebook {name} failed in cell {err.exec_count}: {err.ename}: {err.evalue}\n"
                    f"(the executed copy with the traceback is {EXECUTED_DIR}/{name}.ipynb)"
                ) from err
            bar.set_postfix_str(f"{name} {seconds:.0f} s")
            log.info("%s executed in %.1f s%s", name, seconds, f" with {params_file}" if params_file else "")
            runs.append(NotebookRun(name, parameters, str(params_file) if params_file else None, seconds))
    return runs


def _npm_integrity(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def ensure_mathjax(root: Path) -> Path:
    """MathJax 3 in ``_build/_assets/mathjax/`` (its ``es5`` folder), from the npm package; returns that folder.

    Sources, in order: the cached copy; ``$REVGNN_MATHJAX_TGZ`` (a mathjax-3.2.2.tgz already downloaded);
    ``npm pack mathjax@3.2.2``. The tarball must match npm's published sha512 integrity.
    """
    target = root / ASSETS_DIR / "mathjax"
    stamp = target / ".version"
    if stamp.is_file() and stamp.read_text().strip() == MATHJAX_VERSION and (target / "tex-chtml.js").is_file():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        tgz = os.environ.get("REVGNN_MATHJAX_TGZ")
        if tgz:
            tarball = Path(tgz)
        else:
            npm = shutil.which("npm")
            if npm is None:
                raise BookError(
                    "MathJax is served from the build (offline book), and it comes from the npm package "
                    f"mathjax@{MATHJAX_VERSION}: install Node.js/npm (Debian: apt-get install npm), or download "
                    "the tarball elsewhere and set REVGNN_MATHJAX_TGZ=/path/to/mathjax-3.2.2.tgz"
                )
            log.info("fetching mathjax@%s with npm", MATHJAX_VERSION)
            done = subprocess.run(
                [npm, "pack", f"mathjax@{MATHJAX_VERSION}", "--pack-destination", tmp, "--silent"],
                capture_output=True, text=True, cwd=tmp,
            )
            if done.returncode != 0:
                raise BookError(f"`npm pack mathjax@{MATHJAX_VERSION}` failed:\n{done.stderr}")
            tarball = Path(tmp) / f"mathjax-{MATHJAX_VERSION}.tgz"
        if _npm_integrity(tarball) != MATHJAX_INTEGRITY:
            raise BookError(f"{tarball} does not match npm's integrity for mathjax@{MATHJAX_VERSION}")
        unpack = Path(tmp) / "unpacked"
        with tarfile.open(tarball) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith("package/es5/")]
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # Python >= 3.10.12 / 3.11.4
            tar.extractall(unpack, members=members, **safe)
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(unpack / "package" / "es5"), str(target))
        stamp.write_text(MATHJAX_VERSION + "\n")
    return target


GENERATED_DIR = Path("_build") / "_generated"  # Markdown generated from results/, included by book pages


def write_generated(root: Path) -> Path:
    """Write the book's generated Markdown (the results page's accuracy table, from ``results/accuracy_*.json``)
    into ``_build/_generated/``, so the pages quote the committed files as they are; returns that folder."""
    from revgnn.sources import accuracy_results_table

    folder = root / GENERATED_DIR
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "accuracy.md").write_text(accuracy_results_table(root / "results") + "\n")
    return folder


def jupyter_book_build(root: Path) -> Path:
    """Run ``jupyter-book build`` strictly (warnings are errors, all of them reported); returns the html folder."""
    exe = Path(sys.executable).with_name("jupyter-book")
    command = [str(exe)] if exe.is_file() else [sys.executable, "-m", "jupyter_book.cli.main"]
    command += ["build", str(root), "--builder", "html", "--warningiserror", "--keep-going", "--quiet"]
    log.info("%s", " ".join(command))
    done = subprocess.run(command, cwd=root)
    if done.returncode != 0:
        raise BookError(f"jupyter-book build failed (exit {done.returncode}); the warnings above say where")
    return root / "_build" / "html"


def remote_assets(html_dir: Path) -> list[str]:
    """Every script, stylesheet, image or font that a built page (or css file) would fetch from another host."""
    found = []
    for page in sorted(html_dir.rglob("*.html")):
        for match in _REMOTE_ASSET.finditer(page.read_text(errors="replace")):
            found.append(f"{page.relative_to(html_dir)}: <{match.group(1)} {match.group(2)}={match.group(3)}>")
    for sheet in sorted(html_dir.rglob("*.css")):
        if _CSS_REMOTE.search(sheet.read_text(errors="replace")):
            found.append(f"{sheet.relative_to(html_dir)}: url() of another host")
    return found


def check_offline(html_dir: Path) -> None:
    """Fail when a page loads anything from another host, or when MathJax is not the local copy."""
    remote = remote_assets(html_dir)
    if remote:
        raise BookError("the book would load assets from the network:\n  " + "\n  ".join(remote[:20]))
    if not (html_dir / "_static" / "mathjax" / "tex-chtml.js").is_file():
        raise BookError("_static/mathjax/tex-chtml.js is missing from the build: equations would not render")


def build(params: str | None = None, notebooks: list[str] | None = None, execute: bool = True,
          root: Path | None = None, jobs: int = 2) -> Path:
    """Execute the notebooks (unless ``execute`` is False), build the html and check it works offline."""
    root = find_root(root)
    names = toc_notebooks(root)
    if notebooks:
        unknown = sorted(set(notebooks) - set(names))
        if unknown:
            raise BookError(f"not book chapters: {unknown}; chapters are {names}")
    start = time.perf_counter()
    if execute:
        params_dir = resolve_params_set(root, params)
        log.info("parameter set: %s", params_dir or "notebook defaults (shipped data)")
        execute_notebooks(root, notebooks or names, params_dir, clear=not notebooks, jobs=jobs)
    missing = [n for n in names if not (root / EXECUTED_DIR / f"{n}.ipynb").is_file()]
    if missing:
        raise BookError(f"not executed yet: {missing}; run `make book` (without --no-execute) first")
    ensure_mathjax(root)
    write_generated(root)
    html_dir = jupyter_book_build(root)
    check_offline(html_dir)
    log.info("book built in %.0f s: %s", time.perf_counter() - start, html_dir / "index.html")
    return html_dir


def notebook_parameters(path: str | Path) -> dict[str, dict]:
    """The parameters of a notebook's ``parameters`` cell as papermill sees them: name -> ``{"inferred_type_name",
    "default", "help"}`` (what ``papermill --help-notebook`` prints)."""
    import papermill

    return dict(papermill.inspect_notebook(str(path)))


def check_parameter_names(path: str | Path, parameters: dict) -> None:
    """Stop before a notebook runs when a parameter name is not one of its ``parameters`` cell (a misspelling).

    Raises:
        BookError: naming the unknown parameters, the closest known names and how to list them all.
    """
    known = notebook_parameters(path)
    unknown = sorted(set(parameters) - set(known))
    if unknown:
        raise BookError(_unknown_message(Path(path).name, unknown, known))


def _unknown_message(notebook: str, unknown: list[str], known) -> str:
    import difflib

    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, list(known), n=1)
        hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return (f"{notebook} has no parameter {', '.join(hints)}; its parameters are {sorted(known)} "
            f"(papermill --help-notebook {notebook} lists them with their types)")


def _assignments(source: str) -> dict:
    """Names assigned in a parameters cell and their literal values (``name = value`` or ``name: type = value``)."""
    import ast

    values = {}
    for node in ast.parse(source).body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else getattr(
            node, "target", None)
        if isinstance(target, ast.Name) and getattr(node, "value", None) is not None:
            try:
                values[target.id] = ast.literal_eval(node.value)
            except ValueError:
                values[target.id] = None
    return values


def check_parameters(namespace: dict) -> None:
    """Check, inside a notebook, the parameters papermill injected: every name must be one of the ``parameters``
    cell, with the type of its default. Call it first thing after the parameters: ``check_parameters(globals())``.

    A list parameter given as text (``papermill -p depths "[1, 2, 4]"``: ``-p`` passes lists as strings) is read
    as YAML and replaced in ``namespace``. Without injected parameters (nbmake, an interactive session) it checks
    nothing. papermill's injected cell is found in IPython's input history: it opens with ``# Parameters`` and
    directly follows the notebook's own ``parameters`` cell.

    Raises:
        ValueError: an unknown (misspelled) name, or a value of the wrong type; the message says what to pass.
    """
    history = namespace.get("In") or []
    injected_at = next((i for i in range(len(history) - 1, 0, -1)
                        if history[i].lstrip().startswith("# Parameters")), None)
    if injected_at is None:
        return
    defaults, injected = _assignments(history[injected_at - 1]), _assignments(history[injected_at])
    unknown = sorted(set(injected) - set(defaults))
    if unknown:
        raise ValueError(_unknown_message("this notebook", unknown, defaults))
    for name, value in injected.items():
        default = defaults[name]
        if isinstance(default, list) and isinstance(value, str):
            value = yaml.safe_load(value)
            namespace[name] = value
        kinds = {type(default), type(value)}
        if type(value) is not type(default) and kinds != {int, float} and default is not None:
            example = "[1, 2, 4]" if isinstance(default, list) else repr(default)
            raise ValueError(f"parameter {name}={value!r} must be of type {type(default).__name__}, like its default "
                             f"{example}")
        if isinstance(default, float) and isinstance(value, int):
            namespace[name] = float(value)
    for name, check in (("results_file", check_results_file), ("save_to", check_save_to)):
        if name in injected:
            check(name, namespace.get(name, injected[name]))


def check_results_file(name: str, value: str) -> None:
    """Stop a notebook early: ValueError when ``value`` names an existing file that is not a JSON record."""
    from revgnn.sources import resolve_path

    path = resolve_path(value) if value else None
    if path is None or not path.exists():
        return  # '' or a missing file: the notebook measures fresh (or says so)
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError):  # ValueError: JSONDecodeError, UnicodeDecodeError
        content = None
    if not isinstance(content, dict):
        raise ValueError(f"parameter {name}={value!r}: {path} is not a JSON record (not a JSON object written by a "
                         f"benchmark); give a results/*.json file, or a path that does not exist to measure fresh")


def check_save_to(name: str, value: str) -> None:
    """Stop a notebook early: ValueError when ``value`` names a folder rather than a JSON file to write."""
    from revgnn.sources import resolve_path

    if value and (value.endswith(("/", os.sep)) or resolve_path(value).name == "" or resolve_path(value).is_dir()):
        raise ValueError(f"parameter {name}={value!r} names a folder, not a file; give a JSON file name such as "
                         f"results/my_records.json, or '' to write nothing")


def check_choice(name: str, value, choices) -> None:
    """Stop a notebook early: ValueError unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"parameter {name}={value!r} is not allowed; choose one of {list(choices)}")


def check_range(name: str, value, low=None, high=None, integer: bool = False) -> None:
    """Stop a notebook early: ValueError unless ``low <= value <= high`` (and an int when ``integer``)."""
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise ValueError(f"parameter {name}={value!r} must be {'an integer' if integer else 'a number'}")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"
        raise ValueError(f"parameter {name}={value!r} is out of range; it must lie in {bounds}")


def notebook_device(device: str):
    """The torch device a notebook asked for; ValueError when it is not available here."""
    import torch

    check_choice("device", device, ("cpu", "cuda"))
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("parameter device='cuda' but torch sees no CUDA device here; use device='cpu' or a GPU "
                         "machine (params/paper/ is meant for one)")
    return torch.device(device)


def notebook_dataset(dataset: str, num_nodes: int, num_edges: int, seed: int = 0, data_root: str = "",
                     **synthetic):
    """Load a notebook's dataset: ``synthetic-proteins`` is sized by ``num_nodes``/``num_edges`` and seeded (and
    takes further :class:`~revgnn.synthetic.SyntheticProteinsConfig` fields, e.g. ``max_hops``), the other names
    (``ogbn-proteins``, ``ppi``, ...) ignore those; ``data_root`` '' means the package default."""
    from revgnn.data import DATASETS, load_dataset

    if dataset == "synthetic-proteins":
        check_range("num_nodes", num_nodes, 80, None, integer=True)
        check_range("num_edges", num_edges, 2, None, integer=True)
        if num_edges % 2:
            raise ValueError(f"parameter num_edges={num_edges} must be even (edges are stored in both directions)")
        for name in ("max_hops", "pathway_length"):
            if name in synthetic:
                check_range(name, synthetic[name], 1 if name == "max_hops" else 2, None, integer=True)
        return load_dataset(dataset, root=data_root or None, num_nodes=num_nodes, num_edges=num_edges, seed=seed,
                            **synthetic)
    if dataset not in DATASETS and not dataset.startswith("planetoid:"):
        raise ValueError(f"parameter dataset={dataset!r} is not allowed; choose one of {list(DATASETS)}")
    return load_dataset(dataset, root=data_root or None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m revgnn.book", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="", help="parameter set: params/<set>/ (default: notebook defaults)")
    parser.add_argument("--only", default="", help="comma-separated notebooks to re-execute (others are kept)")
    parser.add_argument("--no-execute", action="store_true", help="render the already executed notebooks")
    parser.add_argument("--jobs", type=int, default=2, help="notebooks executed at once (default: 2)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    logging.getLogger("papermill").setLevel(logging.WARNING)  # one line per cell otherwise; tqdm shows progress
    try:
        only = [n for n in args.only.split(",") if n]
        build(params=args.params, notebooks=only or None, execute=not args.no_execute, jobs=args.jobs)
    except BookError as err:
        log.error("%s", err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
