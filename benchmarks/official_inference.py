"""Full-graph inference cost of the released RevGNN shapes on ogbn-proteins' full shape (Li et al., ICML 2021).

What ``revgnn evaluate --official-checkpoint`` costs on a CPU: one no-grad forward pass of RevGNN (fused, eval mode)
over the whole graph (132,534 nodes, 79,122,504 directed edges, synthetic-proteins at ogbn-proteins' shape) at the
RevGNN-Deep width (D = 80, C = 2) and the RevGNN-Wide width (D = 224, C = 2). Each setting runs in a fresh process:
it builds the graph, resets the peak resident set size (VmHWM, via /proc/self/clear_refs) and reads it after each
layer, so the record shows whether the peak grows with L; the time of each layer is read by a hook
(:func:`revgnn.official.on_each_layer`). Time and the peak are extrapolated to 1001 layers (Deep) and 448 (Wide):
encoders + L x (median layer time) + head; the peak stays what the measured layers reached (activation memory is
O(ND) whatever L is, and each layer frees its temporaries).

    OMP_NUM_THREADS=1 nice -n 19 python benchmarks/official_inference.py              # full shape (hours)
    python benchmarks/official_inference.py --smoke                                    # 4,000 nodes, seconds
    python benchmarks/official_inference.py one --channels 80 --layers 2 --threads 1   # one setting, prints JSON
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

FULL = {"nodes": 132_534, "edges": 79_122_504}
SMOKE = {"nodes": 4_000, "edges": 80_000}
TARGET_LAYERS = {80: 1001, 224: 448}  # RevGNN-Deep and RevGNN-Wide
# (channels, layers, threads) of each fresh process, in order; the 2-thread point comes last (it is optional).
SETTINGS = [(80, 4, 1), (224, 3, 1), (80, 3, 2)]


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def one(channels: int, layers: int, threads: int, nodes: int, edges: int) -> dict:
    """One whole-graph no-grad forward pass in this process; the per-layer times and peaks."""
    import torch

    from revgnn.measure.memory import synthetic_graph
    from revgnn.nn.fused import sort_graph_
    from revgnn.nn.models import RevGNN
    from revgnn.official import on_each_layer
    from revgnn.training.runtime import fix_mmap_threshold

    torch.set_num_threads(threads)
    mmap_fixed = fix_mmap_threshold()                           # as revgnn evaluate does
    t0 = time.perf_counter()
    data = synthetic_graph(nodes, edges, seed=0)
    gen_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    sort_graph_(data)                                            # as revgnn evaluate does after loading
    sort_s = time.perf_counter() - t0
    load_peak = _status_kb("VmHWM") * 1024                       # generation and sort, before the pass
    torch.manual_seed(0)
    model = RevGNN(8, channels, 112, layers, num_groups=2, edge_dim=8, num_species=8, aggr="max").eval()
    marks = []                                                   # (time, VmHWM kB, CPU time) after each layer
    on_each_layer(model, lambda: marks.append((time.perf_counter(), _status_kb("VmHWM"), time.process_time())))
    with open("/proc/self/clear_refs", "w") as f:                # VmHWM := VmRSS: the pass's own peak is read
        f.write("5")
    rss_before = _status_kb("VmRSS") * 1024
    start = time.perf_counter()
    first = []
    model.stack.layers[0][0].register_forward_pre_hook(
        lambda *_: first.append((time.perf_counter(), time.process_time())) if not first else None)
    with torch.no_grad():
        out = model(data.x, data.edge_index, data.edge_attr, species=data.species)
    end = time.perf_counter()
    assert out.shape == (nodes, 112) and bool(torch.isfinite(out).all()), "finite logits for every node"
    starts = [first[0]] + marks[:-1]
    layer_s = [b[0] - a[0] for a, b in zip(starts, marks)]
    layer_cpu = [b[2] - a[-1] for a, b in zip(starts, marks)]  # CPU seconds: less sensitive to a busy machine
    from revgnn.nn import native
    from revgnn.nn.fused import resolve_kernel

    return {"channels": channels, "layers": layers, "threads": threads, "kernel": resolve_kernel("auto"),
            "native_isa": native._state.get("isa"), "malloc_mmap_threshold_fixed": mmap_fixed,
            "num_nodes": data.num_nodes,
            "num_edges": int(data.edge_index.size(1)), "generation_seconds": gen_s, "sort_seconds": sort_s,
            "rss_load_peak_bytes": load_peak,
            "rss_before_bytes": rss_before, "rss_peak_after_layer_bytes": [m[1] * 1024 for m in marks],
            "rss_peak_bytes": max([_status_kb("VmHWM")] + [m[1] for m in marks]) * 1024,  # lazily synced counters
            "encode_seconds": first[0][0] - start,
            "layer_seconds": layer_s, "layer_cpu_seconds": layer_cpu, "head_seconds": end - marks[-1][0],
            "forward_seconds": end - start}


def extrapolate(run: dict) -> dict:
    L = TARGET_LAYERS.get(run["channels"], 1001)
    per_layer = statistics.median(run["layer_seconds"])
    cpu = statistics.median(run["layer_cpu_seconds"]) if "layer_cpu_seconds" in run else None
    return {"layers": L, "seconds": run["encode_seconds"] + L * per_layer + run["head_seconds"],
            "seconds_per_layer": per_layer, "cpu_seconds_per_layer": cpu,
            "cpu_seconds": None if cpu is None else L * cpu, "peak_bytes": run["rss_peak_bytes"],
            "note": "encoders + L x median measured layer + head; the peak is flat in L (O(ND) activations)"}


def campaign(shape: dict, out: str | None, settings=SETTINGS) -> dict:
    from provenance import provenance, save

    runs, prov = [], provenance("cpu")                           # the revision the runs start from
    for channels, layers, threads in settings:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        cmd = [sys.executable, __file__, "one", "--channels", str(channels), "--layers", str(layers),
               "--threads", str(threads), "--nodes", str(shape["nodes"]), "--edges", str(shape["edges"])]
        load = os.getloadavg()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
        run = json.loads(proc.stdout.strip().splitlines()[-1])
        run["loadavg_at_start"] = list(load)
        run["loadavg_at_end"] = list(os.getloadavg())
        run["extrapolated"] = extrapolate(run)
        runs.append(run)
        result = {"provenance": prov, "shape": shape, "runs": runs, "targets": _targets(runs)}
        path = save(out or "official_inference.json", result)  # after each run: a partial record survives
    print(f"wrote {path}")
    return result


def _targets(runs: list[dict]) -> dict:
    peak = max(r["rss_peak_bytes"] for r in runs)
    flat = max(r["rss_peak_after_layer_bytes"][-1] / r["rss_peak_after_layer_bytes"][0] for r in runs)
    return {"peak_host_memory_bytes": {"value": peak, "target": "<= 6e9"},
            "peak_last_layer_over_first_layer": {"value": flat, "target": "<= 1.05 (flat in L)"}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("part", nargs="?", default="campaign", choices=("campaign", "one"))
    p.add_argument("--smoke", action="store_true", help="4,000 nodes and 80,000 edges (seconds), record *_smoke")
    p.add_argument("--channels", type=int, default=80)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--nodes", type=int)
    p.add_argument("--edges", type=int)
    p.add_argument("--no-two-threads", action="store_true", help="campaign: skip the 2-thread point")
    p.add_argument("--settings", nargs="+", metavar="DxLxT",
                   help="campaign: these settings instead, e.g. 80x3x1 80x3x2 (channels x layers x threads)")
    p.add_argument("--out", help="record name under results/ (default official_inference[_smoke].json)")
    args = p.parse_args(argv)
    shape = dict(SMOKE if args.smoke else FULL)
    shape["nodes"] = args.nodes or shape["nodes"]
    shape["edges"] = args.edges or shape["edges"]
    if args.part == "one":
        print(json.dumps(one(args.channels, args.layers, args.threads, shape["nodes"], shape["edges"])))
        return 0
    settings = [s for s in SETTINGS if not (args.no_two_threads and s[2] > 1)]
    if args.settings:
        try:
            settings = [tuple(int(v) for v in s.split("x")) for s in args.settings]
        except ValueError:
            p.error(f"--settings takes CHANNELSxLAYERSxTHREADS, e.g. 80x3x2 (got {args.settings})")
    result = campaign(shape, args.out or ("official_inference_smoke.json" if args.smoke else None), settings)
    for k, v in result["targets"].items():
        print(k, v)
    return 0


if __name__ == "__main__":
    sys.exit(main())
