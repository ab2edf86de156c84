"""The headline figures of each committed record, in words, for the results index and the quoted passages
(:mod:`revgnn.book.quotes`): one function per record kind, reading the record as written (``results/*.json``).

Each returns one line of Markdown with the figures a reader looks for first (for a memory sweep: the flat and the
growing curve; for a timing record: its ratios and the CPU). Helpers format bytes, percentages and the record's own
revision and CPU, so every page writes them the same way.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from revgnn.measure.registry import get

from .records import REPO_ROOT

__all__ = ["FIGURES", "record"]

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


def _load(content: dict) -> str:
    """', load average A-B' of a record that recorded the 1-minute load of its machine before and after its run
    (``load_average`` start / end, or the provenance's ``loadavg_before`` / ``loadavg_after``), else ''."""
    load, prov = content.get("load_average") or {}, content.get("provenance") or {}
    start, end = load.get("start") or prov.get("loadavg_before"), load.get("end") or prov.get("loadavg_after")
    if not start or not end:
        return ""
    lo, hi = sorted((start[0], end[0]))
    return f", load average {lo:.1f}-{hi:.1f}"


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
    check = (c.get("fig1") or {}).get("targets")
    if check and "spectral_radius_step_1" in check:  # issue 29's check: the shipped warm-up, then the solver
        bare = (c.get("bare") or {}).get("first_step") or {}
        missed = len(bare.get("missed_seeds", []))
        radius = check["spectral_radius_step_1"]["max"]
        return (f"issue 29's check {'met' if check['met'] else 'not met'}: {check['solves']} solves, at most "
                f"{check['max_forward_iters']} forward and {check['max_backward_iters']} adjoint iterations, worst "
                f"node {check['worst_node']['max']:.1e}, radius at step 1 at most {radius:.2f}"
                + (f"; without the warm-up {missed} of {len(bare['forward_iters'])} seeds miss at step 1" if bare
                   else ""))
    fig4 = c.get("fig4") or {}
    runs = fig4.get("runs") or []
    need = [r.get("forward", {}).get("first_within_1e-4") for r in runs]
    return ("forward solves within 1e-4 after " + ", ".join("never" if n is None else str(n) for n in need)
            + " iterations (seeds " + ", ".join(str(r["seed"]) for r in runs) + ")") if runs else "–"


def stabiliser_figures(c: dict) -> str:
    v, st = c["variants"], c["settings"]

    def name(key: str) -> str:
        base = key.split(",")[0]
        return "no stabiliser" if base == "none" else base

    met = {warm: [name(k) for k in v if k.endswith("no warm-up") != warm and v[k]["targets"]["met"]]
           for warm in (True, False)}
    base = v["none"]["median_seconds_per_epoch"]
    cost = ", ".join(f"{k} {v[k]['median_seconds_per_epoch'] / base:.2f}" for k in v
                     if not k.endswith("no warm-up") and k != "none")
    return (f"issue 29's check (first {st['steps']} solver steps, seeds 0-{st['seeds'] - 1}) met with the warm-up by "
            f"{', '.join(met[True]) or 'no variant'}; without it by {', '.join(met[False]) or 'no variant'}; "
            f"seconds per epoch over no stabiliser's{_load(c)}: {cost}")


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
            f"{p['rev']['peak_bytes'] / p['pyg-groupaddrev']['peak_bytes']:.2f} x its peak{_load(c)}")


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


def fig5_figures(c: dict) -> str:
    def peaks(model: str, batching: str) -> str:
        rows = sorted((r for r in c["rows"] if r["model"] == model and r["batching"] == batching),
                      key=lambda r: r["depth"])
        return " / ".join("OOM" if r.get("oom") else _gb(r["peak_bytes"]) for r in rows) + " at L = " + \
            " / ".join(str(r["depth"]) for r in rows)

    ex = (c.get("probe") or {}).get("extrapolation") or {}
    full = f"; full batch at the full shape (extrapolated): RevGNN {_gb(ex['rev_L1']['full_shape_bytes'])}" \
        if "rev_L1" in ex else ""
    return (f"full batch at {c['full_fraction']:g} of the shape: RevGNN {peaks('rev', 'full')}, ResGNN "
            f"{peaks('res', 'full')}; one of 10 parts: RevGNN {peaks('rev', 'parts')}, ResGNN {peaks('res', 'parts')}"
            + full)


FIGURES: dict[str, Callable[[dict], str]] = {
    "fig2-memory": fig2_figures, "fig2-partition": partition_figures, "memory-mid": mid_figures,
    "rss-crosscheck": rss_figures, "fused-sweep": sweep_figures, "fused-memory-cli": cli_figures,
    "accuracy-depth": depth_figures, "accuracy-depth-2000": depth_figures, "accuracy-depth-16hops": depth_figures,
    "accuracy-fig1": fig1_figures, "accuracy-ppi": single_figures, "accuracy-cora": single_figures,
    "depth-claim": claim_figures, "deq-convergence": deq_figures,
    "deq-stabilisers": stabiliser_figures, "drift": drift_figures, "speed": speed_figures,
    "threads": threads_figures, "ddp-speed": ddp_figures, "ddp-speed-L8": ddp_figures,
    "fused-partition-L16": partition16_figures, "fused-kernels-L16": kernels_figures,
    "fused-kernels-L16-avx2": kernels_figures, "fused-full-L2-native": full_native_figures,
    "official-inference": official_figures, "official-inference-avx2": official_figures,
    # other datasets (issue 28)
    "fig5-products": fig5_figures, "accuracy-cora-revgat": single_figures, "accuracy-cora-revsage": single_figures,
}
