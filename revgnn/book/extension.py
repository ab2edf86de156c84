"""The Sphinx extension of the revgnn book: two changes to the pages Jupyter Book 1 renders.

Part of the book of "Training Graph Neural Networks with 1000 Layers" (Li et al., ICML 2021); named in
``_config.yml`` (``sphinx.extra_extensions``). Both were found by the browser test (:mod:`revgnn.book.browser`):

- a script registered twice is written once: under Jupyter Book 1.0.4 (sphinx-thebe 0.3.1) every page, even that of
  a one-page book, carried sphinx-thebe's inline configuration twice, and the second copy is a console error
  (``Identifier 'THEBE_JS_URL' has already been declared``);
- launch buttons (where a repository is named, :mod:`revgnn.book.launch`) open ``notebooks/<name>.ipynb``, the
  committed notebook, not ``book/_executed/<name>.ipynb``, the page's source, which is not committed.

Imports: nothing of revgnn.
"""
from __future__ import annotations

__all__ = ["EXECUTED_PREFIX", "NOTEBOOKS_PREFIX", "setup"]

EXECUTED_PREFIX = "book/_executed/"  # where the book's notebook pages come from (_toc.yml)
NOTEBOOKS_PREFIX = "notebooks/"  # where the committed notebooks are


def _script_key(script) -> tuple:
    attributes = getattr(script, "attributes", {}) or {}
    source = getattr(script, "filename", script) or ""  # an inline script: None from one caller, "" from another
    return str(source), tuple(sorted((k, str(v)) for k, v in attributes.items()))


def _one_of_each_script(app, pagename, templatename, context, doctree) -> None:
    """Drop the second copy of a script with the same source and attributes (inline body included)."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        key = _script_key(script)
        if key not in seen:
            seen.add(key)
            kept.append(script)
    context["script_files"] = kept


def _point_at_notebooks(app, pagename, templatename, context, doctree) -> None:
    """Rewrite the launch buttons of a page from ``book/_executed/<name>.ipynb`` to ``notebooks/<name>.ipynb``."""
    for group in context.get("header_buttons") or []:
        if group.get("label") == "launch-buttons":
            for button in group.get("buttons", []):
                if "url" in button:
                    button["url"] = button["url"].replace(EXECUTED_PREFIX, NOTEBOOKS_PREFIX)


def setup(app) -> dict:
    """Connect both after the theme has filled the page's context (its launch buttons at priority 501)."""
    app.connect("html-page-context", _one_of_each_script, priority=900)
    app.connect("html-page-context", _point_at_notebooks, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
