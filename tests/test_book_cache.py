"""The book's execution cache, execution report, environment page and set-up check (revgnn.book.cache, trace, report,
environment, build).

A stored run stands in for executing a notebook only when the notebook, its parameters, every repository file the run
read (traced in its kernel and in the Python processes it starts), every path whose existence it checked, every folder
it listed and the environment are as they were; anything else executes it again, and the log says what changed.
"""
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from revgnn.book import build, cache, execute, trace
from revgnn.book.report import NotebookRun, report_page

ROOT = Path(__file__).resolve().parents[1]


# --- the tracer --------------------------------------------------------------------------------------------------

def test_the_tracer_sees_reads_checks_listings_writes_and_child_processes(tmp_path):
    """A process started with the build's sitecustomize records what it (and a Python process it starts) reads under
    the repository, which paths it checks and lists, what it writes, and which packages it imports from outside."""
    root = tmp_path / "repo"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("VALUE = 1\n")
    (root / "pkg" / "helper.py").write_text("def f():\n    return 2\n")
    (root / "data").mkdir()
    (root / "data" / "a.txt").write_text("a")
    (root / "data" / "b.txt").write_text("b")
    (root / "_build").mkdir()
    (root / "_build" / "output.txt").write_text("an output, never an input")
    child = "import pkg.helper; open('data/b.txt').read()"
    script = (
        "import os, pathlib, subprocess, sys, json\n"
        "import pkg\n"
        "open('data/a.txt').read()\n"
        "open('_build/output.txt').read()\n"
        "pathlib.Path('results/missing.json').is_file()\n"
        "sorted(pathlib.Path('data').glob('*.txt'))\n"
        "open('data/made.txt', 'w').write('x')\n"
        f"subprocess.run([sys.executable, '-c', {child!r}], check=True)\n"
    )
    site = cache.prepare_trace(root)
    trace_file = tmp_path / "run.trace"
    env = {**os.environ, **cache.trace_environment(site, trace_file)}
    env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], str(root)])
    subprocess.run([sys.executable, "-c", script], cwd=root, env=env, check=True, timeout=120)
    found = trace.read_trace(trace_file)
    assert {"pkg/__init__.py", "data/a.txt"} <= found["r"], "the process's own reads are traced"
    assert {"pkg/helper.py", "data/b.txt"} <= found["r"], "a Python process it starts is traced too"
    assert "_build/output.txt" not in found["r"], "the build's outputs are not inputs"
    assert "results/missing.json" in found["s"], "a path whose existence was checked is traced"
    assert "data" in found["l"], "a globbed folder is traced"
    assert found["w"] == {"data/made.txt"}, "a file the run wrote is traced as written"
    assert "json" not in found["p"] and not any(p.startswith("pkg") for p in found["p"]), \
        "packages are only those imported from outside the repository's site-packages"


# --- lookups without a kernel ----------------------------------------------------------------------------------

def _stored_run(root: Path, plan: cache.Plan, reads=(), checks=(), lists=(), packages=("yaml",)) -> dict:
    """A stored run made without a kernel: a trace written by hand, an executed copy that is the notebook."""
    trace_file = root / "run.trace"
    lines = [f"r {p}" for p in reads] + [f"s {p}" for p in checks] + [f"l {p}" for p in lists]
    trace_file.write_text("".join(f"{line}\n" for line in lines + [f"p {p}" for p in packages]))
    entry = cache.store(root, plan, plan.source, trace_file, time.time(), 1.5, "abc123")
    assert entry is not None, "a run whose inputs did not change while it ran is stored"
    return entry


def _plan(root: Path, **parameters) -> cache.Plan:
    return cache.Plan("page", root / "notebooks" / "page.ipynb", parameters, "smoke" if parameters else "",
                      "params/smoke/page.yaml" if parameters else None)


@pytest.fixture
def repo(tmp_path):
    (tmp_path / "notebooks").mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    nbformat.write(nb, tmp_path / "notebooks" / "page.ipynb")
    (tmp_path / "revgnn").mkdir()
    (tmp_path / "revgnn" / "mod.py").write_text("A = 1\n")
    (tmp_path / "revgnn" / "other.py").write_text("B = 1\n")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "r.json").write_text("{}")
    old = time.time() - 3600
    for path in tmp_path.rglob("*"):
        os.utime(path, (old, old))  # written well before the runs below start
    return tmp_path


def test_an_unchanged_notebook_comes_from_the_cache_and_a_touch_changes_nothing(repo):
    plan = _plan(repo, depths=[1, 2])
    _stored_run(repo, plan, reads=["revgnn/mod.py", "results/r.json"])
    decision = cache.lookup(repo, plan)
    assert decision.cached and "2 files read" in decision.reason, decision.reason
    os.utime(repo / "revgnn" / "mod.py", (time.time() + 60, time.time() + 60))
    assert cache.lookup(repo, plan).cached, "a newer modification time with the same content is not a change"
    (repo / "revgnn" / "other.py").write_text("B = 2\n")
    assert cache.lookup(repo, plan).cached, "a module the run did not read does not execute it again"
    (repo / "revgnn" / "mod.py").write_text("A = 2\n")
    assert not cache.lookup(repo, plan).cached
    _stored_run(repo, plan, reads=["revgnn/mod.py", "results/r.json"])
    (repo / "revgnn" / "mod.py").write_text("A = 1\n")
    assert cache.lookup(repo, plan).cached, "a change undone finds the run made before it"
    assert not cache.lookup(repo, plan, fresh=True).cached, "a fresh build does not read the cache"


