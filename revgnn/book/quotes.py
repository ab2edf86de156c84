"""Numbers in prose, quoted from the committed records (issue 26): every figure of ours that ``README.md``,
``results/README.md`` or a static page of the book (``book/*.md``) states is generated here from its record.

A page marks each generated passage::

    <!-- quote NAME: generated from results/ by `python -m revgnn.book.quotes`; do not edit by hand -->
    ...
    <!-- end of quote NAME -->

``python -m revgnn.book.quotes`` rewrites every marked passage from the records (after ``revgnn records regenerate``;
``make records`` runs both), and ``tests/test_records.py`` fails when a passage differs from what the records give
today, naming the file and the passage. The index of ``results/README.md`` is generated from the registry
(:mod:`revgnn.measure.registry`): each record's file, command, cost, what it measures and, from the record itself, its
revision, CPU and headline figures (:data:`FIGURES`).
"""
from __future__ import annotations

import json
import re
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

from revgnn.measure.registry import REGISTRY, get

from .claims import check_claims, claims_markdown
from .prose import depth_reading
from .records import REPO_ROOT, accuracy_records, markdown_table

__all__ = ["QUOTES", "FIGURES", "render", "stale_passages", "update", "main", "PAGES"]

BEGIN = "<!-- quote {}: generated from results/ by `python -m revgnn.book.quotes`; do not edit by hand -->"
END = "<!-- end of quote {} -->"
_PASSAGE = re.compile(r"<!-- quote (?P<name>[\w-]+): generated from results/ by `python -m revgnn\.book\.quotes`; "
                      r"do not edit by hand -->\n(?P<body>.*?)<!-- end of quote (?P=name) -->", re.S)
PAGES = ("README.md", "results/README.md", *(f"book/{p}" for p in (
    "index.md", "paper.md", "method.md", "claims.md", "results.md", "reproduce.md", "distributed.md",
    "checkpoints.md", "api.md", "limitations.md")))
MiB = 2**20


def record(name: str, root: Path = REPO_ROOT) -> dict:
    """The content of the registered record ``name`` (:mod:`revgnn.measure.registry`)."""
    return json.loads((root / get(name).file).read_text())


def _rev(content: dict) -> str:
    return str((content.get("provenance") or {}).get("git_revision", "?"))[:7]


def _cpu(content: dict) -> str:
    prov = content.get("provenance") or {}
    name = str(prov.get("cpu_model") or prov.get("device_name") or "CPU not recorded")
    return "Intel Xeon" if name.startswith("Intel") else name


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _mb(b: float) -> str:
    return f"{b / 1e6:,.2f} MB"


def _mib(b: float) -> str:
    return f"{b / MiB:,.1f} MiB"


def _gb(b: float) -> str:
    return f"{b / 1e9:.2f} GB"


def _rows(content: dict, label: str, mode: str = "train") -> dict:
    return {r["x"]: r for r in content["rows"] if r["label"] == label and r["mode"] == mode}


# --- figures of each record ------------------------------------------------------------------------------------------

def _flat(rows: dict) -> tuple[int, int, float]:
    lo, hi = min(rows), max(rows)
    a, b = rows[lo]["peak_above_state_bytes"], rows[hi]["peak_above_state_bytes"]
    return a, b, b / a


def fig2_figures(c: dict) -> str:
    rev, wt = _rows(c, "rev"), _rows(c, "wt-rev")
    a, b, r = _flat(rev)
    fit = c["summary"]["res"]["peak_fit"]
    wa, wb, wr = _flat(wt)
    return (f"RevGNN's peak above the model state {a:,} B at L = {min(rev)} and {b:,} B at L = {max(rev)} "
            f"({r:.3f} x); WT-RevGNN {wa:,} and {wb:,} B ({wr:.3f} x); ResGNN {fit['slope'] / 1e6:.2f} MB per "
            f"layer, r² = {fit['r2']:.6f}")


def partition_figures(c: dict) -> str:
    rev = _rows(c, "rev")
    a, b, r = _flat({x: v for x, v in rev.items() if x >= 2})
    fit = c["summary"]["res"]["peak_fit"]
    return (f"RevGNN's peak above the model state {a:,} B at L = 2 and {b:,} B at L = {max(rev)} ({r:.3f} x); "
            f"ResGNN {fit['slope'] / 1e6:,.0f} MB per layer, r² = {fit['r2']:.6f}")


