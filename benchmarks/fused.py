"""Fused, edge-chunked GENConv (revgnn.nn.fused) against PyG's GENConv: step time and peak memory on a partition, the
whole ogbn-proteins-shaped graph, a sweep over the number of edges, and the fused step's profile.

    OMP_NUM_THREADS=1 python benchmarks/fused.py partition   # N=13,253, E=791,224, D=80, L=4, 5 rounds
    OMP_NUM_THREADS=1 python benchmarks/fused.py partition --layers 16 --models rev-fused rev-pyg res-fused
    OMP_NUM_THREADS=1 python benchmarks/fused.py sweep       # N=132,534; E = 0.1M, 0.2M, 0.4M; fused and PyG
    ... fused.py sweep --edge-list 250000 1000000 4000000 16000000 --pyg-max-edges 4000000   # the committed sweep
    OMP_NUM_THREADS=1 python benchmarks/fused.py full --layers 2   # 132,534 nodes, 79,122,504 edges, ~6 GB
    OMP_NUM_THREADS=1 python benchmarks/fused.py memory-cli --layers 2 --repeats 1   # `revgnn memory`, whole graph
    OMP_NUM_THREADS=1 python benchmarks/fused.py profile     # top ops of one fused RevGNN step
    OMP_NUM_THREADS=1 python benchmarks/fused.py thp --layers 2 --repeats 2   # THP_MEM_ALLOC_ENABLE=1 or not

Timing protocol (partition): all models live in one process; after one warm-up step each, ``--repeats`` rounds time
one step of every model, the order reversed every other round; medians are compared. Peaks come from one more,
instrumented step per model (allocator events, as revgnn.measure.memory.measure_step). ``full`` runs one
un-instrumented training step per process (generation ~30 s, 5.4 GB), reads the process's peak resident set size
over that step (VmHWM after /proc/self/clear_refs) and compares the peak with the floor: edge_index, edge features,
labels, one N x D state, and parameters + gradients + Adam state. Writes results/fused_<part>.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import provenance, save  # noqa: E402

from revgnn import ModelConfig, build_model, count_parameters  # noqa: E402
from revgnn.measure.memory import _cpu_peak_increment, _proc_status_kb, _Step, synthetic_graph, tensor_bytes  # noqa: E402
from revgnn.training.budget import floor_bytes, shape_floor_bytes  # noqa: E402

PARTITION = dict(nodes=13_253, edges=791_224)        # one of ogbn-proteins' 10 training parts
FULL = dict(nodes=132_534, edges=79_122_504)         # ogbn-proteins
RESULTS_TMP = Path(tempfile.gettempdir())


def _provenance() -> dict:
    return {**provenance("cpu"), "loadavg": list(os.getloadavg()),
            "thp_mem_alloc_enable": os.environ.get("THP_MEM_ALLOC_ENABLE")}


def _instrumented(step: _Step) -> tuple[int, float]:
    """Peak tensor bytes and wall time of one profiled step."""
    step.prepare()
    baseline = tensor_bytes(step.live_tensors())
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    return baseline + _cpu_peak_increment(prof), time.perf_counter() - t0


def _models(L: int, D: int, kernel: str = "auto") -> dict[str, ModelConfig]:
    rev = ModelConfig("rev", L, D, dropout=0.1, kernel=kernel)
    res = ModelConfig("res", L, D, dropout=0.1, kernel=kernel)   # ResGNN baseline: softmax, learnable t
    return {"rev-fused": rev, "rev-pyg": rev.replace(fused=False), "res-pyg": res.replace(fused=False),
            "res-fused": res}


def partition(args) -> dict:
    data = synthetic_graph(args.nodes, args.edges, seed=0)
    steps = {}
    configs = {k: v for k, v in _models(args.layers, args.channels, args.kernel).items() if k in args.models}
    for name, cfg in configs.items():
        torch.manual_seed(0)
        steps[name] = _Step(build_model(cfg), data, train=True)
        steps[name].prepare()
        steps[name]()                                             # warm-up, creates Adam state
    times = {k: [] for k in steps}
    for r in range(args.repeats):
        order = list(steps) if r % 2 == 0 else list(reversed(steps))
        for name in order:
            steps[name].prepare()
            t0 = time.perf_counter()
            steps[name]()
            times[name].append(time.perf_counter() - t0)
    peaks = {name: _instrumented(step)[0] for name, step in steps.items()}
    med = {k: statistics.median(v) for k, v in times.items()}
    records = {k: {"step_seconds": med[k], "step_seconds_all": times[k], "peak_bytes": peaks[k],
                   "state_bytes": steps[k].state_bytes(), "num_parameters": count_parameters(steps[k].model),
                   "config": dataclasses.asdict(configs[k])} for k in steps}
    targets = {}
    for key, (a, b), what, goal in (
            ("rev_time_fused_over_pyg", ("rev-fused", "rev-pyg"), med, "<= 0.6"),
            ("rev_peak_fused_over_pyg", ("rev-fused", "rev-pyg"), peaks, "<= 0.5"),
            ("rev_fused_time_over_res_pyg", ("rev-fused", "res-pyg"), med, "<= 1.0"),
            ("res_time_fused_over_pyg", ("res-fused", "res-pyg"), med, "(report)"),
            ("res_peak_fused_over_pyg", ("res-fused", "res-pyg"), peaks, "(report)"),
            ("rev_fused_time_over_res_fused", ("rev-fused", "res-fused"), med, "(report)")):
        if a in steps and b in steps:
            targets[key] = {"value": what[a] / what[b], "target": goal}
    return {
        "graph": {"num_nodes": data.num_nodes, "num_edges": int(data.edge_index.size(1))},
        "layers": args.layers, "channels": args.channels, "repeats": args.repeats, "models": records,
        "targets": targets,
    }


def sweep(args) -> dict:
    rows = []
    for E in args.edge_list:
        data = synthetic_graph(args.nodes, E, seed=0)
        for fused in (True, False):
            if not fused and args.pyg_max_edges is not None and E > args.pyg_max_edges:
                continue                                          # about 2 KB per edge at D = 80
            cfg = ModelConfig("rev", args.layers, args.channels, dropout=0.1, fused=fused)
            torch.manual_seed(0)
            step = _Step(build_model(cfg), data, train=True)
            step.prepare()
            step()                                                # warm-up
            peak, seconds = _instrumented(step)
            rows.append({"num_nodes": args.nodes, "num_edges": int(data.edge_index.size(1)), "fused": fused,
                         "layers": args.layers, "channels": args.channels, "peak_bytes": peak,
                         "step_seconds_profiled": seconds, "floor_bytes": floor_bytes(data, step.model, args.channels)})
        del data
    return {"rows": rows, "targets": {}}


def full(args) -> dict:
    """One training step of RevGNN (fused) on the whole ogbn-proteins shape, in this process.

    The step that counts is un-instrumented: its wall time and the process's peak resident set size over it (VmHWM
    after /proc/self/clear_refs) are the host-memory figures; it is the first step, so it also creates Adam's state.
    With ``--profile`` a second, profiled step adds the allocator's tensor peak (as ``revgnn memory``); the
    profiler's own event buffers grow with the run, so its resident size is not used.
    """
    t0 = time.perf_counter()
    data = synthetic_graph(args.nodes, args.edges, seed=0)
    gen_seconds = time.perf_counter() - t0
    sort_seconds = None
    if args.sort_at_load:                                         # destination-sorted once, before the step
        from revgnn.nn.fused import sort_graph

        t0 = time.perf_counter()
        data = sort_graph(data)
        sort_seconds = time.perf_counter() - t0
    cfg = ModelConfig("rev", args.layers, args.channels, num_groups=2, dropout=0.1, fused=not args.no_fused,
                      kernel=args.kernel)
    torch.manual_seed(0)
    step = _Step(build_model(cfg), data, train=True)
    with open("/proc/self/clear_refs", "w") as f:                # VmHWM := VmRSS, so the step's peak is read
        f.write("5")
    rss_before = _proc_status_kb("VmRSS") * 1024
    step.prepare()
    t0 = time.perf_counter()
    step()
    seconds = time.perf_counter() - t0
    rss_peak = _proc_status_kb("VmHWM") * 1024
    floor = floor_bytes(data, step.model, args.channels)
    peak = _instrumented(step)[0] if args.profile else None
    per_layer = seconds / args.layers
    targets = {"peak_host_memory_bytes": {"value": rss_peak, "target": "<= 6e9"},
               "rss_peak_over_floor": {"value": rss_peak / floor, "target": "<= 1.5"}}
    if peak is not None:
        targets["peak_over_floor"] = {"value": peak / floor, "target": "<= 1.5"}
    return {
        "graph": {"num_nodes": data.num_nodes, "num_edges": int(data.edge_index.size(1)),
                  "generation_seconds": gen_seconds, "edge_index_dtype": str(data.edge_index.dtype),
                  "sorted_at_load": args.sort_at_load, "sort_seconds": sort_seconds},
        "kernel_ran": _kernel_ran(cfg), "native_isa": _native_isa(),
        "config": dataclasses.asdict(cfg), "num_parameters": count_parameters(step.model),
        "peak_tensor_bytes": peak, "rss_before_step_bytes": rss_before, "rss_peak_bytes": rss_peak,
        "floor_bytes": floor, "step_seconds": seconds, "step_note": "one un-instrumented first step (Adam state "
        "created in it); a single step at this size, not a median",
        "step_seconds_extrapolated_1001_layers": per_layer * 1001,
        "targets": targets,
    }


def full_pair(args) -> dict:
    """``full`` at each of ``--layers-list`` in fresh processes, one after the other (peak independent of L)."""
    runs = {}
    for L in args.layers_list:
        cmd = [sys.executable, __file__, "full", "--layers", str(L), "--channels", str(args.channels),
               "--nodes", str(args.nodes), "--edges", str(args.edges), "--out", f"fused_full_L{L}.json",
               "--kernel", args.kernel,
               *(["--profile"] if args.profile else [])]
        subprocess.run(cmd, check=True)
    from revgnn.training.records import read_json
    for L in args.layers_list:
        runs[L] = read_json(Path(__file__).resolve().parent.parent / "results" / f"fused_full_L{L}.json")
    lo, hi = min(runs), max(runs)
    targets = {"rss_peak_L_hi_over_L_lo": {"value": runs[hi]["rss_peak_bytes"] / runs[lo]["rss_peak_bytes"],
                                           "target": "within 1.05"}}
    if args.profile:
        targets["peak_L_hi_over_L_lo"] = {"value": runs[hi]["peak_tensor_bytes"] / runs[lo]["peak_tensor_bytes"],
                                          "target": "within 1.05"}
    return {"runs": runs, "targets": targets}


def memory_cli(args) -> dict:
    """The issue's own command, ``revgnn memory ... --json``, on the whole graph: its ``peak_bytes`` (the allocator's
    peak of one profiled training step) against the floor. ``--repeats`` timed steps come first (the first creates
    Adam's state); the command's defaults (1 warm-up, 3 timed) would take five steps."""
    import json
    import shlex

    cmd = (f"{shlex.quote(sys.executable)} -m revgnn memory --model rev --layers {args.layers} --channels "
           f"{args.channels} --groups 2 --nodes {args.nodes} --edges {args.edges} --warmup 0 --repeats "
           f"{args.repeats} --json")
    proc = subprocess.run(shlex.split(cmd), capture_output=True, text=True, check=True)
    record = json.loads(proc.stdout.strip().splitlines()[-1])
    cfg = ModelConfig("rev", args.layers, args.channels, num_groups=2, dropout=0.1)
    floor = shape_floor_bytes(args.nodes, args.edges, args.channels, count_parameters(build_model(cfg)))
    return {"command_run": "revgnn " + cmd.split(" -m revgnn ", 1)[1], "record": record, "floor_bytes": floor,
            "targets": {"peak_bytes": {"value": record["peak_bytes"], "target": "<= 6e9"},
                        "peak_over_floor": {"value": record["peak_bytes"] / floor, "target": "<= 1.5"}}}


def step_times(args) -> dict:
    """Child of ``thp``: one warm-up and ``--repeats`` timed steps of the fused RevGNN on the partition."""
    data = synthetic_graph(args.nodes, args.edges, seed=0)
    torch.manual_seed(0)
    step = _Step(build_model(ModelConfig("rev", args.layers, args.channels, dropout=0.1)), data, train=True)
    times = []
    for _ in range(args.repeats + 1):
        step.prepare()
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"step_seconds_all": times[1:], "user_seconds": usage.ru_utime, "system_seconds": usage.ru_stime,
            "targets": {}}


def thp(args) -> dict:
    """Fused step time with and without PyTorch's THP_MEM_ALLOC_ENABLE=1 (transparent huge pages for large CPU
    allocations), in fresh processes, alternating, ``--rounds`` each; medians of the per-process medians."""
    from revgnn.training.records import read_json

    results: dict[str, list] = {"off": [], "on": []}
    for r in range(args.rounds):
        for mode in (("off", "on") if r % 2 == 0 else ("on", "off")):
            env = dict(os.environ)
            env.pop("THP_MEM_ALLOC_ENABLE", None)
            if mode == "on":
                env["THP_MEM_ALLOC_ENABLE"] = "1"
            out = RESULTS_TMP / f"thp_{mode}_{r}.json"
            subprocess.run([sys.executable, __file__, "step-times", "--layers", str(args.layers), "--channels",
                            str(args.channels), "--nodes", str(args.nodes), "--edges", str(args.edges),
                            "--repeats", str(args.repeats), "--out", str(out)], check=True, env=env)
            results[mode].append(read_json(out))
            out.unlink()
    med = {m: statistics.median(statistics.median(r["step_seconds_all"]) for r in rs) for m, rs in results.items()}
    return {"graph": {"num_nodes": args.nodes, "num_edges": args.edges}, "layers": args.layers,
            "channels": args.channels, "runs": results,
            "targets": {"time_thp_over_default": {"value": med["on"] / med["off"], "target": "(report)"}}}


def profile_step(args) -> dict:
    data = synthetic_graph(args.nodes, args.edges, seed=0)
    torch.manual_seed(0)
    step = _Step(build_model(ModelConfig("rev", args.layers, args.channels, dropout=0.1)), data, train=True)
    step.prepare()
    step()
    step.prepare()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    ops = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in ops)
    top = [{"op": e.key, "self_cpu_share": e.self_cpu_time_total / total, "calls": e.count} for e in ops[:12]]
    return {"graph": {"num_nodes": data.num_nodes, "num_edges": int(data.edge_index.size(1))},
            "layers": args.layers, "channels": args.channels, "top_ops": top, "targets": {}}


def _kernel_ran(cfg: ModelConfig) -> str:
    from revgnn.nn.fused import resolve_kernel

    return resolve_kernel(cfg.kernel) if cfg.fused else "pyg"


def _native_isa() -> str | None:
    """The native kernel's build that this process loaded (``avx512``, ``avx2``, ``generic``), if it loaded one."""
    from revgnn.nn import native

    return native._state.get("isa")