@pytest.mark.parametrize("change, said", [
    (lambda r: (r / "revgnn" / "mod.py").write_text("A = 2\n"), "revgnn/mod.py changed"),
    (lambda r: (r / "revgnn" / "mod.py").unlink(), "revgnn/mod.py is gone"),
    (lambda r: (r / "results" / "new.json").write_text("{}"), "results/new.json is now a file (was absent)"),
    (lambda r: (r / "results" / "another.json").write_text("{}"), "results/ holds other files"),
    (lambda r: (r / "notebooks" / "page.ipynb").write_text((r / "notebooks" / "page.ipynb").read_text() + " "),
     "notebooks/page.ipynb changed"),
])
def test_a_change_to_what_the_run_read_executes_it_again_and_says_what(repo, change, said):
    plan = _plan(repo, depths=[1, 2])
    _stored_run(repo, plan, reads=["revgnn/mod.py"], checks=["results/new.json"], lists=["results"])
    assert cache.lookup(repo, plan).cached
    change(repo)
    decision = cache.lookup(repo, _plan(repo, depths=[1, 2]))
    assert not decision.cached and said in decision.reason, f"the log names what changed: {decision.reason}"


def test_a_parameter_or_set_change_names_the_parameter(repo):
    _stored_run(repo, _plan(repo, depths=[1, 2], epochs=1))
    decision = cache.lookup(repo, _plan(repo, depths=[1, 2, 4], epochs=1))
    assert not decision.cached and "depths [1,2] -> [1,2,4]" in decision.reason, decision.reason
    decision = cache.lookup(repo, _plan(repo))
    assert not decision.cached and "parameter set smoke -> none" in decision.reason, decision.reason
    assert cache.lookup(repo, _plan(repo, depths=[1, 2], epochs=1)).cached, "the earlier set's run is still there"


def test_an_environment_change_executes_it_again(repo, monkeypatch):
    plan = _plan(repo)
    entry = _stored_run(repo, plan, packages=["yaml"])
    assert "pyyaml" in entry["environment"]["packages"], "the distribution of an imported package is recorded"
    monkeypatch.setenv("REVGNN_NATIVE_ISA", "generic")
    decision = cache.lookup(repo, plan)
    assert not decision.cached and "REVGNN_NATIVE_ISA" in decision.reason, decision.reason
    monkeypatch.delenv("REVGNN_NATIVE_ISA")
    manifest = Path(entry["notebook_path"]).with_suffix(".json")
    stored = json.loads(manifest.read_text())
    stored["environment"]["packages"]["pyyaml"] = "0.0"
    manifest.write_text(json.dumps(stored))
    decision = cache.lookup(repo, plan)
    assert not decision.cached and "pyyaml 0.0 -> " in decision.reason, decision.reason


def test_a_file_changed_while_the_notebook_ran_is_not_stored(repo):
    plan = _plan(repo)
    trace_file = repo / "run.trace"
    trace_file.write_text("r revgnn/mod.py\n")
    started = time.time() - 5
    (repo / "revgnn" / "mod.py").write_text("A = 3\n")  # after the start
    assert cache.store(repo, plan, plan.source, trace_file, started, 1.0, "abc") is None, \
        "the output may be of the old content: the run is not kept"


def test_at_most_keep_runs_per_notebook(repo):
    for depth in range(cache.KEEP + 2):
        _stored_run(repo, _plan(repo, depth=depth))
    stored = list((repo / cache.CACHE_DIR / "notebooks" / "page").glob("*.json"))
    assert len(stored) == cache.KEEP, "the least recently used runs are dropped"


# --- the build with a kernel -----------------------------------------------------------------------------------

def _notebook(cells: list[str]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# A page")]
                                  + [nbformat.v4.new_code_cell(c) for c in cells])
    nb.cells[1].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


