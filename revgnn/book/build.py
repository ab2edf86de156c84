"""Build the book of "Training Graph Neural Networks with 1000 Layers" (Li et al., ICML 2021): execute every notebook
with papermill, then render it with Jupyter Book 1, strictly.

`make book` runs ``python -m revgnn.book --params "$(PARAMS)"``:

1. each ``notebooks/<name>.ipynb`` is executed by papermill into ``book/_executed/<name>.ipynb``, with the
   parameters of ``params/<set>/<name>.yaml`` when a parameter set is named (a notebook without a file in the set
   runs at its defaults, and the log says so); the page then names its parameter set, when it was executed and how
   long it took (:func:`page_stamp`, from papermill's notebook metadata);
2. MathJax 3 is put into the build from the npm package ``mathjax@3.2.2`` (integrity-checked, cached in
   ``_build/_assets/``), so no page loads anything from a CDN;
3. ``jupyter-book build`` renders the book with warnings as errors (Jupyter Book does not execute anything);
4. every built page is scanned for scripts, stylesheets or images loaded from another host: the book must work
   offline.

Any failure stops the build with a non-zero exit status. Notebooks run two at a time, each on one torch thread
(``OMP_NUM_THREADS=1`` unless set): on a 2-core machine that is faster than one notebook on two threads, whose
thread pool thrashes as soon as anything else runs. The top layer of :mod:`revgnn.book`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml
from tqdm import tqdm

from .claims import check_claims, claims_table
from .offline import check_offline, ensure_mathjax
from .params import BookError, check_parameter_names
from .prose import depth_reading, official_cost
from .records import accuracy_records
from .sources import accuracy_results_table

log = logging.getLogger("revgnn.book")

EXECUTED_DIR = Path("book") / "_executed"  # the notebook chapters of _toc.yml
NOTEBOOK_TIMEOUT_S = 600  # per cell at the defaults (seconds each); no limit with a parameter set


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


def _execute_one(source: str, target: str, parameters: dict, timeout: int | None, params_set: str = "",
                 params_file: str | None = None) -> float:
    """Run one notebook with papermill (in a worker process); returns its wall-clock seconds.

    Kernels started at the same moment by parallel workers can race for the same free TCP port (jupyter_client picks
    a port, releases it, and the kernel binds it later), and the loser dies before any cell runs ("Kernel died before
    replying to kernel_info"). Such a start is retried; a failure inside a cell is not.
    """
    import nbformat
    import papermill

    def run() -> float:
        start = time.perf_counter()
        nb = papermill.execute_notebook(source, target, parameters=parameters, kernel_name="python3",
                                        cwd=str(Path(source).parent), progress_bar=False, execution_timeout=timeout)
        fold_injected_parameters(nb)
        stamp_page(nb, params_set, params_file)
        nbformat.write(nb, target)
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


def fold_injected_parameters(nb) -> None:
    """Fold papermill's injected-parameters cell like the notebook's own parameters cell (MyST ``hide-input``)."""
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "injected-parameters" in tags and "hide-input" not in tags:
            tags.append("hide-input")


STAMP_TAG = "page-stamp"


def page_stamp(papermill_metadata: dict, params_set: str = "", params_file: str | None = None) -> str:
    """The line under a page's title: its parameter set, when papermill executed it and how long it took.

    Args:
        papermill_metadata: ``nb.metadata["papermill"]`` of the executed notebook (``start_time``, ``duration``).
        params_set: the set's name ('' = the notebook's defaults).
        params_file: the yaml file the parameters came from, or None (a set without a file for this notebook).
    """
    if not params_set:
        where = "**parameter set: none** (the notebook's defaults)"
    elif params_file:
        where = f"**parameter set: {params_set}** (`params/{Path(params_file).as_posix().split('/params/')[-1]}`)"
    else:
        where = f"**parameter set: {params_set}** (no file for this page in it: the notebook's defaults)"
    start = papermill_metadata.get("start_time")
    when = ""
    if start:
        when = datetime.fromisoformat(str(start)).strftime("%Y-%m-%d %H:%M UTC")
    duration = papermill_metadata.get("duration")
    took = "" if duration is None else f"{duration:.0f} s"
    parts = [where] + ([f"executed {when}"] if when else []) + ([f"took {took}"] if took else [])
    return "*This page:* " + " · ".join(parts) + "."


def stamp_page(nb, params_set: str = "", params_file: str | None = None) -> None:
    """Put :func:`page_stamp` under the notebook's title (one markdown cell tagged ``page-stamp``, replaced on a
    rerun); papermill has written the start time and the duration into ``nb.metadata.papermill`` by then."""
    import nbformat

    text = page_stamp(dict(nb.metadata.get("papermill") or {}), params_set, params_file)
    nb.cells = [c for c in nb.cells if STAMP_TAG not in c.metadata.get("tags", [])]
    cell = nbformat.v4.new_markdown_cell(text, metadata={"tags": [STAMP_TAG]})
    at = 1 if nb.cells and nb.cells[0].cell_type == "markdown" else 0
    nb.cells.insert(at, cell)


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
    # PyG imports tqdm.auto, which warns in every kernel without ipywidgets ("IProgress not found"): one stderr block
    # on each page's first cell, kept out of the executed notebooks that readers download
    quiet = "ignore:IProgress not found:Warning"
    if quiet not in os.environ.get("PYTHONWARNINGS", ""):
        os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), quiet]))
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
        set_name = "" if params_dir is None else params_dir.name
        futures = {pool.submit(_execute_one, str(src), str(out_dir / f"{name}.ipynb"), params, timeout, set_name,
                               str(pfile) if pfile else None):
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


GENERATED_DIR = Path("_build") / "_generated"  # Markdown generated from results/, included by book pages
DEPTH_FILES = ("accuracy_synthetic-depth.json", "accuracy_synthetic-depth-2000.json",
               "accuracy_synthetic-depth-16hops.json")  # the committed depth sweeps, in the results page's order


def write_generated(root: Path) -> Path:
    """Write the book's generated Markdown into ``_build/_generated/``, so the pages quote the committed files as
    they are: ``accuracy.md`` (every ``results/accuracy_*.json``, included by the results page), ``claims.md`` (the
    claims overview of ``results/accuracy_fig1.json``, :func:`revgnn.book.claims.claims_table`) and ``depth.md`` (the
    committed depth sweeps' steps, :func:`revgnn.book.prose.depth_reading`) and ``official_cost.md`` (what
    ``revgnn evaluate`` costs, from ``results/official_inference.json``, :func:`revgnn.book.prose.official_cost`,
    included by the "Check the published numbers" page); returns that folder."""
    folder = root / GENERATED_DIR
    folder.mkdir(parents=True, exist_ok=True)
    results = root / "results"
    (folder / "accuracy.md").write_text(accuracy_results_table(results) + "\n")
    fig1 = accuracy_records(results / "accuracy_fig1.json")
    (folder / "claims.md").write_text((claims_table(check_claims(fig1)) if fig1 else
                                       "No committed record `results/accuracy_fig1.json` in this revision.") + "\n")
    sweeps = [r for name in DEPTH_FILES for r in accuracy_records(results / name)]
    (folder / "depth.md").write_text(depth_reading(sweeps) + "\n")
    cost = results / "official_inference.json"
    (folder / "official_cost.md").write_text((official_cost(json.loads(cost.read_text())) if cost.is_file() else
                                              "No committed record `results/official_inference.json` in this "
                                              "revision.") + "\n")
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
