"""The "Reading the figure" text of the book's pages, computed from the plotted records.

For "Training Graph Neural Networks with 1000 Layers" (Li et al., ICML 2021). Every number and every comparison a
page states about its figure comes from here, from the same records the figure plots, so a rerun at other
parameters or a ``make book PARAMS=smoke`` book says what its own figure shows. Each function returns Markdown.
"""
from __future__ import annotations

import re
import statistics
from collections.abc import Sequence

from .records import MODEL_NAMES, _pct, markdown_table

__all__ = ["memory_reading", "depth_reading", "sweep_steps", "reproduce_reading", "deq_solver_note", "deq_caps_reading",
           "official_cost", "FLAT"]

FLAT = 1.10  # a peak is called flat when its largest value is at most 10 % above its smallest


def _mib(value: float) -> str:
    if abs(value) < 2**20:
        return f"{value / 2**10:,.0f} KiB"
    value /= 2**20
    return f"{value:,.1f} MiB" if value < 100 else f"{value:,.0f} MiB"


def _slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares bytes per unit of x."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return 0.0 if den == 0 else sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den


def memory_reading(records: Sequence[dict], limit_bytes: float | None = None, x_key: str = "depth") -> str:
    """Reading of a memory figure (Figs. 2-4): per model, how its total peak and its peak above the model state
    change with depth (or solver iterations), where it crosses the limit, and whether its activation peak is flat.

    Args:
        records: the plotted records (``model``, ``x_key``, ``peak_bytes``, ``state_bytes``, ``oom``).
        limit_bytes: the memory limit the figure draws (None: none).
    """
    lines = []
    by_model: dict[str, list[dict]] = {}
    for r in records:
        by_model.setdefault(r["model"], []).append(r)
    for model, rows in by_model.items():
        rows = sorted(rows, key=lambda r: r[x_key])
        unit = "solver iteration" if model == "deq" else "layer"
        axis = "iterations" if model == "deq" else "L"
        fits = [r for r in rows if not r.get("oom") and r.get("peak_bytes")]
        name = MODEL_NAMES[model]
        if not fits:
            lines.append(f"- **{name}**: no step fits under the limit.")
            continue
        first, last = fits[0], fits[-1]
        above = [r["peak_bytes"] - r["state_bytes"] for r in fits]
        text = (f"- **{name}**: total peak {_mib(first['peak_bytes'])} at {axis} = {first[x_key]:,} and "
                f"{_mib(last['peak_bytes'])} at {axis} = {last[x_key]:,}")
        if len(fits) > 1:
            slope = _slope([r[x_key] for r in fits], [r["peak_bytes"] for r in fits])
            text += f" (about {_mib(slope)} per {unit})"
        over = [r for r in rows if r.get("oom")]
        if over:
            below = [r[x_key] for r in rows if not r.get("oom") and r[x_key] < over[0][x_key]]
            text += (f"; it crosses the {_mib(limit_bytes)} limit between {axis} = {below[-1]:,} and "
                     f"{over[0][x_key]:,}" if below and limit_bytes else f"; over the limit from {axis} = "
                     f"{over[0][x_key]:,}")
        elif limit_bytes:
            text += f"; every step fits under the {_mib(limit_bytes)} limit"
        if len(fits) > 1:
            ratio = max(above) / max(min(above), 1)
            shape = "**flat**" if ratio <= FLAT else f"**not flat** (it grows {ratio:.2f} x)"
            text += (f". Its peak above the model state runs from {_mib(min(above))} to {_mib(max(above))}: "
                     f"{shape}" + (f" (within {100 * (FLAT - 1):.0f} %)" if ratio <= FLAT else ""))
        lines.append(text + ".")
    return "**Reading the figure** (computed from the plotted records):\n\n" + "\n".join(lines)


def sweep_steps(rows: Sequence[dict]) -> list[dict]:
    """The steps of one committed depth sweep (rows of one file, ``test`` ± ``test_std``), in order of depth:
    ``{from, to, gain, std, rises}`` in % points; a step *rises* when its gain exceeds the larger seed std."""
    rows = sorted(rows, key=lambda r: r["num_layers"])
    steps = []
    for a, b in zip(rows, rows[1:]):
        gain = _pct(b["test"]) - _pct(a["test"])
        std = max(_pct(a.get("test_std") or 0.0), _pct(b.get("test_std") or 0.0))
        steps.append({"from": a["num_layers"], "to": b["num_layers"], "gain": gain, "std": std, "rises": gain > std})
    return steps