def _old_gen_aggregate(rev: str):
    """``gen_aggregate`` of revgnn/fused.py at git revision ``rev`` (the operator before destination sorting)."""
    import importlib.util

    root = Path(__file__).resolve().parent.parent
    text = subprocess.run(["git", "-C", str(root), "show", f"{rev}:revgnn/fused.py"], capture_output=True,
                          text=True, check=True).stdout
    path = RESULTS_TMP / f"revgnn_fused_{rev}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(f"revgnn_fused_{rev}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.gen_aggregate


def _route_old(old):
    """Let GENBlocks whose ``kernel`` is ``"old"`` call the old operator (the others the current one)."""
    import revgnn.nn.layers as layers
    from revgnn.nn.fused import gen_aggregate as new

    def dispatch(*a, kernel="auto", **kw):
        return old(*a, **kw) if kernel == "old" else new(*a, kernel=kernel, **kw)

    layers.gen_aggregate = dispatch


def kernels(args) -> dict:
    """Native vs pure-torch (sorted) vs the old fused operator (git ``--old-rev``): the RevGNN training step on the
    partition at 1 and 2 threads (the old operator at 1 thread only: scatter code is slower at 2), medians of
    alternating rounds in this process; and the aggregation op alone (forward + backward, max, c = D/2, k = 8)."""
    from revgnn.nn import native
    from revgnn.nn.fused import gen_aggregate
    from revgnn.nn.layers import GENBlock

    t0 = time.perf_counter()
    native_ok = native.available()
    load_seconds = time.perf_counter() - t0
    old = _old_gen_aggregate(args.old_rev)
    _route_old(old)
    data = synthetic_graph(args.nodes, args.edges, seed=0)
    cases = [("old", 1), ("torch", 1)] + ([("torch", 2)] if args.torch_2t else []) + \
        ([("native", 1), ("native", 2)] if native_ok else [])
    steps = {}
    for kern, _ in cases:
        if kern in steps:
            continue
        torch.manual_seed(0)
        model = build_model(ModelConfig("rev", args.layers, args.channels, dropout=0.1,
                                        kernel="torch" if kern == "old" else kern))
        for m in model.modules():
            if isinstance(m, GENBlock):
                m.kernel = kern
        steps[kern] = _Step(model, data, train=True)
    load = {"before": list(os.getloadavg())}
    peak_before = _matmul_gflops()
    times: dict[str, list] = {f"{k}-{n}t": [] for k, n in cases}
    for r in range(args.repeats + 1):                              # round 0: warm-up (Adam state, sort cache)
        for kern, n in (cases if r % 2 == 0 else list(reversed(cases))):
            torch.set_num_threads(n)
            steps[kern].prepare()
            t1 = time.perf_counter()
            steps[kern]()
            if r > 0:
                times[f"{kern}-{n}t"].append(time.perf_counter() - t1)
    load["after_steps"] = list(os.getloadavg())
    torch.set_num_threads(1)
    # the op alone: one block's aggregation, forward + backward
    c, k = args.channels // 2, 8
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.nodes, c, generator=g).requires_grad_()
    A = (0.1 * torch.randn(c, k, generator=g)).requires_grad_()
    a = torch.zeros(c).requires_grad_()
    ei, u = data.edge_index, data.edge_attr.float().contiguous()
    ops = {"old": lambda: old(x, ei, u, A, a, "max")}
    ops["torch"] = lambda: gen_aggregate(x, ei, u, A, a, "max", kernel="torch")
    if native_ok:
        ops["native"] = lambda: gen_aggregate(x, ei, u, A, a, "max", kernel="native")
    op_times: dict[str, list] = {kk: [] for kk in ops}
    for r in range(args.repeats + 1):
        for name in (list(ops) if r % 2 == 0 else list(reversed(ops))):
            t1 = time.perf_counter()
            out = ops[name]()
            torch.autograd.grad(out.sum(), [x, A, a])
            if r > 0:
                op_times[name].append(time.perf_counter() - t1)
    load["after_ops"] = list(os.getloadavg())
    med = {kk: statistics.median(v) for kk, v in times.items()}
    op_med = {kk: statistics.median(v) for kk, v in op_times.items()}
    per_layer = {kk: v / args.layers for kk, v in med.items()}
    bound = (0.034, 0.052)                                        # issue 18: s per layer on one core
    # the same FLOP count (3,200-5,840 per edge per layer, issue 18) at the float32 matmul rate this core reaches
    # now (torch.mm, 1 thread, before and after the steps): the bound on this machine as it runs
    peak = min(peak_before, _matmul_gflops())
    measured_bound = tuple(f * data.edge_index.size(1) / (peak * 1e9) for f in (3200, 5840))
    targets = {"torch_over_old_1t": {"value": med["torch-1t"] / med["old-1t"], "target": "<= 0.65"},
               "op_torch_over_old": {"value": op_med["torch"] / op_med["old"], "target": "(report)"}}
    if args.torch_2t:
        targets["torch_2t_over_1t"] = {"value": med["torch-2t"] / med["torch-1t"], "target": "(report)"}
    if native_ok:
        targets.update({
            "native_over_old_1t": {"value": med["native-1t"] / med["old-1t"], "target": "<= 0.2"},
            "native_over_torch_1t": {"value": med["native-1t"] / med["torch-1t"], "target": "<= 0.3"},
            "native_2t_over_1t": {"value": med["native-2t"] / med["native-1t"],
                                  "target": "<= 0.65 on an otherwise idle machine"},
            "native_per_layer_over_bound_hi": {"value": per_layer["native-1t"] / bound[1], "target": "<= 5"},
            "native_per_layer_over_bound_lo": {"value": per_layer["native-1t"] / bound[0], "target": "(report)"},
            "native_per_layer_over_measured_bound_hi": {"value": per_layer["native-1t"] / measured_bound[1],
                                                        "target": "(report)"},
            "op_native_over_old": {"value": op_med["native"] / op_med["old"], "target": "(report)"},
            "op_native_over_torch": {"value": op_med["native"] / op_med["torch"], "target": "(report)"}})
    return {"graph": {"num_nodes": data.num_nodes, "num_edges": int(data.edge_index.size(1))},
            "layers": args.layers, "channels": args.channels, "repeats": args.repeats, "old_rev": args.old_rev,
            "native_available": native_ok, "native_isa": _native_isa(), "native_load_seconds": load_seconds,
            "native_error": native.error(),
            "loadavg": load, "step_seconds": med, "step_seconds_all": times, "seconds_per_layer": per_layer,
            "lower_bound_seconds_per_layer": list(bound), "matmul_gflops_1t": [peak_before, peak],
            "lower_bound_at_measured_peak_seconds_per_layer": list(measured_bound),
            "op_seconds": op_med, "op_seconds_all": op_times,
            "note": "a shared 2-core machine (load in loadavg): only ratios of this run are meaningful; the absolute "
                    "seconds move ~1.6x with the load", "targets": targets}


