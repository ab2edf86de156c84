"""The execution report of the revgnn book: every notebook of a build, when it ran, how long, on which revision and
parameter set, executed or from the cache (and why), passed or failed.

Part of the book of "Training Graph Neural Networks with 1000 Layers" (Li et al., ICML 2021). The build
(:mod:`revgnn.book.build`) collects one :class:`NotebookRun` per notebook and :func:`write_report` turns them into the
page ``book/_generated/execution.md`` (linked from the index) and ``_build/execution_report.json``; a failed build
writes them too, before it stops, so the page on disk says what failed. Imports: the standard library.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["GENERATED_PAGES", "NotebookRun", "report_page", "write_report", "write_if_changed"]

GENERATED_PAGES = Path("book") / "_generated"  # pages the build writes (in _toc.yml; not committed)
REPORT_JSON = Path("_build") / "execution_report.json"


@dataclass
class NotebookRun:
    """One notebook of a build, as the execution report shows it.

    Args:
        name: notebook stem, e.g. ``fig1_auc_vs_memory``.
        status: ``passed``, ``failed`` or ``not run`` (the build stopped first).
        source: ``executed`` (by this build), ``cached`` (a stored run reused) or ``kept`` (not considered by this
            build, ``--only`` or ``--no-execute``: the executed copy of an earlier build).
        reason: why it was executed, or what the cache checked.
        executed_at: when the run started (``YYYY-MM-DD HH:MM UTC``), if it ran.
        seconds: how long it ran.
        revision: the git revision it ran on (``+dirty``: with uncommitted changes).
        params_set: the parameter set ('' = the notebook's defaults).
        params_file: the yaml file its parameters came from, relative to the repository, or None.
        inputs: the repository files the run read (modules, records, data), when traced.
        error: the failing cell and its error.
    """

    name: str
    status: str
    source: str
    reason: str = ""
    executed_at: str | None = None
    seconds: float | None = None
    revision: str | None = None
    params_set: str = ""
    params_file: str | None = None
    inputs: list[str] = field(default_factory=list)
    error: str = ""


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def report_page(runs: list[NotebookRun], build: dict) -> str:
    """The execution report in MyST Markdown.

    Args:
        runs: one per notebook, in book order.
        build: ``{"date", "revision", "params_set", "command", "fresh"}`` of this build.
    """
    executed = [r for r in runs if r.source == "executed" and r.status != "not run"]
    cached = [r for r in runs if r.source == "cached"]
    failed = [r for r in runs if r.status == "failed"]
    spent = sum(r.seconds or 0 for r in executed)
    saved = sum(r.seconds or 0 for r in cached)
    others = sorted({r.status for r in runs} - {"passed", "failed"})
    verdict = (f"**{len(failed)} failed**: " + ", ".join(r.name for r in failed) if failed else
               "all passed" if not others else "some are " + " or ".join(f"'{o}'" for o in others))
    lines = [
        "# Execution report", "",
        f"This book was built on {build['date']} from revision `{build['revision']}` with "
        f"**parameter set: {build['params_set'] or 'none'}** (`{build['command']}`"
        + ("; a fresh build: the cache was not read" if build.get("fresh") else "") + ").",
        f"Of its {len(runs)} notebooks, " + (
            f"{len(executed)} were executed by this build (their runs took {spent:.0f} s)" if executed else
            "none was executed by this build") + " and " + (
            f"{len(cached)} came from the cache (their runs had taken {saved:.0f} s)" if cached else
            "none came from the cache") + f"; {verdict}.", "",
        "Every notebook is executed by papermill into `book/_executed/`. A stored run stands in for an execution only "
        "when the notebook, its parameters and set, every repository file the run read (the `revgnn` modules it "
        "imported, the records under `results/`, the shipped data), every path whose existence it checked, every "
        "folder it listed, and the environment (versions of the packages the kernel imported, Python, the CPU and its "
        "vector extensions, `REVGNN_*` and thread settings) are as they were; `make book FRESH=1` executes "
        "everything. The date and duration are those of the run shown, also for a cached one. "
        "{doc}`environment` says what built this book.", "",
        "| notebook | status | run | executed (UTC) | seconds | revision | parameter set | files read |",
        "|---|---|---|---|---:|---|---|---:|",
    ]
    for r in runs:
        page = f"{{doc}}`{r.name} <../_executed/{r.name}>`" if r.status != "not run" else f"`{r.name}`"
        seconds = "" if r.seconds is None else f"{r.seconds:.0f}"
        revision = (r.revision or "")[:12] + ("+dirty" if (r.revision or "").endswith("+dirty") else "")
        when = (r.executed_at or "").removesuffix(" UTC").replace(" ", "\u00a0")  # one line: 2026-12-07 04:19
        lines.append(f"| {page} | {r.status} | {r.source} | {when} | {seconds} | "
                     f"`{revision}` | {r.params_set or 'none'} | {len(r.inputs) or ''} |")
    lines += ["", "## Why each notebook ran or came from the cache", ""]
    for r in runs:
        source = f"parameters from `{r.params_file}`" if r.params_file else "the notebook's default parameters"
        error = f" **{_cell(r.error)}**" if r.error else ""
        lines.append(f"- **{r.name}** ({r.source}, {source}): {_cell(r.reason)}.{error}")
    traced = [r for r in runs if r.inputs]
    if traced:
        lines += ["", "## What each notebook read", "",
                  "The repository files each run read, as traced in its kernel (and in any Python process it "
                  "started); a change to any of them executes the notebook again.", ""]
        for r in traced:
            files = ", ".join(f"<code>{f}</code>" for f in r.inputs)
            lines += [f"<details><summary>{r.name}: {len(r.inputs)} files</summary>", "", f"<p>{files}</p>", "",
                      "</details>", ""]
    return "\n".join(lines).rstrip() + "\n"


def write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` unless the file already holds it (an unchanged page keeps its time: Sphinx skips it)."""
    if path.is_file() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return True


def write_report(root: Path, runs: list[NotebookRun], build: dict) -> Path:
    """Write the execution report page and its JSON (``_build/execution_report.json``); returns the page."""
    page = root / GENERATED_PAGES / "execution.md"
    write_if_changed(page, report_page(runs, build))
    data = {"build": build, "notebooks": [asdict(r) for r in runs]}
    write_if_changed(root / REPORT_JSON, json.dumps(data, indent=1) + "\n")
    return page
