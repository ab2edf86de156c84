"""Training time under revgnn's CPU thread policy (one thread) against torch's default thread count, on a busy machine.

One process without ``OMP_NUM_THREADS`` loads each dataset once, then alternates (order reversed every other round)
``revgnn.fit`` with the policy (``threads=None``: one thread) and with ``threads`` = the count torch started with
here (its default: one per physical core); medians of ``--repeats`` rounds are compared. The time is the run
record's ``wall_time_s`` (training and evaluation). Each run is the model and data of a ``revgnn train`` command.

    env -u OMP_NUM_THREADS python benchmarks/threads.py      # cora and synthetic-proteins, 4 x 64, 1 epoch

Writes results/threads.json with the machine's load average before and after.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
from pathlib import Path

if os.environ.get("OMP_NUM_THREADS") or os.environ.get("MKL_NUM_THREADS"):
    sys.exit("run without OMP_NUM_THREADS / MKL_NUM_THREADS (env -u OMP_NUM_THREADS ...): torch must start with its "
             "own default")

import torch  # noqa: E402

TORCH_DEFAULT = torch.get_num_threads()  # before revgnn sets anything

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import provenance, save  # noqa: E402

from revgnn.cli import build_parser  # noqa: E402
from revgnn.commands.train import model_config, train_config  # noqa: E402
from revgnn.data.datasets import load_dataset  # noqa: E402
from revgnn.training.loop import fit  # noqa: E402

WORKLOADS = {  # name: (the command each run is, dataset, epochs)
    "cora": ("revgnn train --dataset cora --layers 4 --channels 64 --epochs 1", "cora", 1),
    "synthetic-proteins": ("revgnn train --dataset synthetic-proteins --layers 4 --channels 64 --epochs 1",
                           "synthetic-proteins", 1),
}


def one_run(command: str, ds, epochs: int, threads: int | None) -> dict:
    """One run of ``command`` as the command line reads it (the dataset's recipe included), ``epochs`` epochs, with
    ``threads`` torch threads (None: revgnn's policy)."""
    args = build_parser().parse_args(command.split()[1:])
    tcfg = dataclasses.replace(train_config(args), epochs=epochs, progress=False, threads=threads)
    rec = fit(model_config(args), tcfg, ds)["runs"][0]
    return {"seconds": rec["wall_time_s"], "torch_threads": rec["torch_threads"],
            "threads_source": rec["threads_source"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    arms = {"policy": None, "torch_default": TORCH_DEFAULT}
    load_before = os.getloadavg()
    rows = {}
    for name, (command, dataset, epochs) in WORKLOADS.items():
        ds = load_dataset(dataset)
        one_run(command, ds, 1, None)  # warm-up
        times = {arm: [] for arm in arms}
        for r in range(args.repeats):
            for arm in (list(arms) if r % 2 == 0 else list(reversed(arms))):
                times[arm].append(one_run(command, ds, epochs, arms[arm]))
                print(name, arm, times[arm][-1], os.getloadavg(), flush=True)
        med = {arm: statistics.median(t["seconds"] for t in times[arm]) for arm in arms}
        rows[name] = {"command": command, "runs": times, "median_seconds": med,
                      "torch_default_over_policy": med["torch_default"] / med["policy"]}
        write(rows, args.repeats, load_before)  # after each workload: a finished one survives a later stop
    for name, row in rows.items():
        print(name, {k: round(v, 3) for k, v in row["median_seconds"].items()},
              f"torch default / policy = {row['torch_default_over_policy']:.2f}")
    return 0


def write(rows: dict, repeats: int, load_before: tuple[float, float, float]) -> None:
    result = {"benchmark": "thread policy: one CPU thread (revgnn's default) vs torch's default thread count",
              "provenance": {**provenance("cpu"), "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
                             "torch_default_threads": TORCH_DEFAULT},
              "arms": {"policy": "threads=None, no OMP_NUM_THREADS: revgnn's policy (1 thread)",
                       "torch_default": f"threads={TORCH_DEFAULT} (torch's own default on this machine)"},
              "repeats": repeats, "rows": rows}
    print(f"wrote {save('threads.json', result)}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