def _matmul_gflops(n: int = 1024, repeats: int = 5) -> float:
    """float32 GFLOP/s of torch.mm on one thread, the median of ``repeats`` (a measured compute peak)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - t0)
    torch.set_num_threads(before)
    return 2 * n**3 / statistics.median(times) / 1e9


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("part", choices=("partition", "sweep", "full", "full-pair", "memory-cli", "profile", "thp",
                                    "step-times", "kernels"))
    p.add_argument("--kernel", default="auto", choices=("auto", "native", "torch"),
                   help="the fused GENConv kernel (revgnn.nn.fused): native C++ where it builds, or pure torch")
    p.add_argument("--old-rev", default="054a54d", help="kernels: git revision of the old fused operator")
    p.add_argument("--torch-2t", action="store_true", help="kernels: also the torch kernel at 2 threads")
    p.add_argument("--sort-at-load", action="store_true",
                   help="full: sort the graph's edges by destination before the step (revgnn.nn.fused.sort_graph)")
    p.add_argument("--nodes", type=int)
    p.add_argument("--edges", type=int)
    p.add_argument("--channels", type=int, default=80)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--layers-list", type=int, nargs="+", default=[2, 4])
    p.add_argument("--edge-list", type=int, nargs="+", default=[100_000, 200_000, 400_000])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3, help="thp: processes per setting")
    p.add_argument("--no-fused", action="store_true", help="full: PyG's GENConv instead")
    p.add_argument("--pyg-max-edges", type=int, help="sweep: most edges measured on PyG's path (default: all)")
    p.add_argument("--profile", action="store_true",
                   help="full: one more, profiled step for the allocator's tensor peak (doubles the time)")
    p.add_argument("--models", nargs="+", default=list(_models(1, 8)), choices=list(_models(1, 8)),
                   help="partition: which models (res-pyg at L=16, D=80 needs more than 20 GB of host memory)")
    p.add_argument("--out", help="output file name under results/")
    args = p.parse_args(argv)
    shape = FULL if args.part in ("full", "full-pair", "sweep", "memory-cli") else PARTITION
    args.nodes = args.nodes or shape["nodes"]
    args.edges = args.edges or shape["edges"]
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    fn = {"partition": partition, "sweep": sweep, "full": full, "full-pair": full_pair, "memory-cli": memory_cli,
          "profile": profile_step,
          "thp": thp, "step-times": step_times, "kernels": kernels}
    result = {"provenance": _provenance(), **fn[args.part](args)}
    path = save(args.out or f"fused_{args.part.replace('-', '_')}.json", result)
    print(f"wrote {path}")
    for k, v in result["targets"].items():
        print(k, v)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