def mid_figures(c: dict) -> str:
    rev = _rows(c, "rev")
    acts = [r["activation_peak_bytes"] for r in rev.values()]
    res = _rows(c, "res")
    return (f"RevGNN's activation peak {_mb(min(acts))} to {_mb(max(acts))} from L = {min(rev)} to {max(rev)} "
            f"({max(acts) / min(acts):.3f} x); ResGNN's total {_mb(res[min(res)]['peak_bytes'])} at L = {min(res)}, "
            f"{_mb(res[max(res)]['peak_bytes'])} at L = {max(res)}")


def rss_figures(c: dict) -> str:
    ratios = [r["rss_over_profiler"] for r in c["rows"] if r.get("rss_over_profiler") is not None]
    big = [r["rss_over_profiler"] for r in c["rows"] if r["num_nodes"] > 1000 and r.get("rss_over_profiler")]
    small = [r for r in ratios if r not in big]
    return (f"RSS / profiler increment {min(big):.3f}-{max(big):.3f} on the partition, {min(small):.2f}-"
            f"{max(small):.2f} on the small graph (a few MB, where allocator slack dominates)")


def sweep_figures(c: dict) -> str:
    fused = sorted((r for r in c["rows"] if r["fused"]), key=lambda r: r["num_edges"])
    pyg = sorted((r for r in c["rows"] if not r["fused"]), key=lambda r: r["num_edges"])
    top = fused[-1]
    return (f"fused {_gb(fused[0]['peak_bytes'])} at {fused[0]['num_edges']:,} edges and {_gb(top['peak_bytes'])} at "
            f"{top['num_edges']:,} ({top['peak_bytes'] / top['floor_bytes']:.2f} x the floor); PyG "
            + ", ".join(f"{_gb(r['peak_bytes'])}" for r in pyg) + " at "
            + ", ".join(f"{r['num_edges']:,}" for r in pyg) + " edges")


def cli_figures(c: dict) -> str:
    return (f"peak {_gb(c['record']['peak_bytes'])}, {c['targets']['peak_over_floor']['value']:.2f} x the floor of "
            f"{_gb(c['floor_bytes'])}")


def _acc(row: dict) -> str:
    return f"{_pct(row['test'])} ± {_pct(row['test_std'])}"


def depth_figures(c: dict) -> str:
    return "test ROC-AUC " + " / ".join(_pct(r["test"]) for r in c["rows"]) + " % at L = " + \
        " / ".join(str(r["num_layers"]) for r in c["rows"])


def fig1_figures(c: dict) -> str:
    return "; ".join(f"{r['name']} {_acc(r)} % at {_mib(r['peak_bytes'])}" for r in c["rows"])


def single_figures(c: dict) -> str:
    row = c["rows"][0]
    return f"test {'accuracy' if row['metric'] == 'acc' else 'ROC-AUC'} {_acc(row)} %"


def claim_figures(c: dict) -> str:
    t = c["targets"]["gap_above_margin_for_every_pair"]
    return (f"{len(c['rows'])} (seed, threads) pairs, smallest gap {t['worst_gap']:.3f} "
            f"(margin {c['setting']['margin']})")


def deq_figures(c: dict) -> str:
    fig4 = c.get("fig4") or {}
    runs = fig4.get("runs") or []
    need = [r.get("forward", {}).get("first_within_1e-4") for r in runs]
    return ("forward solves within 1e-4 after " + ", ".join("never" if n is None else str(n) for n in need)
            + " iterations (seeds " + ", ".join(str(r["seed"]) for r in runs) + ")") if runs else "–"


def drift_figures(c: dict) -> str:
    rows = {r["label"]: r for r in c["rows"]}
    none, k100 = rows["reversible, no anchors"], rows["reversible, K=100"]
    plain = rows["plain float32 autograd"]
    return (f"gradient {none['overall_rel_error']:.1e} from float64 without anchors, {k100['overall_rel_error']:.1e} "
            f"with an exact anchor every 100 layers (plain float32 autograd: {plain['overall_rel_error']:.1e}) for "
            f"{(k100['saved_bytes'] - none['saved_bytes']) / 1e6:.2f} MB more")


