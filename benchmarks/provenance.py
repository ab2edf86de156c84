"""Provenance block and JSON writing shared by the benchmark scripts (git revision, versions, device, command)."""
from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

from revgnn.training.records import cpu_name, write_json

RESULTS = Path(__file__).resolve().parent.parent / "results"


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=RESULTS.parent, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _relative_script(script: str) -> str:
    """The script as run from the repository root (``benchmarks/x.py``), when it lies inside the repository."""
    try:
        return str(Path(script).resolve().relative_to(RESULTS.parent))
    except ValueError:
        return script


def memory_total_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            return int(next(ln for ln in f if ln.startswith("MemTotal")).split()[1]) * 1024
    except (OSError, StopIteration):
        return None


def provenance(device: str) -> dict:
    import torch_geometric

    dev = torch.device(device)
    return {
        "git_revision": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no", "--", "revgnn")),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python", _relative_script(sys.argv[0]), *sys.argv[1:]]),
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "torch_geometric": torch_geometric.__version__},
        "device": dev.type,
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else cpu_name(),
        "cpu_model": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_total_bytes": (torch.cuda.get_device_properties(dev).total_memory if dev.type == "cuda"
                               else memory_total_bytes()),
    }


def save(name: str, obj: dict) -> Path:
    """Write ``obj`` as results/<name> (an absolute ``name`` is used as is), atomically."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / name
    write_json(path, obj)
    return path


def write_result(stem: str, device: str, out: str | None, result: dict) -> int:
    """Save ``result`` as results/<stem>[_<device>].json (or ``out``) and print each target's verdict."""
    suffix = "" if device == "cpu" else f"_{device}"
    path = save(out or f"{stem}{suffix}.json", result)
    print(f"wrote {path}")
    for k, v in result["targets"].items():
        print(k, {a: b for a, b in v.items() if a != "target"})
    return 0
