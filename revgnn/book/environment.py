"""The environment page of the revgnn book: what built it (revision, library versions, CPU, native kernel).

Part of the book of "Training Graph Neural Networks with 1000 Layers" (Li et al., ICML 2021). Every record of ours
carries its own provenance; this page says the same of the build as a whole: :func:`build_environment` collects the
facts when the book is built and :func:`environment_page` writes them as ``book/_generated/environment.md``. A cached
notebook ran earlier, in an environment that matched this one in everything its output depends on (see
:mod:`revgnn.book.cache`); the execution report gives its date and revision. Imports: :mod:`revgnn.book.cache`,
:mod:`revgnn.training.records`, :mod:`revgnn.nn.native` (to load the kernel the notebooks ran) and the standard
library.
"""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
from datetime import datetime, timezone
from importlib import metadata

from .cache import environment_key
from .offline import MATHJAX_VERSION

__all__ = ["BOOK_PACKAGES", "build_environment", "environment_page"]

# (distribution, what it does here), in the order the page lists them
BOOK_PACKAGES = (
    ("torch", "tensors, autograd, the C++ extension build"),
    ("torch_geometric", "GENConv, graph utilities"),
    ("ogb", "ogbn-proteins' evaluator"),
    ("numpy", ""),
    ("scipy", ""),
    ("matplotlib", "the figures"),
    ("papermill", "executes the notebooks"),
    ("nbclient", "runs the kernels for papermill"),
    ("ipykernel", "the notebooks' kernel"),
    ("jupyter-book", "renders the book"),
    ("sphinx", "under Jupyter Book"),
    ("myst-nb", "notebook pages"),
    ("sphinx-book-theme", "the theme"),
)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _first_line(command: list[str]) -> str:
    if shutil.which(command[0]) is None:
        return "not found"
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as err:
        return f"not runnable ({type(err).__name__})"
    return (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or done.stderr).strip() else "?"


def _memory() -> str:
    try:
        with open("/proc/meminfo") as f:
            kb = next(int(ln.split()[1]) for ln in f if ln.startswith("MemTotal"))
        return f"{kb / 2**20:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        return "unknown"


def _native() -> dict:
    """The native GENConv kernel as the notebooks load it: its variant for this CPU and whether it loads."""
    from revgnn.nn import native

    wanted = native.isa()
    module = native.load()
    loaded = module.__name__ if module is not None else None
    return {"variant": wanted, "loaded": loaded, "error": native.error(), "seconds": native.build_seconds(),
            "compiler": _first_line(["g++", "--version"])}


def build_environment(params_set: str, command: str) -> dict:
    """The facts of this build's environment (see the module docstring)."""
    from revgnn.training.records import git_revision

    key = environment_key([])
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "revision": git_revision(), "params_set": params_set, "command": command,
        "python": platform.python_version(),
        "packages": [(dist, _version(dist), role) for dist, role in BOOK_PACKAGES],
        "mathjax": MATHJAX_VERSION, "node": _first_line(["node", "--version"]),
        "npm": _first_line(["npm", "--version"]),
        "cpu": key["cpu"], "cores": os.cpu_count(), "memory": _memory(), "os": platform.platform(),
        "kernel": platform.release(), "threads": {k: v for k, v in key["env"].items() if "THREADS" in k},
        "steering": {k: v for k, v in key["env"].items() if "THREADS" not in k},
        "native": _native(),
    }


def _items(rows) -> list[str]:
    return [f"- **{name}**: {value}" for name, value in rows] + [""]


def _table(rows, head) -> list[str]:
    out = [f"| {' | '.join(head)} |", "|" + "---|" * len(head)]
    out += [f"| {' | '.join(str(c).replace('|', chr(92) + '|') for c in row)} |" for row in rows]
    return out + [""]


def environment_page(env: dict) -> str:
    """The environment page in MyST Markdown."""
    native = env["native"]
    if native["loaded"]:
        status = f"loaded (`{native['loaded']}`, {native['seconds']:.1f} s to build or load in this process)"
    else:
        status = f"unavailable, the pure-torch path ran: {native['error']}"
    threads = ", ".join(f"`{k}={v}`" for k, v in env["threads"].items()) or "torch's default"
    steering = ", ".join(f"`{k}={v}`" for k, v in env["steering"].items()) or "none set"
    lines = [
        "# Environment", "",
        f"What built this book, on {env['date']}. Each record the book plots names its own revision, versions and "
        "device; a cached page ran earlier, on the revision the {doc}`execution report <execution>` gives, in an "
        "environment that matched this one in every package its kernel imported.", "",
        "## Source", "",
        *_items([("revision", f"`{env['revision']}`"), ("parameter set", env["params_set"] or "none (defaults)"),
                 ("command", f"`{env['command']}`")]),
        "## Software", "",
        *_table([("Python", env["python"], "")] + [(f"`{d}`", v, r) for d, v, r in env["packages"]]
                + [("MathJax", env["mathjax"], "npm package `mathjax`, served from the build (offline)"),
                   ("Node.js / npm", f"{env['node']} / {env['npm']}", "fetch MathJax")],
                ("package", "version", "role")),
        "## Machine", "",
        *_items([("CPU", env["cpu"]["model"]), ("cores", env["cores"]),
                 ("vector extensions", " ".join(env["cpu"]["vector"]) or "none found"),
                 ("memory", env["memory"]), ("operating system", env["os"]), ("Linux kernel", env["kernel"]),
                 ("torch threads", threads), ("other settings", steering)]),
        "## Native GENConv kernel", "",
        "The C++ kernel of `revgnn.nn.native` (fused GENConv aggregation), compiled on first use for the CPU it "
        "runs on: AVX-512, AVX2 or generic, chosen at run time.", "",
        *_items([("variant for this CPU", native["variant"]), ("status", status),
                 ("compiler", native["compiler"])]),
    ]
    return "\n".join(lines).rstrip() + "\n"
