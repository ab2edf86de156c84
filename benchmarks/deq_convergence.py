"""Does DEQ-GNN reach its equilibrium (Li et al., 2021, Sec. 3.3; issue 29)?

    OMP_NUM_THREADS=1 python benchmarks/deq_convergence.py                 # results/deq_convergence.json (3 jobs)
    OMP_NUM_THREADS=1 python benchmarks/deq_convergence.py stabilisers     # results/deq_stabilisers.json

Every run is ``revgnn.training.loop.fit`` on a ``synthetic-proteins`` graph, one full-graph Adam step per epoch (lr
0.01, dropout 0.1, as the Fig. 1 / 112-layer-table live runs), with the package's defaults unless a variant says
otherwise. Each solver step's history entry carries the forward and adjoint solves (``revgnn.nn.deq.solver_fields``):
iterations, whole-graph relative residual, worst node's residual, converged, and the spectral radius of df/dz at the
fixed point (power iteration, ``--spectral-iters`` vector-Jacobian products per step; the bare solver and the warm-up
sweep use ``--contrast-spectral-iters``).

``convergence`` (the default) writes ``deq_convergence.json``:

- ``fig1``: the issue's acceptance check at the Fig. 1 settings (N = 2,000, E = 32,000, D = 32) with the shipped
  defaults, warm-up included, seeds 0-9, the first 10 solver steps: every forward and adjoint solve within 1e-4
  relative in at most 30 iterations, the worst node within 10 x tol, nothing non-finite, spectral radius at step 1
  below 0.9 (``targets``);
- ``bare``: the same without the warm-up (``warmup_epochs=0``), the solver from the initial weights, for the first
  ``--bare-steps`` solver steps;
- ``warmup``: the first 3 solver steps after warm-ups of other lengths (epochs x k), on the Fig. 1 graph (seeds
  0-1) and on a 200-node one (D = 16, seeds 0-19), the evidence for the default;
- ``warmup_memory``: the peak of one warm-up step (the unrolled network, O(k N D)) against one solver step;
- ``fig4``: Fig. 4's DEQ-GNN points (N = 500, E = 5,000, D = 16, PyG GENConv, tol = 0 so every cap runs in full, the
  initial weights, as the memory step measures them): the residual a solve capped at k returns, for the caps the
  figure plots, from one 100-iteration trace per solve.

``stabilisers`` writes ``deq_stabilisers.json``: on the Fig. 1 graph, with and without the warm-up, weight and
spectral normalisation of the cell's Linear layers, the one-step phantom gradient and Jacobian regularisation
(PyG GENConv: the fused kernels are differentiable once), each for the first 10 solver steps of seeds 0-9 (the
solves, the radius, seconds per step), then ``--accuracy-epochs`` epochs of training for 3 seeds (test ROC-AUC).
"""
from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import provenance, write_result  # noqa: E402

from revgnn import ConvergenceWarning, ModelConfig  # noqa: E402
from revgnn.data.datasets import load_dataset  # noqa: E402
from revgnn.measure.memory import measure_config, measure_step  # noqa: E402
from revgnn.nn.presets import build_model  # noqa: E402
from revgnn.training.config import TrainConfig, adapt_model_config  # noqa: E402
from revgnn.training.loop import fit  # noqa: E402

TOL, CAP, NODE_FACTOR, RADIUS_BOUND = 1e-4, 30, 10, 0.9
FIG1 = {"num_nodes": 2_000, "num_edges": 32_000, "hidden_channels": 32}
SMALL = {"num_nodes": 200, "num_edges": 2_000, "hidden_channels": 16}
FIG4_CAPS = [1, 5, 10, 25, 50, 100]
WARMUPS = [(0, 8), (1, 2), (1, 4), (1, 8), (2, 4), (2, 8), (3, 4)]          # (epochs, k); (0, .) is the bare solver
STABILISERS = {"none": {}, "weight-norm": {"deq_norm": "weight"}, "spectral-norm": {"deq_norm": "spectral"},
               "phantom": {"deq_backward": "phantom"}, "jac-reg-0.1": {"jac_reg": 0.1, "fused": False},
               "jac-reg-1": {"jac_reg": 1.0, "fused": False}}