def speed_figures(c: dict) -> str:
    r, p = c["ratios"], c["peaks"]
    return (f"RevGNN / ResGNN {r['rev/res-max']:.2f} (max aggregation), / DeeperGCN's softmax ResGNN "
            f"{r['rev/res-softmax']:.2f}, / its non-reversible path {r['rev/rev-nonreversible']:.2f}, / PyG "
            f"GroupAddRev {r['rev/pyg-groupaddrev']:.2f} at "
            f"{p['rev']['peak_bytes'] / p['pyg-groupaddrev']['peak_bytes']:.2f} x its peak")


def threads_figures(c: dict) -> str:
    return ", ".join(f"{name}: one thread {v['torch_default_over_policy']:.1f} x faster"
                     for name, v in c["rows"].items())


def ddp_figures(c: dict) -> str:
    return f"2 ranks / 1 process median epoch-time ratio {c['median_ratio']:.2f}; trajectories equal: " \
           f"{'yes' if c['trajectories_equal'] else 'no'}"


def partition16_figures(c: dict) -> str:
    m = c["models"]
    return (f"fused / PyG RevGNN time {m['rev-fused']['step_seconds'] / m['rev-pyg']['step_seconds']:.2f}, peak "
            f"{_mib(m['rev-fused']['peak_bytes'])} vs {_mib(m['rev-pyg']['peak_bytes'])} "
            f"({m['rev-fused']['peak_bytes'] / m['rev-pyg']['peak_bytes']:.3f} x)")


def kernels_figures(c: dict) -> str:
    t, s = c["targets"], c["seconds_per_layer"]
    return (f"native / first fused operator {t['native_over_old_1t']['value']:.3f}, native / pure torch "
            f"{t['native_over_torch_1t']['value']:.3f}, {s['native-1t']:.3f} s a layer "
            f"({t['native_per_layer_over_bound_hi']['value']:.1f} x the 52 ms bound), 2 threads / 1 "
            f"{t['native_2t_over_1t']['value']:.2f} ({c.get('native_isa')} build)")


def full_native_figures(c: dict) -> str:
    return (f"step {c['step_seconds']:.1f} s on one thread, peak resident set {_gb(c['rss_peak_bytes'])} "
            f"({c['targets']['rss_peak_over_floor']['value']:.2f} x the floor)")


def official_figures(c: dict) -> str:
    parts = []
    for r in c["runs"]:
        ex = r["extrapolated"]
        parts.append(f"D = {r['channels']}, {r['threads']} thread{'s' if r['threads'] > 1 else ''}: "
                     f"{ex['seconds_per_layer']:.1f} s a layer, peak {_gb(ex['peak_bytes'])}")
    return "; ".join(parts)


FIGURES: dict[str, Callable[[dict], str]] = {
    "fig2-memory": fig2_figures, "fig2-partition": partition_figures, "memory-mid": mid_figures,
    "rss-crosscheck": rss_figures, "fused-sweep": sweep_figures, "fused-memory-cli": cli_figures,
    "accuracy-depth": depth_figures, "accuracy-depth-2000": depth_figures, "accuracy-depth-16hops": depth_figures,
    "accuracy-fig1": fig1_figures, "accuracy-ppi": single_figures, "accuracy-cora": single_figures,
    "depth-claim": claim_figures, "deq-convergence": deq_figures, "drift": drift_figures, "speed": speed_figures,
    "threads": threads_figures, "ddp-speed": ddp_figures, "ddp-speed-L8": ddp_figures,
    "fused-partition-L16": partition16_figures, "fused-kernels-L16": kernels_figures,
    "fused-kernels-L16-avx2": kernels_figures, "fused-full-L2-native": full_native_figures,
    "official-inference": official_figures, "official-inference-avx2": official_figures,
}


def _cost(seconds: int) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds} s"


# --- passages --------------------------------------------------------------------------------------------------------

def results_index(root: Path) -> str:
    """results/README.md: one row per registered record."""
    rows = []
    for r in REGISTRY:
        c = record(r.name, root)
        prov = c.get("provenance") or {}
        rows.append({"name": f"`{r.name}`", "file": f"`{r.stem}`", "kinds": " + ".join(r.kinds),
                     "command": f"`{r.command}`", "cost": f"{_cost(r.cost_s)} ({r.cost_how})", "what": r.what,
                     "measured": f"{_rev(c)}, {str(prov.get('date', '?'))[:10]}, {_cpu(c)}",
                     "figures": FIGURES[r.name](c)})
    return markdown_table(rows, [("name", "record"), ("file", "file"), ("kinds", "kind"), ("command", "command"),
                                 ("cost", "cost to regenerate"), ("what", "what it measures"),
                                 ("measured", "revision, date, CPU"), ("figures", "figures")])


