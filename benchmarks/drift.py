"""Float32 drift of reversible gradients at depth, and exact anchors every K layers (issue 10).

The reversible engine rebuilds each layer's input from its output in backward (eq. 2). In float32 each inverse adds
rounding that the next ones amplify, so at L=1001 the gradient drifts from the float64 truth further than plain
float32 autograd does; PyG's ``GroupAddRev`` drifts the same way. ``anchor_every=K`` keeps the exact input of every
K-th layer (ceil(L/K) extra (N, D) tensors) and bounds the drift to K layers; K=1 stores every input (plain
autograd's gradient, O(LND) memory).
 For each setting this script reports, against the float64 gradient of the non-reversible path (same weights): the
relative error of all gradients concatenated, the worst single tensor's relative error, the number of tensors off by
more than 1e-3; the same against plain float32 autograd (``*_vs_plain32``: the part the inverse adds); and the memory of
that same forward + backward, measured as ``revgnn.measure.memory.measure_step`` does on CPU (peak: bytes alive before
plus the running maximum of the allocator's events under ``torch.profiler``; saved: ``SavedTensorMeter``), without the
optimizer step.

With max aggregation, an activation that differs in its last bits can flip a near-tie (equal ReLU messages) and
route a gradient to another edge; such flips make a few tensors err by 1e-3 or more even for plain float32
autograd, so the worst-tensor error is heavy-tailed.

    OMP_NUM_THREADS=1 python benchmarks/drift.py            # L=1001, N=200, E=1,000, D=16, C=2 (a few minutes)
    OMP_NUM_THREADS=1 python benchmarks/drift.py --quick    # L=101

Dropout is 0, so the float32 and float64 models compute the same function. Writes results/drift.json.
"""
from __future__ import annotations

import argparse
import copy
import math
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import provenance, write_result  # noqa: E402
from speed import PyGRevGNN  # noqa: E402

from revgnn import ModelConfig, build_model  # noqa: E402
from revgnn.measure.memory import SavedTensorMeter, _cpu_peak_increment, synthetic_graph, tensor_bytes  # noqa: E402

ANCHORS = (None, 250, 100, 25, 10, 1)


def gradients(model, params, data) -> list[torch.Tensor]:
    """Gradients of the step's BCE loss (as in measure_step) with respect to ``params``."""
    out = model(data.x, data.edge_index, data.edge_attr, data.species)
    loss = F.binary_cross_entropy_with_logits(out, data.y.to(out.dtype))
    return list(torch.autograd.grad(loss, params))


def measured_gradients(model, params, data) -> tuple[list[torch.Tensor], dict]:
    """:func:`gradients` plus the peak and saved-for-backward bytes of that forward + backward (CPU)."""
    from torch.profiler import ProfilerActivity, profile

    baseline = tensor_bytes([*params, *(data[k] for k in data.keys() if isinstance(data[k], torch.Tensor))])
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        with SavedTensorMeter(params) as meter:
            out = model(data.x, data.edge_index, data.edge_attr, data.species)
        loss = F.binary_cross_entropy_with_logits(out, data.y.to(out.dtype))
        del out
        grads = list(torch.autograd.grad(loss, params))
        del loss
    peak = baseline + _cpu_peak_increment(prof)
    return [g.double() for g in grads], {"peak_bytes": peak, "peak_above_baseline_bytes": peak - baseline,
                                         "saved_bytes": meter.bytes}


