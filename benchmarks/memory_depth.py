"""Memory vs depth (Li et al., 2021, Fig. 2-4): peak training memory of ResGNN, ResGNN with checkpointing, RevGNN,
WT-ResGNN, WT-RevGNN and DEQ-GNN as L (DEQ-GNN: solver iterations) grows, on a synthetic-proteins graph.

    OMP_NUM_THREADS=1 python benchmarks/memory_depth.py --graph small       # N=500, E=5,000, D=16, L up to 1001
    OMP_NUM_THREADS=1 python benchmarks/memory_depth.py --graph partition   # 13,253 nodes, 791,224 edges (1/10 of
                                                                            # ogbn-proteins' nodes, 1/100 of its edges)
    OMP_NUM_THREADS=1 python benchmarks/memory_depth.py --graph mid --fused --models rev res --no-inference
        # N=2,000, E=40,000, D=32: `revgnn memory`'s shape in issue 17; L = 4 ... 128
Writes results/memory_depth_<graph>[_<device>].json (schema in results/README.md). Message passing is PyG's GENConv
(the implementation the paper measured) unless ``--fused`` asks for revgnn.nn.fused; the book's Figs. 2-4 take the same
choice as their ``fused`` parameter.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import RESULTS, provenance, write_result  # noqa: E402

from revgnn import ModelConfig  # noqa: E402
from revgnn.measure.memory import measure_config, synthetic_graph  # noqa: E402
from revgnn.training.records import read_json, write_json  # noqa: E402

GRAPHS = {  # name: (nodes, edges, channels)
    "small": (500, 5_000, 16),
    "partition": (13_253, 791_224, 32),   # one of 10 random parts of ogbn-proteins: N/10 nodes, ~E/100 edges
    "mid": (2_000, 40_000, 32),           # `revgnn memory --channels 32 --nodes 2000 --edges 40000` (issue 17)
}
# label: (ModelConfig overrides, meaning of the x axis)
MODELS = {
    "res": (dict(model="res"), "layers"),
    "res-ckpt": (dict(model="res", checkpoint_grads=True), "layers"),
    "rev": (dict(model="rev"), "layers"),
    "wt-res": (dict(model="wt-res"), "layers"),
    "wt-rev": (dict(model="wt-rev"), "layers"),
    "deq": (dict(model="deq", tol=0.0), "solver iterations (forward and adjoint, tol=0: exactly this many)"),
}
DEPTHS = {
    "small": {"default": [1, 10, 100, 250, 500, 1001], "deq": [1, 5, 10, 25, 50, 100]},
    "partition": {"default": [1, 2, 4, 8], "wt-res": [2, 8], "wt-rev": [2, 8], "deq": [2, 8]},
    "mid": {"default": [4, 16, 32, 128], "res": [4, 16, 32], "res-ckpt": [4, 16, 32], "wt-res": [4, 16, 32],
            "deq": [4, 16, 32]},
}
QUICK = {
    "small": {"default": [1, 10, 100, 1001], "res": [1, 10, 100, 250], "res-ckpt": [1, 10, 100, 250],
              "wt-res": [1, 10, 100, 250], "deq": [1, 10, 50]},
    "partition": {"default": [1, 2, 4], "wt-res": [2, 4], "wt-rev": [2, 4], "deq": [2, 4]},
    "mid": {"default": [4, 128], "res": [4, 32], "res-ckpt": [4, 32], "wt-res": [4, 32], "deq": [4, 16]},
}
INFERENCE_MODELS = ("res", "rev")
GiB = 2**30


def linear_fit(xs, ys) -> dict:
    n = len(xs)
    if n < 2:
        return {"slope": None, "intercept": None, "r2": None}
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    icpt = my - slope * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - icpt - slope * x) ** 2 for x, y in zip(xs, ys))
    return {"slope": slope, "intercept": icpt, "r2": 1 - ss_res / ss_tot if ss_tot > 0 else 1.0}


def summarise(rows: list[dict], limits: dict[str, int]) -> dict:
    out = {}
    for label in dict.fromkeys(r["label"] for r in rows):
        rs = sorted((r for r in rows if r["label"] == label), key=lambda r: r["x"])
        xs = [r["x"] for r in rs]
        fit = linear_fit(xs, [r["peak_bytes"] for r in rs])
        fit_act = linear_fit(xs, [r["peak_above_state_bytes"] for r in rs])
        s = {"x": xs, "peak_fit": fit, "peak_above_state_fit": fit_act,
             "peak_above_state_max_over_min": max(r["peak_above_state_bytes"] for r in rs)
             / min(r["peak_above_state_bytes"] for r in rs)}
        if all(r.get("activation_peak_bytes") for r in rs):  # records from before the split lack it
            s["activation_peak_fit"] = linear_fit(xs, [r["activation_peak_bytes"] for r in rs])
            s["activation_peak_max_over_min"] = (max(r["activation_peak_bytes"] for r in rs)
                                                 / min(r["activation_peak_bytes"] for r in rs))
        if fit["slope"] and fit["slope"] > 0:
            s["oom_depth"] = {name: int((lim - fit["intercept"]) / fit["slope"]) for name, lim in limits.items()}
        out[label] = s
    return out


def targets(rows: list[dict]) -> dict:
    t = {}
    rev = {r["x"]: r for r in rows if r["label"] == "rev" and r["mode"] == "train"}
    # L=10 as the target says; on graphs swept to fewer layers the smallest L >= 2 (from L=2 on, the backward holds
    # one more (E, D) edge-gradient buffer than at L=1, then nothing grows).
    ref = 10 if 10 in rev else min((x for x in rev if x >= 2), default=min(rev) if rev else None)
    if rev and max(rev) != ref:
        top = max(rev)
        a, b = rev[ref]["peak_above_state_bytes"], rev[top]["peak_above_state_bytes"]
        t["rev_flat"] = {"target": f"RevGNN peak above model state at the deepest L within 5 % of L={ref}",
                         "L_ref": ref, "L_top": top, "ref_bytes": a, "top_bytes": b,
                         "relative_change": (b - a) / a, "met": abs(b - a) / a <= 0.05}
        a, b = rev[ref].get("activation_peak_bytes"), rev[top].get("activation_peak_bytes")
        if a and b:
            t["rev_activation_flat"] = {
                "target": f"RevGNN activation peak (forward + backward, above parameters and gradients) at the "
                          f"deepest L at most 1.02 x that at L={ref} (issue 17)",
                "L_ref": ref, "L_top": top, "ref_bytes": a, "top_bytes": b, "ratio": b / a, "met": b / a <= 1.02}
    res = [r for r in rows if r["label"] == "res" and r["mode"] == "train"]
    if len(res) >= 3:
        fit = linear_fit([r["x"] for r in res], [r["peak_bytes"] for r in res])
        t["res_linear"] = {"target": "ResGNN peak grows linearly in L", "r2": fit["r2"],
                           "bytes_per_layer": fit["slope"], "met": fit["r2"] > 0.99 and fit["slope"] > 0}
    return t


def _analyse(result: dict) -> dict:
    """Fill ``summary``, ``summary_inference`` and ``targets`` from ``result["rows"]`` (also for --summarise-only)."""
    rows, limits = result["rows"], result["memory_limits_bytes"]
    result["summary"] = summarise([r for r in rows if r["mode"] == "train"], limits)
    result["summary_inference"] = summarise([r for r in rows if r["mode"] == "inference"], limits)
    result["targets"] = targets(rows)
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--graph", choices=GRAPHS, default="small")
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    p.add_argument("--depths", type=int, nargs="+", help="override the depth list of every model")
    p.add_argument("--channels", type=int, help="override D")
    p.add_argument("--no-inference", action="store_true", help="skip the no-grad inference rows")
    p.add_argument("--quick", action="store_true", help="fewer depths (a few minutes on 2 CPU cores)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--fused", action=argparse.BooleanOptionalAction, default=False,
                   help="message passing: PyG's GENConv, as the paper measured (default, --no-fused), or "
                        "revgnn.nn.fused (--fused; ResGNN then keeps O(N D) per layer instead of O(E D))")
    p.add_argument("--out", help="output file name under results/")
    p.add_argument("--summarise-only", metavar="FILE", help="recompute summary and targets of a results file")
    p.add_argument("--merge", metavar="FILE",
                   help="put the measured rows into results/FILE in place of its rows of the same models (each with "
                        "this run's provenance; the other rows kept) and recompute its summary and targets")
    args = p.parse_args(argv)
    if args.summarise_only:
        path = Path(args.summarise_only)
        result = _analyse(read_json(path))
        write_json(path, result)  # back into the file it was read from
        print(json.dumps(result["targets"], indent=1))
        return 0
    nodes, edges, channels = GRAPHS[args.graph]
    channels = args.channels or channels
    depth_table = (QUICK if args.quick else DEPTHS)[args.graph]
    torch.manual_seed(0)
    data = synthetic_graph(nodes, edges, seed=0)
    rows = []
    t_start = time.time()
    load_start = os.getloadavg()
    for label in args.models:
        overrides, axis = MODELS[label]
        depths = args.depths or depth_table.get(label, depth_table["default"])
        for x in depths:
            cfg = ModelConfig(hidden_channels=channels, dropout=0.1, fused=args.fused, **overrides)
            cfg = cfg.replace(num_layers=1, max_iter=x) if cfg.model == "deq" else cfg.replace(num_layers=x)
            modes = ["train"] + (["inference"] if label in INFERENCE_MODELS and not args.no_inference else [])
            for mode in modes:
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message="DEQ .* did not converge")
                    rec = measure_config(cfg, nodes, edges, device=args.device, train=mode == "train", repeats=1,
                                         warmup=0, data=data)
                row = {"label": label, "x": x, "x_axis": axis, **rec.to_dict()}
                rows.append(row)
                print(f"{label:8s} {mode:9s} x={x:5d} peak={rec.peak_bytes / 2**20:9.1f} MiB "
                      f"state={rec.state_bytes / 2**20:8.1f} MiB above={rec.peak_above_state_bytes / 2**20:9.1f} "
                      f"MiB act={(rec.activation_peak_bytes or 0) / 2**20:9.1f} MiB "
                      f"saved={rec.saved_bytes / 2**20:9.1f} MiB t={rec.step_seconds:7.2f}s "
                      f"[{time.time() - t_start:6.0f}s]", flush=True)
    prov = provenance(args.device)
    limits = {"this_machine": prov["memory_total_bytes"] or 0, "16GiB": 16 * GiB, "32GiB_V100": 32 * GiB,
              "80GiB_A100_H100": 80 * GiB}
    result = {
        "benchmark": "memory_depth",
        "provenance": prov,
        "graph": {"name": f"synthetic-proteins ({args.graph})", "num_nodes": nodes,
                  "num_edges": rows[0]["num_edges"] if rows else edges, "edge_dim": 8, "seed": 0},
        "hidden_channels": channels, "num_groups": 2, "dropout": 0.1, "fused": args.fused,
        "optimizer": "Adam(lr=1e-3, foreach=False)",
        "memory_limits_bytes": limits,
        "rows": rows,
        "seconds": time.time() - t_start,
        "load_average": {"start": load_start, "end": os.getloadavg()},  # 1/5/15-minute; memory is not timing
    }
    if args.merge:
        result = _merge(args.merge, result, args.models)
    return write_result(f"memory_depth_{args.graph}", args.device, args.out or args.merge, _analyse(result))


def _merge(name: str, new: dict, models: list[str]) -> dict:
    """The committed ``results/<name>`` with ``new``'s rows in place of its rows of ``models``; each new row carries
    ``new``'s provenance (and load), the file keeps its own for the other rows."""
    result = read_json(RESULTS / name)
    for row in new["rows"]:
        row["provenance"] = {**new["provenance"], "load_average": new["load_average"]}
    kept = [r for r in result["rows"] if r["label"] not in models]
    order = list(MODELS)
    result["rows"] = sorted(kept + new["rows"], key=lambda r: order.index(r["label"]))
    return result


if __name__ == "__main__":
    raise SystemExit(main())
