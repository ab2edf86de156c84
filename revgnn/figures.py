"""Figures and tables of "Training Graph Neural Networks with 1000 Layers" (Li et al., ICML 2021), ours and the paper's.

The book's notebooks stay thin: they compute (or load) result records and call the helpers here. Two sources are
never mixed up: the paper's published numbers (:data:`PAPER_112_LAYERS`, :data:`PAPER_MAIN`, each with its
confidence mark from the project's PAPER.md) are drawn as hollow markers labelled "paper"; our measurements are
filled markers labelled "ours", and every table row or caption says which records, device and revision they
come from (:func:`provenance_line`).

A *record* is a flat dict; the keys read here are ``model`` (one of ``res``, ``rev``, ``wt-res``, ``wt-rev``,
``deq``), ``num_layers``, ``hidden_channels``, and the measured values a plot asks for by name (``roc_auc``,
``peak_bytes``, ...). ``provenance`` (a dict: git revision, versions, device, seed) is shown in captions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from .presets import PAPER_PARAMS

__all__ = [
    "MODEL_NAMES", "MODEL_STYLES", "PAPER_112_LAYERS", "PAPER_MAIN", "PAPER_MARKS",
    "load_records", "memory_records", "provenance_line", "markdown_table",
    "plot_auc_vs_memory", "memory_panels", "plot_metric_vs_depth", "memory_table", "model_label", "accuracy_table",
    "check_112_claims",
]

MODEL_NAMES = {"res": "ResGNN", "res-ckpt": "ResGNN + checkpointing", "rev": "RevGNN", "wt-res": "WT-ResGNN",
               "wt-rev": "WT-RevGNN", "deq": "DEQ-GNN"}
MODEL_STYLES = {  # one colour and marker per model family, in every figure
    "res": {"color": "#d62728", "marker": "s"},
    "res-ckpt": {"color": "#8c564b", "marker": "v"},
    "rev": {"color": "#1f77b4", "marker": "o"},
    "wt-res": {"color": "#ff7f0e", "marker": "D"},
    "wt-rev": {"color": "#2ca02c", "marker": "^"},
    "deq": {"color": "#9467bd", "marker": "P"},
}
PAPER_MARKS = {
    "paper": "the paper's own text",
    "code": "the official code or its README",
    "OGB": "the OGB leaderboard entry the authors submitted",
    "derived": "arithmetic that reproduces an [OGB] number exactly",
    "unconfirmed": "second-hand transcription of the paper's tables, not checked against the PDF",
}

# The paper's 112-layer comparison on ogbn-proteins (Fig. 1 and its table): ROC-AUC % and training GPU memory
# (GB, one V100 32 GB) are [unconfirmed]; parameter counts carry their own marks (PAPER.md, sections 2 and 4).
def _paper_112(name: str, model: str, channels: int, roc_auc: float | None, memory_gb: float | None,
               oom: bool = False) -> dict:
    """One point of the paper's 112-layer comparison; the parameter count and its mark come from
    :data:`revgnn.presets.PAPER_PARAMS` (the same record the preset tests assert)."""
    params, params_mark = PAPER_PARAMS[name.lower()]
    row = {"name": name, "model": model, "num_layers": 112, "hidden_channels": channels, "roc_auc": roc_auc,
           "memory_gb": memory_gb, "params": params, "params_mark": params_mark, "mark": "unconfirmed"}
    return row | ({"oom": True} if oom else {})


PAPER_112_LAYERS: list[dict] = [_paper_112(*row) for row in (
    ("ResGNN-64", "res", 64, 85.94, 27.1),
    ("ResGNN-224", "res", 224, None, None, True),
    ("WT-ResGNN-64", "wt-res", 64, 83.30, 27.4),
    ("DEQ-GNN-64", "deq", 64, 83.17, 2.22),
    ("DEQ-GNN-224", "deq", 224, 85.84, 7.60),
    ("RevGNN-64", "rev", 64, 85.48, 2.09),
    ("RevGNN-80", "rev", 80, 85.97, 2.56),
    ("RevGNN-224", "rev", 224, 87.02, 7.30),
    ("WT-RevGNN-64", "wt-rev", 64, 82.89, 1.60),
    ("WT-RevGNN-80", "wt-rev", 80, 83.46, 2.08),
    ("WT-RevGNN-224", "wt-rev", 224, 85.28, 5.55),
)]

# RevGNN-Deep and RevGNN-Wide on ogbn-proteins (PAPER.md, sections 2-4).
PAPER_MAIN: dict[str, dict] = {
    "revgnn-deep": {"name": "RevGNN-Deep", "num_layers": 1001, "hidden_channels": 80, "dropout": 0.1,
                    "params": PAPER_PARAMS["revgnn-deep"][0], "params_mark": PAPER_PARAMS["revgnn-deep"][1],
                    "test": (87.74, 0.13, "paper"), "valid": (93.26, 0.06, "OGB"),
                    "single_view_test": (87.06, 0.20, "code"), "memory_gb": (2.86, "unconfirmed"),
                    "days": (13.5, "paper"), "seconds_per_epoch": (583, "derived from paper")},
    "revgnn-wide": {"name": "RevGNN-Wide", "num_layers": 448, "hidden_channels": 224, "dropout": 0.2,
                    "params": PAPER_PARAMS["revgnn-wide"][0], "params_mark": PAPER_PARAMS["revgnn-wide"][1],
                    "test": (88.24, 0.15, "paper"), "valid": (94.50, 0.08, "OGB"),
                    "single_view_test": (87.62, 0.18, "code"), "memory_gb": (7.91, "unconfirmed"),
                    "days": (17.1, "paper"), "seconds_per_epoch": (739, "derived from paper")},
}


def load_records(path: str | Path, pattern: str = "*.json") -> list[dict]:
    """Result records from a JSON file or from every matching file in a folder; ``[]`` when there is none.

    A file holds a record, a list of records, ``{"records": [...]}``, or a benchmark result of
    ``benchmarks/memory_depth.py`` (``{"rows": [...], "provenance": ..., "graph": ...}``), whose training rows
    become records with ``model`` (the row's label), ``depth`` (its x), ``num_layers``, ``hidden_channels``,
    ``dataset`` and the file's ``provenance``. Every record gets ``source``, the file it came from (relative to the
    repository root), so that a plot can say where a point came from. A relative ``path`` is read from the
    repository root, whatever the working directory.
    """
    from .sources import _display, resolve_path

    path = resolve_path(path)
    files = sorted(path.glob(pattern)) if path.is_dir() else ([path] if path.is_file() else [])
    records = []
    for file in files:
        content = json.loads(file.read_text())
        if isinstance(content, dict) and "rows" in content:
            items = [_benchmark_row(row, content) for row in content["rows"] if row.get("mode", "train") == "train"]
        else:
            items = content if isinstance(content, list) else content.get("records", [content])
        records += [{**item, "source": item.get("source", _display(file))} for item in items]
    return records


def _benchmark_row(row: dict, result: dict) -> dict:
    config = row.get("model") or {}
    return {**row, "model": row["label"], "depth": row["x"], "config": config,
            "num_layers": config.get("num_layers"), "hidden_channels": config.get("hidden_channels"),
            "dataset": (result.get("graph") or {}).get("name"), "provenance": result.get("provenance") or {}}


def memory_records(points: Iterable[tuple[dict, object]], data, device="cpu", seed: int = 0,
                   limit_bytes: float | None = None, repeats: int = 1) -> list[dict]:
    """Measure one training step per ``(labels, ModelConfig)`` point with :func:`revgnn.memory.measure_config`.

    Each record is the :class:`~revgnn.memory.StepMemory` as a dict, plus ``labels`` (e.g. model, depth, width),
    ``oom`` and ``provenance`` (git revision, versions, device). A step is out of memory when the device raises
    it (CUDA) or when its peak exceeds ``limit_bytes``; once a ``(model, hidden_channels)`` series is out of
    memory, its later (deeper) points are recorded as OOM without being run.

    Args:
        points: ``(labels, config)`` pairs, in increasing depth within each series.
        data: the graph (a PyG ``Data``, e.g. ``load_dataset(...).data``).
        device: ``"cpu"`` or ``"cuda"``.
        seed: seed of the weights.
        limit_bytes: the memory limit (None: only the device's own).
        repeats: timed steps per point (``step_seconds`` is their median).
    """
    import torch

    from revgnn.memory import measure_config
    from revgnn.records import environment

    device = torch.device(device)
    provenance = {**environment(device), "seed": seed}
    out_of_memory: set[tuple] = set()
    records = []
    for labels, config in points:
        series = (labels.get("model", config.model), labels.get("hidden_channels", config.hidden_channels))
        record = {"model": config.model, "num_layers": config.num_layers,
                  "hidden_channels": config.hidden_channels, **labels, "provenance": provenance}
        if series in out_of_memory:
            records.append({**record, "oom": True, "peak_bytes": None})
            continue
        try:
            step = measure_config(config, data.num_nodes, data.num_edges, device=str(device), seed=seed,
                                  data=data, repeats=repeats).to_dict()
        except torch.cuda.OutOfMemoryError:
            step = {"peak_bytes": None, "oom": True}
            torch.cuda.empty_cache()
        step["oom"] = step.get("oom", False) or (limit_bytes is not None and step["peak_bytes"] > limit_bytes)
        if step["oom"]:
            out_of_memory.add(series)
        records.append({**step, "config": step.get("model"), **record, "oom": step["oom"]})
    return records


def provenance_line(records: Sequence[dict] | dict) -> str:
    """One line naming where records come from: device, git revision, torch version, seeds, source files."""
    records = [records] if isinstance(records, dict) else list(records)
    fields: dict[str, set] = {"device": set(), "git": set(), "torch": set(), "seed": set(), "source": set()}
    for r in records:
        prov = r.get("provenance") or r  # benchmark files nest it; run records (revgnn.train) carry it on top
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


def _fmt(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(rows: Iterable[dict], columns: Sequence[tuple[str, str]], digits: int = 2) -> str:
    """A Markdown table of ``rows`` with ``columns`` given as (key, header) pairs; missing values show as '–'."""
    lines = ["| " + " | ".join(h for _, h in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(k), digits) for k, _ in columns) + " |")
    return "\n".join(lines)


def _legend_once(ax: Axes, **kwargs) -> None:
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), **kwargs)


LIVE_STYLE = {"linestyle": "--", "markerfacecolor": "white", "alpha": 0.9}  # the notebook's own run: dashed, hollow


def _pct(value: float | None) -> float | None:
    """A ROC-AUC or accuracy as a percentage, whether it was recorded as a fraction or as %."""
    return None if value is None else value * (100 if value <= 1 else 1)


def plot_auc_vs_memory(live: Sequence[dict], committed: Sequence[dict] = (), paper: Sequence[dict] | None = None,
                       live_label: str = "live run", committed_label: str = "committed") -> Figure:
    """The paper's Fig. 1: ROC-AUC against training memory, in three panels with their own axes.

    Top: the paper's points (hollow, ogbn-proteins, V100). Middle: committed records (filled, mean ± std over their
    seeds as error bars). Bottom: the notebook's live run (hollow, dashed edge). The settings differ, so the panels
    do not share axes; the "plotted from" table under the figure names each one's setting.

    Args:
        live: records with ``model``, ``hidden_channels``, ``peak_bytes`` and ``roc_auc`` (fraction or %).
        committed: records of :func:`revgnn.sources.accuracy_records` with ``peak_bytes``, ``test`` and
            ``test_std``; an empty list draws a note instead.
        paper: the paper's points (None: :data:`PAPER_112_LAYERS`).
        live_label, committed_label: how the legend names the two runs of ours.
    """
    paper = PAPER_112_LAYERS if paper is None else paper
    panels = [("committed", committed, committed_label, "test")] if committed else []
    panels.append(("live", live, live_label, "roc_auc"))
    fig, axes = plt.subplots(1 + len(panels), 1, figsize=(8, 3.7 * (1 + len(panels))), constrained_layout=True)
    top = axes[0]
    for p in paper:
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
        rows = [r for r in rows if r.get(key) is not None and r.get("peak_bytes")]
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


_PLAIN = FuncFormatter(lambda value, _: f"{value:g}")  # 1, 2, 4, 0.5 instead of 2^0 or 1.0


def _plain_log2_ticks(ax: Axes) -> None:
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(_PLAIN)


def _plain_log10_ticks(ax: Axes) -> None:
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(_PLAIN)
    ax.xaxis.set_minor_formatter(NullFormatter())


def memory_panels(records: Sequence[dict], x_key: str = "depth", limit_bytes: float | None = None,
                  limit_label: str = "memory limit", xlabel: str = "number of layers L",
                  title: str | None = None) -> Figure:
    """The paper's Figs. 2-4 in two panels: total peak memory, and peak above the model state, against depth.

    Left: the peak of one training step, the quantity of the paper's GPU plots; it includes the parameters, their
    gradients and Adam's two moments, which grow with depth for every model with per-layer weights. Right: the peak
    minus that model state (``peak_bytes - state_bytes``): activations, transients and the graph, the quantity a
    reversible or implicit model keeps flat. Axes are logarithmic where the values span more than a factor of 20.
    Records with ``oom`` (the step did not fit under ``limit_bytes``) are drawn as crosses on the limit line of the
    left panel, labelled "OOM", as in the paper's Fig. 2.
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4), constrained_layout=True)
    groups: dict[tuple, list[dict]] = {}
    for r in records:
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
        ax.set_ylabel(ylabel + (" (MiB, log scale)" if ax.get_yscale() == "log" else " (MiB)"))
        ax.grid(True, which="major", alpha=0.3)
        _legend_once(ax, fontsize=8)
    left.set_title("total peak (the paper's quantity)")
    right.set_title("peak above model state (the flat one)")
    fig.suptitle(title or _setting(records), fontsize=10)
    return fig


