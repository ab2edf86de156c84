"""Figures and tables of "Training Graph Neural Networks with 1000 Layers" (Li et al., ICML 2021), ours and the paper's.

The book's notebooks stay thin: they compute (or load) records (:mod:`revgnn.book.records`) and call the plots and
tables here. The paper's points are hollow markers labelled "paper"; ours are filled; every caption says which
records, device and revision they come from (:func:`provenance_line`). One colour and marker per model family in
every figure (:data:`MODEL_STYLES`), one colour per width or graph in the depth sweeps (:func:`series_colour`, a
fixed mapping), and axes set by the plotted values, never by the order a run produced them in.
"""

from __future__ import annotations

import hashlib
import statistics
from collections.abc import Sequence

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from .records import MODEL_NAMES, PAPER_112_LAYERS, _pct, markdown_table

__all__ = ["MODEL_STYLES", "provenance_line", "plot_auc_vs_memory", "memory_panels", "plot_metric_vs_depth",
           "memory_table", "model_label", "accuracy_table", "series_colour", "series_colours"]

MODEL_STYLES = {  # one colour and marker per model family, in every figure
    "res": {"color": "#d62728", "marker": "s"},
    "res-ckpt": {"color": "#8c564b", "marker": "v"},
    "rev": {"color": "#1f77b4", "marker": "o"},
    "wt-res": {"color": "#ff7f0e", "marker": "D"},
    "wt-rev": {"color": "#2ca02c", "marker": "^"},
    "deq": {"color": "#9467bd", "marker": "P"},
}


def provenance_line(records: Sequence[dict] | dict) -> str:
    """One line naming where records come from: device, git revision, torch version, seeds, source files."""
    records = [records] if isinstance(records, dict) else list(records)
    fields: dict[str, set] = {"device": set(), "git": set(), "torch": set(), "seed": set(), "source": set()}
    for r in records:
        prov = r.get("provenance") or r  # benchmark files nest it; run records (revgnn.training.loop) carry it on top
        for key in fields:
            value = prov.get(key, r.get(key))
            if value is None and key == "torch":
                value = (prov.get("versions") or {}).get("torch")
            if value is None and key == "git":
                value = prov.get("git_revision") or prov.get("revision")
            if key == "device" and prov.get("device_name") and prov["device_name"] not in str(value):
                value = f"{value} ({prov['device_name']})"
            if value is not None:
                fields[key].add(str(value))
    parts = [f"{k} {', '.join(sorted(v))}" for k, v in fields.items() if v]
    return "ours: " + ("; ".join(parts) if parts else "no provenance recorded")


def _legend_once(ax: Axes, target=None, **kwargs) -> None:
    """One legend entry per label of ``ax``'s artists, drawn on ``target`` (an Axes or a Figure; default ``ax``)."""
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    (target or ax).legend(unique.values(), unique.keys(), **kwargs)


LIVE_STYLE = {"linestyle": "--", "markerfacecolor": "white", "alpha": 0.9}  # the notebook's own run: dashed, hollow


