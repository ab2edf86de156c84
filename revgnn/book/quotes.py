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

import re
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

from revgnn.measure.registry import REGISTRY, get

from .claims import check_claims, claims_markdown
from .headlines import (
    FIGURES,
    MiB,
    _acc,
    _cpu,
    _flat,
    _gb,
    _load,
    _mib,
    _pct,
    _rev,
    _rows,
    depth_figures,
    official_figures,
    record,
)
from .prose import depth_reading
from .records import REPO_ROOT, accuracy_records, markdown_table

__all__ = ["QUOTES", "PAGES", "render", "stale_passages", "update", "main"]

BEGIN = "<!-- quote {}: generated from results/ by `python -m revgnn.book.quotes`; do not edit by hand -->"
END = "<!-- end of quote {} -->"
_PASSAGE = re.compile(r"<!-- quote (?P<name>[\w-]+): generated from results/ by `python -m revgnn\.book\.quotes`; "
                      r"do not edit by hand -->\n(?P<body>.*?)<!-- end of quote (?P=name) -->", re.S)
PAGES = ("README.md", "results/README.md", *(f"book/{p}" for p in (
    "index.md", "paper.md", "method.md", "claims.md", "results.md", "reproduce.md", "distributed.md",
    "checkpoints.md", "api.md", "limitations.md")))

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
                     "command": f"`{r.command}`", "cost": f"{_cost(r.cost_s)}: {r.cost_how}", "what": r.what,
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
    return (markdown_table(rows, [("model", "model"), ("params", "parameters"), ("peak", "peak training step"),
                                  ("test", "test ROC-AUC (%)")])
            + f"\n\nTarget \"every point >= 70 %\": **{'met' if low['met'] else 'not met'}** (lowest: "
              f"{lowest['name']}, {_pct(lowest['test'])}). Training {_training_sources(c)}; peak memory "
              f"{_memory_sources(c)}.")


def _grouped(groups: dict[tuple[str, str], list[str]], verb: str) -> str:
    if len(groups) == 1:
        (rev, cpu), = groups
        return f"{verb} revision `{rev}` ({cpu})"
    return "; ".join(f"of {', '.join(names)} {verb} revision `{rev}` ({cpu})" for (rev, cpu), names in groups.items())


def _training_sources(c: dict) -> str:
    """Where Fig. 1's training runs come from: a row's own provenance (a row rerun alone) or the record's."""
    groups: dict[tuple[str, str], list[str]] = {}
    for row in c["rows"]:
        prov = row.get("provenance") or c["provenance"]
        groups.setdefault((str(prov.get("git_revision"))[:7], _cpu({"provenance": prov})), []).append(row["name"])
    return _grouped(groups, "at")


def _memory_sources(c: dict) -> str:
    """Where Fig. 1's peaks come from: ``memory_provenance`` for the rows it names (all rows where it names none),
    a row's own provenance (a row rerun alone) or the record's for the others."""
    mem = c.get("memory_provenance")
    groups: dict[tuple[str, str], list[str]] = {}
    for row in c["rows"]:
        if mem and row["name"] in mem.get("rows", [row["name"]]):
            prov = mem
        else:
            prov = row.get("provenance") or c["provenance"]
        key = (str(prov.get("git_revision"))[:7], _cpu({"provenance": prov}))
        groups.setdefault(key, []).append(row["name"])
    return _grouped(groups, "measured at")


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
         f"{_cpu(speed)}{_load(speed)})", f"{sr['rev/res-max']:.2f}", "—"),
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
        (f"one torch thread (revgnn's policy) vs torch's default 2 threads on a busy 2-core {_cpu(threads)}"
         f"{_load(threads)}, Cora epoch",
         f"{threads['rows']['cora']['torch_default_over_policy']:.1f}x faster (`results/threads.json`)", "—"),
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
    """``python -m revgnn.book.quotes [--root DIR] [--all]``: rewrite every page's passages from the records of DIR
    (this checkout by default); a line per page that changed (``--all``: per page, changed or up to date)."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m revgnn.book.quotes", description=main.__doc__)
    p.add_argument("--root", type=Path, default=REPO_ROOT, help="the repository whose pages and records are read")
    p.add_argument("--all", action="store_true", help="a line for every page, also those up to date")
    args = p.parse_args(argv)
    for page in PAGES:
        changed = update(args.root / page, args.root)
        if changed or args.all:
            print(f"{page}: {'rewrote ' + ', '.join(changed) if changed else 'up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
