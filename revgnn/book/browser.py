"""The built revgnn book as a reader sees it: every page opened in Chromium, checked, and photographed.

Part of the book of "Training Graph Neural Networks with 1000 Layers" (Li et al., ICML 2021). Defects that people
found by eye on earlier builds (a legend over a panel, tables cut off at 1,400 px, raw MyST in a box) are the kind a
browser sees and a scan of the HTML does not. :func:`check_book` serves ``_build/html`` on ``127.0.0.1`` and opens
every page in Debian's Chromium, driven by Playwright (``executable_path``; Playwright's own browser download needs
the internet), at a 1,400 px desktop width and a 390 px phone width. On every page (:class:`PageCheck`):

- no console error and no failed request; a request to another host is refused and counted (the book is offline);
- every image has loaded (natural width > 0), every formula is typeset by MathJax (no ``mjx-merror``);
- every link inside the book and its anchor resolve (desktop width only: links do not change with the width);
- nothing reaches past the right edge of the viewport unless it scrolls inside a box of its own (wide tables);
- no MyST role or directive shows as text (``{doc}`...``, ``:::``) outside code;
- which launch buttons the page shows (the offline book: none);
- a full-page screenshot under ``_build/screenshots/<width>/``.

Chromium's processes are kept at the test's niceness (:func:`share_niceness`): ``nice -n 19`` holds for them too.

``python -m revgnn.book.browser [_build/html]`` prints what fails and exits 1 (2 without Chromium or Playwright).
Imports: the standard library and, inside :func:`check_book`, ``playwright``.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import html.parser
import http.server
import logging
import os
import re
import shutil
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

__all__ = ["CHROMIUM_FLAGS", "WIDTHS", "PageCheck", "find_chromium", "share_niceness", "book_pages", "check_book",
           "problems"]

# Without the background-networking flags Chromium's own connections (updates, sync) are refused on a closed network
CHROMIUM_FLAGS = ("--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage")
WIDTHS = {"desktop": (1400, 900), "phone": (390, 844)}  # name: (width, height) of the viewport in CSS pixels
SKIP_FOLDERS = ("_static", "_sources", "_images", "_downloads")
log = logging.getLogger("revgnn.book")
INSTALL = ("install Chromium (Debian: apt-get install chromium) and Playwright (pip install -e '.[browser]'), or "
           "name a Chromium binary with REVGNN_CHROMIUM")


@dataclass
class PageCheck:
    """What a reader's browser met on one page at one width; every list is empty on a good page.

    Args:
        page: the page, relative to the html folder (``book/_executed/fig2_memory_res_vs_rev.html``).
        width: a key of :data:`WIDTHS`.
        console: console errors and uncaught exceptions.
        requests: failed requests (refused, missing, or to another host).
        images: images that did not load.
        math: formulas MathJax left untypeset or could not parse.
        links: links inside the book, or anchors, that lead nowhere.
        overflow: elements reaching past the viewport's right edge without a scrolling box of their own.
        raw_myst: MyST markup that shows as text.
        launch: the launch buttons shown (Binder, Colab, ...).
        formulas: how many formulas were typeset.
        screenshot: the full-page screenshot written.
    """

    page: str
    width: str
    console: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    math: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    overflow: list[str] = field(default_factory=list)
    raw_myst: list[str] = field(default_factory=list)
    launch: list[str] = field(default_factory=list)
    formulas: int = 0
    screenshot: str = ""


def find_chromium() -> str | None:
    """A Chromium binary: ``$REVGNN_CHROMIUM``, else ``chromium`` or ``chromium-browser`` on PATH."""
    named = os.environ.get("REVGNN_CHROMIUM")
    if named:
        return named if Path(named).is_file() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def share_niceness(parent: int | None = None) -> int:
    """Put every thread of every process started under ``parent`` (default: this process) back to ``parent``'s
    niceness where it runs at a higher priority; returns how many threads were changed.

    Chromium raises the priority of its display and GPU threads (nice -8 when it runs as root, as in CI), so a
    ``nice -n 19 make test`` would run the browser ahead of everything else on a shared machine. Lowering a priority
    needs no privilege. Linux only (``/proc``); elsewhere nothing is changed."""
    parent = os.getpid() if parent is None else parent
    proc = Path("/proc")
    if not proc.is_dir():
        return 0
    children: dict[int, list[int]] = {}
    for stat in proc.glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])  # after the command name, which may hold ')'
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    nice = os.getpriority(os.PRIO_PROCESS, parent)
    changed, todo = 0, list(children.get(parent, []))
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        for task in (proc / str(pid) / "task").glob("[0-9]*"):
            try:
                if os.getpriority(os.PRIO_PROCESS, int(task.name)) < nice:
                    os.setpriority(os.PRIO_PROCESS, int(task.name), nice)
                    changed += 1
            except OSError:  # the thread ended meanwhile
                continue
    return changed


def book_pages(html_dir: Path) -> list[str]:
    """Every html page of a built book (not the theme's or the downloads' folders), relative, index first."""
    pages = sorted(p.relative_to(html_dir).as_posix() for p in html_dir.rglob("*.html")
                   if p.relative_to(html_dir).parts[0] not in SKIP_FOLDERS)
    return sorted(pages, key=lambda p: (p != "index.html", p))


class _Anchors(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if value and (name == "id" or (name == "name" and tag == "a")):
                self.ids.add(value)


@functools.lru_cache(maxsize=None)
def _anchors(path: Path) -> frozenset[str]:
    parser = _Anchors()
    parser.feed(path.read_text(errors="replace"))
    return frozenset(parser.ids)


def _broken_links(html_dir: Path, base: str, page: str, hrefs: list[str], live_ids: set[str]) -> list[str]:
    """The links of ``page`` (absolute URLs, as the browser resolved them) that point inside the book at a file
    that is not there, or at an anchor that the target page does not have."""
    broken = []
    for href in sorted(set(hrefs)):
        if not href.startswith(base):
            continue  # another host (the paper, OGB) or javascript:/mailto:, not followed offline
        parts = urlsplit(href)
        target = html_dir / unquote(parts.path[len(urlsplit(base).path):].lstrip("/"))
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            broken.append(f"{href[len(base):]}: no such file")
            continue
        anchor = unquote(parts.fragment)
        if not anchor or target.suffix != ".html":
            continue
        same = target.resolve() == (html_dir / page).resolve()
        if anchor not in _anchors(target) and not (same and anchor in live_ids):
            broken.append(f"{href[len(base):]}: no anchor #{anchor}")
    return broken


@contextlib.contextmanager
def _serve(html_dir: Path):
    """Serve ``html_dir`` on 127.0.0.1 (a free port) in a thread; yields the base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(html_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


_SETTLE_JS = """async () => {
  const images = [...document.images];
  images.forEach(i => { i.loading = 'eager'; });
  await Promise.all(images.map(i => i.decode().catch(() => null)));
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  await document.fonts.ready;
}"""

_CHECK_JS = r"""() => {
  const W = document.documentElement.clientWidth;
  const name = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    (typeof el.className === 'string' && el.className.trim()
      ? '.' + el.className.trim().split(/\s+/).slice(0, 2).join('.') : '');
  const where = el => {
    const parts = [];
    for (let e = el; e && e !== document.body && parts.length < 4; e = e.parentElement) parts.unshift(name(e));
    return parts.join(' > ');
  };
  const scrollsInside = el => {
    for (let a = el.parentElement; a && a !== document.documentElement; a = a.parentElement) {
      const s = getComputedStyle(a);
      const scrolls = s.overflowX === 'auto' || s.overflowX === 'scroll';
      if (scrolls && a.getBoundingClientRect().right <= W + 1) return true;
    }
    return false;
  };
  const visible = el => {
    const s = getComputedStyle(el), r = el.getBoundingClientRect();
    return s.visibility !== 'hidden' && s.display !== 'none' && r.width > 0 && r.height > 0;
  };
  const offCanvas = 'dialog:not([open]), [hidden], .bd-sidebar-primary, .bd-sidebar-secondary';
  const overflow = [];
  const pageWidth = document.scrollingElement.scrollWidth;
  if (pageWidth > W + 1) overflow.push(`the page scrolls sideways: ${pageWidth} px wide in a ${W} px viewport`);
  const offending = new Set();
  for (const el of document.body.querySelectorAll('*')) {
    if (el.closest(offCanvas) || !visible(el)) continue;
    const box = el.getBoundingClientRect();
    const text = [...el.childNodes].some(n => n.nodeType === Node.TEXT_NODE && n.textContent.trim());
    const spills = text && getComputedStyle(el).overflowX === 'visible' && el.scrollWidth > el.clientWidth + 1;
    const right = spills ? Math.max(box.right, box.left + el.scrollWidth) : box.right;  // text running out of its box
    if (right > W + 1 && !scrollsInside(el)) {
      offending.add(el);
      if (!offending.has(el.parentElement)) {
        overflow.push(`${where(el)} reaches ${Math.round(right)} px (viewport ${W} px)`);
      }
    }
  }
  if (overflow.length > 9) overflow.splice(9, overflow.length, `and ${overflow.length - 9} more elements`);
  const images = [...document.images].filter(i => !(i.complete && i.naturalWidth > 0))
    .map(i => i.getAttribute('src') || '(no src)');
  const formulas = [...document.querySelectorAll('.math')];
  const math = formulas.filter(n => !n.querySelector('mjx-container'))
    .map(n => 'not typeset: ' + n.textContent.trim().slice(0, 80));
  for (const e of document.querySelectorAll('mjx-merror')) {
    math.push('TeX error: ' + (e.getAttribute('data-mjx-error') || e.textContent).slice(0, 80));
  }
  if (formulas.length && !(window.MathJax && MathJax.startup)) math.unshift('MathJax did not load');
  const article = document.querySelector('article') || document.body;
  const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
  const raw = [];
  const myst = /\{(doc|ref|numref|eq|math|download|term|cite|py:\w+)\}`|^\s*(:::|```)\s*\{?\w|^\s*\{[a-z-]+\}\s*$/m;
  for (let t = walker.nextNode(); t; t = walker.nextNode()) {
    if (t.parentElement.closest('pre, code, .highlight, script, style')) continue;
    if (myst.test(t.textContent)) raw.push(t.textContent.trim().slice(0, 80));
  }
  const launchers = '.dropdown-launch-buttons a, a[href*="mybinder.org"], a[href*="colab.research.google.com"]';
  const launch = [...new Set([...document.querySelectorAll(launchers)])]
    .map(a => (a.textContent.trim() || a.getAttribute('title') || '') + ' ' + a.href);
  const hrefs = [...document.querySelectorAll('a[href]')].map(a => a.href);
  const ids = [...document.querySelectorAll('[id]')].map(e => e.id);
  return {overflow, images, math, formulas: formulas.length - math.length, raw, launch, hrefs, ids};
}"""



def check_book(html_dir: Path, shots_dir: Path | None = None, pages: list[str] | None = None,
               widths: dict[str, tuple[int, int]] | None = None, chromium: str | None = None) -> list[PageCheck]:
    """Open every page of the built book at every width and check it (see the module docstring).

    Args:
        html_dir: the built book (``_build/html``).
        shots_dir: where the screenshots go (``<shots_dir>/<width>/<page>.png``); None: none are taken.
        pages: pages to open (default: :func:`book_pages`).
        widths: viewports (default: :data:`WIDTHS`).
        chromium: the browser binary (default: :func:`find_chromium`).

    Raises:
        RuntimeError: no Chromium or no Playwright (the message says what to install).
    """
    chromium = chromium or find_chromium()
    if chromium is None:
        raise RuntimeError(f"no Chromium found: {INSTALL}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as err:
        raise RuntimeError(f"the Python package playwright is not installed: {INSTALL}") from err
    html_dir = Path(html_dir).resolve()
    pages = pages if pages is not None else book_pages(html_dir)
    widths = widths or WIDTHS
    _anchors.cache_clear()
    results = []
    with _serve(html_dir) as base, sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        context = pw.chromium.launch_persistent_context(profile, executable_path=chromium, headless=True,
                                                        args=list(CHROMIUM_FLAGS))
        try:
            context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(base)
                          or route.request.url.startswith(("data:", "blob:", "about:")) else route.abort())
            tab = context.new_page()
            for width, (w, h) in widths.items():
                tab.set_viewport_size({"width": w, "height": h})
                for page in pages:
                    results.append(_check_page(tab, html_dir, base, page, width, shots_dir))
        finally:
            context.close()
    return results


_REFRESH = re.compile(r"""<meta[^>]+http-equiv=["']refresh["'][^>]+content=["'][^"';]*;\s*url=([^"']+)["']""", re.I)


def _check_page(tab, html_dir: Path, base: str, page: str, width: str, shots_dir: Path | None) -> PageCheck:
    found = PageCheck(page, width)
    share_niceness()  # Chromium's processes at this one's niceness (it raises its own), also those started since
    redirect = _REFRESH.search((html_dir / page).read_text(errors="replace"))
    if redirect:  # Jupyter Book's index.html sends the reader to the root page: it must exist, nothing else to see
        target = urljoin(base + page, redirect.group(1).strip())
        found.links = _broken_links(html_dir, base, page, [target], set())
        return found

    def on_console(message):
        if message.type == "error":
            found.console.append(message.text[:200])

    def on_failed(request):
        host = "" if request.url.startswith(base) else " (another host: the book must work offline)"
        found.requests.append(f"{request.url}: {request.failure}{host}")

    def on_response(response):
        if response.status >= 400:
            found.requests.append(f"{response.url}: HTTP {response.status}")

    handlers = {"console": on_console, "pageerror": lambda err: found.console.append(f"uncaught: {err}"[:200]),
                "requestfailed": on_failed, "response": on_response}
    for event, handler in handlers.items():
        tab.on(event, handler)
    try:
        tab.goto(base + page, wait_until="load")
        share_niceness()  # the page's renderer
        tab.evaluate(_SETTLE_JS)
        seen = tab.evaluate(_CHECK_JS)
        found.overflow, found.images, found.math = seen["overflow"], seen["images"], seen["math"]
        found.raw_myst, found.launch, found.formulas = seen["raw"], seen["launch"], seen["formulas"]
        if width == next(iter(WIDTHS)):
            found.links = _broken_links(html_dir, base, page, seen["hrefs"], set(seen["ids"]))
        if shots_dir is not None:
            shot = Path(shots_dir) / width / (page.removesuffix(".html").replace("/", "__") + ".png")
            shot.parent.mkdir(parents=True, exist_ok=True)
            tab.screenshot(path=str(shot), full_page=True)
            found.screenshot = str(shot)
    finally:
        for event, handler in handlers.items():
            tab.remove_listener(event, handler)
    return found


def problems(checks: list[PageCheck], kinds=("console", "requests", "images", "math", "links", "overflow",
                                              "raw_myst")) -> list[str]:
    """One line per problem found: ``<page> [<width>] <kind>: <what>``."""
    return [f"{c.page} [{c.width}] {kind}: {item}" for c in checks for kind in kinds for item in getattr(c, kind)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m revgnn.book.browser", description=__doc__.splitlines()[0])
    parser.add_argument("html", nargs="?", default="_build/html", help="the built book (default: _build/html)")
    parser.add_argument("--screenshots", default="_build/screenshots", help="where the screenshots go")
    args = parser.parse_args(argv)
    html_dir = Path(args.html)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if not (html_dir / "index.html").is_file():
        log.error("no built book in %s: run `make book` first", html_dir)
        return 2
    try:
        checks = check_book(html_dir, Path(args.screenshots))
    except RuntimeError as err:
        log.error("%s", err)
        return 2
    found = problems(checks)
    sys.stdout.write("".join(line + "\n" for line in found))
    log.info("%d pages at %d widths: %d problems; screenshots in %s", len({c.page for c in checks}), len(WIDTHS),
             len(found), args.screenshots)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