@pytest.mark.slow
def test_the_build_executes_only_what_changed_and_logs_why(tmp_path, caplog):
    pytest.importorskip("papermill")
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "used.py").write_text("VALUE = 1\n")
    (tmp_path / "lib" / "unused.py").write_text("VALUE = 1\n")
    nbformat.write(_notebook(["n: int = 1  # a parameter", "import sys; sys.path.insert(0, '../lib')\n"
                              "import used\nprint(used.VALUE * n)"]), tmp_path / "notebooks" / "a.ipynb")
    nbformat.write(_notebook(["n: int = 1  # a parameter", "print(n)"]), tmp_path / "notebooks" / "b.ipynb")
    caplog.set_level(logging.INFO, logger="revgnn.book")

    def run(**kw):
        caplog.clear()
        rows = execute.execute_notebooks(tmp_path, ["a", "b"], None, jobs=1, **kw)
        return {r.name: r for r in rows}

    first = run()
    assert all(r.source == "executed" and r.reason == "no stored run" for r in first.values())
    assert "lib/used.py" in first["a"].inputs, "the module the kernel imported is an input"
    second = run()
    assert all(r.source == "cached" for r in second.values()), "nothing changed: nothing is executed"
    assert "a: cached" in caplog.text and "b: cached" in caplog.text
    (tmp_path / "lib" / "unused.py").write_text("VALUE = 2\n")
    assert all(r.source == "cached" for r in run().values()), "a file no notebook read changes nothing"
    (tmp_path / "lib" / "used.py").write_text("VALUE = 2\n")
    third = run()
    assert third["a"].source == "executed" and third["b"].source == "cached", "exactly the reader runs again"
    assert "a: executing: lib/used.py changed" in caplog.text, caplog.text
    page = nbformat.read(tmp_path / "book" / "_executed" / "a.ipynb", as_version=4)
    assert "2" in "".join(o.get("text", "") for c in page.cells if c.cell_type == "code" for o in c.outputs), \
        "the page shows the new module's output"
    assert all(r.source == "executed" for r in run(fresh=True).values()), "a fresh build executes everything"


@pytest.mark.slow
def test_a_failing_notebook_is_reported_and_not_stored(tmp_path):
    pytest.importorskip("papermill")
    (tmp_path / "notebooks").mkdir()
    nbformat.write(_notebook(["n: int = 1  # a parameter", "raise ValueError('broken on purpose')"]),
                   tmp_path / "notebooks" / "bad.ipynb")
    with pytest.raises(execute.NotebooksFailed, match="bad failed in cell .*broken on purpose") as err:
        execute.execute_notebooks(tmp_path, ["bad"], None, jobs=1)
    [row] = err.value.runs
    assert row.status == "failed" and "broken on purpose" in row.error
    assert (tmp_path / "book" / "_executed" / "bad.ipynb").is_file(), "the executed copy with the traceback is kept"
    assert not list((tmp_path / cache.CACHE_DIR / "notebooks").glob("bad/*.json")), "a failed run is not stored"
    assert execute.kept_run(tmp_path, "bad").status == "failed", "a later --no-execute build still reports it failed"
    page = report_page(err.value.runs, {"date": "now", "revision": "abc", "params_set": "", "command": "x"})
    assert "**1 failed**: bad" in page and "broken on purpose" in page


# --- the report, the environment, the set-up -------------------------------------------------------------------

def test_the_report_lists_every_notebook_with_its_state():
    runs = [NotebookRun("a", "passed", "executed", "lib/used.py changed", "2026-01-02 03:04 UTC", 12.3,
                        "0123456789abcdef+dirty", "smoke", "params/smoke/a.yaml", ["lib/used.py"]),
            NotebookRun("b", "passed", "cached", "inputs as they were", "2026-01-01 00:00 UTC", 40.0, "fedcba987654"),
            NotebookRun("c", "not run", "executed", "cancelled: another notebook failed")]
    page = report_page(runs, {"date": "2026-01-02 03:05 UTC", "revision": "0123456789ab", "params_set": "smoke",
                              "command": "python -m revgnn.book --params smoke", "fresh": False})
    assert "| {doc}`a <../_executed/a>` | passed | executed | 2026-01-02\u00a003:04 | 12 | `0123456789ab+dirty` |" \
        in page, page
    assert "| {doc}`b <../_executed/b>` | passed | cached |" in page and "| `c` | not run |" in page
    assert "1 were executed by this build (their runs took 12 s) and 1 came from the cache" in page
    assert "- **a** (executed, parameters from `params/smoke/a.yaml`): lib/used.py changed." in page
    assert "<code>lib/used.py</code>" in page, "the files each run read are listed"


@pytest.mark.slow
def test_the_environment_page_names_versions_cpu_kernel_and_revision():
    import torch

    from revgnn.book.environment import build_environment, environment_page
    from revgnn.nn import native

    env = build_environment("smoke", "python -m revgnn.book --params smoke")
    page = environment_page(env)
    assert f"| `torch` | {torch.__version__} |" in page and "| `jupyter-book` |" in page
    assert env["cpu"]["model"] in page and f"**variant for this CPU**: {native.isa()}" in page
    assert env["revision"] and f"`{env['revision']}`" in page


def test_make_book_without_npm_stops_at_the_start_with_one_line(tmp_path, monkeypatch, caplog):
    for name in ("_config.yml", "_toc.yml"):
        (tmp_path / name).write_text((ROOT / name).read_text())
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # no npm
    monkeypatch.delenv("REVGNN_MATHJAX_TGZ", raising=False)
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.INFO, logger="revgnn.book")
    assert build.main(["--params", "smoke"]) == 2, "a missing tool is bad set-up: exit 2"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "\n" not in errors[0] and "apt-get install npm" in errors[0], errors
    assert not (tmp_path / "book" / "_executed").exists(), "nothing ran before the check"