def depth_reading(committed: Sequence[dict], live: Sequence[dict] = (), metric_key: str = "roc_auc") -> str:
    """Reading of the depth sweep: for each committed sweep (one per ``source`` file) its steps and verdict, and
    where the mean goes down; then the live run's means per depth."""
    lines = []
    for source in dict.fromkeys(r["source"] for r in committed):
        rows = [r for r in committed if r["source"] == source]
        steps = sweep_steps(rows)
        size = rows[0].get("num_nodes")
        hops = rows[0].get("max_hops")
        setting = ", ".join(filter(None, [f"{size:,} nodes" if size else "", f"radii 1-{hops}" if hops else ""]))
        words = ", ".join(f"L = {s['from']} to {s['to']}: {s['gain']:+.1f} (std {s['std']:.1f})" for s in steps)
        falls = [s for s in steps if s["gain"] < 0]
        verdict = ("**rises at every step by more than the seed std**" if steps and all(s["rises"] for s in steps)
                   else "**not every step exceeds the seed std**")
        if falls:
            verdict += "; " + ", ".join(f"L = {s['to']} is below L = {s['from']}" for s in falls)
        lines.append(f"- `{source}` ({setting}): {words} — {verdict}.")
    points: dict[int, list[float]] = {}
    for r in live:
        points.setdefault(r["num_layers"], []).append(_pct(r[metric_key]))
    if points:
        means = ", ".join(f"L = {d}: {statistics.fmean(v):.1f}" for d, v in sorted(points.items()))
        lines.append(f"- live run (mean over {max(len(v) for v in points.values())} seed(s)): {means}.")
    return "Steps of the mean test ROC-AUC (percentage points):\n\n" + "\n".join(lines)


def reproduce_reading(single: float | None, multiview: float | None, views: int, parts: int,
                      eval_parts: int) -> str:
    """The reproduce page's sentence about its own table: the single-view and the multi-view test ROC-AUC (%)."""
    if single is None:
        return ""
    text = f"In this run the single {eval_parts}-part view scores {single:.1f} % test ROC-AUC"
    if multiview is None:
        return text + " (no multi-view test: `test_views` is 0)."
    change = "recovers" if multiview > single else "does not recover"
    return (text + f" and the average of {views} random {parts}-part views {multiview:.1f} % "
            f"({multiview - single:+.1f} points): a random partition cuts the edges between its parts, and averaging "
            f"views {change} some of them here.")


_MISS = re.compile(r"DEQ (?P<what>.+?) solve did not converge: relative residual (?P<residual>\S+) > tol (?P<tol>\S+) "
                   r"after (?P<iterations>\d+) iterations")


def _last_miss(misses: dict) -> str:
    match = _MISS.search(misses.get("last") or "")
    if not match:
        return ""
    return (f" (the last: the {match['what']} solve stopped at relative residual {float(match['residual']):.1e} after "
            f"{match['iterations']} iterations, tolerance {float(match['tol']):.0e})")


def deq_solver_note(records: Sequence[dict]) -> str:
    """DEQ-GNN's solver, said plainly, forward and backward: the last solve's iterations, final residual and whether
    it converged, and how many of the training solves stopped above the tolerance (``solver``, from
    :func:`revgnn.book.records.solver_summary`); without those statistics, the count of missed solves
    (``solver_misses``). '' for records without DEQ-GNN. Memory records at tolerance 0 (Fig. 4, where every solve runs
    its whole iteration cap) are said in one line."""
    rows = [r for r in records if r.get("model") == "deq"]
    lines = []
    capped = [r for r in rows if (r.get("config") or {}).get("tol") == 0.0]
    if capped:
        residuals = "; ".join(
            f"cap {r.get('depth')}: forward {_sci(_get(r, 'forward', 'residual'))}, backward "
            f"{_sci(_get(r, 'backward', 'residual'))}" for r in capped if r.get("solver"))
        lines.append("- At tolerance 0, this figure's setting, every solve runs its whole iteration cap and none stops "
                     "early: by design, not a failure; the memory does not depend on it."
                     + (f" Final relative residuals: {residuals}." if residuals else ""))
    for r in rows:
        if r in capped:
            continue
        name = f"{MODEL_NAMES['deq']}-{r.get('hidden_channels')}"
        solver = r.get("solver") or {}
        for kind in ("forward", "backward"):
            stats = solver.get(kind)
            if not stats:
                continue
            state = "converged" if stats.get("converged") else "**did not converge**"
            count = ""
            if stats.get("solves"):
                count = (f"; **{stats['unconverged']} of {stats['solves']}** training solves stopped above the "
                         "tolerance" if stats.get("unconverged") else
                         (f"; all {stats['solves']} training solves converged" if stats["solves"] > 1 else
                          "; its one training solve converged"))
            lines.append(f"- {name}, {kind} solve: the last took {stats.get('iterations')} iterations to a relative "
                         f"residual of {_sci(stats.get('residual'))} (tolerance {_sci(stats.get('tol'))}): {state}"
                         f"{count}.")
        misses = r.get("solver_misses")
        if not solver and misses is not None:
            missed = misses.get("forward", 0) + misses.get("backward", 0)
            lines.append(f"- {name}: " + (f"**{misses.get('forward', 0)} forward and {misses.get('backward', 0)} "
                                          f"backward solves did not converge** to their tolerance{_last_miss(misses)}"
                                          if missed else "every forward and backward solve converged to its tolerance")
                         + ".")
    return ("**DEQ-GNN's solver.**\n\n" + "\n".join(lines)) if lines else ""