def fig1_table(root: Path) -> str:
    c = record("accuracy-fig1", root)
    names = {"res": "ResGNN (softmax, learnable t)", "rev": "RevGNN (max, C = 2)", "wt-res": "WT-ResGNN",
             "wt-rev": "WT-RevGNN", "deq": "DEQ-GNN (Anderson)"}
    rows = [{"model": names[r["model"]] + (f", L = {r['num_layers']}" if r["model"] != "deq" else
                                           f", cap {r['max_iter']}"),
             "params": r["params"], "peak": _mib(r["peak_bytes"]), "test": _acc(r)} for r in c["rows"]]
    low = c["targets"]["every_point_at_least_0.70"]
    lowest = min(c["rows"], key=lambda r: r["test"])
    mem = c.get("memory_provenance") or c["provenance"]
    return (markdown_table(rows, [("model", "model"), ("params", "parameters"), ("peak", "peak training step"),
                                  ("test", "test ROC-AUC (%)")])
            + f"\n\nTarget \"every point >= 70 %\": **{'met' if low['met'] else 'not met'}** (lowest: "
              f"{lowest['name']}, {_pct(lowest['test'])}). Training at revision `{_rev(c)}` ({_cpu(c)}); peak memory "
              f"measured at revision `{str(mem.get('git_revision'))[:7]}` ({_cpu({'provenance': mem})}).")


def fig1_claims(root: Path) -> str:
    return claims_markdown(check_claims(accuracy_records(root / get("accuracy-fig1").file)))


def depth_table(root: Path) -> str:
    files = {"accuracy-depth": "default graph (4,000 nodes)", "accuracy-depth-2000": "2,000-node graph",
             "accuracy-depth-16hops": "radii up to 16 (4,000 nodes)"}
    contents = {name: record(name, root) for name in files}
    depths = [r["num_layers"] for r in contents["accuracy-depth"]["rows"]]
    rows = []
    for L in depths:
        row = {"L": L}
        for name, c in contents.items():
            r = next(r for r in c["rows"] if r["num_layers"] == L)
            row[name] = _acc(r) + (f" (ceiling {_pct(r['oracle_test'])})" if r.get("oracle_test") else "")
        rows.append(row)
    cols = [("L", "L")] + [(n, f"{label}, `{_rev(contents[n])}`") for n, label in files.items()]
    sweeps = [r for name in files for r in accuracy_records(root / get(name).file)]
    return markdown_table(rows, cols) + "\n\n" + depth_reading(sweeps)


def readme_kernel(root: Path) -> str:
    k, a, full = record("fused-kernels-L16", root), record("fused-kernels-L16-avx2", root), \
        record("fused-full-L2-native", root)

    def line(c: dict) -> str:
        t, s = c["targets"], c["seconds_per_layer"]
        return (f"{t['native_over_old_1t']['value']:.3f} of the first fused operator's time (pure torch: "
                f"{t['torch_over_old_1t']['value']:.2f}), {s['native-1t']:.3f} s per layer, "
                f"{t['native_per_layer_over_bound_hi']['value']:.1f}x a lower bound of 52 ms per layer, two threads "
                f"{t['native_2t_over_1t']['value']:.2f} of one thread's time")
    return (f"Measured on one ogbn-proteins-shaped partition (13,253 nodes, 791,224 edges, D = 80, L = 16, one thread; "
            f"`benchmarks/fused.py kernels`), a training step with the native kernel takes {line(k)} on a 2-core "
            f"{_cpu(k)} (AVX-512 build, `results/fused_kernels_L16.json`, revision {_rev(k)}) and {line(a)} on a "
            f"2-core {_cpu(a)} (AVX2 build, `results/fused_kernels_L16_avx2.json`, revision {_rev(a)}); the bound "
            f"counts the bytes a step must move and the FLOPs it must compute on one core. A whole-graph step "
            f"(132,534 nodes, 79,122,504 edges, D = 80, L = 2) takes {full['step_seconds']:.0f} s on one thread with "
            f"a peak resident set of {_gb(full['rss_peak_bytes'])} (`results/fused_full_L2_native.json`, "
            f"{_cpu(full)}).")


