"""The book's notebooks: thin, parameterised, committed clean, and they stop early on bad parameters.

`pytest --nbmake notebooks` runs every notebook at its defaults; these tests check what nbmake cannot: the
structure papermill relies on, that injected parameters are used, and that a bad value fails in the first cells
with a message that names it.
"""
import ast
from pathlib import Path

import nbformat
import pytest
import yaml

from revgnn import book

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
    tree = ast.parse(cells[0].source)
    return {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body}


def test_every_book_chapter_has_a_notebook_and_back():
    assert sorted(book.toc_notebooks(ROOT)) == NAMES, "_toc.yml lists exactly the notebooks in notebooks/"


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
def test_parameters_are_flat_annotated_scalars(path):
    _, cells = parameters_cell(path)
    tree = ast.parse(cells[0].source)
    for node in tree.body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1, "one plain assignment per line"
        value = ast.literal_eval(node.value)
        assert isinstance(value, (int, float, str, bool)), f"{node.targets[0].id} is a flat scalar"
    for line in cells[0].source.splitlines():
        assert "#" in line, f"every parameter says what it is: {line!r}"


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


@pytest.mark.slow
def test_figure_notebook_measures_fresh_records(tmp_path):
    smoke = yaml.safe_load((ROOT / "params" / "smoke" / "fig3_memory_wt.yaml").read_text())
    assert smoke["source"] == "fresh"
    nb = _run(tmp_path, "fig3_memory_wt", smoke)
    markdown = "".join(o.get("data", {}).get("text/markdown", "") for c in nb.cells if c.cell_type == "code"
                       for o in c.outputs)
    assert "source ../results" not in markdown, "source='fresh' measures instead of reading committed records"
    for depth in (1, 2, 4, 8):  # the smoke max_depth is 8
        assert f"| wt-res | {depth} |" in markdown and f"| wt-rev | {depth} |" in markdown, \
            f"both models are measured at depth {depth}"
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 1, "the figure is drawn once"


@pytest.mark.slow
@pytest.mark.parametrize("name, parameters, message", [
    ("00_quickstart", {"num_layers": 0}, "num_layers=0 is out of range"),
    ("00_quickstart", {"device": "tpu"}, "device='tpu' is not allowed"),
    ("00_quickstart", {"hidden_channels": 33}, "not divisible by num_groups"),
    ("depth_sweep", {"width_min": 64, "width_max": 32}, "width_max=32 is out of range"),
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
    assert book.remote_assets(tmp_path) == [], "local scripts and plain links are fine offline"
    (tmp_path / "bad.html").write_text('<script src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js">'
                                       '</script><link rel="stylesheet" href="//fonts.example.org/a.css">')
    found = book.remote_assets(tmp_path)
    assert len(found) == 2 and all(f.startswith("bad.html") for f in found), "CDN scripts and styles are flagged"


def test_parameter_sets_resolve(tmp_path):
    assert book.resolve_params_set(ROOT, "") is None, "no set means the notebooks' defaults"
    assert book.resolve_params_set(ROOT, "paper") == (ROOT / "params" / "paper").resolve()
    with pytest.raises(book.BookError, match="unknown parameter set"):
        book.resolve_params_set(ROOT, "no-such-set")
    (tmp_path / "nested.yaml").write_text("a: {b: 1}\n")
    with pytest.raises(book.BookError, match="flat mapping"):
        book.load_parameters(tmp_path, "nested")


def test_book_retries_a_kernel_that_died_at_start_but_not_a_failing_cell(monkeypatch):
    """Parallel workers can race for a kernel port; that start is retried, a notebook error is not."""
    papermill = pytest.importorskip("papermill")
    from revgnn import book

    calls = []

    def dies_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("Kernel died before replying to kernel_info")

    monkeypatch.setattr(papermill, "execute_notebook", dies_once)
    monkeypatch.setattr(book.time, "sleep", lambda s: None)
    book._execute_one("notebooks/x.ipynb", "/tmp/x.ipynb", {}, None)
    assert len(calls) == 2, "the dead start was retried once"

    def cell_fails(*args, **kwargs):
        calls.append(1)
        raise papermill.PapermillExecutionError(0, 1, "x = 1", "ValueError", "bad", [])

    calls.clear()
    monkeypatch.setattr(papermill, "execute_notebook", cell_fails)
    with pytest.raises(papermill.PapermillExecutionError):
        book._execute_one("notebooks/x.ipynb", "/tmp/x.ipynb", {}, None)
    assert len(calls) == 1, "a failing cell is not rerun"
