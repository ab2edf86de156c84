"""Training-step speed of RevGNN against ResGNN, against its own non-reversible path, and against PyG's
``GroupAddRev`` built over the very same GENConv blocks (same weights), with each step's peak memory.

Our reversible engine runs each group block twice per step (forward; then once with grad in backward, which gives
both the inverse and the vector-Jacobian product); PyG's ``InvertibleFunction`` runs it three times (forward,
inverse, recompute). Expected ratios: RevGNN / non-reversible ~ (2F + B) / (F + B) = 4/3 when B = 2F;
RevGNN / PyG ~ (2F + B) / (3F + B) = 0.8.

Every model runs PyG's GENConv message passing (``fused=False``, as when ``results/speed.json`` was measured); the
fused operator is measured by ``benchmarks/fused.py``.

    OMP_NUM_THREADS=1 python benchmarks/speed.py             # N=2,000, E=100,000, D=64, L=8, 7 repeats
    OMP_NUM_THREADS=1 python benchmarks/speed.py --quick

Timing protocol: all models live in one process; after one warm-up step each, ``--repeats`` rounds time one step of
every model, the order reversed every other round; medians are compared. Peaks come from one more, instrumented
step per model (revgnn.measure.memory.measure_step). Writes results/speed[_<device>].json.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch_geometric.nn import GroupAddRev

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import provenance, write_result  # noqa: E402

from revgnn import ResGNN, RevGNN, shared_dropout_mask  # noqa: E402
from revgnn.measure.memory import _Step, _sync, measure_step, synthetic_graph  # noqa: E402


class _EdgeTransposed(nn.Module):
    """Hands a GENBlock its edge embedding back from the (D, E) view PyG's GroupAddRev passes through unsplit.

    GroupAddRev splits every extra tensor whose last dimension equals the channel count D; the (E, D) edge
    embedding is meant whole for every group, so it travels as its transpose (a view, no copy)."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block

    def forward(self, x, edge_index, edge_t, mask=None):
        return self.block(x, edge_index, edge_t.t(), mask=mask)


class PyGRevGNN(nn.Module):
    """RevGNN's heads and GENConv blocks (shared with ``model``, same weights) run through PyG's GroupAddRev."""

    def __init__(self, model: RevGNN):
        super().__init__()
        self.heads = model.heads
        self.dropout = model.dropout
        self.layers = nn.ModuleList([GroupAddRev(nn.ModuleList([_EdgeTransposed(b) for b in layer]))
                                     for layer in model.stack.layers])

    def forward(self, x, edge_index, edge_attr=None, species=None, n_id=None):
        h, e = self.heads.encode(x, edge_attr, species, n_id)
        mask = shared_dropout_mask(h, self.dropout, self.training)
        args = (e.t(),) + ((mask,) if mask is not None else ())
        h = h.clone()                        # GroupAddRev frees its input's storage
        for layer in self.layers:
            h = layer(h, edge_index, *args)
        return self.heads.decode(h)


def build(L: int, D: int, dropout: float, seed: int = 0) -> dict[str, nn.Module]:
    # PyG's GENConv path throughout (fused=False): GroupAddRev needs the model's (E, D) edge embedding, and the
    # engine is compared on equal message passing; the fused operator's speed is benchmarks/fused.py's subject
    common = dict(in_channels=8, hidden_channels=D, out_channels=112, num_layers=L, dropout=dropout, edge_dim=8,
                  num_species=8, fused=False)
    torch.manual_seed(seed)
    rev = RevGNN(num_groups=2, aggr="max", **common)
    plain = RevGNN(num_groups=2, aggr="max", reversible=False, **common)
    plain.load_state_dict(rev.state_dict())
    return {
        "rev": rev,
        "rev-nonreversible": plain,
        "pyg-groupaddrev": PyGRevGNN(rev),
        "res-max": ResGNN(aggr="max", learn_t=False, **common),
        "res-softmax": ResGNN(aggr="softmax", learn_t=True, **common),
    }


