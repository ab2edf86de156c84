"""Launch buttons (revgnn.book.launch, revgnn.book.extension): a book that names a public repository shows Binder and
Colab buttons on its notebook pages, opening the committed notebook; the offline book, which names none, shows none.

Each case renders a one-chapter book with the repository's own _config.yml through the build's Jupyter Book call.
"""
import re
import shutil
from pathlib import Path

import nbformat
import pytest
import yaml

from revgnn.book import build, launch
from revgnn.book.params import BookError

ROOT = Path(__file__).resolve().parents[1]


def _one_chapter_book(root: Path) -> Path:
    """The repository's configuration with one executed notebook chapter, as `make book` lays it out."""
    shutil.copy(ROOT / "_config.yml", root / "_config.yml")
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/index\nchapters:\n  - file: book/_executed/demo\n")
    (root / "book" / "_executed").mkdir(parents=True)
    (root / "book" / "index.md").write_text("# A book\n\nOne chapter.\n")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Demo"), nbformat.v4.new_code_cell("1 + 1")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, root / "book" / "_executed" / "demo.ipynb")
    (root / "notebooks").mkdir()
    nbformat.write(nb, root / "notebooks" / "demo.ipynb")
    (root / "_build" / "_assets" / "_static" / "mathjax").mkdir(parents=True)  # html_extra_path
    (root / "_build" / "_assets" / "_static" / "mathjax" / "tex-chtml.js").write_text("")
    return root


def _launch_links(html: Path) -> list[str]:
    return re.findall(r'href="(https://(?:mybinder\.org|colab\.research\.google\.com)[^"]*)"', html.read_text())


def test_a_repository_comes_from_the_environment_or_the_config_and_must_be_on_github(monkeypatch):
    monkeypatch.delenv(launch.REPOSITORY_ENV, raising=False)
    assert launch.repository({"repository": {"url": ""}}) is None, "the offline book names no repository"
    assert launch.repository({"repository": {"url": "https://github.com/o/r.git"}}) == "https://github.com/o/r"
    monkeypatch.setenv(launch.REPOSITORY_ENV, "https://github.com/someone/revgnn/")
    assert launch.repository({"repository": {"url": ""}}) == "https://github.com/someone/revgnn"
    monkeypatch.setenv(launch.REPOSITORY_ENV, "https://gitlab.com/someone/revgnn")
    with pytest.raises(BookError, match="not https://github.com/<owner>/<name>"):
        launch.repository({})
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert not config["repository"]["url"], "the committed configuration names no repository: an offline book"


@pytest.mark.slow
def test_notebook_pages_show_binder_and_colab_only_where_a_repository_is_named(tmp_path, monkeypatch):
    pytest.importorskip("jupyter_book")
    root = _one_chapter_book(tmp_path)
    monkeypatch.delenv(launch.REPOSITORY_ENV, raising=False)
    html = build.jupyter_book_build(root, launch.book_config(root))
    assert _launch_links(html / "book" / "_executed" / "demo.html") == [], "an offline book shows no launch button"

    monkeypatch.setenv(launch.REPOSITORY_ENV, "https://github.com/someone/revgnn")
    monkeypatch.setenv(launch.BRANCH_ENV, "trunk")
    html = build.jupyter_book_build(root, launch.book_config(root))
    links = _launch_links(html / "book" / "_executed" / "demo.html")
    assert "https://mybinder.org/v2/gh/someone/revgnn/trunk?urlpath=lab/tree/notebooks/demo.ipynb" in links, links
    assert "https://colab.research.google.com/github/someone/revgnn/blob/trunk/notebooks/demo.ipynb" in links, links
    assert _launch_links(html / "book" / "index.html") == [], "a page that is not a notebook has none"