def _get(record: dict, kind: str, key: str):
    return ((record.get("solver") or {}).get(kind) or {}).get(key)


def _sci(value) -> str:
    return "–" if value is None else f"{value:.1e}"


def deq_caps_reading(record: dict, source: str = "", asked: dict | None = None) -> str:
    """DEQ-GNN's solves at the iteration caps of Fig. 4, from a committed ``benchmarks/deq_convergence.py`` record
    (its ``fig4`` section): the relative residual after each cap, forward and backward, per seed, and how many
    iterations each needed to come within 1e-4. '' when the record has no ``fig4`` section.

    Args:
        asked: the page's own setting (``caps``, ``hidden_channels``, ``num_nodes``, ``num_edges``, ``fused``); where
            the record's differs, one sentence says so instead of showing another setting's solves as the page's.
    """
    fig4 = record.get("fig4")
    if not fig4:
        return ""
    graph = fig4.get("graph") or {}
    have = {"caps": list(fig4.get("caps") or []), "hidden_channels": fig4.get("hidden_channels"),
            "num_nodes": graph.get("num_nodes"), "num_edges": graph.get("num_edges"), "fused": fig4.get("fused")}
    differ = [f"{k} {have[k]} (committed) != {v} (this page)" for k, v in (asked or {}).items()
              if k in have and have[k] != (sorted(v) if k == "caps" else v)]
    if differ:
        return (f"The committed solves{f' (`{source}`)' if source else ''} are at another setting than this page's "
                f"({'; '.join(differ)}), so they are not shown here; this page's own solves are summarised above.")
    runs = fig4["runs"]
    rows = []
    for cap in fig4["caps"]:
        row = {"cap": cap}
        for run in runs:
            for kind in ("forward", "backward"):
                value = (run.get(kind) or {}).get("residual_after", {}).get(str(cap))
                row[f"{kind}{run['seed']}"] = None if value is None else f"{value:.1e}"
        rows.append(row)
    columns = [("cap", "iteration cap")] + [(f"{kind}{run['seed']}", f"{kind}, seed {run['seed']}")
                                            for kind in ("forward", "backward") for run in runs]
    needed = {kind: [(run.get(kind) or {}).get("first_within_1e-4") for run in runs]
              for kind in ("forward", "backward")}
    words = "; ".join(f"{kind}: " + ", ".join("never" if n is None else str(n) for n in values)
                      for kind, values in needed.items())
    graph = fig4.get("graph") or {}
    return (f"**The solves behind the DEQ-GNN points** (committed{f' `{source}`' if source else ''}: "
            f"{graph.get('num_nodes', '?'):,} nodes, D = {fig4.get('hidden_channels')}, tolerance 0, seeds "
            f"{', '.join(str(run['seed']) for run in runs)}). Relative residual after each cap; iterations needed to "
            f"come within 1e-4, per seed: {words}.\n\n" + markdown_table(rows, columns))


_RELEASED = {80: "RevGNN-Deep", 224: "RevGNN-Wide"}


def _si_bytes(value: float) -> str:
    return f"{value / 1e6:,.0f} MB" if abs(value) >= 1e6 else f"{value / 1e3:,.0f} kB"


