"""Build the book of "Training Graph Neural Networks with 1000 Layers" (Li et al., ICML 2021): execute every notebook
with papermill, or reuse its stored run, then render it with Jupyter Book 1, strictly.

`make book` runs ``python -m revgnn.book --params "$(PARAMS)"`` (``--fresh`` with ``FRESH=1``):

0. the tools are checked first (papermill, Jupyter Book, MathJax from npm): a missing one stops the build at once
   with one line that says what to install (exit 2);
1. each notebook is executed into ``book/_executed/`` (:mod:`revgnn.book.execute`) unless a stored run stands in for
   it (:mod:`revgnn.book.cache`: the same notebook, parameters, repository files read and environment); the log
   says, per notebook, cached or executed and why;
2. the execution report (:mod:`revgnn.book.report`) and the environment page (:mod:`revgnn.book.environment`) are
   written into ``book/_generated/``, the Markdown quoted from ``results/`` into ``_build/_generated/``;
3. MathJax 3 is put into the build from the npm package ``mathjax@3.2.2`` (integrity-checked, cached in
   ``_build/_assets/``), so no page loads anything from a CDN;
4. ``jupyter-book build`` renders the book with warnings as errors (Jupyter Book does not execute anything), with
   Binder and Colab buttons where a repository is named (:mod:`revgnn.book.launch`); ``--fresh`` also re-renders
   every page;
5. every built page is scanned for scripts, stylesheets or images loaded from another host: the book must work
   offline (:mod:`revgnn.book.browser` opens the pages in Chromium; ``make test`` runs it on the smoke book).

Any failure stops the build with a non-zero exit status; a failing notebook is named with its cell and error, and
the execution report on disk lists every notebook's state. The top layer of :mod:`revgnn.book`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

from .claims import check_claims, claims_table
from .environment import build_environment, environment_page
from .execute import EXECUTED_DIR, NotebooksFailed, execute_notebooks, kept_run
from .launch import book_config
from .offline import SetupError, check_offline, ensure_mathjax
from .params import BookError
from .prose import depth_reading, official_cost
from .records import accuracy_records
from .report import GENERATED_PAGES, NotebookRun, write_if_changed, write_report
from .sources import accuracy_results_table

log = logging.getLogger("revgnn.book")


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
    write_if_changed(folder / "accuracy.md", accuracy_results_table(results) + "\n")  # unchanged: not re-rendered
    fig1 = accuracy_records(results / "accuracy_fig1.json")
    write_if_changed(folder / "claims.md", (claims_table(check_claims(fig1)) if fig1 else "No committed record "
                                            "`results/accuracy_fig1.json` in this revision.") + "\n")
    sweeps = [r for name in DEPTH_FILES for r in accuracy_records(results / name)]
    write_if_changed(folder / "depth.md", depth_reading(sweeps) + "\n")
    cost = results / "official_inference.json"
    write_if_changed(folder / "official_cost.md",
                     (official_cost(json.loads(cost.read_text())) if cost.is_file() else
                      "No committed record `results/official_inference.json` in this revision.") + "\n")
    return folder


DOCTREES = Path("_build") / ".doctrees"  # Jupyter Book's Sphinx environment: what a later build re-renders


def jupyter_book_build(root: Path, config: Path | None = None, fresh: bool = False) -> Path:
    """Run ``jupyter-book build`` strictly (warnings are errors, all of them reported); returns the html folder.

    Sphinx re-renders only the pages whose sources changed; ``fresh`` renders all of them. After a failed build its
    environment is dropped, so that the next build reads every page again and reports the same warnings, instead of
    passing over the pages that caused them."""
    exe = Path(sys.executable).with_name("jupyter-book")
    command = [str(exe)] if exe.is_file() else [sys.executable, "-m", "jupyter_book.cli.main"]
    command += ["build", str(root), "--builder", "html", "--warningiserror", "--keep-going", "--quiet"]
    if config is not None and config.resolve() != (root / "_config.yml").resolve():
        command += ["--config", str(config)]
    if fresh:
        command.append("--all")
    log.info("%s", " ".join(command))
    done = subprocess.run(command, cwd=root)
    if done.returncode != 0:
        shutil.rmtree(root / DOCTREES, ignore_errors=True)
        raise BookError(f"jupyter-book build failed (exit {done.returncode}); the warnings above say where")
    return root / "_build" / "html"


def check_setup(root: Path) -> None:
    """Stop before anything runs when a tool of the build is missing, with one line that says what to install:
    papermill and nbformat (the ``dev`` extra), Jupyter Book (``book``), MathJax from npm (:func:`ensure_mathjax`)."""
    missing = [m for m in ("papermill", "nbformat", "ipykernel") if importlib.util.find_spec(m) is None]
    if missing:
        raise SetupError(f"{', '.join(missing)} not installed: run `make setup` (or pip install -e '.[dev,book]')")
    if importlib.util.find_spec("jupyter_book") is None:
        raise SetupError("jupyter-book is not installed: run `make setup` (or pip install -e '.[book]')")
    ensure_mathjax(root)


def command_line(params: str | None, notebooks: list[str] | None, execute: bool, fresh: bool) -> str:
    """The command that builds a book the way :func:`build` was asked to (shown by the report)."""
    parts = ["python -m revgnn.book"] + ([f"--params {params}"] if params else [])
    parts += [f"--only {','.join(notebooks)}"] if notebooks else []
    return " ".join(parts + ([] if execute else ["--no-execute"]) + (["--fresh"] if fresh else []))


def build(params: str | None = None, notebooks: list[str] | None = None, execute: bool = True,
          root: Path | None = None, jobs: int = 2, fresh: bool = False) -> Path:
    """Execute the notebooks that need it (unless ``execute`` is False), write the execution report and the
    environment page, build the html and check it works offline (see the module docstring)."""
    root = find_root(root)
    check_setup(root)
    names = toc_notebooks(root)
    if notebooks:
        unknown = sorted(set(notebooks) - set(names))
        if unknown:
            raise BookError(f"not book chapters: {unknown}; chapters are {names}")
    start = time.perf_counter()
    from revgnn.training.records import git_revision

    params_dir = resolve_params_set(root, params)
    info = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "revision": git_revision(),
            "params_set": "" if params_dir is None else params_dir.name,
            "command": command_line(params, notebooks, execute, fresh), "fresh": fresh}
    rows: dict[str, NotebookRun] = {}
    if execute:
        log.info("parameter set: %s", params_dir or "notebook defaults (shipped data)")
        try:
            done = execute_notebooks(root, notebooks or names, params_dir, clear=not notebooks, jobs=jobs,
                                     fresh=fresh, revision=info["revision"])
        except NotebooksFailed as err:
            runs = {r.name: r for r in err.runs}
            page = write_report(root, [runs.get(n) or kept_run(root, n) for n in names], info)
            raise BookError(f"{err}\nevery notebook's state: {page.relative_to(root)}") from err
        rows = {r.name: r for r in done}
    missing = [n for n in names if not (root / EXECUTED_DIR / f"{n}.ipynb").is_file()]
    if missing:
        raise BookError(f"not executed yet: {missing}; run `make book` (without --no-execute) first")
    write_report(root, [rows.get(n) or kept_run(root, n) for n in names], info)
    write_if_changed(root / GENERATED_PAGES / "environment.md",
                     environment_page(build_environment(info["params_set"], info["command"])))
    write_generated(root)
    html_dir = jupyter_book_build(root, book_config(root), fresh=fresh)
    check_offline(html_dir)
    log.info("book built in %.0f s: %s", time.perf_counter() - start, html_dir / "index.html")
    return html_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m revgnn.book", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="", help="parameter set: params/<set>/ (default: notebook defaults)")
    parser.add_argument("--only", default="", help="comma-separated notebooks to bring up to date (others are kept)")
    parser.add_argument("--no-execute", action="store_true", help="render the already executed notebooks")
    parser.add_argument("--fresh", action="store_true",
                        help="execute every notebook and render every page, without reading the cache (make book "
                             "FRESH=1; CI does this)")
    parser.add_argument("--jobs", type=int, default=2, help="notebooks executed at once (default: 2)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    logging.getLogger("papermill").setLevel(logging.WARNING)  # one line per cell otherwise; tqdm shows progress
    try:
        only = [n for n in args.only.split(",") if n]
        build(params=args.params, notebooks=only or None, execute=not args.no_execute, jobs=args.jobs,
              fresh=args.fresh)
    except SetupError as err:
        log.error("%s", err)
        return 2
    except BookError as err:
        log.error("%s", err)
        return 1
    return 0
