"""Fig. 5 (Li et al., 2021): peak memory of one training step against depth on an ogbn-products-shaped graph, ResGNN
(ResSAGE) against RevGNN (RevSAGE, D = 160, C = 2), full batch against one of 10 random parts (revgnn.measure.batching
holds the protocol).

    OMP_NUM_THREADS=1 python benchmarks/fig5_memory.py --full-fraction 0.25 --full-depths 1 2 4 --limit-gb 10 \
        --probe 0.0078125 0.015625
    OMP_NUM_THREADS=1 python benchmarks/fig5_memory.py --probe 0.0078125 0.015625 --probe-only  # extrapolation only

Every point runs in a fresh process whose private writable memory is capped (RLIMIT_DATA: --limit-gb, a bound on the
step's peak, which includes the graph, plus 1 GiB), so a step that does not fit fails there with an allocation error
instead of taking the shared machine into the OOM killer; a point predicted above the limit from the series' two
shallower points (linear in depth) is not run. The mini-batch series uses ogbn-products' full shape (one part of a
random 10-part partition: N/10 nodes and (E - N)/100 + N/10 directed edges, generated at that shape); the full-batch
series uses ``--full-fraction`` of the shape (nodes and edges alike, the same mean degree), the largest that fits
here. ``--probe`` measures RevGNN and ResGNN full batch at small fractions and writes the linear extrapolation to the
full shape.
Writes results/fig5_memory_products.json (or --out).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import provenance, save  # noqa: E402

from revgnn.measure.batching import PRODUCTS  # noqa: E402

GiB = 2**30


def part_shape(num_nodes: int, num_edges: int, parts: int) -> tuple[int, int]:
    """Nodes and directed edges of one part of a random ``parts``-way partition: every self-loop of its nodes and
    each other edge with probability 1 / parts^2."""
    n = num_nodes // parts
    return n, (num_edges - num_nodes) // parts**2 + n


def child(spec: dict) -> dict:
    """Measure one point in this (fresh) process, its private writable memory capped at ``spec["cap_bytes"]``."""
    cap = spec["cap_bytes"]
    resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))
    import torch

    from revgnn.measure.batching import batching_config, products_graph
    from revgnn.measure.memory import measure_config

    torch.manual_seed(spec["seed"])
    t0 = time.time()
    graph = products_graph(spec["num_nodes"], spec["num_edges"], spec["seed"])
    made = time.time() - t0
    config = batching_config(spec["model"], spec["depth"])
    try:
        step = measure_config(config, 0, 0, seed=spec["seed"], data=graph, repeats=0,
                              warmup=spec["warmup"]).to_dict()
    except (MemoryError, RuntimeError) as err:
        if not isinstance(err, MemoryError) and "alloc" not in str(err).lower():
            raise
        return {"oom": True, "error": str(err).splitlines()[0][:200], "peak_bytes": None}
    step["graph_seconds"] = made
    with open("/proc/self/status") as f:
        step["process_peak_rss_bytes"] = next(int(ln.split()[1]) * 1024 for ln in f if ln.startswith("VmHWM:"))
    step["oom"] = False
    return step


def run_point(spec: dict, timeout: float) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True,
                         env=env, timeout=timeout)
    if out.returncode != 0:
        tail = out.stderr.strip().splitlines()[-1:] or ["no output"]
        if "MemoryError" in out.stderr or "alloc" in out.stderr.lower():
            return {"oom": True, "error": tail[0][:200], "peak_bytes": None}
        raise RuntimeError(f"point {spec} failed ({out.returncode}): {out.stderr.strip()[-1500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def mem_available() -> int:
    with open("/proc/meminfo") as f:
        return next(int(ln.split()[1]) * 1024 for ln in f if ln.startswith("MemAvailable:"))


def graph_bytes(n: int, e: int) -> int:
    """The generated graph and its generation transient: edge_index 16 B + 24 B per edge, x 400 B + y 8 B per node."""
    return 40 * e + 408 * n


def first_peak(n: int, e: int) -> int:
    """A step's peak at L = 1 or 2 before any is measured: about 5.9 kB per node and 63 B per edge (fitted to
    RevGNN's full-batch and mini-batch steps of this script at D = 160; ResGNN's at L = 1 is 5 % below)."""
    return 6_000 * n + 64 * e


class Budget:
    """The bytes the points running at once (one per lane) may need together: a point waits for its share."""

    def __init__(self, total: int):
        self.total, self.used = total, 0
        self.cond = threading.Condition()

    @contextlib.contextmanager
    def reserve(self, need: int):
        need = min(need, self.total)
        with self.cond:
            self.cond.wait_for(lambda: self.used + need <= self.total)
            self.used += need
        try:
            yield
        finally:
            with self.cond:
                self.used -= need
                self.cond.notify_all()


BUDGET = Budget(12 * GiB)


def series(model: str, batching: str, depths, n: int, e: int, limit: int, seed: int, timeout: float,
           log, warmup: int = 0, tag: dict | None = None, done=None) -> list[dict]:
    """The points of one series, each handed to ``done`` when it is measured (or predicted out of memory)."""
    rows, stopped = [], False
    for depth in depths:
        row = {"model": model, "batching": batching, "depth": depth, "hidden_channels": 160, "num_groups": 2,
               "parts": 10 if batching == "parts" else 1, "step_graph": {"num_nodes": n, "num_edges": e},
               **(tag or {})}
        measured = [(r["depth"], r["peak_bytes"]) for r in rows if r.get("peak_bytes")]
        guess = None
        if len(measured) >= 2:
            (x0, y0), (x1, y1) = measured[-2:]
            guess = y1 + (y1 - y0) / (x1 - x0) * (depth - x1)
        if stopped or (guess is not None and guess > limit):
            row.update(oom=True, oom_predicted=not stopped, peak_bytes=None,
                       predicted_peak_bytes=None if stopped or guess is None else int(guess))
            rows.append(row)
            if done:
                done(row)
            stopped = True
            log(f"{model} {batching:5s} L={depth:4d} not run: predicted {guess and guess / GiB:.2f} GiB > limit")
            continue
        # The step's peak counts the graph already; the generation's transient comes before it; 1 GiB for the
        # interpreter and torch (300 MB of private data after their import).
        cap = max(limit, graph_bytes(n, e)) + GiB
        need = min(cap, int(guess or first_peak(n, e)) + GiB // 2)
        while mem_available() < need:
            log(f"waiting: {mem_available() / GiB:.1f} GiB available, the point may need {need / GiB:.1f} GiB")
            time.sleep(60)
        t = time.time()
        with BUDGET.reserve(need):
            try:
                step = run_point({"model": model, "depth": depth, "num_nodes": n, "num_edges": e, "seed": seed,
                                  "cap_bytes": cap, "warmup": warmup}, timeout)
            except (RuntimeError, subprocess.TimeoutExpired) as err:  # e.g. killed by the OOM killer of the machine
                log(f"{model} {batching:5s} L={depth:4d} N={n:,} E={e:,}: failed, not recorded "
                    f"({str(err).splitlines()[0][:300]})")
                break
        step.pop("model", None)
        row.update(step, wall_seconds=time.time() - t)
        row["oom"] = bool(step.get("oom")) or step["peak_bytes"] > limit
        stopped = row["oom"]
        rows.append(row)
        if done:
            done(row)
        peak = "OOM" if step.get("peak_bytes") is None else f"{step['peak_bytes'] / GiB:.3f} GiB"
        log(f"{model} {batching:5s} L={depth:4d} N={n:,} E={e:,}: peak {peak} "
            f"({time.time() - t:.0f} s, loadavg {os.getloadavg()[0]:.1f})")
    return rows


def linear(xs, ys) -> dict:
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return {"slope": slope, "intercept": my - slope * mx}


def probe_rows(args, num_nodes: int, num_edges: int, limit: int, log, done=None) -> list[dict]:
    """Full-batch steps of every model at L = 1 and 2 on ``args.probe`` fractions of the shape."""
    rows = []
    for f in args.probe:
        n, e = int(num_nodes * f), int(num_edges * f)
        for model in args.models:
            rows += series(model, "full", [1, 2], n, e, limit, args.seed, args.timeout, log, args.warmup,
                           tag={"fraction": n / num_nodes}, done=done)
    return rows


def extrapolation(rows: list[dict], models) -> dict:
    """Each model's full-batch peak at L = 1 and 2 as a line in the fraction of the shape, and its value at 1."""
    fits = {}
    for model in models:
        for depth in (1, 2):
            pts = [(r["fraction"], r["peak_bytes"]) for r in rows if r["model"] == model and r["depth"] == depth
                   and r.get("peak_bytes")]
            if len(pts) >= 2:
                fit = linear(*zip(*pts))
                fits[f"{model}_L{depth}"] = {**fit, "full_shape_bytes": fit["slope"] + fit["intercept"]}
    return fits


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--depths", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32], help="L of the mini-batch series")
    p.add_argument("--full-depths", type=int, nargs="*", default=[1, 2, 4, 8],
                   help="L of the full-batch series (none: the mini-batch series only)")
    p.add_argument("--full-fraction", type=float, default=0.25, help="fraction of the products shape, full batch")
    p.add_argument("--warmup", type=int, default=0,
                   help="steps before the measured one (0: the measured step is the first; the optimizer state, "
                        "2 x parameters, is then created inside it)")
    p.add_argument("--limit-gb", type=float, default=12.0, help="a step needing more does not fit (GiB)")
    p.add_argument("--probe", type=float, nargs="*",
                   help="also measure full-batch steps (L = 1, 2) at these fractions of the shape and extrapolate them "
                        "linearly to the full shape (the record's 'probe'; none: no probe)")
    p.add_argument("--probe-only", action="store_true", help="measure the --probe fractions only")
    p.add_argument("--lanes", type=int, default=5,
                   help="series measured at once, one point at a time each (each model's full-batch series, the "
                        "mini-batch series, the probe), under --budget-gb")
    p.add_argument("--budget-gb", type=float, default=12.0,
                   help="what the points running at once may need together (GiB; at least the limit + 1)")
    p.add_argument("--models", nargs="+", default=["res", "rev"], choices=("res", "rev"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=7200)
    p.add_argument("--out", default="fig5_memory_products.json")
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    N, E = PRODUCTS["num_nodes"], PRODUCTS["num_edges"]
    limit = int(args.limit_gb * GiB)
    BUDGET.total = max(int(args.budget_gb * GiB), limit + GiB)
    t0, load0 = time.time(), os.getloadavg()
    log_lines: list[str] = []

    def log(line: str) -> None:
        print(line, flush=True)
        log_lines.append(line)

    result = {"benchmark": "fig5_memory", "provenance": provenance("cpu"),
              "products_shape": {"num_nodes": N, "num_edges": E, "num_features": PRODUCTS["num_features"],
                                 "num_classes": PRODUCTS["num_classes"]},
              "protocol": "revgnn.measure.batching (ours: no public script produces Fig. 5)",
              "limit_bytes": limit, "seed": args.seed}
    if args.probe and args.probe_only:
        rows = probe_rows(args, N, E, limit, log)
        result.update(kind="probe", rows=rows, extrapolation=extrapolation(rows, args.models))
    else:
        n_part, e_part = part_shape(N, E, 10)
        n_full, e_full = int(N * args.full_fraction), int(E * args.full_fraction)
        result.update(kind="figure", full_fraction=args.full_fraction, warmup_steps=args.warmup)
        finished: list[dict] = []
        lock = threading.Lock()

        def write(complete: bool) -> None:
            """The record of the points finished so far (``complete`` False until every lane has ended), so that a
            run stopped early keeps what it measured."""
            rows = [r for r in finished if "fraction" not in r]
            probe = [r for r in finished if "fraction" in r]
            result.update(rows=rows, complete=complete, seconds=time.time() - t0,
                          load_average={"start": load0, "end": os.getloadavg()}, log=log_lines)
            if probe:
                result["probe"] = {"rows": probe, "extrapolation": extrapolation(probe, args.models)}
            save(args.out, result)

        def point_done(row: dict) -> None:
            with lock:
                finished.append(row)
                write(complete=False)

        def full(model: str) -> list[dict]:
            return series(model, "full", args.full_depths, n_full, e_full, limit, args.seed, args.timeout, log,
                          args.warmup, done=point_done)

        def parts(model: str) -> list[dict]:
            return series(model, "parts", args.depths, n_part, e_part, limit, args.seed, args.timeout, log,
                          args.warmup, done=point_done)

        # Lanes: each model's full-batch series, each model's mini-batch series, the probe; --lanes of them at
        # once, one point at a time each, under the memory budget.
        lanes = [lambda m=m: full(m) for m in args.models] + [lambda m=m: parts(m) for m in args.models]
        if args.probe:
            lanes.append(lambda: probe_rows(args, N, E, limit, log, done=point_done))
        with ThreadPoolExecutor(max_workers=args.lanes) as pool:
            for f in [pool.submit(lane) for lane in lanes]:
                f.result()
        finished.sort(key=lambda r: (r.get("fraction") or 0, r["model"], r["batching"], r["depth"]))
        write(complete=True)
        print(f"wrote {args.out}")
        return 0
    result.update(seconds=time.time() - t0, load_average={"start": load0, "end": os.getloadavg()}, log=log_lines)
    print(f"wrote {save(args.out, result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