def errors(grads, truth, names) -> dict:
    diff = torch.cat([(g - t).flatten() for g, t in zip(grads, truth)])
    ref = torch.cat([t.flatten() for t in truth])
    per = [float((g - t).norm() / t.norm()) if t.norm() > 0 else float((g - t).norm()) for g, t in zip(grads, truth)]
    worst = max(range(len(per)), key=per.__getitem__)
    return {"overall_rel_error": float(diff.norm() / ref.norm()), "worst_tensor_rel_error": per[worst],
            "worst_tensor": names[worst], "tensors_above_1e-3": sum(p > 1e-3 for p in per)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", type=int, default=1001)
    ap.add_argument("--nodes", type=int, default=200)
    ap.add_argument("--edges", type=int, default=1000)
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--aggr", default="max", help="GENConv aggregation (max: RevGNN's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="L=101")
    ap.add_argument("--out", default=None, help="output file (default results/drift.json)")
    args = ap.parse_args()
    L = 101 if args.quick else args.layers
    t0 = time.perf_counter()
    prov = provenance("cpu")            # at the start: the revision that runs, whatever is edited meanwhile
    prov["loadavg_start"] = os.getloadavg()
    data = synthetic_graph(args.nodes, args.edges, args.seed)
    cfg = ModelConfig("rev", L, args.channels, num_groups=2, dropout=0.0, aggr=args.aggr)
    torch.manual_seed(args.seed)
    model = build_model(cfg)
    names = [n for n, _ in model.named_parameters()]

    m64 = copy.deepcopy(model).double()
    m64.stack.reversible = False
    data64 = data.clone()
    data64.x, data64.edge_attr = data.x.double(), data.edge_attr.double()
    truth = [g.double() for g in gradients(m64, list(m64.parameters()), data64)]
    del m64

    settings = [("plain float32 autograd", dict(reversible=False, anchor_every=None))]
    settings += [(f"reversible, K={K}" if K else "reversible, no anchors", dict(reversible=True, anchor_every=K))
                 for K in ANCHORS]
    settings.append(("PyG GroupAddRev", None))
    rows, plain32 = [], None
    for label, opts in settings:
        m = copy.deepcopy(model)
        if opts is None:
            runner = PyGRevGNN(m)
        else:
            m.stack.reversible, m.stack.anchor_every = opts["reversible"], opts["anchor_every"]
            runner = m
        row = {"label": label, "anchor_every": opts and opts["anchor_every"],
               "num_anchors": math.ceil(L / opts["anchor_every"]) if opts and opts["anchor_every"] else 0}
        grads, mem = measured_gradients(runner, list(m.parameters()), data)
        plain32 = grads if plain32 is None else plain32      # the first setting: plain float32 autograd
        vs_plain = errors(grads, plain32, names)
        row |= errors(grads, truth, names) | {f"{k}_vs_plain32": v for k, v in vs_plain.items()} | mem
        rows.append(row)
        print(f"{label:28s} overall {row['overall_rel_error']:.2e}  worst {row['worst_tensor_rel_error']:.2e} "
              f"({row['worst_tensor']})  vs plain32 {row['overall_rel_error_vs_plain32']:.2e}  "
              f"saved {row['saved_bytes']:,} B  "
              f"peak-baseline {row['peak_above_baseline_bytes']:,} B", flush=True)

    by = {r["label"]: r for r in rows}
    plain, free = by["plain float32 autograd"], by["reversible, no anchors"]
    nd = args.nodes * args.channels * 4
    anchored = [r for r in rows if r["anchor_every"]]
    k10 = by.get("reversible, K=10")
    targets = {
        "drift_measured": {"target": "without anchors the reversible gradient differs from plain float32 autograd's "
                                     "(same arithmetic) by more than 1e-6 relative",
                           "no_anchor_vs_plain32": free["overall_rel_error_vs_plain32"],
                           "met": free["overall_rel_error_vs_plain32"] > 1e-6},
        "anchors_bound_drift": {"target": "K=10: the difference from plain float32 autograd is 10x smaller than "
                                          "without anchors",
                                "k10_vs_plain32": k10 and k10["overall_rel_error_vs_plain32"],
                                "no_anchor_vs_plain32": free["overall_rel_error_vs_plain32"],
                                "k10_vs_float64": k10 and k10["overall_rel_error"],
                                "plain32_vs_float64": plain["overall_rel_error"],
                                "met": bool(k10) and k10["overall_rel_error_vs_plain32"]
                                <= 0.1 * free["overall_rel_error_vs_plain32"]},
        "anchor_memory": {"target": "saved bytes grow by exactly ceil(L/K) * N * D * 4 over no anchors",
                          "extra_saved_bytes": {r["anchor_every"]: r["saved_bytes"] - free["saved_bytes"]
                                                for r in anchored},
                          "met": all(r["saved_bytes"] - free["saved_bytes"] == r["num_anchors"] * nd
                                     for r in anchored)},
    }
    prov["loadavg_end"] = os.getloadavg()
    result = {"benchmark": "drift", "provenance": prov,
              "graph": {"name": "synthetic-proteins", "num_nodes": args.nodes, "num_edges": int(data.num_edges),
                        "seed": args.seed},
              "num_layers": L, "hidden_channels": args.channels, "num_groups": 2, "aggr": args.aggr,
              "dropout": 0.0, "loss": "BCE-with-logits over the 112 tasks (as measure_step)",
              "truth": "float64 gradient of the non-reversible path, same weights",
              "memory": "one forward + backward of the loss gradient (no optimizer): peak_bytes = bytes alive "
                        "before (parameters, graph) + running maximum of the allocator's events (torch.profiler); "
                        "saved_bytes = SavedTensorMeter, parameters excluded", "rows": rows,
              "targets": targets, "seconds": time.perf_counter() - t0}
    return write_result("drift", "cpu", args.out, result)


if __name__ == "__main__":
    raise SystemExit(main())