def readme_measured(root: Path) -> str:
    small, speed, depth = record("fig2-memory", root), record("speed", root), record("accuracy-depth", root)
    hops, fig1, part = record("accuracy-depth-16hops", root), record("accuracy-fig1", root), \
        record("fused-partition-L16", root)
    full, drift, threads = record("fused-full-L2-native", root), record("drift", root), record("threads", root)
    ppi, cora = record("accuracy-ppi", root)["rows"][0], record("accuracy-cora", root)["rows"][0]
    rev = _rows(small, "rev")
    a, b, r = _flat(rev)
    res_fit = small["summary"]["res"]["peak_fit"]
    sr, sp = speed["ratios"], speed["peaks"]
    m = part["models"]
    drows = {x["label"]: x for x in drift["rows"]}
    fams = fig1["rows"]

    def scores(c):
        return " / ".join(_pct(x["test"]) for x in c["rows"])

    rows = [
        ("RevGNN peak above model state, L = 1 ... 1001 (N = 500, E = 5,000, D = 16; "
         "`results/memory_depth_small.json`)",
         f"{a:,} B at L = {min(rev)}, {b:,} B at L = {max(rev)} ({100 * (r - 1):+.1f} %)", "flat (Fig. 2) [paper]"),
        ("ResGNN peak vs depth", f"linear, {res_fit['slope'] / 1e6:.2f} MB per layer, r² = {res_fit['r2']:.6f}",
         "linear until OOM (Fig. 2) [paper]"),
        ("RevGNN / ResGNN training-step time (N = 2,000, E = 100K, D = 64, L = 8; `results/speed.json`, "
         f"{_cpu(speed)})", f"{sr['rev/res-max']:.2f}", "—"),
        ("RevGNN / PyG `GroupAddRev` step time, same blocks and weights",
         f"{sr['rev/pyg-groupaddrev']:.2f}x time at "
         f"{sp['rev']['peak_bytes'] / sp['pyg-groupaddrev']['peak_bytes']:.2f}x peak", "—"),
        ("RevGNN on generated `synthetic-proteins` (labels need 1-8 hops), L = 1 / 2 / 4 / 8, 3 seeds",
         f"{scores(depth)} % test ROC-AUC (`results/accuracy_synthetic-depth.json`)",
         "(deeper is better on ogbn-proteins) [paper]"),
        ("the same on a graph whose labels need 1-16 hops (`--max-hops 16`), L = 1 / 2 / 4 / 8, 3 seeds",
         f"{scores(hops)} % test ROC-AUC (`results/accuracy_synthetic-depth-16hops.json`)",
         "(deeper is better on ogbn-proteins) [paper]"),
        ("Five families at CPU scale (L = 8, D = 32, 2,000-node graph, 400 epochs, 3 seeds): "
         + " / ".join(x["name"] for x in fams),
         " / ".join(_pct(x["test"]) for x in fams) + " % test ROC-AUC at "
         + " / ".join(f"{x['peak_bytes'] / MiB:.0f}" for x in fams) + " MiB peak (`results/accuracy_fig1.json`)",
         "Fig. 1 [unconfirmed]"),
        ("Fused GENConv vs PyG's, RevGNN step on an ogbn-proteins-shaped partition (13,253 nodes, 791,224 edges, "
         f"D = 80, L = 16; `results/fused_partition_L16.json`, {_cpu(part)})",
         f"{m['rev-fused']['step_seconds'] / m['rev-pyg']['step_seconds']:.2f}x time, "
         f"{m['rev-fused']['peak_bytes'] / m['rev-pyg']['peak_bytes']:.3f}x peak "
         f"({m['rev-fused']['peak_bytes'] / MiB:,.0f} vs {m['rev-pyg']['peak_bytes'] / MiB:,.0f} MiB)", "—"),
        ("One fused RevGNN training step on ogbn-proteins' full shape (132,534 nodes, 79,122,504 edges, D = 80, "
         "L = 2), native kernel, one CPU thread",
         f"{full['step_seconds']:.0f} s, peak resident set {_gb(full['rss_peak_bytes'])} "
         f"(`results/fused_full_L2_native.json`, {_cpu(full)})",
         "the paper trains on 10 partitions; 2.86 GB per partition for RevGNN-Deep on a GPU [unconfirmed]"),
        ("float32 gradient drift at L = 1001 vs float64, no anchors / an exact anchor every 100 layers",
         f"{drows['reversible, no anchors']['overall_rel_error']:.1e} / "
         f"{drows['reversible, K=100']['overall_rel_error']:.1e} (plain float32 autograd "
         f"{drows['plain float32 autograd']['overall_rel_error']:.1e}) for "
         f"{(drows['reversible, K=100']['saved_bytes'] - drows['reversible, no anchors']['saved_bytes']) / 1e6:.2f}"
         " MB more (`results/drift.json`)", "—"),
        (f"one torch thread (revgnn's policy) vs torch's default 2 threads on a busy 2-core {_cpu(threads)}, "
         "Cora epoch", f"{threads['rows']['cora']['torch_default_over_policy']:.1f}x faster (`results/threads.json`)",
         "—"),
        ("RevGNN on the shipped PPI graph, 3 seeds", f"{_acc(ppi)} % test ROC-AUC (`results/accuracy_ppi.json`)", "—"),
        ("RevGNN 4 x 64 on Cora with the dataset's recipe alone (`--dataset cora --layers 4 --channels 64`), 3 seeds",
         f"{_acc(cora)} % test accuracy (`results/accuracy_cora.json`)", "(GCN 81.5 %, Kipf & Welling 2017)"),
    ]
    return markdown_table([{"a": x, "b": y, "c": z} for x, y, z in rows],
                          [("a", "claim"), ("b", "measured"), ("c", "paper")])


