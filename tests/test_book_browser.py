"""The built book as a reader sees it: every page of the smoke book opened in Chromium (revgnn.book.browser).

The smoke book (``python -m revgnn.book --params smoke``) is built once for these tests, reusing the execution cache
where it is valid (a stored run stands in only when nothing its output depends on changed). Set
``REVGNN_BOOK_HTML=_build/html`` to check a book that is already built instead. Without Chromium or Playwright the
tests are skipped, saying what to install. The checks themselves are tested on a fabricated site with one defect of
each kind, so a check that sees nothing cannot pass for one that looked.
"""
import dataclasses
import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from revgnn.book import browser

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_PAGES = sorted(f"book/_executed/{p.stem}.html" for p in (ROOT / "notebooks").glob("*.ipynb"))


def _require_browser() -> str:
    chromium = browser.find_chromium()
    if chromium is None:
        pytest.skip(f"no Chromium: {browser.INSTALL}")
    try:
        import playwright  # noqa: F401
    except ImportError:
        pytest.skip(f"no Playwright: {browser.INSTALL}")
    return chromium


def _build_and_check(chromium: str) -> dict:
    """Build the smoke book (or take ``$REVGNN_BOOK_HTML``) and open every page; what Chromium met, as JSON."""
    given = os.environ.get("REVGNN_BOOK_HTML")
    state = {"html": str(Path(given).resolve() if given else ROOT / "_build" / "html")}
    if not given:
        log = ROOT / "_build" / "smoke-book.log"
        start = time.perf_counter()
        with open(log, "w") as out:
            done = subprocess.run([sys.executable, "-m", "revgnn.book", "--params", "smoke"], cwd=ROOT, stdout=out,
                                  stderr=subprocess.STDOUT, timeout=3600)
        state["build_seconds"] = round(time.perf_counter() - start, 1)
        if done.returncode != 0:
            state["error"] = f"the smoke book does not build (log: {log}):\n{log.read_text()[-3000:]}"
            return state
    start = time.perf_counter()
    checks = browser.check_book(Path(state["html"]), ROOT / "_build" / "screenshots", chromium=chromium)
    state["check_seconds"] = round(time.perf_counter() - start, 1)
    state["checks"] = [dataclasses.asdict(c) for c in checks]
    return state


