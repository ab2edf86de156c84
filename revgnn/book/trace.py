"""What a notebook of the revgnn book reads while it runs: the inputs of its cache key (:mod:`revgnn.book.cache`).

Part of the book of "Training Graph Neural Networks with 1000 Layers" (Li et al., ICML 2021). A notebook's output
depends on its cells, its parameters and on every file of the repository its kernel reads: the modules of
``revgnn`` it imports (through the lazy export maps, whatever they are), the committed records under ``results/``,
the shipped data. Listing those by reading the imports would miss files opened by name and modules loaded by
``importlib``; this tracer asks Python instead. :func:`install` adds an audit hook (PEP 578) to the kernel, and to
every Python process it starts (``measure_in_subprocess``), which appends one line per new event to a trace file:

- ``r <path>``: a file under the repository opened for reading (a module's ``__pycache__/*.pyc`` counts as its
  ``.py``); its content goes into the key;
- ``w <path>``: a file opened for writing; left out of the key, since the run made it;
- ``s <path>``: a path whose existence was asked (``Path.is_file``, ``os.path.exists``: a record that is not
  committed yet leads a notebook to measure afresh); whether it exists goes into the key;
- ``l <path>``: a folder listed or globbed by the notebook (not by the import system); its names go into the key;
- ``p <name>``: a top-level package imported from outside the repository (``torch``); its version goes into the key.

This module is loaded by file path from a ``sitecustomize`` that :mod:`revgnn.book.cache` writes, before anything of
the repository is imported, so it imports nothing but the standard library.
"""
from __future__ import annotations

import os
import sys

__all__ = ["install", "read_trace"]

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
_SITE_DIRS = ("site-packages", "dist-packages")
_PATH_HELPERS = ("os.py", "genericpath.py", "posixpath.py", "ntpath.py", "pathlib.py", "glob.py", "fnmatch.py")


def _is_machinery(filename: str) -> bool:
    """Code of the import system: importlib (frozen or not), pkgutil, zipimport, setuptools' editable finder."""
    return (filename.startswith("<frozen") or f"{os.sep}importlib{os.sep}" in filename or "__editable__" in filename
            or os.path.basename(filename) in ("pkgutil.py", "zipimport.py"))


def _is_write(mode, flags) -> bool:
    if isinstance(mode, str):
        return any(c in mode for c in "wax+")
    return isinstance(flags, int) and bool(flags & _WRITE_FLAGS)


def _source_of(path: str) -> str:
    """``pkg/__pycache__/mod.cpython-311.pyc`` -> ``pkg/mod.py`` (the file whose content the module is)."""
    head, name = os.path.split(path)
    if name.endswith(".pyc") and os.path.basename(head) == "__pycache__":
        return os.path.join(os.path.dirname(head), name.split(".", 1)[0] + ".py")
    return path


def _top_package(path: str) -> str | None:
    """The top-level package of a file under site-packages (``.../site-packages/torch/nn/x.py`` -> ``torch``)."""
    parts = path.split(os.sep)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] in _SITE_DIRS:
            top = parts[i + 1]
            return top.split(".", 1)[0] if top.endswith((".py", ".so")) else top
    return None


def install(trace_file: str, root: str, skip: tuple[str, ...] = ()) -> None:
    """Record, in ``trace_file``, what this process reads under ``root`` (see the module docstring).

    Args:
        trace_file: lines are appended to it (one ``os.write`` each, so processes can share the file).
        root: the repository; paths are written relative to it.
        skip: folders under ``root`` whose files are outputs, not inputs (``_build``, ``book/_executed``).
    """
    root = os.path.realpath(root)
    prefix = root + os.sep
    skipped = tuple(os.path.join(root, s) + os.sep for s in (".git", *skip))
    fd = os.open(trace_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    seen: set[tuple[str, str]] = set()

    def emit(kind: str, item: str) -> None:
        if (kind, item) not in seen and "\n" not in item:  # the hook makes no audited call: it cannot recurse
            seen.add((kind, item))
            os.write(fd, f"{kind} {item}\n".encode("utf-8", "surrogateescape"))

    def under_root(path) -> str | None:
        """The absolute path of ``path`` if it lies under the repository, outside the build's outputs."""
        try:
            full = os.path.abspath(os.fsdecode(os.fspath(path)))
        except TypeError:  # a file descriptor
            return None
        return full if full.startswith(prefix) and not full.startswith(skipped) else None

    def relative(full: str) -> str:
        return os.path.relpath(_source_of(full), root)

    def from_import_system() -> bool:
        """Whether the code that raised the event (past the hook and os/pathlib helpers) is the import machinery:
        finders listing folders on ``sys.path`` (the notebook's own folder among them) are not the notebook."""
        frame = sys._getframe(2)  # this function, then the hook or the stat wrapper
        while frame is not None and os.path.basename(frame.f_code.co_filename) in _PATH_HELPERS:
            frame = frame.f_back
        return frame is not None and _is_machinery(frame.f_code.co_filename)

    def hook(event: str, args) -> None:
        if event == "open":
            path, mode, flags = args
            full = under_root(path)
            if full is None:
                top = _top_package(path) if isinstance(path, str) and path.endswith((".py", ".pyc", ".so")) else None
                if top:
                    emit("p", top)
            elif not _is_write(mode, flags):
                emit("r", relative(full))
            elif f"{os.sep}__pycache__{os.sep}" not in full:  # not the import system caching bytecode
                emit("w", relative(full))
        elif event in ("os.listdir", "os.scandir", "glob.glob") and not from_import_system():
            target = args[0] if args and args[0] is not None else "."
            full = under_root(os.path.dirname(str(target)) or "." if event == "glob.glob" else target)
            if full is not None:
                emit("l", relative(full))

    real_stat = os.stat

    def stat(path, *args, **kwargs):
        full = under_root(path) if kwargs.get("dir_fd") is None else None
        if full is not None and not from_import_system():
            emit("s", relative(full))
        return real_stat(path, *args, **kwargs)

    stat.__wrapped__ = real_stat
    os.stat = stat
    sys.addaudithook(hook)


def read_trace(trace_file: str | os.PathLike) -> dict[str, set[str]]:
    """The trace as ``{"r": paths read, "w": written, "s": asked, "l": listed, "p": packages}`` (each a set)."""
    found: dict[str, set[str]] = {k: set() for k in "rwslp"}
    try:
        with open(trace_file, encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                kind, _, item = line.rstrip("\n").partition(" ")
                if kind in found and item:
                    found[kind].add(item)
    except FileNotFoundError:
        pass
    return found