def _source(name: str, root: Path) -> str:
    c = record(name, root)
    return f"`{get(name).file}`, revision `{_rev(c)}`, {_cpu(c)}"


def book_memory(root: Path) -> str:
    """book/results.md: what Figs. 2-4 show on the committed record."""
    c = record("fig2-memory", root)
    rev = _rows(c, "rev")
    a, b, r = _flat(rev)
    first, last = rev[min(rev)], rev[max(rev)]
    sentence = (f"RevGNN's total peak grows with depth only through its model state ({_mib(first['peak_bytes'])} at "
                f"L = {min(rev)}, {_mib(last['peak_bytes'])} at L = {max(rev)}), while its peak above the model state "
                f"is {_mib(a)} at L = {min(rev)} and {_mib(b)} at L = {max(rev)} "
                f"({r:.3f} x; {_source('fig2-memory', root)}).")
    return sentence + "\n\n" + markdown_table(_memory_claims(c), [("claim", "claim"), ("paper", "paper"),
                                                                  ("ours", "ours"), ("verdict", "verdict")])


def _memory_claims(c: dict) -> list[dict]:
    from .prose import FLAT

    fits = c["summary"]
    out = []
    for grows, flat, fig in (("res", "rev", "Fig. 2"), ("wt-res", "wt-rev", "Fig. 3")):
        fit = fits[grows]["peak_fit"]
        a, b, r = _flat(_rows(c, flat))
        holds = fit["r2"] > 0.99 and fit["slope"] > 0 and r <= FLAT
        out.append({"claim": f"{NAMES[grows]}'s training memory grows linearly with depth; {NAMES[flat]}'s is flat",
                    "paper": f"{fig}, its shapes [paper]",
                    "ours": f"{NAMES[grows]} {fit['slope'] / MiB:,.2f} MiB per layer (r² = {fit['r2']:.6f}); "
                            f"{NAMES[flat]}'s peak above the model state {r:.3f} x from L = "
                            f"{min(_rows(c, flat))} to {max(_rows(c, flat))}",
                    "verdict": f"**{'holds' if holds else 'does not hold'}**"})
    deq = _rows(c, "deq")
    a, b, r = _flat(deq)
    out.append({"claim": "DEQ-GNN's memory does not grow with solver iterations", "paper": "Fig. 4, its shapes [paper]",
                "ours": f"peak above the model state {_mib(a)} at {min(deq)} iteration and {_mib(b)} at {max(deq)} "
                        f"({r:.3f} x)", "verdict": f"**{'holds' if r <= FLAT else 'does not hold'}**"})
    return out


NAMES = {"res": "ResGNN", "rev": "RevGNN", "wt-res": "WT-ResGNN", "wt-rev": "WT-RevGNN", "deq": "DEQ-GNN"}


