"""The book's notebooks: thin, parameterised, committed clean, and they stop early on bad parameters.

`pytest --nbmake notebooks` runs every notebook at its defaults; these tests check what nbmake cannot: the
structure papermill relies on, that injected parameters are used, and that a bad value fails in the first cells
with a message that names it.
"""
import ast
import re
from pathlib import Path

import nbformat
import pytest
import yaml

from revgnn.book import build, execute, offline, params

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
NAMES = [p.stem for p in NOTEBOOKS]
PARAM_FILES = sorted((ROOT / "params").glob("*/*.yaml"))
ALIASES = {"revgnn_deep": "reproduce_revgnn", "revgnn_wide": "reproduce_revgnn"}  # named runs of one notebook


def parameters_cell(path: Path):
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    return nb, cells


def parameter_names(path: Path) -> dict:
    _, cells = parameters_cell(path)
    return params._assignments(cells[0].source)


def test_every_book_chapter_has_a_notebook_and_back():
    assert sorted(build.toc_notebooks(ROOT)) == NAMES, "_toc.yml lists exactly the notebooks in notebooks/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_notebook_structure(path):
    nb, cells = parameters_cell(path)
    assert len(cells) == 1, "exactly one cell is tagged 'parameters'"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert not any(c.outputs or c.execution_count for c in code), "notebooks are committed without outputs"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), "a notebook opens with a title"
    assert nb.metadata.kernelspec.name == "python3"
    first_code = code.index(cells[0])
    assert first_code == 1, "imports once at the top, then the parameters"
    assert all("import" not in c.source for c in code[2:]), "imports are in the first code cell only"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_page_hides_its_plumbing_and_says_how_to_rerun(path):
    nb, cells = parameters_cell(path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "remove-cell" in code[0].metadata.get("tags", []), "the imports are not shown on the page"
    assert "hide-input" in cells[0].metadata.get("tags", []), "the parameters fold away"
    checks = code[2]
    assert checks.source.startswith("check_parameters(globals())"), "the first cell after the parameters checks them"
    rerun = nb.cells[-1]
    assert rerun.cell_type == "code" and rerun.source.startswith(f"Markdown(rerun_note({path.stem!r}"), \
        "the page ends with its boxed rerun note"
    assert "remove-input" in rerun.metadata.get("tags", [])


def test_rerun_note_gives_the_commands_and_links_only_committed_records():
    from revgnn.book import rerun_note

    note = rerun_note("fig2_memory_res_vs_rev", '-p depths "[1, 2]"',
                      ["results/memory_depth_small.json", "results/no_such_file.json"])
    assert note.startswith("> **Rerun this figure.**"), "a boxed note"
    assert all(line.startswith(">") for line in note.splitlines()), "one block quote: plain Markdown"
    assert ":::" not in note and "{download}" not in note, "no MyST syntax, which JupyterLab shows as raw text"
    for command in ('papermill notebooks/fig2_memory_res_vs_rev.ipynb /tmp/fig2_memory_res_vs_rev.ipynb -p depths',
                    "-f params/smoke/fig2_memory_res_vs_rev.yaml", "make book PARAMS=smoke",
                    "papermill --help-notebook notebooks/fig2_memory_res_vs_rev.ipynb"):
        assert command in note, f"the rerun note gives {command!r}"
    links = re.findall(r"\]\(([^)]+)\)", note)
    assert links == ["../../results/memory_depth_small.json"], "only committed files are linked (a strict build)"
    assert (ROOT / "book" / "_executed" / links[0]).resolve().is_file(), "the link resolves from book/_executed/"
    assert "`results/no_such_file.json` (not committed in this revision)" in note


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_parameters_are_annotated_scalars_or_lists_that_papermill_can_list(path):
    _, cells = parameters_cell(path)
    tree = ast.parse(cells[0].source)
    for node in tree.body:
        assert isinstance(node, ast.AnnAssign), f"line {node.lineno}: name: type = value (papermill reads the type)"
        value = ast.literal_eval(node.value)
        scalars = (int, float, str, bool)
        assert isinstance(value, scalars) or (isinstance(value, list) and all(isinstance(v, scalars) for v in value)), \
            f"{node.target.id} is a scalar or a list of scalars"
    for line in cells[0].source.splitlines():
        assert "#" in line, f"every parameter says what it is: {line!r}"
        comment = line.split("#", 1)[1]
        assert not set(comment) & set("\"'="), f"papermill drops a line whose comment has quotes or '=': {line!r}"
    inspected = params.notebook_parameters(path)
    assert sorted(inspected) == sorted(parameter_names(path)), "papermill --help-notebook lists every parameter"
    unknown = [name for name, p in inspected.items() if p["inferred_type_name"] in ("None", "")]
    assert not unknown, f"papermill infers a type for every parameter: {unknown}"
    assert all(p["help"] for p in inspected.values()), "papermill shows every parameter's help"


@pytest.mark.parametrize("path", PARAM_FILES, ids=[f"{p.parent.name}/{p.stem}" for p in PARAM_FILES])
def test_parameter_files_name_real_parameters(path):
    notebook = ALIASES.get(path.stem, path.stem)
    assert notebook in NAMES, f"{path.name} names a notebook (or an alias of one)"
    values = yaml.safe_load(path.read_text())
    defaults = parameter_names(ROOT / "notebooks" / f"{notebook}.ipynb")
    unknown = sorted(set(values) - set(defaults))
    assert not unknown, f"{path} sets parameters the notebook does not have: {unknown}"
    for key, value in values.items():
        assert type(value) is type(defaults[key]) or {type(value), type(defaults[key])} == {int, float}, \
            f"{path}: {key} has the type of the notebook's default"
    params.check_parameter_names(ROOT / "notebooks" / f"{notebook}.ipynb", values)  # what make book checks first


def test_paper_parameter_set_is_complete():
    paper = {p.stem for p in (ROOT / "params" / "paper").glob("*.yaml")}
    assert set(NAMES) <= paper, "make book PARAMS=paper gives every notebook the paper's setting"
    assert {"revgnn_deep", "revgnn_wide"} <= paper


def _run(tmp_path, name, parameters):
    papermill = pytest.importorskip("papermill")
    return papermill.execute_notebook(
        str(ROOT / "notebooks" / f"{name}.ipynb"), str(tmp_path / f"{name}.ipynb"), parameters=parameters,
        kernel_name="python3", cwd=str(ROOT / "notebooks"), progress_bar=False)


@pytest.mark.slow
def test_papermill_injects_parameters(tmp_path):
    nb = _run(tmp_path, "00_quickstart", {"num_layers": 2, "hidden_channels": 8, "epochs": 1,
                                          "dataset": "synthetic-proteins", "num_nodes": 200, "num_edges": 2000})
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1, "papermill adds one injected-parameters cell"
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "RevGNN L=2, D=8, C=2" in text, "the injected values, not the defaults, built the model"
    assert "200 nodes" in text, "the injected graph size was used"


def _markdown(nb) -> str:
    return "".join(o.get("data", {}).get("text/markdown", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.outputs)


def _plotted_from_rows(markdown: str) -> dict:
    """The "plotted from" table of a page: series label -> {column header: cell}."""
    lines = markdown.split("**Plotted from**", 1)[1].strip().splitlines()
    header = [h.strip() for h in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows[cells[0]] = dict(zip(header, cells))
    return rows


@pytest.mark.slow
def test_a_non_default_depth_list_changes_what_is_plotted(tmp_path):
    """The committed Fig. 2 records (L = 1 .. 1001, D = 16) stand in only for the parameters they were measured at."""
    default = _run(tmp_path, "fig2_memory_res_vs_rev", {})
    rows = _plotted_from_rows(_markdown(default))
    assert rows["ours"]["source"] == "results/memory_depth_small.json", "the defaults plot the committed records"
    assert rows["ours"]["depths L"] == "1, 10, 100, 250, 500, 1,001"
    # -p passes a list as text; the notebook reads it as YAML
    nb = _run(tmp_path, "fig2_memory_res_vs_rev", {"depths": "[1, 2, 4]", "hidden_channels": 8, "num_nodes": 200,
                                                   "num_edges": 2000})
    markdown = _markdown(nb)
    rows = _plotted_from_rows(markdown)
    assert rows["ours"]["source"] == "fresh (this run)", "other depths are measured, not read from the committed file"
    assert rows["ours"]["depths L"] == "1, 2, 4" and rows["ours"]["D"] == "8", "the plot shows the asked depths and D"
    assert rows["ours"]["N (nodes)"] == "200" and rows["ours"]["E (edges)"] == "2,000"
    assert "differ in" in markdown, "the page says why it measured fresh"
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 2, "the figure and the partition-scale panels are drawn once each"


@pytest.mark.slow
def test_committed_source_with_other_parameters_is_an_error(tmp_path):
    papermill = pytest.importorskip("papermill")
    with pytest.raises(papermill.PapermillExecutionError) as err:
        _run(tmp_path, "fig3_memory_wt", {"source": "committed", "hidden_channels": 8})
    assert "hidden_channels 16 (committed) != 8 (asked)" in err.value.evalue, err.value.evalue
    assert "source fresh" in err.value.evalue, "the message says how to ask for a fresh run"


@pytest.mark.slow
def test_misspelled_parameter_stops_a_papermill_run(tmp_path):
    papermill = pytest.importorskip("papermill")
    with pytest.raises(papermill.PapermillExecutionError) as err:
        _run(tmp_path, "fig2_memory_res_vs_rev", {"max_dept": 128})
    assert err.value.ename == "ValueError"
    assert "'max_dept'" in err.value.evalue and "parameters are" in err.value.evalue, err.value.evalue


def test_book_rejects_a_misspelled_parameter_before_running(tmp_path):
    (tmp_path / "fig2_memory_res_vs_rev.yaml").write_text("max_dept: 128\n")
    with pytest.raises(params.BookError, match="has no parameter 'max_dept'"):
        build.execute_notebooks(ROOT, ["fig2_memory_res_vs_rev"], tmp_path, clear=False, jobs=1)
    (tmp_path / "fig2_memory_res_vs_rev.yaml").write_text("dephts: [1, 2]\n")
    with pytest.raises(params.BookError, match="did you mean 'depths'"):
        build.execute_notebooks(ROOT, ["fig2_memory_res_vs_rev"], tmp_path, clear=False, jobs=1)


def test_check_parameters_reads_papermill_injection():
    """check_parameters finds the injected cell in IPython's history, rejects unknown names, reads lists."""
    defaults = 'depths: list = [1, 2]  # L\nepochs: int = 3  # epochs\nlr: float = 0.1  # rate\n'
    namespace = {"In": ["", "import x", defaults, '# Parameters\ndepths = "[4, 8]"\nlr = 1\n']}
    params.check_parameters(namespace)
    assert namespace["depths"] == [4, 8] and namespace["lr"] == 1.0, "a list given as text is read as YAML"
    with pytest.raises(ValueError, match="must be of type int"):
        params.check_parameters({"In": ["", defaults, '# Parameters\nepochs = "many"\n']})
    with pytest.raises(ValueError, match="did you mean 'epochs'"):
        params.check_parameters({"In": ["", defaults, "# Parameters\nepoch = 4\n"]})
    params.check_parameters({"In": ["", defaults]})  # no injection (nbmake, Jupyter): nothing to check


@pytest.mark.slow
@pytest.mark.parametrize("name, parameters, message", [
    ("00_quickstart", {"num_layers": 0}, "num_layers=0 is out of range"),
    ("00_quickstart", {"device": "tpu"}, "device='tpu' is not allowed"),
    ("00_quickstart", {"hidden_channels": 33}, "not divisible by num_groups"),
    ("depth_sweep", {"widths": [64, 1]}, "widths=1 is out of range"),
    ("depth_sweep", {"depths": "1, 2"}, "must be of type list"),
    ("fig2_memory_res_vs_rev", {"source": "cached"}, "source='cached' is not allowed"),
    ("reproduce_revgnn", {"preset": "revgnn-huge"}, "preset='revgnn-huge' is not allowed"),
])
def test_bad_parameters_stop_the_notebook_early_with_a_clear_error(tmp_path, name, parameters, message):
    papermill = pytest.importorskip("papermill")
    with pytest.raises(papermill.PapermillExecutionError) as err:
        _run(tmp_path, name, parameters)
    assert err.value.ename == "ValueError", "a bad parameter raises ValueError"
    assert message in err.value.evalue, f"the message names the parameter: {err.value.evalue}"
    assert err.value.exec_count <= 4, "the notebook stops in its first cells, before any training"


def test_offline_check_finds_remote_assets(tmp_path):
    (tmp_path / "ok.html").write_text('<script src="_static/mathjax/tex-chtml.js"></script>'
                                      '<a href="https://arxiv.org/abs/2106.07476">paper</a>')
    assert offline.remote_assets(tmp_path) == [], "local scripts and plain links are fine offline"
    (tmp_path / "bad.html").write_text('<script src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js">'
                                       '</script><link rel="stylesheet" href="//fonts.example.org/a.css">')
    found = offline.remote_assets(tmp_path)
    assert len(found) == 2 and all(f.startswith("bad.html") for f in found), "CDN scripts and styles are flagged"


def test_parameter_sets_resolve(tmp_path):
    assert build.resolve_params_set(ROOT, "") is None, "no set means the notebooks' defaults"
    assert build.resolve_params_set(ROOT, "paper") == (ROOT / "params" / "paper").resolve()
    with pytest.raises(params.BookError, match="unknown parameter set"):
        build.resolve_params_set(ROOT, "no-such-set")
    (tmp_path / "lists.yaml").write_text("depths: [1, 2]\n")
    assert execute.load_parameters(tmp_path, "lists")[0] == {"depths": [1, 2]}, "lists are parameters too"
    (tmp_path / "nested.yaml").write_text("a: {b: 1}\n")
    with pytest.raises(params.BookError, match="flat mapping"):
        execute.load_parameters(tmp_path, "nested")


def test_book_retries_a_kernel_that_died_at_start_but_not_a_failing_cell(monkeypatch, tmp_path):
    """Parallel workers can race for a kernel port; that start is retried, a notebook error is not."""
    papermill = pytest.importorskip("papermill")
    calls = []

    def dies_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("Kernel died before replying to kernel_info")
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
        nb.cells[0].metadata["tags"] = ["injected-parameters"]
        return nb

    monkeypatch.setattr(papermill, "execute_notebook", dies_once)
    monkeypatch.setattr(execute.time, "sleep", lambda s: None)
    execute._execute_one("notebooks/x.ipynb", str(tmp_path / "x.ipynb"), {}, None)
    assert len(calls) == 2, "the dead start was retried once"
    nb = dies_once()
    execute.fold_injected_parameters(nb)
    assert "hide-input" in nb.cells[0].metadata["tags"], "the injected parameters fold like the parameters cell"

    def cell_fails(*args, **kwargs):
        calls.append(1)
        raise papermill.PapermillExecutionError(0, 1, "x = 1", "ValueError", "bad", [])

    calls.clear()
    monkeypatch.setattr(papermill, "execute_notebook", cell_fails)
    with pytest.raises(papermill.PapermillExecutionError):
        execute._execute_one("notebooks/x.ipynb", str(tmp_path / "y.ipynb"), {}, None)
    assert len(calls) == 1, "a failing cell is not rerun"