@pytest.fixture(scope="session")
def smoke_book():
    """The smoke book's html folder and what Chromium met on each of its pages, at both widths.

    Built and checked once per test run: with pytest-xdist the first worker to get here does it under a file lock
    and leaves the result for the others (``_build/smoke-book-check.json``, keyed by the run's id)."""
    chromium = _require_browser()
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"process {os.getpid()}"
    (ROOT / "_build").mkdir(exist_ok=True)
    shared = ROOT / "_build" / "smoke-book-check.json"
    with open(ROOT / "_build" / ".smoke-book.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = json.loads(shared.read_text()) if shared.is_file() else {}
        if state.get("run") != run:
            state = {"run": run, **_build_and_check(chromium)}
            shared.write_text(json.dumps(state))
    assert "error" not in state, state.get("error")
    print(f"smoke book: built in {state.get('build_seconds', 0):.0f} s, checked in {state['check_seconds']:.0f} s")
    return Path(state["html"]), [browser.PageCheck(**c) for c in state["checks"]]


def _problems(checks, kind):
    return browser.problems(checks, (kind,))


@pytest.mark.slow
def test_every_page_of_the_book_is_checked(smoke_book):
    html, checks = smoke_book
    pages = {c.page for c in checks}
    assert pages == set(browser.book_pages(html)) and len(pages) > 20, "every page of the built book is opened"
    assert set(NOTEBOOK_PAGES) <= pages, "every notebook chapter is a page"
    assert {"book/_generated/execution.html", "book/_generated/environment.html"} <= pages, \
        "the execution report and the environment page are in the book"
    assert {c.width for c in checks} == set(browser.WIDTHS), "at a desktop and a phone width"


@pytest.mark.slow
def test_pages_load_offline_without_console_errors_or_failed_requests(smoke_book):
    _, checks = smoke_book
    found = _problems(checks, "console") + _problems(checks, "requests")
    assert not found, "no console error and no failed request (the book works offline):\n" + "\n".join(found)


@pytest.mark.slow
def test_every_figure_has_loaded(smoke_book):
    _, checks = smoke_book
    found = _problems(checks, "images")
    assert not found, "every image has loaded (natural width > 0):\n" + "\n".join(found)
    shots = [c for c in checks if c.page in NOTEBOOK_PAGES and c.width == "desktop"]
    assert shots and all(Path(c.screenshot).is_file() for c in shots)


@pytest.mark.slow
def test_math_is_typeset_by_mathjax(smoke_book):
    _, checks = smoke_book
    found = _problems(checks, "math")
    assert not found, "every formula is typeset:\n" + "\n".join(found)
    method = [c.formulas for c in checks if c.page == "book/method.html"]
    assert method and min(method) > 10, "the method page's formulas were found and typeset"


@pytest.mark.slow
def test_every_internal_link_and_anchor_resolves(smoke_book):
    _, checks = smoke_book
    found = _problems(checks, "links")
    assert not found, "every link inside the book leads to a page and an anchor that exist:\n" + "\n".join(found)


@pytest.mark.slow
@pytest.mark.parametrize("width", list(browser.WIDTHS))
def test_nothing_is_wider_than_the_viewport(smoke_book, width):
    _, checks = smoke_book
    found = _problems([c for c in checks if c.width == width], "overflow")
    assert not found, (f"at {browser.WIDTHS[width][0]} px nothing reaches past the viewport (wide tables scroll in "
                       "their own box):\n" + "\n".join(found))


@pytest.mark.slow
def test_no_myst_markup_shows_as_text(smoke_book):
    _, checks = smoke_book
    found = _problems(checks, "raw_myst")
    assert not found, "no MyST role or directive is shown as text:\n" + "\n".join(found)


@pytest.mark.slow
def test_a_screenshot_of_every_page_at_both_widths(smoke_book):
    _, checks = smoke_book
    missing = [f"{c.page} [{c.width}]" for c in checks if c.page != "index.html" and not Path(c.screenshot).is_file()]
    assert not missing, "a screenshot of each page is written under _build/screenshots: " + ", ".join(missing)


@pytest.mark.slow
def test_the_offline_book_shows_no_launch_button(smoke_book):
    _, checks = smoke_book
    shown = [f"{c.page}: {b}" for c in checks for b in c.launch]
    assert not shown, "a book that names no repository has no Binder or Colab button: " + "; ".join(shown)


def test_the_browser_runs_no_less_nice_than_the_test():
    """Chromium raises its threads' priority (nice -8 as root); share_niceness puts them back to the test's, so a
    `nice -n 19 make test` stays nice on a shared machine. Shown on a child that raises its own priority."""
    nice = os.getpriority(os.PRIO_PROCESS, 0)
    child = subprocess.Popen([sys.executable, "-c", "import os, sys, time\n"
                              "try:\n    os.setpriority(os.PRIO_PROCESS, 0, os.getpriority(os.PRIO_PROCESS, 0) - 3)\n"
                              "except OSError:\n    sys.exit(3)\nprint(flush=True)\ntime.sleep(60)"],
                             stdout=subprocess.PIPE, text=True)
    try:
        child.stdout.readline()
        if child.poll() == 3:
            pytest.skip("this process may not raise a priority (not root): nothing for share_niceness to undo")
        assert os.getpriority(os.PRIO_PROCESS, child.pid) < nice, "the child raised its priority"
        assert browser.share_niceness() >= 1, "a thread above the test's priority is changed"
        assert os.getpriority(os.PRIO_PROCESS, child.pid) == nice, "the child runs at the test's niceness again"
    finally:
        child.kill()
        child.wait()


def test_the_checks_see_each_kind_of_defect(tmp_path):
    """A fabricated page with one defect of each kind: each check must report it (and a good page nothing)."""
    chromium = _require_browser()
    (tmp_path / "good.html").write_text(
        '<html><body><article><h1 id="top">Fine</h1><p><a href="#top">up</a> <a href="bad.html#here">on</a></p>'
        '<div style="width:100%;overflow-x:auto"><table style="width:3000px"><tr><td>wide, scrolls in its box</td>'
        '</tr></table></div></article></body></html>')
    (tmp_path / "bad.html").write_text(
        '<html><body><article id="here"><h1>Broken</h1><img src="_images/missing.png">'
        '<div style="width:2000px">too wide</div><p>See {doc}`method` for more.</p>'
        '<a href="nowhere.html">a dead link</a> <a href="good.html#no-such-anchor">a dead anchor</a>'
        '<script>console.error("broken on purpose")</script>'
        '<script src="https://cdn.example.org/x.js"></script></article></body></html>')
    checks = browser.check_book(tmp_path, tmp_path / "shots", pages=["good.html", "bad.html"], chromium=chromium)
    good = [c for c in checks if c.page == "good.html"]
    assert browser.problems(good) == [], "a page without defects passes: " + "; ".join(browser.problems(good))
    bad = {kind: _problems([c for c in checks if c.page == "bad.html"], kind)
           for kind in ("console", "requests", "images", "links", "overflow", "raw_myst")}
    assert any("missing.png" in p for p in bad["images"]), "a missing figure is reported"
    assert any("reaches" in p for p in bad["overflow"]), "an element wider than the viewport is reported"
    assert any("nowhere.html: no such file" in p for p in bad["links"]), "a dead link is reported"
    assert any("no anchor #no-such-anchor" in p for p in bad["links"]), "a dead anchor is reported"
    assert any("{doc}" in p for p in bad["raw_myst"]), "MyST shown as text is reported"
    assert any("broken on purpose" in p for p in bad["console"]), "a console error is reported"
    assert any("another host" in p for p in bad["requests"]), "a request to another host is refused and reported"
    assert all(Path(c.screenshot).is_file() for c in checks), "each page view is photographed"