def plot_metric_vs_depth(live: Sequence[dict], committed: Sequence[dict] = (), metric_key: str = "roc_auc",
                         x_key: str = "num_layers", series_key: str = "hidden_channels",
                         ylabel: str = "test ROC-AUC (%)", xlabel: str = "number of layers L",
                         title: str | None = None, reference: Sequence[tuple[float, float]] | None = None,
                         reference_label: str = "reference", live_label: str = "live run",
                         committed_label: str = "committed", series_format: str = "D={}") -> Figure:
    """A metric against depth: committed records (solid, filled, mean ± std error bars) and the live run (dashed,
    hollow; mean ± std over its seeds), one line per value of ``series_key`` (e.g. width D).

    ``live`` records hold one seed each (``seed`` and ``metric_key``); points of the same (series, depth) are
    averaged. ``committed`` records are :func:`revgnn.sources.accuracy_records` rows (``test``, ``test_std``).
    ``reference`` adds a dotted grey line of (depth, value) points, e.g. the best ROC-AUC a predictor that knows
    the hidden truth within as many hops can reach (:func:`revgnn.synthetic.oracle_rocauc`); it is not a model.
    ``series_format`` names a series from its ``series_key`` value (``"D={}"``; ``"{}"`` for a ready-made label).
    """
    import statistics

    fig, ax = plt.subplots(figsize=(7.5, 4.6), constrained_layout=True)
    if reference:
        xs, ys = zip(*sorted(reference))
        ax.plot(xs, [_pct(y) for y in ys], ls=":", marker="x", color="0.45", label=reference_label)
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    widths = sorted({r[series_key] for r in [*live, *committed]})
    colour = {w: palette[i % len(palette)] for i, w in enumerate(widths)}
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
    ax.set_xlabel(f"{xlabel} (log scale)")
    ax.set_ylabel(ylabel)
    ax.set_title(title or _setting([*committed, *live]), fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig


def memory_table(records: Sequence[dict], x_key: str = "depth", x_header: str = "L") -> str:
    """The numbers behind :func:`memory_panels`, one row per measured step (MiB; '–' where a step did not fit)."""
    def mib(value):
        return None if value is None else value / 2**20

    rows = [{"model": MODEL_NAMES[r["model"]], "D": r.get("hidden_channels"), "x": r.get(x_key),
             "peak": mib(r.get("peak_bytes")), "state": mib(r.get("state_bytes")),
             "above": mib(r["peak_bytes"] - r["state_bytes"]) if r.get("peak_bytes") else None,
             "saved": mib(r.get("saved_bytes")), "oom": bool(r.get("oom"))}
            for r in sorted(records, key=lambda r: (r["model"], r.get(x_key) or 0))]
    return markdown_table(rows, [("model", "model"), ("D", "D"), ("x", x_header), ("peak", "total peak (MiB)"),
                                 ("state", "params + grads + Adam (MiB)"), ("above", "peak above state (MiB)"),
                                 ("saved", "saved for backward (MiB)"), ("oom", "over the limit")])


def model_label(record: dict) -> str:
    """``ResGNN-64``-style name of a record of ours, from its own model and width (never the paper's row name)."""
    return f"{MODEL_NAMES[record['model']]}-{record['hidden_channels']}"


def accuracy_table(records: Sequence[dict], mean_key: str = "test", std_key: str | None = "test_std") -> str:
    """Our 112-layer-style rows: model, L, D, params, peak memory (MiB), test ROC-AUC % ± std, seeds.

    ``records`` are committed rows (:func:`revgnn.sources.accuracy_records`, ``test`` ± ``test_std``) or live
    records (``roc_auc``, one seed each: ``std_key`` None shows '–')."""
    rows = [{"name": model_label(r), "L": r.get("num_layers"), "D": r.get("hidden_channels"), "params": r.get("params"),
             "memory": r["peak_bytes"] / 2**20 if r.get("peak_bytes") else None, "test": _pct(r.get(mean_key)),
             "std": _pct(r.get(std_key)) if std_key else None,
             "seeds": len(r["seeds"]) if isinstance(r.get("seeds"), list) else 1} for r in records]
    return markdown_table(rows, [("name", "model"), ("L", "L"), ("D", "D"), ("params", "params"),
                                 ("memory", "peak MiB"), ("test", "test ROC-AUC %"), ("std", "±"),
                                 ("seeds", "seeds")], digits=1)


def check_112_claims(records: Sequence[dict]) -> str:
    """The paper's qualitative 112-layer claims, checked on committed multi-seed records (a Markdown list).

    1. Reversible models at least match ResGNN (within a seed std) at a fraction of its memory.
    2. Weight-tied and DEQ models trade accuracy for parameters (fewer parameters, lower ROC-AUC).

    Each claim is stated as holding or not at our scale, with the numbers; '' when a family is missing.
    """
    by_model = {r["model"]: r for r in records if r.get("test") is not None}
    lines = []
    res = by_model.get("res")
    if res is None:
        return ""
    for model in ("rev",):  # the weight-tied reversible model is the second claim's
        r = by_model.get(model)
        if r is None:
            continue
        gap = 100 * (r["test"] - res["test"])
        std = 100 * max(r.get("test_std") or 0.0, res.get("test_std") or 0.0)
        memory = (r["peak_bytes"] / res["peak_bytes"]) if r.get("peak_bytes") and res.get("peak_bytes") else None
        holds = gap >= -std and (memory is None or memory < 1)
        lines.append(f"- {MODEL_NAMES[model]} against ResGNN: {gap:+.1f} points of ROC-AUC (seed std {std:.1f})"
                     + (f" at {100 * memory:.0f} % of its peak memory" if memory else "")
                     + (": **holds**." if holds else ": **does not hold at our scale**."))
    for model, base in (("wt-res", "res"), ("wt-rev", "rev"), ("deq", "rev")):
        r, b = by_model.get(model), by_model.get(base)
        if r is None or b is None:
            continue
        gap = 100 * (r["test"] - b["test"])
        ratio = r["params"] / b["params"]
        holds = ratio < 1 and gap <= 0
        lines.append(f"- {MODEL_NAMES[model]} against {MODEL_NAMES[base]}: {100 * ratio:.0f} % of its parameters, "
                     f"{gap:+.1f} points of ROC-AUC"
                     + (": trades accuracy for parameters, **holds**." if holds else
                        ": **does not hold at our scale**" + (" (no accuracy lost)." if gap > 0 else ".")))
    return "\n".join(lines)
