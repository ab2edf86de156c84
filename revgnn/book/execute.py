"""Execute the notebooks of the revgnn book ("Training Graph Neural Networks with 1000 Layers", Li et al., ICML 2021)
with papermill, or reuse their stored runs (:mod:`revgnn.book.cache`), into ``book/_executed/``.

Each ``notebooks/<name>.ipynb`` runs with the parameters of ``params/<set>/<name>.yaml`` when a parameter set is named
(a notebook without a file in the set runs at its defaults, and the log says so). Its page then names its parameter
set, when it was executed and how long it took (:func:`page_stamp`, from papermill's notebook metadata), and keeps
the run's provenance in ``metadata.revgnn`` (:func:`materialise`). Notebooks run two at a time, each on one torch
thread (``OMP_NUM_THREADS=1`` unless set): on a 2-core machine that is faster than one notebook on two threads, whose
thread pool thrashes as soon as anything else runs. Used by :mod:`revgnn.book.build`.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from concurrent.futures import CancelledError, ProcessPoolExecutor, as_completed
from datetime import datetime, timezone
from pathlib import Path

import yaml
from tqdm import tqdm

from . import cache
from .params import BookError, check_parameter_names
from .report import NotebookRun, write_if_changed

log = logging.getLogger("revgnn.book")

EXECUTED_DIR = Path("book") / "_executed"  # the notebook chapters of _toc.yml
NOTEBOOK_TIMEOUT_S = 600  # per cell at the defaults (seconds each); no limit with a parameter set


class NotebooksFailed(BookError):
    """A notebook failed; ``runs`` holds every notebook's state for the execution report."""

    def __init__(self, message: str, runs: list[NotebookRun]):
        super().__init__(message)
        self.runs = runs


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


def _execute_one(source: str, target: str, parameters: dict, timeout: int | None,
                 env: dict[str, str] | None = None) -> tuple[float, float]:
    """Run one notebook with papermill (in a worker process) into ``target``, the kernel started with ``env`` added
    to the environment (the trace of :mod:`revgnn.book.cache`); returns its start (epoch seconds) and duration.

    Kernels started at the same moment by parallel workers can race for the same free TCP port (jupyter_client picks
    a port, releases it, and the kernel binds it later), and the loser dies before any cell runs ("Kernel died before
    replying to kernel_info"). Such a start is retried; a failure inside a cell is not.
    """
    import papermill

    env = env or {}
    os.environ.update(env)  # one notebook at a time per worker: the kernel inherits this process's environment

    def run() -> tuple[float, float]:
        trace_file = Path(env.get("REVGNN_BOOK_TRACE", ""))
        if trace_file.name:
            trace_file.unlink(missing_ok=True)
        started, start = time.time(), time.perf_counter()
        papermill.execute_notebook(source, target, parameters=parameters, kernel_name="python3",
                                   cwd=str(Path(source).parent), progress_bar=False, execution_timeout=timeout)
        return started, time.perf_counter() - start

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


def materialise(executed: Path, target: Path, plan: cache.Plan, run: dict, root: Path) -> bool:
    """Write the book's copy of an executed notebook: injected parameters folded, the page stamp under the title, and
    the run's provenance in ``metadata.revgnn`` (read back by :func:`kept_run`); unchanged bytes are not rewritten,
    so Jupyter Book does not render the page again."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    fold_injected_parameters(nb)
    stamp_page(nb, plan.params_set, str(root / plan.params_file) if plan.params_file else None)
    nb.metadata["revgnn"] = run
    return write_if_changed(target, nbformat.writes(nb) + "\n")


def _relative(root: Path, path: Path | None) -> str | None:
    if path is None:
        return None
    path = Path(path).resolve()
    return path.relative_to(root.resolve()).as_posix() if path.is_relative_to(root.resolve()) else str(path)


def plan_notebooks(root: Path, names: list[str], params_dir: Path | None) -> list[cache.Plan]:
    """What each notebook will run with; a missing notebook or a misspelled parameter stops the build here."""
    plans = []
    for name in names:
        source = root / "notebooks" / f"{name}.ipynb"
        if not source.is_file():
            raise BookError(f"_toc.yml lists {EXECUTED_DIR}/{name} but notebooks/{name}.ipynb does not exist")
        parameters, params_file = load_parameters(params_dir, name)
        check_parameter_names(source, parameters)  # a misspelled name stops the build before anything runs
        if params_dir is not None and params_file is None:
            log.info("%s: no %s/%s.yaml, running at the notebook's defaults", name, params_dir.name, name)
        plans.append(cache.Plan(name, source, parameters, "" if params_dir is None else params_dir.name,
                                _relative(root, params_file)))
    return plans


def _provenance(entry: dict) -> dict:
    """What a page's ``metadata.revgnn`` keeps of a stored run."""
    return {"executed_at": entry["executed_at"], "seconds": entry["seconds"], "revision": entry["revision"],
            "params_set": entry["params_set"], "params_file": entry["params_file"],
            "inputs": sorted(entry["inputs"]["files"])}


def _row(plan: cache.Plan, source: str, reason: str, run: dict, status: str = "passed") -> NotebookRun:
    return NotebookRun(plan.name, status, source, reason, run.get("executed_at"), run.get("seconds"),
                       run.get("revision"), plan.params_set, plan.params_file, list(run.get("inputs", [])))