def _span(values: Sequence[float], fmt: str) -> str:
    lo, hi = format(min(values), fmt), format(max(values), fmt)
    return lo if lo == hi else f"{lo}-{hi}"


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def official_cost(record: dict, source: str = "results/official_inference.json") -> str:
    """The "Check the published numbers" page's cost section, from ``benchmarks/official_inference.py``'s record:
    one row per fresh process (width, threads, layers run, the peak resident set after each layer, each layer's time,
    the extrapolation to the released depth), the provenance line, the load phase, how the peak grows after the first
    layers and, where the record has a 1- and a 2-thread run at one width, the thread speed-up."""
    runs = record.get("runs") or []
    if not runs:
        return f"No runs in `{source}`."
    rows = []
    for r in runs:
        ex = r["extrapolated"]
        rows.append({
            "width": f"D = {r['channels']}, C = 2 ({_RELEASED.get(r['channels'], 'not a released width')})",
            "threads": r["threads"], "layers": r["layers"],
            "peaks": ", ".join(f"{b / 1e9:.2f}" for b in r["rss_peak_after_layer_bytes"]),
            "times": ", ".join(f"{t:.1f}" for t in r["layer_seconds"]),
            "extrapolated": f"{ex['layers']} layers: {_hours(ex['seconds'])} ({ex['seconds_per_layer']:.1f} s a layer);"
                            f" peak {ex['peak_bytes'] / 1e9:.2f} GB"})
    table = markdown_table(rows, [("width", "width (the released model)"), ("threads", "threads"),
                                  ("layers", "layers run"), ("peaks", "peak resident set after each layer (GB)"),
                                  ("times", "time of each layer (s)"),
                                  ("extrapolated", "extrapolated to the released depth")])
    prov = record.get("provenance", {})
    versions = prov.get("versions", {})
    kernels = sorted({f"{r.get('kernel', 'not recorded')}" + (f" ({r['native_isa']} build)" if r.get("native_isa")
                                                                else "") for r in runs})
    loads = [x for r in runs for x in (r.get("loadavg_at_start", [None])[0], r.get("loadavg_at_end", [None])[0])
             if x is not None]
    load = f", load average {min(loads):.1f}-{max(loads):.1f} (1 min, at each process's start and end)" if loads else ""
    parts = [table, "",
             f"Generated from `{source}`: "
             f"`{prov.get('command', 'python benchmarks/official_inference.py')}` at revision "
             f"`{str(prov.get('git_revision', 'unknown'))[:7]}`, {prov.get('cpu_model', 'CPU not recorded')} "
             f"({prov.get('cpu_count', '?')} cores), torch {versions.get('torch', '?')}, PyG "
             f"{versions.get('torch_geometric', '?')}, GENConv kernel: {', '.join(kernels)}; one fresh process per "
             f"row{load}."]
    gen = [r["generation_seconds"] for r in runs]
    sort = [r["sort_seconds"] for r in runs]
    load_peak = max(r["rss_load_peak_bytes"] for r in runs)
    before = [r["rss_before_bytes"] for r in runs]
    parts += ["", f"Each process first builds the graph ({_span(gen, '.0f')} s) and sorts its edges by "
              f"destination in place, as `revgnn evaluate` does after loading ({_span(sort, '.0f')} s); "
              f"that load phase peaked at {load_peak / 1e9:.2f} GB. The resident set before the pass was "
              f"{_span([b / 1e9 for b in before], '.2f')} GB."]
    growth = []
    for r in runs:
        peaks = r["rss_peak_after_layer_bytes"]
        if len(peaks) >= 3:
            later = max(b - a for a, b in zip(peaks[1:], peaks[2:]))
            growth.append(f"{_si_bytes(peaks[1] - peaks[0])} in the second layer and at most "
                          f"{_si_bytes(max(later, 0))} a layer after it (D = {r['channels']}, {r['threads']} "
                          f"thread{'s' if r['threads'] > 1 else ''})")
    peak = max(r["extrapolated"]["peak_bytes"] for r in runs)
    flat = record.get("targets", {}).get("peak_last_layer_over_first_layer", {}).get("value")
    sentence = (f"The peak rises by {'; by '.join(growth)}. " if growth else "") + (
        f"The largest peak is {peak / 1e9:.2f} GB, {'under' if peak <= 6e9 else 'over'} the 6 GB target"
        + (f"; the last layer's peak is {flat:.3f} × the first layer's" if flat is not None else "") +
        ". The time is extrapolated as encoders + L × (median time of a layer) + head.")
    parts += ["", sentence]
    one = {r["channels"]: r for r in runs if r["threads"] == 1}
    two = [r for r in runs if r["threads"] == 2 and r["channels"] in one]
    for r in two:
        s1, s2 = one[r["channels"]]["extrapolated"]["seconds_per_layer"], r["extrapolated"]["seconds_per_layer"]
        parts[-1] += (f" Two threads made a layer at D = {r['channels']} {s1 / s2:.2f} × faster than one ({s1:.1f} s "
                      f"→ {s2:.1f} s).")
    return "\n".join(parts)