STEP_KEYS = ("iters", "residual", "node_residual", "converged")


SHAPES = {"fig1": FIG1, "small": SMALL}


@functools.lru_cache(maxsize=None)
def _graph_of(name: str):
    shape = SHAPES[name]
    return load_dataset("synthetic-proteins", num_nodes=shape["num_nodes"], num_edges=shape["num_edges"], seed=0)


def _job(job: tuple) -> dict:
    """One :func:`run` in a worker: ``(shape name, seed, steps, changes, spectral_iters, eval_every)``."""
    name, seed, steps, changes, spectral_iters, eval_every = job
    return run(_graph_of(name), SHAPES[name], seed, steps, changes, spectral_iters, eval_every)


def runs_by_key(keyed_jobs: list[tuple[str, tuple]], n_jobs: int, desc: str) -> dict[str, list[dict]]:
    """:func:`run_all` of ``(key, job)`` pairs; the results grouped by key, each group in the order of its jobs."""
    grouped: dict[str, list[dict]] = {}
    for (key, _), result in zip(keyed_jobs, run_all([job for _, job in keyed_jobs], n_jobs, desc)):
        grouped.setdefault(key, []).append(result)
    return grouped


def run_all(jobs: list[tuple], n_jobs: int, desc: str) -> list[dict]:
    """:func:`run` of every job, ``n_jobs`` processes at once (each run is seeded, so the order does not matter);
    the results in the order of ``jobs``."""
    if n_jobs <= 1:
        return [_job(j) for j in tqdm_list(jobs, desc)]
    from tqdm import tqdm

    out = [None] * len(jobs)
    with ProcessPoolExecutor(max_workers=n_jobs) as pool:
        futures = {pool.submit(_job, j): i for i, j in enumerate(jobs)}
        for f in tqdm(as_completed(futures), total=len(futures), desc=desc, unit="run"):
            out[futures[f]] = f.result()
    return out