def book_claims_more(root: Path) -> str:
    """book/claims.md: the claims checked outside Fig. 1 (memory, depth, the whole graph)."""
    rows = [{**r, "page": "{doc}`Figs. 2-4 <_executed/fig2_memory_res_vs_rev>`"}
            for r in _memory_claims(record("fig2-memory", root))]
    for name, label in (("accuracy-depth", "radii 1-8, 4,000 nodes"), ("accuracy-depth-16hops", "radii 1-16")):
        c = record(name, root)
        rises = c["targets"]["rises_at_every_step"]
        rows.append({"claim": f"a deeper RevGNN scores higher ({label})", "paper": "on ogbn-proteins [paper]",
                     "ours": depth_figures(c) + f" (`{get(name).file}`)",
                     "verdict": f"**{'holds' if rises['met'] else 'not at every step'}**",
                     "page": "{doc}`Depth <_executed/depth_sweep>`"})
    full, cli = record("fused-full-L2-native", root), record("fused-memory-cli", root)
    peak = max(full["rss_peak_bytes"], cli["record"]["peak_bytes"])
    rows.append({"claim": "a training step on the whole ogbn-proteins-shaped graph fits in 6 GB of host memory (this "
                          "package; the paper trains on partitions)", "paper": "–",
                 "ours": f"peak resident set {_gb(full['rss_peak_bytes'])}, allocator peak "
                         f"{_gb(cli['record']['peak_bytes'])} (D = 80, L = 2)",
                 "verdict": f"**{'holds' if peak <= 6e9 else 'does not hold'}**",
                 "page": "{doc}`The whole graph <_executed/whole_graph>`"})
    return markdown_table(rows, [("claim", "claim"), ("paper", "paper"), ("ours", "ours"), ("verdict", "verdict"),
                                 ("page", "page")])


def book_whole_graph(root: Path) -> str:
    """book/results.md: the whole-graph table and the extrapolation to 1001 layers."""
    part, k, a = record("fused-partition-L16", root), record("fused-kernels-L16", root), \
        record("fused-kernels-L16-avx2", root)
    full, cli = record("fused-full-L2-native", root), record("fused-memory-cli", root)
    m = part["models"]

    def kern(c):
        s = c["step_seconds"]
        return (f"first fused operator {s['old-1t']:.1f} s; pure torch {s['torch-1t']:.1f} s; native "
                f"{s['native-1t']:.2f} s ({s['native-2t']:.2f} s on 2 threads)")
    rows = [
        {"setting": f"ogbn-proteins-shaped partition (13,253 nodes, 791,224 edges), L = 16: step time, peak "
                    f"({_source('fused-partition-L16', root)})",
         "fused": f"{m['rev-fused']['step_seconds']:.1f} s, {_mib(m['rev-fused']['peak_bytes'])}",
         "pyg": f"{m['rev-pyg']['step_seconds']:.1f} s, {_mib(m['rev-pyg']['peak_bytes'])}"},
        {"setting": f"the same partition, L = 16, by kernel ({_source('fused-kernels-L16', root)}, AVX-512 build)",
         "fused": kern(k), "pyg": "–"},
        {"setting": f"the same on {_source('fused-kernels-L16-avx2', root)} (AVX2 build)", "fused": kern(a),
         "pyg": "–"},
        {"setting": f"ogbn-proteins' full shape (132,534 nodes, 79,122,504 edges), L = 2: step time, peak resident set "
                    f"({_source('fused-full-L2-native', root)})",
         "fused": f"native kernel: {full['step_seconds']:.1f} s, {_gb(full['rss_peak_bytes'])} (floor "
                  f"{_gb(full['floor_bytes'])})", "pyg": "not run (about 2 KB per edge: some 160 GB)"},
        {"setting": f"the same, `revgnn memory` (allocator peak; {_source('fused-memory-cli', root)})",
         "fused": f"{_gb(cli['record']['peak_bytes'])}, {cli['targets']['peak_over_floor']['value']:.2f} x the floor",
         "pyg": "–"},
    ]
    hours = full["step_seconds_extrapolated_1001_layers"] / 3600
    return (markdown_table(rows, [("setting", "setting"), ("fused", "fused"), ("pyg", "PyG's GENConv")])
            + "\n\nThe paper never trains on the whole graph: it trains on 10 random partitions and reports 2.86 GB "
              "for RevGNN-Deep on one [unconfirmed]. At 1001 layers our CPU step on the whole graph would take about "
              f"{hours:.1f} hours with the native kernel (its L = 2 step divided by 2 layers and times 1001: "
              "`step_seconds_extrapolated_1001_layers` in `results/fused_full_L2_native.json`, which also counts the "
              "encoders, head and optimizer in every layer); the memory would stay where it is.")