def gradient_check(data, L: int = 3, D: int = 16) -> dict:
    """Our engine and PyG's GroupAddRev over the same blocks give the same gradients (same dropout mask)."""
    models = build(L, D, dropout=0.1, seed=1)
    grads = {}
    for name in ("rev", "pyg-groupaddrev", "rev-nonreversible"):
        m = models[name]
        m.train()
        m.zero_grad(set_to_none=True)
        torch.manual_seed(5)
        out = m(data.x, data.edge_index, data.edge_attr, data.species)
        torch.nn.functional.binary_cross_entropy_with_logits(out, data.y.float()).backward()
        grads[name] = [p.grad.clone() for p in models["rev"].parameters()] if name != "rev-nonreversible" \
            else [p.grad.clone() for p in m.parameters()]

    def rel(a, b):
        return max(float((x - y).norm() / (y.norm() + 1e-12)) for x, y in zip(a, b))
    return {"pyg_vs_nonreversible_max_rel": rel(grads["pyg-groupaddrev"], grads["rev-nonreversible"]),
            "rev_vs_nonreversible_max_rel": rel(grads["rev"], grads["rev-nonreversible"]),
            "L": L, "D": D}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=2_000)
    p.add_argument("--edges", type=int, default=100_000)
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--quick", action="store_true", help="5 repeats on N=1,000, E=50,000")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--out", help="output file name under results/")
    args = p.parse_args(argv)
    if args.quick:
        args.nodes, args.edges, args.repeats = 1_000, 50_000, 5
    device = torch.device(args.device)
    t_start, load_start = time.time(), os.getloadavg()
    data = synthetic_graph(args.nodes, args.edges, seed=0)
    check = gradient_check(synthetic_graph(200, 2_000, seed=1))
    print("gradient check", check, flush=True)
    data = data.to(device)
    models = {k: m.to(device) for k, m in build(args.layers, args.channels, args.dropout).items()}
    steps = {k: _Step(m, data, train=True) for k, m in models.items()}
    names = list(steps)
    for k in names:                          # warm-up: optimizer state, lazy inits
        steps[k].prepare()
        steps[k]()
    times = {k: [] for k in names}
    for r in range(args.repeats):
        for k in (names if r % 2 == 0 else names[::-1]):
            steps[k].prepare()
            _sync(device)
            t0 = time.perf_counter()
            steps[k]()
            _sync(device)
            times[k].append(time.perf_counter() - t0)
        print(f"round {r}: " + " ".join(f"{k}={times[k][-1]:.3f}s" for k in names), flush=True)
    del steps
    med = {k: statistics.median(v) for k, v in times.items()}
    peaks = {}
    for k in names:                          # the PyG model shares rev's weights: its own optimizer, same values
        rec = measure_step(models[k], data, args.device, repeats=1, warmup=1)
        peaks[k] = {"peak_bytes": rec.peak_bytes, "state_bytes": rec.state_bytes, "saved_bytes": rec.saved_bytes,
                    "peak_above_state_bytes": rec.peak_above_state_bytes, "method": rec.method}
        print(f"{k:18s} median {med[k]:.3f}s peak {rec.peak_bytes / 2**20:.1f} MiB "
              f"above state {rec.peak_above_state_bytes / 2**20:.1f} MiB", flush=True)
    ratios = {f"rev/{k}": med["rev"] / med[k] for k in names if k != "rev"}
    best = {k: min(v) for k, v in times.items()}   # least disturbed by other processes on shared cores
    ratios_min = {f"rev/{k}": best["rev"] / best[k] for k in names if k != "rev"}
    pyg_peak_ratio = peaks["rev"]["peak_bytes"] / peaks["pyg-groupaddrev"]["peak_bytes"]
    result = {
        "benchmark": "speed",
        "provenance": provenance(args.device),
        "graph": {"name": "synthetic-proteins", "num_nodes": args.nodes, "num_edges": int(data.edge_index.size(1))},
        "num_layers": args.layers, "hidden_channels": args.channels, "num_groups": 2, "dropout": args.dropout,
        "aggr": {"rev": "max", "rev-nonreversible": "max", "pyg-groupaddrev": "max", "res-max": "max",
                 "res-softmax": "softmax (learnable t, DeeperGCN)"},
        "optimizer": "Adam(lr=1e-3, foreach=False)",
        "repeats": args.repeats, "step_seconds": times, "median_seconds": med, "ratios": ratios,
        "min_seconds": best, "ratios_of_min": ratios_min,
        "peaks": peaks, "gradient_check": check,
        "targets": {
            "rev_over_res": {"target": "RevGNN step time / ResGNN's (same L, D, graph) <= 1.35",
                             "ratio_res_max": ratios["rev/res-max"], "ratio_res_softmax": ratios["rev/res-softmax"],
                             "ratio_nonreversible": ratios["rev/rev-nonreversible"],
                             "ratio_res_max_of_min": ratios_min["rev/res-max"],
                             "met": ratios["rev/res-max"] <= 1.35},
            "rev_over_pyg": {"target": "RevGNN step time <= 0.85 x PyG GroupAddRev's at <= its peak memory",
                             "time_ratio": ratios["rev/pyg-groupaddrev"],
                             "time_ratio_of_min": ratios_min["rev/pyg-groupaddrev"], "peak_ratio": pyg_peak_ratio,
                             "met": ratios["rev/pyg-groupaddrev"] <= 0.85 and pyg_peak_ratio <= 1.0},
        },
        "seconds": time.time() - t_start,
        "load_average": {"start": load_start, "end": os.getloadavg()},  # 1/5/15 min: the times move with the load
    }
    return write_result("speed", args.device, args.out, result)


if __name__ == "__main__":
    raise SystemExit(main())