def kept_run(root: Path, name: str) -> NotebookRun:
    """The report's row of a notebook this build did not consider (``--only``, ``--no-execute``), from the
    provenance its executed copy keeps."""
    import nbformat

    path = root / EXECUTED_DIR / f"{name}.ipynb"
    meta = nbformat.read(path, as_version=4).metadata if path.is_file() else {}
    run = dict(meta.get("revgnn") or {})
    status = ("failed" if (meta.get("papermill") or {}).get("exception") else  # papermill's mark of a failed run
              "passed" if run else "unknown")
    return NotebookRun(name, status, "kept", "not considered by this build (--only or --no-execute): the copy of "
                       "an earlier build", run.get("executed_at"), run.get("seconds"), run.get("revision"),
                       run.get("params_set", ""), run.get("params_file"), list(run.get("inputs", [])))


def execute_notebooks(root: Path, names: list[str], params_dir: Path | None, clear: bool = True,
                      jobs: int = 2, fresh: bool = False, revision: str | None = None) -> list[NotebookRun]:
    """Bring ``book/_executed/<name>.ipynb`` up to date for each name: reuse a stored run where
    :func:`revgnn.book.cache.lookup` allows it, else execute ``notebooks/<name>.ipynb`` with papermill, ``jobs`` at a
    time, tracing what it reads, and store the run. Returns one row per notebook, in the order given.

    ``clear`` removes executed notebooks that are not book chapters. ``fresh`` executes everything (the cache is not
    read; the new runs are stored). The first failure cancels the notebooks not started yet and, once the running
    ones end, raises :class:`NotebooksFailed` naming the cell and the error.
    """
    import papermill

    from revgnn.training.records import git_revision

    out_dir = root / EXECUTED_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    if clear:
        for stale in out_dir.glob("*.ipynb"):
            if stale.stem not in names:
                stale.unlink()
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # inherited by the kernels (see the module docstring)
    # PyG imports tqdm.auto, which warns in every kernel without ipywidgets ("IProgress not found"): one stderr block
    # on each page's first cell, kept out of the executed notebooks that readers download
    quiet = "ignore:IProgress not found:Warning"
    if quiet not in os.environ.get("PYTHONWARNINGS", ""):
        os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), quiet]))
    timeout = NOTEBOOK_TIMEOUT_S if params_dir is None else None  # a paper-scale cell trains for days
    plans = plan_notebooks(root, names, params_dir)
    revision = revision or git_revision()
    rows: dict[str, NotebookRun] = {}
    todo = []
    for plan in plans:
        decision = cache.lookup(root, plan, fresh)
        if decision.cached:
            log.info("%s: cached: %s", plan.name, decision.reason)
            cache.touch(root, decision.entry)
            run = _provenance(decision.entry)
            materialise(decision.notebook, out_dir / f"{plan.name}.ipynb", plan, run, root)
            rows[plan.name] = _row(plan, "cached", decision.reason, run)
        else:
            log.info("%s: executing: %s", plan.name, decision.reason)
            todo.append((plan, decision.reason))
    failures = []
    if todo:
        site = cache.prepare_trace(root)
        staging = root / cache.CACHE_DIR / "runs" / str(os.getpid())  # two builds at once do not share it
        staging.mkdir(parents=True, exist_ok=True)
        with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = {}
            for plan, reason in todo:
                raw, trace_file = staging / f"{plan.name}.ipynb", staging / f"{plan.name}.trace"
                env = cache.trace_environment(site, trace_file)
                future = pool.submit(_execute_one, str(plan.source), str(raw), plan.parameters, timeout, env)
                futures[future] = (plan, reason, raw, trace_file)
            bar = tqdm(as_completed(futures), total=len(futures), desc="notebooks", unit="nb")
            for future in bar:
                plan, reason, raw, trace_file = futures[future]
                try:
                    started, seconds = future.result()
                except CancelledError:
                    continue
                except Exception as err:  # noqa: BLE001 - a failed cell, a dead kernel, a timeout: all are reported
                    for other in futures:
                        other.cancel()
                    if isinstance(err, papermill.PapermillExecutionError):
                        what = f"cell {err.exec_count}: {err.ename}: {err.evalue}"
                    else:
                        what = f"{type(err).__name__}: {err}"
                    if raw.is_file():
                        shutil.copyfile(raw, out_dir / f"{plan.name}.ipynb")
                    failures.append(f"notebook {plan.name} failed in {what}\n(the executed copy with the traceback "
                                    f"is {EXECUTED_DIR}/{plan.name}.ipynb)")
                    rows[plan.name] = NotebookRun(plan.name, "failed", "executed", reason, revision=revision,
                                                  params_set=plan.params_set, params_file=plan.params_file,
                                                  error=what)
                    continue
                bar.set_postfix_str(f"{plan.name} {seconds:.0f} s")
                entry = cache.store(root, plan, raw, trace_file, started, seconds, revision)
                if entry is None:
                    log.warning("%s: a file it read changed while it ran; this run is not stored", plan.name)
                    run = {"executed_at": datetime.fromtimestamp(started, timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                           "seconds": round(seconds, 1), "revision": revision, "params_set": plan.params_set,
                           "params_file": plan.params_file, "inputs": []}
                else:
                    run = _provenance(entry)
                materialise(raw, out_dir / f"{plan.name}.ipynb", plan, run, root)
                log.info("%s executed in %.1f s%s (%d repository files read)", plan.name, seconds,
                         f" with {plan.params_file}" if plan.params_file else "", len(run["inputs"]))
                rows[plan.name] = _row(plan, "executed", reason, run)
        shutil.rmtree(staging, ignore_errors=True)
    ordered = [rows.get(p.name) or NotebookRun(p.name, "not run", "executed", "cancelled: another notebook failed",
                                               params_set=p.params_set, params_file=p.params_file) for p in plans]
    if failures:
        raise NotebooksFailed("\n".join(failures), ordered)
    return ordered
