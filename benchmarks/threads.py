"""Training time under revgnn's CPU thread policy (one thread) against torch's default thread count, on a busy machine.

Each measurement is a fresh ``revgnn train`` process without ``OMP_NUM_THREADS`` (so the package's policy is what
acts): "policy" passes no thread flag, "torch default" passes ``--threads`` = the count torch starts with here. The two
alternate (order reversed every other round); medians of ``--repeats`` rounds are compared. The time is the run
record's ``wall_time_s`` (training and evaluation, no imports). A run past ``--timeout`` seconds counts as the timeout
(a lower bound) and is marked.

    python benchmarks/threads.py                 # cora 4 x 64, 5 epochs, and synthetic-proteins 4 x 64, 2 epochs
    python benchmarks/threads.py --repeats 3

Writes results/threads.json with the machine's load average before and after.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import provenance, save  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = {
    "cora": ["--dataset", "cora", "--layers", "4", "--channels", "64", "--epochs", "5"],
    "synthetic-proteins": ["--dataset", "synthetic-proteins", "--layers", "4", "--channels", "64", "--epochs", "2"],
}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def torch_default_threads() -> int:
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"], env=_env(),
                         capture_output=True, text=True, check=True)
    return int(out.stdout)


def one_run(workload: str, threads: int | None, root: str, timeout: float) -> dict:
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "revgnn", "train", *WORKLOADS[workload], "--root", root, "--out", out,
               "--no-progress", "--json", *([] if threads is None else ["--threads", str(threads)])]
        start = time.perf_counter()
        try:
            res = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        except subprocess.TimeoutExpired:
            return {"seconds": timeout, "timed_out": True, "process_seconds": timeout}
        if res.returncode != 0:
            raise RuntimeError(res.stderr)
        rec = json.loads((Path(out) / "run-seed0" / "record.json").read_text())
        return {"seconds": rec["wall_time_s"], "timed_out": False, "process_seconds": time.perf_counter() - start,
                "torch_threads": rec["torch_threads"], "threads_source": rec["threads_source"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=240.0, help="seconds per run before it counts as the timeout")
    args = ap.parse_args()
    default = torch_default_threads()
    arms = {"policy": None, "torch_default": default}
    load_before = os.getloadavg()
    rows = {}
    with tempfile.TemporaryDirectory() as root:
        for workload in WORKLOADS:
            one_run(workload, None, root, args.timeout)  # warm-up: copies Cora, fills caches
            times = {arm: [] for arm in arms}
            for r in range(args.repeats):
                order = list(arms) if r % 2 == 0 else list(reversed(arms))
                for arm in order:
                    times[arm].append(one_run(workload, arms[arm], root, args.timeout))
                    print(workload, arm, times[arm][-1], flush=True)
            med = {arm: statistics.median(t["seconds"] for t in times[arm]) for arm in arms}
            rows[workload] = {"command": "revgnn train " + " ".join(WORKLOADS[workload]), "runs": times,
                              "median_seconds": med, "torch_default_over_policy": med["torch_default"] / med["policy"],
                              "any_timed_out": any(t["timed_out"] for arm in arms for t in times[arm])}
    result = {"benchmark": "thread policy: one CPU thread (revgnn default) vs torch's default thread count",
              "provenance": {**provenance("cpu"), "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
                             "torch_default_threads": default},
              "arms": {"policy": "no --threads, no OMP_NUM_THREADS: revgnn's policy (1 thread)",
                       "torch_default": f"--threads {default} (torch's own default on this machine)"},
              "repeats": args.repeats, "rows": rows}
    path = save("threads.json", result)
    print(f"wrote {path}")
    for w, row in rows.items():
        print(w, {k: round(v, 3) for k, v in row["median_seconds"].items()},
              f"torch default / policy = {row['torch_default_over_policy']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
