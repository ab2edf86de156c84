"""The revgnn book works offline: MathJax is served from the build, and no page loads anything from another host.

Part of the book of "Training Graph Neural Networks with 1000 Layers" (Li et al., ICML 2021). MathJax 3 comes from
the npm package ``mathjax@3.2.2``, checked against npm's published integrity before it is unpacked into
``_build/_assets/_static/mathjax/`` (:func:`ensure_mathjax`), which Sphinx copies into the book as an extra path
(not a static path: Jupyter Book adds every ``.js`` file under one to every page, and MathJax's bundles and
components loaded together break each other); after the build every page and stylesheet is scanned for scripts,
stylesheets, images or fonts fetched from another host (:func:`check_offline`).
"""
from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from .params import BookError

__all__ = ["MATHJAX_VERSION", "ASSETS_DIR", "SetupError", "ensure_mathjax", "remote_assets", "check_offline"]

log = logging.getLogger("revgnn.book")

MATHJAX_VERSION = "3.2.2"


class SetupError(BookError):
    """A tool the build needs is missing; the message says what to install (the build stops before it runs)."""


# npm's dist.integrity of mathjax@3.2.2: the tarball is checked against it before it is unpacked.
MATHJAX_INTEGRITY = (
    "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw=="
)


ASSETS_DIR = Path("_build") / "_assets"  # html_extra_path in _config.yml: copied into _build/html/ as it is laid out


# src/href of a tag that the browser fetches by itself (script, stylesheet, image, font, iframe); plain <a> links
# to the paper or OGB are fine offline, they just are not followed.
_REMOTE_ASSET = re.compile(
    r"<(script|link|img|iframe|source|embed)\b[^>]*?\b(src|href)\s*=\s*[\"']((?:https?:)?//[^\"']+)[\"']",
    re.IGNORECASE,
)


_MATHJAX_SCRIPT = re.compile(r"<script\b[^>]*\bsrc\s*=\s*[\"'][^\"']*mathjax/[^\"']*[\"']", re.IGNORECASE)


_CSS_REMOTE = re.compile(r"@import\s+url\(\s*[\"']?(?:https?:)?//|url\(\s*[\"']?(?:https?:)?//", re.IGNORECASE)


def _npm_integrity(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def ensure_mathjax(root: Path) -> Path:
    """MathJax 3 in ``_build/_assets/_static/mathjax/`` (its ``es5`` folder), from the npm package; returns that
    folder.

    Sources, in order: the cached copy; ``$REVGNN_MATHJAX_TGZ`` (a mathjax-3.2.2.tgz already downloaded);
    ``npm pack mathjax@3.2.2``. The tarball must match npm's published sha512 integrity.
    """
    target = root / ASSETS_DIR / "_static" / "mathjax"
    shutil.rmtree(root / ASSETS_DIR / "mathjax", ignore_errors=True)  # the earlier layout, a static path
    stamp = target / ".version"
    if stamp.is_file() and stamp.read_text().strip() == MATHJAX_VERSION and (target / "tex-chtml.js").is_file():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        tgz = os.environ.get("REVGNN_MATHJAX_TGZ")
        if tgz:
            tarball = Path(tgz)
        else:
            npm = shutil.which("npm")
            if npm is None:
                raise SetupError(
                    "npm is needed once, to fetch MathJax for the offline book (npm package "
                    f"mathjax@{MATHJAX_VERSION}): install Node.js/npm (Debian: apt-get install npm), or download "
                    "the tarball elsewhere and set REVGNN_MATHJAX_TGZ=/path/to/mathjax-3.2.2.tgz"
                )
            log.info("fetching mathjax@%s with npm", MATHJAX_VERSION)
            done = subprocess.run(
                [npm, "pack", f"mathjax@{MATHJAX_VERSION}", "--pack-destination", tmp, "--silent"],
                capture_output=True, text=True, cwd=tmp,
            )
            if done.returncode != 0:
                said = (done.stderr.strip().splitlines() or ["no message"])[-1]
                raise SetupError(f"`npm pack mathjax@{MATHJAX_VERSION}` failed ({said}): npm needs its registry "
                                 "once, or set REVGNN_MATHJAX_TGZ=/path/to/mathjax-3.2.2.tgz")
            tarball = Path(tmp) / f"mathjax-{MATHJAX_VERSION}.tgz"
        if _npm_integrity(tarball) != MATHJAX_INTEGRITY:
            raise BookError(f"{tarball} does not match npm's integrity for mathjax@{MATHJAX_VERSION}")
        unpack = Path(tmp) / "unpacked"
        with tarfile.open(tarball) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith("package/es5/")]
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # Python >= 3.10.12 / 3.11.4
            tar.extractall(unpack, members=members, **safe)
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(unpack / "package" / "es5"), str(target))
        stamp.write_text(MATHJAX_VERSION + "\n")
    return target


def remote_assets(html_dir: Path) -> list[str]:
    """Every script, stylesheet, image or font that a built page (or css file) would fetch from another host."""
    found = []
    for page in sorted(html_dir.rglob("*.html")):
        for match in _REMOTE_ASSET.finditer(page.read_text(errors="replace")):
            found.append(f"{page.relative_to(html_dir)}: <{match.group(1)} {match.group(2)}={match.group(3)}>")
    for sheet in sorted(html_dir.rglob("*.css")):
        if _CSS_REMOTE.search(sheet.read_text(errors="replace")):
            found.append(f"{sheet.relative_to(html_dir)}: url() of another host")
    return found


def check_offline(html_dir: Path) -> None:
    """Fail when a page loads anything from another host, or when MathJax is not the local copy."""
    remote = remote_assets(html_dir)
    if remote:
        raise BookError("the book would load assets from the network:\n  " + "\n  ".join(remote[:20]))
    if not (html_dir / "_static" / "mathjax" / "tex-chtml.js").is_file():
        raise BookError("_static/mathjax/tex-chtml.js is missing from the build: equations would not render")
    twice = [f"{page.relative_to(html_dir)}: {n}" for page in sorted(html_dir.rglob("*.html"))
             if (n := len(_MATHJAX_SCRIPT.findall(page.read_text(errors="replace")))) > 1]
    if twice:
        raise BookError("pages load more than one MathJax script (they break each other): " + ", ".join(twice[:5]))
