"""Binder and Colab launch buttons on the notebook pages of the revgnn book, where a public repository is named.

Part of the book of "Training Graph Neural Networks with 1000 Layers" (Li et al., ICML 2021). The book is built
offline and, by default, names no repository: its pages show no launch button (a button would lead nowhere). Where
``repository.url`` of ``_config.yml`` or the environment variable ``REVGNN_BOOK_REPOSITORY`` names a GitHub
repository (``https://github.com/<owner>/<name>``, branch ``repository.branch`` or ``REVGNN_BOOK_BRANCH``, default
``main``), :func:`book_config` writes the configuration the build renders with, ``_build/_config.yml``, with
Binder's and Colab's addresses. Jupyter Book would point the buttons at the page's own source,
``book/_executed/<name>.ipynb``, which is not committed; the book's Sphinx extension (:mod:`revgnn.book.extension`)
points them at ``notebooks/<name>.ipynb``. Imports: :mod:`revgnn.book.params` and :mod:`revgnn.book.report`.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

from .params import BookError
from .report import write_if_changed

__all__ = ["REPOSITORY_ENV", "BRANCH_ENV", "BINDER_URL", "COLAB_URL", "repository", "book_config"]

REPOSITORY_ENV = "REVGNN_BOOK_REPOSITORY"
BRANCH_ENV = "REVGNN_BOOK_BRANCH"
BINDER_URL = "https://mybinder.org"
COLAB_URL = "https://colab.research.google.com"
_GITHUB = re.compile(r"^https://github\.com/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+?(\.git)?/?$")


def repository(config: dict) -> str | None:
    """The repository the launch buttons open: ``$REVGNN_BOOK_REPOSITORY``, else ``repository.url`` of the
    configuration, else None (an offline book without buttons).

    Raises:
        BookError: the address is not a GitHub repository (Binder and Colab open notebooks from GitHub).
    """
    url = os.environ.get(REPOSITORY_ENV, "").strip() or str((config.get("repository") or {}).get("url") or "").strip()
    if not url:
        return None
    if not _GITHUB.match(url):
        source = REPOSITORY_ENV if os.environ.get(REPOSITORY_ENV, "").strip() else "repository.url in _config.yml"
        raise BookError(f"{source} = {url!r} is not https://github.com/<owner>/<name>: Binder and Colab launch "
                        "notebooks from GitHub; give a GitHub address, or none for a book without launch buttons")
    return url.rstrip("/").removesuffix(".git")


def book_config(root: Path) -> Path:
    """The configuration file the build renders with: ``_config.yml`` itself where no repository is named, else
    ``_build/_config.yml``, the same with the repository, Binder's and Colab's addresses and this extension."""
    source = root / "_config.yml"
    config = yaml.safe_load(source.read_text()) or {}
    url = repository(config)
    if url is None:
        return source
    repo = dict(config.get("repository") or {})
    repo["url"] = url
    repo["branch"] = os.environ.get(BRANCH_ENV, "").strip() or repo.get("branch") or "main"
    config["repository"] = repo
    buttons = dict(config.get("launch_buttons") or {})
    buttons["binderhub_url"] = buttons.get("binderhub_url") or BINDER_URL
    buttons["colab_url"] = buttons.get("colab_url") or COLAB_URL
    config["launch_buttons"] = buttons
    target = root / "_build" / "_config.yml"
    write_if_changed(target, f"# Written by revgnn.book from _config.yml: launch buttons for {url}\n"
                     + yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return target