def run(ds, shape: dict, seed: int, steps: int, changes: dict, spectral_iters: int, eval_every: int | None = None
        ) -> dict:
    """``fit`` for the warm-up epochs plus ``steps`` solver steps; the solver steps' solves, the phases' seconds."""
    cfg = ModelConfig("deq", 1, shape["hidden_channels"], dropout=0.1, spectral_iters=spectral_iters)
    cfg = cfg.replace(**changes)
    epochs = cfg.warmup_epochs + steps
    tcfg = TrainConfig(dataset="synthetic-proteins", epochs=epochs, eval_every=eval_every or epochs, lr=0.01,
                       seed=seed, device="cpu", progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the point is to record them, in the stats
        record = fit(adapt_model_config(cfg, ds, tcfg), tcfg, ds)["runs"][0]
    solver_steps = []
    for entry in record["history"]:
        if entry.get("deq_phase") != "solver":
            continue
        step = {"epoch": entry["epoch"], "spectral_radius": entry["deq_spectral_radius"], "loss": entry["loss"]}
        for kind in ("forward", "backward"):
            step[kind] = {k: entry[f"deq_{kind}_{k}"] for k in STEP_KEYS}
        solver_steps.append(step)
    return {"seed": seed, "changes": changes, "deq_warmup": record["deq_warmup"], "steps": solver_steps,
            "best": record["best"], "final": record["final"], "wall_time_s": record["wall_time_s"]}


def check(runs: list[dict], steps: int) -> dict:
    """The issue's acceptance check over ``runs``' first ``steps`` solver steps."""
    solves = [(r["seed"], s["epoch"], kind, s[kind]) for r in runs for s in r["steps"][:steps]
              for kind in ("forward", "backward") if s[kind]["iters"] is not None]
    missed = [f"seed {seed} epoch {epoch} {kind}" for seed, epoch, kind, s in solves
              if not (s["converged"] and s["iters"] <= CAP and s["residual"] <= TOL)]
    worst_node = max((s["node_residual"] for *_, s in solves), default=None)
    finite = all(torch.isfinite(torch.tensor([s["residual"], s["node_residual"]])).all() for *_, s in solves)
    radii = [r["steps"][0]["spectral_radius"] for r in runs if r["steps"]]
    return {
        "solves": len(solves), "max_forward_iters": max(s["iters"] for *_, k, s in solves if k == "forward"),
        "max_backward_iters": max((s["iters"] for *_, k, s in solves if k == "backward"), default=None),
        "within_tol_at_cap": {"target": f"every forward and backward solve <= {TOL:g} relative in <= {CAP} "
                                        "iterations", "missed": missed, "met": not missed},
        "worst_node": {"target": f"worst node's residual <= {NODE_FACTOR} x tol", "max": worst_node,
                       "met": worst_node is not None and worst_node <= NODE_FACTOR * TOL},
        "finite": {"target": "no NaN or inf", "met": bool(finite)},
        "spectral_radius_step_1": {"target": f"< {RADIUS_BOUND} at the first solver step", "per_seed": radii,
                                   "max": max(radii), "met": max(radii) < RADIUS_BOUND},
        "met": not missed and finite and worst_node <= NODE_FACTOR * TOL and max(radii) < RADIUS_BOUND,
    }


def first_steps(runs: list[dict]) -> dict:
    """How the first solver step went, over the seeds: misses, iterations, radius."""
    first = [r["steps"][0] for r in runs]
    return {"missed_seeds": [r["seed"] for r, s in zip(runs, first)
                             if not (s["forward"]["converged"] and s["backward"]["converged"])],
            "forward_iters": [s["forward"]["iters"] for s in first],
            "backward_iters": [s["backward"]["iters"] for s in first],
            "spectral_radius": [s["spectral_radius"] for s in first]}


def fig4(seed: int) -> dict:
    ds = load_dataset("synthetic-proteins", num_nodes=500, num_edges=5_000, seed=0)   # as the Fig. 4 notebook
    cfg = adapt_model_config(ModelConfig("deq", 1, 16, max_iter=max(FIG4_CAPS), tol=0.0, fused=False), ds,
                             TrainConfig(dataset="synthetic-proteins"))
    torch.manual_seed(seed)
    model = build_model(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # tol = 0: every solve runs its cap, by design
        rec = measure_step(model, ds.data, repeats=1, warmup=1)
    out = {"seed": seed}
    for kind, stats in (("forward", model.last_solver_stats), ("backward", model.last_backward_solver_stats)):
        # what a solve capped at k returns: the best of its first k iterates (Anderson's window is min(5, k))
        out[kind] = {"residual_after": {k: min(stats.residuals[:k]) for k in FIG4_CAPS},
                     "node_residual_after": {k: stats.node_residuals[stats.residuals.index(min(stats.residuals[:k]))]
                                             for k in FIG4_CAPS},
                     "first_within_1e-4": next((i + 1 for i, r in enumerate(stats.residuals) if r <= 1e-4), None),
                     "residuals": stats.residuals}
    out["record_fields"] = {k: v for k, v in rec.to_dict().items() if k.startswith("deq_")}
    return out


def warmup_memory(ds, shape: dict) -> dict:
    """Peak memory of a warm-up step (the unrolled network of k cells, O(k N D)) against a solver step (30 iterations
    forward and adjoint, tol = 0; O(N D)), full graph, fused kernel, at the shipped k."""
    cfg = adapt_model_config(ModelConfig("deq", 1, shape["hidden_channels"], dropout=0.1), ds,
                             TrainConfig(dataset="synthetic-proteins"))
    peaks = {}
    for name, variant in (("solver", cfg.replace(tol=0.0)), ("warmup", cfg.replace(unrolled_iters=cfg.warmup_iters))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # tol = 0: the cap in full, by design
            rec = measure_config(variant, ds.num_nodes, ds.data.edge_index.size(1), data=ds.data, repeats=1)
        peaks[name] = {"peak_bytes": rec.peak_bytes, "peak_above_state_bytes": rec.peak_above_state_bytes,
                       "saved_bytes": rec.saved_bytes, "method": rec.method}
    return {"warmup_iters": cfg.warmup_iters, **peaks,
            "warmup_over_solver_peak": peaks["warmup"]["peak_bytes"] / peaks["solver"]["peak_bytes"]}


def convergence(args) -> dict:
    big = _graph_of("fig1")
    seeds = list(range(args.seeds))
    shipped = run(big, FIG1, 0, 1, {}, 0)["deq_warmup"]
    jobs = {"fig1": [("fig1", s, args.steps, {}, args.spectral_iters, None) for s in seeds],
            "bare": [("fig1", s, args.bare_steps, {"warmup_epochs": 0}, args.contrast_spectral_iters, None)
                     for s in seeds]}
    for name, n in (("fig1", args.sweep_seeds), ("small", 2 * args.seeds)):
        for epochs, k in WARMUPS:
            jobs[f"sweep {name} {epochs} {k}"] = [
                (name, s, 3, {"warmup_epochs": epochs, "warmup_iters": k}, args.contrast_spectral_iters, None)
                for s in range(n)]
    runs_of = runs_by_key([(key, j) for key, js in jobs.items() for j in js], args.jobs, "DEQ-GNN runs")
    fig1, bare = runs_of["fig1"], runs_of["bare"]
    sweep = {}
    for name in ("fig1", "small"):
        for epochs, k in WARMUPS:
            runs = runs_of.get(f"sweep {name} {epochs} {k}", [])
            if runs:
                sweep.setdefault(name, []).append({"warmup_epochs": epochs, "warmup_iters": k, **first_steps(runs),
                                                   "check_3_steps": check(runs, 3)})
    return {
        "settings": {"tol": TOL, "stop_mode": "rel", "max_iter": CAP, "node_factor": NODE_FACTOR,
                     "solver": "anderson", "m": 5, "damping": 1.0, "lr": 0.01, "dropout": 0.1,
                     "spectral_iters": args.spectral_iters, "contrast_spectral_iters": args.contrast_spectral_iters,
                     "steps": args.steps, "bare_steps": args.bare_steps, "jobs": args.jobs, "warmup": shipped,
                     "residual": "relative: ||f(z) - z|| / ||f(z)|| of the returned iterate; worst node: "
                                 "max_i ||f(z)_i - z_i|| / (||f(z)|| / sqrt(N)) (revgnn.nn.solvers)"},
        "fig1": {"graph": {"name": "synthetic-proteins", **FIG1, "seed": 0}, "runs": fig1,
                 "targets": check(fig1, args.steps)},
        "bare": {"graph": {"name": "synthetic-proteins", **FIG1, "seed": 0}, "runs": bare,
                 "first_step": first_steps(bare), "targets": check(bare, args.bare_steps)},
        "warmup": {"graphs": {"fig1": {**FIG1, "seeds": args.sweep_seeds}, "small": {**SMALL, "seeds": 2 * args.seeds}},
                   "variants": sweep},
        "warmup_memory": warmup_memory(big, FIG1),
        "fig4": {"graph": {"name": "synthetic-proteins", "num_nodes": 500, "num_edges": 5_000, "seed": 0},
                 "hidden_channels": 16, "fused": False, "tol": 0.0, "caps": FIG4_CAPS,
                 "runs": [fig4(s) for s in range(3)]},
    }


def stabilisers(args) -> dict:
    variants = {}                                                 # name -> (the stabiliser's changes, the run's)
    for name, changes in STABILISERS.items():
        variants[name] = (changes, changes)
        variants[f"{name}, no warm-up"] = (changes, {**changes, "warmup_epochs": 0})
    jobs = [(key, ("fig1", s, args.steps, variant, args.spectral_iters, None))
            for key, (_, variant) in variants.items() for s in range(args.seeds)]
    if args.accuracy_epochs:                                      # with the warm-up only
        jobs += [(f"{name}: accuracy", ("fig1", s, args.accuracy_epochs, changes, 0, 10))
                 for name, changes in STABILISERS.items() for s in range(3)]
    runs_of = runs_by_key(jobs, args.jobs, "DEQ-GNN stabiliser runs")
    out = {}
    for key, (changes, variant) in variants.items():
        runs = runs_of[key]
        step_s = statistics.median(r["wall_time_s"] / (len(r["steps"]) + r["deq_warmup"]["epochs"]) for r in runs)
        out[key] = {"changes": variant, "first_step": first_steps(runs), "targets": check(runs, args.steps),
                    "median_seconds_per_epoch": step_s,
                    "mean_forward_iters": statistics.mean(s["forward"]["iters"] for r in runs for s in r["steps"]),
                    "mean_backward_iters": statistics.mean(s["backward"]["iters"] for r in runs for s in r["steps"]
                                                           if s["backward"]["iters"] is not None)
                    if changes.get("deq_backward") != "phantom" else None,
                    "max_spectral_radius": max(s["spectral_radius"] for r in runs for s in r["steps"])}
        acc = runs_of.get(f"{key}: accuracy")
        if acc:
            tests = [r["best"]["test"] for r in acc]
            out[key]["accuracy"] = {"epochs": args.accuracy_epochs, "seeds": [0, 1, 2], "test": tests,
                                    "test_mean": statistics.mean(tests), "test_std": statistics.stdev(tests),
                                    "note": "test ROC-AUC at the best validation epoch (evaluated every 10)",
                                    "unconverged_solves": sum(
                                        not s[k]["converged"] for r in acc for s in r["steps"]
                                        for k in ("forward", "backward") if s[k]["iters"] is not None),
                                    "wall_time_s": [r["wall_time_s"] for r in acc]}
    return {"settings": {"graph": {"name": "synthetic-proteins", **FIG1, "seed": 0}, "tol": TOL, "max_iter": CAP,
                         "lr": 0.01, "dropout": 0.1, "spectral_iters": args.spectral_iters, "steps": args.steps,
                         "seeds": args.seeds, "jobs": args.jobs},
            "variants": out}


def tqdm_list(items, desc: str):
    from tqdm import tqdm

    return tqdm(list(items), desc=desc, leave=False)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", nargs="?", default="convergence", choices=("convergence", "stabilisers"))
    p.add_argument("--seeds", type=int, default=10, help="seeds 0 .. n-1 (the small graph's sweep: 2n)")
    p.add_argument("--steps", type=int, default=10, help="solver steps checked after the warm-up")
    p.add_argument("--spectral-iters", type=int, default=20, help="power iterations per step for the radius (each "
                   "costs one VJP, as an adjoint iteration; 20 give the first step's radius within about 1 %% of 50)")
    p.add_argument("--contrast-spectral-iters", type=int, default=20,
                   help="convergence: the same for the bare solver and the warm-up sweep")
    p.add_argument("--bare-steps", type=int, default=3, help="convergence: solver steps of the bare solver (the "
                                                             "first are those that miss)")
    p.add_argument("--jobs", type=int, default=3, help="runs at once, one process each (default 3)")
    p.add_argument("--sweep-seeds", type=int, default=2, help="convergence: seeds of the warm-up sweep on the Fig. 1 "
                                                              "graph")
    p.add_argument("--accuracy-epochs", type=int, default=150, help="stabilisers: training epochs for test ROC-AUC")
    p.add_argument("--out", help="output file name under results/")
    args = p.parse_args(argv)
    t0, load_start = time.time(), os.getloadavg()
    prov = provenance("cpu")  # the revision the runs import, taken before them
    body = convergence(args) if args.what == "convergence" else stabilisers(args)
    result = {"benchmark": f"deq_{args.what}", "provenance": prov, **body,
              "seconds": time.time() - t0, "load_average": {"start": load_start, "end": os.getloadavg()}}
    if args.what == "convergence":
        result["targets"] = {
            "fig1_shipped_defaults": {"target": f"issue 29: seeds 0-{args.seeds - 1}, first {args.steps} solver "
                                                "steps, shipped defaults with the warm-up", **body["fig1"]["targets"]},
            "fig1_bare_solver": {"target": f"for contrast, no warm-up: the same check over the first {args.bare_steps} "
                                           "solver steps", **body["bare"]["targets"]}}
    else:
        result["targets"] = {name: {"target": f"issue 29's check, first {args.steps} solver steps",
                                    "met": v["targets"]["met"]} for name, v in body["variants"].items()}
    return write_result(f"deq_{args.what}", "cpu", args.out, result)


if __name__ == "__main__":
    raise SystemExit(main())