def plot_auc_vs_memory(live: Sequence[dict], committed: Sequence[dict] = (), paper: Sequence[dict] | None = None,
                       live_label: str = "live run", committed_label: str = "committed") -> Figure:
    """The paper's Fig. 1: ROC-AUC against training memory, in three panels with their own axes.

    Top: the paper's points (hollow, ogbn-proteins, V100). Middle: committed records (filled, mean ± std over their
    seeds as error bars). Bottom: the notebook's live run (hollow, dashed edge). The settings differ, so the panels
    do not share axes; the "plotted from" table under the figure names each one's setting.

    Args:
        live: records with ``model``, ``hidden_channels``, ``peak_bytes`` and ``roc_auc`` (fraction or %).
        committed: records of :func:`revgnn.book.records.accuracy_records` with ``peak_bytes``, ``test`` and
            ``test_std``; an empty list draws a note instead.
        paper: the paper's points (None: :data:`PAPER_112_LAYERS`).
        live_label, committed_label: how the legend names the two runs of ours.
    """
    paper = PAPER_112_LAYERS if paper is None else paper
    panels = [("committed", committed, committed_label, "test")] if committed else []
    panels.append(("live", live, live_label, "roc_auc"))
    fig, axes = plt.subplots(1 + len(panels), 1, figsize=(8, 3.7 * (1 + len(panels))), constrained_layout=True)
    top = axes[0]
    for p in sorted(paper, key=lambda p: (_model_order(p["model"]), p["hidden_channels"])):
        if p.get("oom"):
            continue
        style = MODEL_STYLES[p["model"]]
        top.scatter(p["memory_gb"], p["roc_auc"], s=60, facecolors="none", edgecolors=style["color"],
                    marker=style["marker"], label=f"{MODEL_NAMES[p['model']]} (paper)")
        top.annotate(f"D={p['hidden_channels']}", (p["memory_gb"], p["roc_auc"]), textcoords="offset points",
                     xytext=(5, 3), fontsize=8)
    _plain_log10_ticks(top)
    top.set_xlabel("training GPU memory (GB, log scale)")
    top.set_ylabel("test ROC-AUC (%)")
    top.set_title("paper: ogbn-proteins, L=112, V100 GPU [unconfirmed]")
    _legend_once(top, fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    if not committed:
        top.set_title(top.get_title() + f"\n(no {committed_label} records: the live run only)")
    for ax, (kind, rows, label, key) in zip(axes[1:], panels):
        rows = sorted((r for r in rows if r.get(key) is not None and r.get("peak_bytes")),
                      key=lambda r: (_model_order(r["model"]), r.get("hidden_channels") or 0))
        if not rows:
            ax.text(0.5, 0.5, f"no {label} records", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            continue
        for r in rows:
            style = MODEL_STYLES[r["model"]]
            x, y = r["peak_bytes"] / 2**20, _pct(r[key])
            std = _pct(r.get("test_std")) if key == "test" else None
            face = style["color"] if kind == "committed" else "white"
            ax.errorbar(x, y, yerr=std, fmt=style["marker"], color=style["color"], markerfacecolor=face,
                        markersize=8, capsize=3, linestyle="none", label=f"{MODEL_NAMES[r['model']]} ({label})")
            misses = r.get("solver_misses") or {}
            if misses.get("forward") or misses.get("backward") or any(
                    v.get("unconverged") or v.get("converged") is False for v in (r.get("solver") or {}).values()):
                ax.scatter(x, y, marker="o", s=260, facecolors="none", edgecolors="black", zorder=4,
                           label="solver did not converge")
            if len({q.get("hidden_channels") for q in rows}) > 1:  # one width: the title says it
                ax.annotate(f"D={r.get('hidden_channels')}", (x, y), textcoords="offset points", xytext=(6, 3),
                            fontsize=8)
        ax.axhline(50, color="0.6", linestyle=":", linewidth=1, label="chance (50 %)")
        _honest_ylim(ax, [_pct(r[key]) for r in rows])
        _plain_log10_ticks(ax)
        ax.set_xlabel("peak training memory of one step (MiB, log scale)")
        ax.set_ylabel("test ROC-AUC (%)")
        # DEQ-GNN has no layers (its depth is the solver's iteration cap): the title names the layered models' L
        depths = ", ".join(f"L={d}" for d in sorted({r.get("num_layers") for r in rows if r["model"] != "deq"}))
        if any(r["model"] == "deq" for r in rows):
            depths = ", ".join(filter(None, [depths, "DEQ-GNN (no layers)"]))
        widths = ", ".join(f"D={d}" for d in sorted({r.get("hidden_channels") for r in rows}))
        ax.set_title(f"{label}: {depths}, {widths}, " + _setting(rows))
        _legend_once(ax, fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig


def _honest_ylim(ax: Axes, values: Sequence[float], span: float = 20.0) -> None:
    """A ROC-AUC axis that always shows chance (50 %) and at least ``span`` points, so noise does not look like
    an ordering."""
    low, high = min([50.0, *values]) - 2, max(values) + 2
    if high - low < span:
        high = low + span
    ax.set_ylim(low, min(high, 101))


def _setting(records: Sequence[dict]) -> str:
    names = sorted({str(r.get("dataset", "?")) for r in records})
    devices = sorted({str((r.get("provenance") or {}).get("device") or r.get("device") or r.get("device_name")
                          or "?").split(",")[0].split(":")[0] for r in records})
    nodes = sorted({r["num_nodes"] for r in records if r.get("num_nodes")})
    size = f" ({', '.join(f'{n:,}' for n in nodes)} nodes)" if nodes else ""
    return f"{', '.join(names)}{size} on {', '.join(devices)}"


# series of the depth sweeps (a width and a graph): colours picked by the label's hash, not by the order of the
# series, so a rerun or another parameter set keeps every series' colour; none is a model family's colour
_SERIES_PALETTE = ("#17becf", "#bcbd22", "#e377c2", "#7f7f7f", "#393b79", "#637939", "#e7ba52", "#6b6ecf")


def series_colour(label: str) -> str:
    """The fixed colour of a depth-sweep series (e.g. ``D=32, 2,000 nodes, radii 1-8``), the same in every run."""
    return _SERIES_PALETTE[_slot(label)]


def series_colours(labels) -> dict[str, str]:
    """Colours of the series of one figure: each its :func:`series_colour`, except that two series whose labels
    hash alike get the next free colours, in the order of their labels (never the order of the run)."""
    used: set[int] = set()
    colours = {}
    for label in sorted(set(labels)):
        slot = _slot(label)
        while slot in used and len(used) < len(_SERIES_PALETTE):
            slot = (slot + 1) % len(_SERIES_PALETTE)
        used.add(slot)
        colours[label] = _SERIES_PALETTE[slot]
    return colours


def _slot(label: str) -> int:
    return int(hashlib.sha1(label.encode()).hexdigest(), 16) % len(_SERIES_PALETTE)


_PLAIN = FuncFormatter(lambda value, _: f"{value:g}")  # 1, 2, 4, 0.5 instead of 2^0 or 1.0


def _plain_log2_ticks(ax: Axes) -> None:
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(_PLAIN)


def _plain_log10_ticks(ax: Axes) -> None:
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(_PLAIN)
    ax.xaxis.set_minor_formatter(NullFormatter())


def _model_order(model: str) -> int:
    return list(MODEL_STYLES).index(model) if model in MODEL_STYLES else len(MODEL_STYLES)


def memory_panels(records: Sequence[dict], x_key: str = "depth", limit_bytes: float | None = None,
                  limit_label: str = "memory limit", xlabel: str = "number of layers L",
                  title: str | None = None, rows: Sequence[tuple[Sequence[str], str]] | None = None) -> Figure:
    """The paper's Figs. 2-4 in two panels: total peak memory, and peak above the model state, against depth.

    Left: the peak of one training step, the quantity of the paper's GPU plots; it includes the parameters, their
    gradients and Adam's two moments, which grow with depth for every model with per-layer weights. Right: the peak
    minus that model state (``peak_bytes - state_bytes``): activations, transients and the graph, the quantity a
    reversible or implicit model keeps flat. Axes are logarithmic where the values span more than a factor of 20.
    Records with ``oom`` (the step did not fit under ``limit_bytes``) are drawn as crosses on the limit line of the
    left panel, labelled "OOM", as in the paper's Fig. 2. A record whose solver did not converge (``converged``
    False, DEQ-GNN) is drawn hollow and labelled "not converged".

    Args:
        rows: one row of two panels per ``(models, x-axis label)``, e.g. ResGNN against layers and DEQ-GNN against
            solver iterations (Fig. 4: the two are different axes); None draws every model in one row.
    """
    rows = list(rows) if rows else [(sorted({r["model"] for r in records}, key=_model_order), xlabel)]
    fig, axes = plt.subplots(len(rows), 2, figsize=(11, 4.4 * len(rows)), constrained_layout=True, squeeze=False)
    for (models, row_xlabel), (left, right) in zip(rows, axes):
        _memory_row(left, right, [r for r in records if r["model"] in models], x_key, limit_bytes, limit_label,
                    row_xlabel)
    axes[0][0].set_title("total peak (the paper's quantity)")
    axes[0][1].set_title("peak above model state (the flat one)")
    fig.suptitle(title or _setting(records), fontsize=10)
    return fig


def _memory_row(left: Axes, right: Axes, records: Sequence[dict], x_key: str, limit_bytes: float | None,
                limit_label: str, xlabel: str) -> None:
    groups: dict[tuple, list[dict]] = {}
    for r in sorted(records, key=lambda r: (_model_order(r["model"]), r.get("hidden_channels") or 0)):
        groups.setdefault((r["model"], r.get("hidden_channels")), []).append(r)
    values = {"left": [], "right": []}
    for (model, width), rows in groups.items():
        style = MODEL_STYLES[model]
        rows = sorted(rows, key=lambda r: r[x_key])
        fits = [r for r in rows if not r.get("oom") and r.get("peak_bytes")]
        label = f"{MODEL_NAMES[model]}, D={width}"
        xs = [r[x_key] for r in fits]
        total = [r["peak_bytes"] / 2**20 for r in fits]
        above = [(r["peak_bytes"] - r["state_bytes"]) / 2**20 for r in fits]
        values["left"] += total
        values["right"] += above
        left.plot(xs, total, color=style["color"], marker=style["marker"], label=label)
        right.plot(xs, above, color=style["color"], marker=style["marker"], label=label)
        for ax, ys in ((left, total), (right, above)):
            for r, x, y in zip(fits, xs, ys):
                if r.get("converged") is False:
                    ax.scatter(x, y, marker="o", s=160, facecolors="none", edgecolors="black", zorder=4,
                               label="solver did not converge")
        for r in rows:
            if r.get("oom") and limit_bytes is not None:
                left.scatter(r[x_key], limit_bytes / 2**20, marker="x", s=80, color=style["color"], zorder=3)
                left.annotate("OOM", (r[x_key], limit_bytes / 2**20), textcoords="offset points", xytext=(-10, -16),
                              color=style["color"], fontsize=9)
    if limit_bytes is not None:
        left.axhline(limit_bytes / 2**20, color="grey", linestyle="--", linewidth=1,
                     label=f"{limit_label} ({limit_bytes / 2**20:,.0f} MiB)")
        values["left"].append(limit_bytes / 2**20)
    xs = [r[x_key] for r in records]
    for ax, key, ylabel in ((left, "left", "total peak of one training step"),
                            (right, "right", "peak above params + grads + Adam")):
        if xs and max(xs) / max(min(xs), 1) >= 16:
            _plain_log10_ticks(ax)
            ax.set_xlabel(xlabel + " (log scale)")
        else:
            ax.set_xlabel(xlabel)
        positive = [v for v in values[key] if v > 0]
        if positive and max(positive) / min(positive) > 20:
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(_PLAIN)
        elif positive:
            ax.set_ylim(0, max(positive) * 1.1)  # from zero, so a flat line looks flat on a rerun too
        ax.set_ylabel(ylabel + (" (MiB, log scale)" if ax.get_yscale() == "log" else " (MiB)"))
        ax.grid(True, which="major", alpha=0.3)
        _legend_once(ax, fontsize=8)


def plot_metric_vs_depth(live: Sequence[dict], committed: Sequence[dict] = (), metric_key: str = "roc_auc",
                         x_key: str = "num_layers", series_key: str = "hidden_channels",
                         ylabel: str = "test ROC-AUC (%)", xlabel: str = "number of layers L",
                         title: str | None = None, reference: Sequence[tuple[float, float]] | None = None,
                         reference_label: str = "reference", live_label: str = "live run",
                         committed_label: str = "committed", series_format: str = "D={}") -> Figure:
    """A metric against depth: committed records (solid, filled, mean ± std error bars) and the live run (dashed,
    hollow; mean ± std over its seeds), one line per value of ``series_key`` (e.g. width D).

    ``live`` records hold one seed each (``seed`` and ``metric_key``); points of the same (series, depth) are
    averaged. ``committed`` records are :func:`revgnn.book.records.accuracy_records` rows (``test``, ``test_std``).
    ``reference`` adds a dotted grey line of (depth, value) points, e.g. the best ROC-AUC a predictor that knows
    the hidden truth within as many hops can reach (:func:`revgnn.data.synthetic.oracle_rocauc`); it is not a model.
    ``series_format`` names a series from its ``series_key`` value (``"D={}"``; ``"{}"`` for a ready-made label).
    """
    fig, ax = plt.subplots(figsize=(7.5, 4.6), constrained_layout=True)
    if reference:
        xs, ys = zip(*sorted(reference))
        ax.plot(xs, [_pct(y) for y in ys], ls=":", marker="x", color="0.45", label=reference_label)
    widths = sorted({r[series_key] for r in [*live, *committed]}, key=str)
    names = series_colours(series_format.format(w) for w in widths)
    colour = {w: names[series_format.format(w)] for w in widths}
    for value in widths:
        rows = sorted((r for r in committed if r[series_key] == value), key=lambda r: r[x_key])
        if rows:
            seeds = max(len(r.get("seeds") or []) for r in rows)
            ax.errorbar([r[x_key] for r in rows], [_pct(r["test"]) for r in rows],
                        yerr=[_pct(r.get("test_std") or 0.0) for r in rows], color=colour[value], marker="o",
                        capsize=4, linewidth=2,
                        label=f"{series_format.format(value)}, {committed_label} ({seeds} seeds, mean ± std)")
        points: dict = {}
        for r in live:
            if r[series_key] == value:
                points.setdefault(r[x_key], []).append(_pct(r[metric_key]))
        if points:
            xs = sorted(points)
            means = [statistics.fmean(points[x]) for x in xs]
            stds = [statistics.stdev(points[x]) if len(points[x]) > 1 else 0.0 for x in xs]
            seeds = max(len(v) for v in points.values())
            ax.errorbar(xs, means, yerr=stds, color=colour[value], marker="s", capsize=3, **LIVE_STYLE,
                        label=f"{series_format.format(value)}, {live_label} ({seeds} seed{'s' if seeds > 1 else ''})")
    _plain_log2_ticks(ax)
    depths = [r[x_key] for r in [*live, *committed]]
    if depths:
        ax.set_xlim(min(depths) / 1.3, max(depths) * 1.3)
    _honest_ylim(ax, [_pct(r["test"]) for r in committed] + [_pct(r[metric_key]) for r in live]
                 + [_pct(y) for _, y in reference or ()])
    ax.set_xlabel(f"{xlabel} (log scale)")
    ax.set_ylabel(ylabel)
    ax.set_title(title or _setting([*committed, *live]), fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig


def memory_table(records: Sequence[dict], x_key: str = "depth", x_header: str = "L") -> str:
    """The numbers behind :func:`memory_panels`, one row per measured step (MiB; '–' where a step did not fit).

    DEQ-GNN's x is its solver's iteration cap, never a layer count: it gets its own column ("solver iterations")
    and the layered models' column is ``x_header``. Columns of the memory split (``activation_peak_bytes``,
    ``gradient_transient_bytes``, ``optimizer_transient_bytes``, from :mod:`revgnn.measure.memory`) and of the solver
    (``solver``: DEQ-GNN's forward and backward solves) appear when the records carry them.
    """
    def mib(value):
        return None if value is None else value / 2**20

    ordered = sorted(records, key=lambda r: (_model_order(r["model"]), r.get("hidden_channels") or 0,
                                             r.get(x_key) or 0))
    rows = [{"model": MODEL_NAMES[r["model"]], "D": r.get("hidden_channels"),
             "x": None if r["model"] == "deq" else r.get(x_key), "it": r.get(x_key) if r["model"] == "deq" else None,
             "peak": mib(r.get("peak_bytes")), "state": mib(r.get("state_bytes")),
             "above": mib(r["peak_bytes"] - r["state_bytes"]) if r.get("peak_bytes") else None,
             "act": mib(r.get("activation_peak_bytes")), "opt": mib(r.get("optimizer_transient_bytes")),
             "grad": mib(r.get("gradient_transient_bytes")),
             "saved": mib(r.get("saved_bytes")), "oom": bool(r.get("oom")),
             "fwd": _solve(r, "forward"), "bwd": _solve(r, "backward")} for r in ordered]
    columns = [("model", "model"), ("D", "D"), ("x", x_header)]
    if any(r["it"] is not None for r in rows):
        columns.append(("it", "solver iterations"))
    columns += [("peak", "total peak (MiB)"), ("state", "params + grads + Adam (MiB)"),
                ("above", "peak above state (MiB)")]
    if any(r["act"] is not None for r in rows):
        columns += [("act", "activation peak (MiB)"), ("grad", "gradients in flight (MiB)"),
                    ("opt", "optimizer step transient (MiB)")]
    columns += [("saved", "saved for backward (MiB)"), ("oom", "over the limit")]
    if any(r["fwd"] is not None for r in rows):
        columns += [("fwd", "forward solve: iterations, residual"), ("bwd", "backward solve: iterations, residual")]
    return markdown_table(rows, columns)


def _solve(record: dict, kind: str) -> str | None:
    """``30 it., 6.0e-04 (not converged)``: one DEQ-GNN solve of a record's ``solver`` statistics."""
    stats = (record.get("solver") or {}).get(kind)
    if not stats:
        return None
    mark = "" if stats.get("tol") == 0.0 else (" (converged)" if stats.get("converged") else " (not converged)")
    return f"{stats['iterations']} it., {stats['residual']:.1e}{mark}"


def model_label(record: dict) -> str:
    """``ResGNN-64``-style name of a record of ours, from its own model and width (never the paper's row name)."""
    return f"{MODEL_NAMES[record['model']]}-{record['hidden_channels']}"


def accuracy_table(records: Sequence[dict], mean_key: str = "test", std_key: str | None = "test_std") -> str:
    """Our 112-layer-style rows: model, L, D, params, peak memory (MiB), test ROC-AUC % ± std, seeds.

    ``records`` are committed rows (:func:`revgnn.book.records.accuracy_records`, ``test`` ± ``test_std``) or live
    records (``roc_auc``, one seed each: ``std_key`` None shows '–')."""
    rows = [{"name": model_label(r), "L": r.get("num_layers"), "D": r.get("hidden_channels"), "params": r.get("params"),
             "memory": r["peak_bytes"] / 2**20 if r.get("peak_bytes") else None, "test": _pct(r.get(mean_key)),
             "std": _pct(r.get(std_key)) if std_key else None,
             "seeds": len(r["seeds"]) if isinstance(r.get("seeds"), list) else 1} for r in records]
    return markdown_table(rows, [("name", "model"), ("L", "L"), ("D", "D"), ("params", "params"),
                                 ("memory", "peak MiB"), ("test", "test ROC-AUC %"), ("std", "±"),
                                 ("seeds", "seeds")], digits=1)
