"""Do DEQ-GNN's solves converge at the book's settings (Li et al., 2021, Sec. 3.3; issue 17, item 2)?

    OMP_NUM_THREADS=1 python benchmarks/deq_convergence.py            # a few minutes on 2 CPU cores

Two settings, each with the package's default solver (Anderson, window 5, tolerance 1e-4 on the relative residual
||f(z) - z|| / ||f(z)||, cap 30 forward and 30 adjoint):

- ``fig1``: the Fig. 1 / 112-layer-table live run (synthetic-proteins, N=2,000, E=32,000, D=32, dropout 0.1, Adam lr
  0.01, one full-graph step per epoch). Per seed: the residual traces of the first step's forward and adjoint solves
  with the cap raised to 100 (where they would stop, if anywhere), then ``revgnn.training.loop.fit`` for a few epochs
  with the default cap, whose history carries each epoch's solver fields (``revgnn.nn.deq.solver_fields``).
- ``fig4``: Fig. 4's DEQ-GNN points (N=500, E=5,000, D=16, PyG GENConv, tol=0 so every cap runs in full): the
  residual a solve capped at k returns (the best of its first k iterates), for the caps the figure plots, read
  from one 100-iteration trace per solve.

Writes results/deq_convergence.json.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import provenance, write_result  # noqa: E402

from revgnn import ConvergenceWarning, ModelConfig  # noqa: E402
from revgnn.data.datasets import load_dataset  # noqa: E402
from revgnn.measure.memory import measure_step  # noqa: E402
from revgnn.nn.presets import build_model  # noqa: E402
from revgnn.training.config import TrainConfig, adapt_model_config  # noqa: E402
from revgnn.training.loop import fit  # noqa: E402

FIG4_CAPS = [1, 5, 10, 25, 50, 100]


def _trace(stats) -> dict:
    d = stats.to_dict()
    d["first_within_tol"] = next((i + 1 for i, r in enumerate(stats.residuals) if r <= 1e-4), None)
    return d


def fig1(seed: int, epochs: int, nodes: int, edges: int, channels: int) -> dict:
    ds = load_dataset("synthetic-proteins", num_nodes=nodes, num_edges=edges, seed=0)
    tcfg = TrainConfig(dataset="synthetic-proteins", epochs=epochs, eval_every=epochs, lr=0.01, seed=seed,
                       device="cpu", progress=False)
    mcfg = adapt_model_config(ModelConfig("deq", 1, channels, dropout=0.1), ds, tcfg)
    torch.manual_seed(seed)                              # the weights fit() starts from (train_run seeds the same)
    model = build_model(mcfg.replace(max_iter=100))
    model.train()
    d, mask = ds.data, ds.split["train"]
    out = model(d.x, d.edge_index, d.edge_attr, d.species)
    F.binary_cross_entropy_with_logits(out[mask], d.y[mask].float()).backward()
    first_step = {"forward": _trace(model.last_solver_stats), "backward": _trace(model.last_backward_solver_stats),
                  "max_iter": 100}
    run = fit(mcfg, tcfg, ds)["runs"][0]
    history = [{k: v for k, v in h.items() if k == "epoch" or k == "loss" or k.startswith("deq_")}
               for h in run["history"]]
    return {"seed": seed, "first_step_cap_100": first_step, "history": history, "final": run["final"]}


def fig4(seed: int) -> dict:
    ds = load_dataset("synthetic-proteins", num_nodes=500, num_edges=5_000, seed=0)   # as the Fig. 4 notebook
    cfg = adapt_model_config(ModelConfig("deq", 1, 16, max_iter=max(FIG4_CAPS), tol=0.0, fused=False), ds,
                             TrainConfig(dataset="synthetic-proteins"))
    torch.manual_seed(seed)
    model = build_model(cfg)
    data = ds.data
    rec = measure_step(model, data, repeats=1, warmup=1)
    out = {"seed": seed}
    for kind, stats in (("forward", model.last_solver_stats), ("backward", model.last_backward_solver_stats)):
        # what a solve capped at k returns: the best of its first k iterates (Anderson's window is min(5, k))
        out[kind] = {"residual_after": {k: min(stats.residuals[:k]) for k in FIG4_CAPS},
                     "first_within_1e-4": next((i + 1 for i, r in enumerate(stats.residuals) if r <= 1e-4), None),
                     "residuals": stats.residuals}
    out["record_fields"] = {k: v for k, v in rec.to_dict().items() if k.startswith("deq_")}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=10, help="fig1: training epochs (one step each) per seed")
    p.add_argument("--out", help="output file name under results/")
    args = p.parse_args(argv)
    t0, load_start = time.time(), os.getloadavg()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the point is to record them, in the stats
        runs1 = [fig1(s, args.epochs, 2_000, 32_000, 32) for s in args.seeds]
        runs4 = [fig4(s) for s in args.seeds]
    first_unconverged = [sum(not r["history"][0][f"deq_{k}_converged"] for k in ("forward", "backward"))
                         for r in runs1]
    later = [h for r in runs1 for h in r["history"][1:]]
    result = {
        "benchmark": "deq_convergence", "provenance": provenance("cpu"),
        "solver": {"name": "anderson", "window": 5, "tol": 1e-4, "max_iter": 30, "backward_max_iter": 30,
                   "residual": "||f(z) - z|| / ||f(z)||, of the returned (best) iterate"},
        "fig1": {"graph": {"name": "synthetic-proteins", "num_nodes": 2_000, "num_edges": 32_000, "seed": 0},
                 "hidden_channels": 32, "dropout": 0.1, "lr": 0.01, "runs": runs1},
        "fig4": {"graph": {"name": "synthetic-proteins", "num_nodes": 500, "num_edges": 5_000, "seed": 0},
                 "hidden_channels": 16, "fused": False, "tol": 0.0, "caps": FIG4_CAPS, "runs": runs4},
        "seconds": time.time() - t0, "load_average": {"start": load_start, "end": os.getloadavg()},
    }
    result["targets"] = {
        "fig1_first_step": {"target": "the first training step's solves (initial weights) within tol at cap 30",
                            "unconverged_solves_per_seed": first_unconverged,
                            "met": not any(first_unconverged)},
        "fig1_after_first_step": {
            "target": "every later step's forward and adjoint solve within tol at cap 30",
            "unconverged": sum(h["deq_forward_unconverged"] + h["deq_backward_unconverged"] for h in later),
            "max_forward_iters": max((h["deq_forward_iters"] for h in later), default=None),
            "max_backward_iters": max((h["deq_backward_iters"] for h in later), default=None),
            "met": all(h["deq_forward_unconverged"] + h["deq_backward_unconverged"] == 0 for h in later)},
    }
    return write_result("deq_convergence", "cpu", args.out, result)


if __name__ == "__main__":
    raise SystemExit(main())
