"""Run records and checkpoints, written atomically, for "Training Graph Neural Networks with 1000 Layers" (2021).

Every number this project reports carries its provenance: configuration, seed, git revision, library versions and
device travel with it in one JSON record. Files are written to a temporary name in the same folder and moved into
place with :func:`os.replace`, so a crash (even ``kill -9``) leaves either the old file or the new one, never half.
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch


def _atomic_write(path: str | os.PathLike, mode: str, write) -> None:
    """Call ``write(file)`` on ``.NAME.revgnn-PID.tmp`` next to ``path``, fsync, then :func:`os.replace` it there.

    On any failure (a full disk, an interrupt) the temporary file is removed; an OSError is raised again as one
    that names ``path`` and what to do.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.revgnn-{os.getpid()}.tmp")  # revgnn.training.runtime.remove_stale_temps
    try:
        with open(tmp, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(err, OSError):
            raise OSError(err.errno, f"cannot write {path} ({err.strerror or err}); free disk space or choose another "
                          f"folder; nothing partial was left") from None
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and :func:`os.replace`."""
    _atomic_write(path, "w", lambda f: f.write(text))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON."""
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=False, default=str) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    with open(path) as f:
        return json.load(f)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` through a temporary file and :func:`os.replace`."""
    _atomic_write(path, "wb", lambda f: torch.save(obj, f))


def git_revision() -> str:
    """``git describe``-style revision of the source tree (``+dirty`` when modified), or ``"unknown"``."""
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        if rev.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10)
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def library_versions() -> dict[str, str]:
    import numpy
    import torch_geometric

    versions = {"python": platform.python_version(), "torch": torch.__version__,
                "torch_geometric": torch_geometric.__version__, "numpy": numpy.__version__}
    try:
        import ogb

        versions["ogb"] = ogb.__version__
    except ImportError:
        pass
    return versions


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` knows (e.g. ``x86_64``)."""
    try:
        with open("/proc/cpuinfo") as f:
            name = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        name = ""
    return name or platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model name with its core count and torch's thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_name()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"


def device_description(device: torch.device) -> str:
    return f"{device.type}: {device_name(device)}"


def peak_memory_bytes(device: torch.device) -> dict[str, int]:
    """Peak GPU memory allocated by torch (CUDA) and peak resident memory of this process."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = {"peak_rss_bytes": int(rss if sys.platform == "darwin" else rss * 1024)}
    if device.type == "cuda":
        out["peak_cuda_allocated_bytes"] = int(torch.cuda.max_memory_allocated(device))
    return out


def environment(device: torch.device) -> dict[str, Any]:
    """Provenance block of a record: git revision, library versions, device."""
    return {"git_revision": git_revision(), "versions": library_versions(), "device": device_description(device),
            "platform": platform.platform()}