def book_limitations(root: Path) -> str:
    full, cli = record("fused-full-L2-native", root), record("fused-memory-cli", root)
    return (f"one training step (D = 80, L = 2, native kernel, one CPU thread) takes {full['step_seconds']:.0f} s and "
            f"peaks at {_gb(full['rss_peak_bytes'])} of resident memory ({_source('fused-full-L2-native', root)}); "
            f"the allocator's peak of the same step is {_gb(cli['record']['peak_bytes'])} "
            f"({_source('fused-memory-cli', root)}). Whole-graph inference: {{doc}}`checkpoints`.")


def book_official_avx2(root: Path) -> str:
    c = record("official-inference-avx2", root)
    return official_figures(c) + f" ({_source('official-inference-avx2', root)}, load average in the file)."


def book_ddp(root: Path) -> str:
    rows = []
    for name in ("ddp-speed", "ddp-speed-L8"):
        c = record(name, root)
        one = [r["median_epoch_s"]["one_process"] for r in c["rounds"]]
        two = [r["median_epoch_s"]["two_ranks"] for r in c["rounds"]]
        ratios = [r["ratio"] for r in c["rounds"]]
        loads = [x for r in c["rounds"] for x in r.get("loadavg", [])[:1]]
        rows.append({"model": f"RevGNN {c['model']['num_layers']} x {c['model']['hidden_channels']}",
                     "one": f"{min(one):.2f} to {max(one):.2f}", "two": f"{min(two):.2f} to {max(two):.2f}",
                     "median": f"**{c['median_ratio']:.2f}** (goal 0.6)", "rounds": f"{min(ratios):.2f} to "
                     f"{max(ratios):.2f}", "load": f"{min(loads):.1f} to {max(loads):.1f}" if loads else "–",
                     "record": f"{_source(name, root)}; trajectories equal: "
                               f"{'yes' if c['trajectories_equal'] else 'no'}"})
    return markdown_table(rows, [("model", "model"), ("one", "1 process (s/epoch)"), ("two", "2 ranks (s/epoch)"),
                                 ("median", "median ratio"), ("rounds", "rounds"), ("load", "load average"),
                                 ("record", "record")])


QUOTES: dict[str, Callable[[Path], str]] = {
    "results-index": results_index, "results-fig1": fig1_table, "results-claims": fig1_claims,
    "results-depth": depth_table, "readme-kernel": readme_kernel, "readme-measured": readme_measured,
    "book-memory": book_memory, "book-claims-more": book_claims_more, "book-whole-graph": book_whole_graph,
    "book-limitations-whole-graph": book_limitations, "book-official-avx2": book_official_avx2, "book-ddp": book_ddp,
}


def _wrap(text: str, width: int = 118) -> str:
    """Paragraphs wrapped at ``width`` like the pages around them; table rows and list items (as the book's own
    generated lists, e.g. :func:`~revgnn.book.claims.claims_markdown`) kept whole."""
    return "\n".join(line if line.startswith(("|", "- ")) or len(line) <= width else
                     textwrap.fill(line, width, break_long_words=False, break_on_hyphens=False)
                     for line in text.splitlines())


def render(name: str, root: Path = REPO_ROOT) -> str:
    """The text of passage ``name``, from today's committed records."""
    return _wrap(QUOTES[name](root).strip()) + "\n"


def _passages(text: str):
    return list(_PASSAGE.finditer(text))


def stale_passages(path: Path, root: Path = REPO_ROOT) -> list[str]:
    """The passages of ``path`` whose text differs from what the records give."""
    return [m["name"] for m in _passages(path.read_text()) if m["body"] != render(m["name"], root)]


def update(path: Path, root: Path = REPO_ROOT) -> list[str]:
    """Rewrite the passages of ``path`` from the records; the names of those that changed."""
    text = path.read_text()
    changed = []

    def sub(m):
        body = render(m["name"], root)
        if body != m["body"]:
            changed.append(m["name"])
        return BEGIN.format(m["name"]) + "\n" + body + END.format(m["name"])

    new = _PASSAGE.sub(sub, text)
    if new != text:
        path.write_text(new)
    return changed


def main(argv: list[str] | None = None) -> int:
    root = REPO_ROOT
    for page in PAGES:
        changed = update(root / page, root)
        if changed:
            print(f"{page}: rewrote {', '.join(changed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
