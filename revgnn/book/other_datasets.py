"""The paper's other datasets in the book (Li et al., ICML 2021, Sec. 5.3 and Fig. 5): ogbn-arxiv (RevGAT) and
ogbn-products (RevGNN-112 with GraphSAGE blocks), the paper's numbers with their confidence marks, our presets'
parameter counts, the commands of a full run, and Fig. 5 (memory against depth, full batch against random parts).

Every number of ours comes from a record (a committed ``results/*.json`` or this run's measurement) and says so; the
paper's carry their marks (:data:`PAPER_OTHER`). Fig. 5's values are ours: no public script produces the figure and
its plotted values are not published (:mod:`revgnn.measure.batching` defines the protocol).
"""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from revgnn.nn.presets import PAPER_PARAMS

from .figures import MODEL_STYLES, _legend_once
from .records import MODEL_NAMES, _display, markdown_table, resolve_path

__all__ = ["PAPER_OTHER", "FULL_RUN_COMMANDS", "other_datasets_table", "full_run_commands", "batching_panels",
           "batching_table", "batching_reading", "batching_setting", "batching_file", "batching_extrapolation"]

# The paper's results on its other datasets, (value, std, mark) in %, marks as in PAPER.md. The official RevGAT's
# README gives the test means; its main.py ends with the logs of both 10-run commands (validation included) [code];
# the OGB leaderboard entries carry the same test numbers [OGB]. RevGNN-7 is PyG's examples/rev_gnn.py header [code].
PAPER_OTHER: list[dict] = [
    {"dataset": "ogbn-arxiv", "name": "RevGAT", "preset": "revgat-arxiv", "test": (74.02, 0.18, "code, OGB"),
     "valid": (75.01, 0.10, "code"), "note": "label reuse, log-CE loss"},
    {"dataset": "ogbn-arxiv", "name": "RevGAT + self-KD", "preset": "revgat-arxiv", "test": (74.26, 0.17, "code, OGB"),
     "valid": (74.97, 0.08, "code"), "note": "student of the 10 teacher runs, alpha 0.95, T 0.7"},
    {"dataset": "ogbn-products", "name": "RevGNN-112", "preset": "revgnn-112-products",
     "test": (83.07, 0.30, "OGB"), "valid": (92.90, 0.07, "OGB"), "note": "SAGEConv blocks, D = 160"},
    {"dataset": "ogbn-products", "name": "RevGNN-7", "preset": "revgnn-7-products", "test": (82.76, 0.27, "code"),
     "valid": (92.72, 0.06, "code"), "note": "PyG's examples/rev_gnn.py"},
]
# A full run of each on one CUDA GPU with the data fetched beforehand (`revgnn data NAME --root DIR` on a connected
# machine); each dataset's recipe (`revgnn train --help`) supplies the rest.
FULL_RUN_COMMANDS: dict[str, list[str]] = {
    "ogbn-arxiv": [
        "revgnn data ogbn-arxiv --root DIR",
        "revgnn train --preset revgat-arxiv --dataset ogbn-arxiv --root DIR --runs 10 --device cuda "
        "--save-logits --out runs/revgat-teacher",
        "revgnn train --preset revgat-arxiv --dataset ogbn-arxiv --root DIR --runs 10 --device cuda "
        "--teacher runs/revgat-teacher --kd-alpha 0.95 --kd-temperature 0.7 --out runs/revgat-student"],
    "ogbn-products": [
        "revgnn data ogbn-products --root DIR",
        "revgnn train --preset revgnn-112-products --dataset ogbn-products --root DIR --runs 10 --device cuda "
        "--out runs/revgnn-112-products"],
}


def _pm(value) -> str:
    mean, std, mark = value
    return f"{mean:.2f} ± {std:.2f} [{mark}]"


def other_datasets_table(counts: dict[str, int] | None = None) -> str:
    """The paper's other results with their marks and, in ``counts`` (preset -> parameters), our presets' counts."""
    rows = []
    for p in PAPER_OTHER:
        paper, mark = PAPER_PARAMS[p["preset"]]
        ours = (counts or {}).get(p["preset"])
        rows.append({"dataset": p["dataset"], "name": p["name"], "preset": f"`{p['preset']}`",
                     "paper_params": f"{paper:,} [{mark}]", "ours": "–" if ours is None else
                     f"{ours:,}" + (" (equal)" if ours == paper else f" ({ours - paper:+,})"),
                     "test": _pm(p["test"]), "valid": _pm(p["valid"]), "note": p["note"]})
    return markdown_table(rows, [("dataset", "dataset"), ("name", "model"), ("preset", "our preset"),
                                 ("paper_params", "params, paper"), ("ours", "params, ours"),
                                 ("test", "test acc. %, paper"), ("valid", "valid acc. %, paper"),
                                 ("note", "setting")])


def full_run_commands() -> str:
    """The commands of a full run per dataset, as a Markdown code block."""
    lines = []
    for dataset, commands in FULL_RUN_COMMANDS.items():
        lines += [f"# {dataset}", *commands, ""]
    return "```bash\n" + "\n".join(lines).rstrip() + "\n```"


# ----------------------------------------------------------------------------------------------- Fig. 5

def _unit(records: Sequence[dict]) -> tuple[str, int]:
    """GiB when some measured peak reaches 1 GiB, else MiB: (name, bytes per unit)."""
    top = max((r.get("peak_bytes") or 0 for r in records), default=0)
    return ("GiB", 2**30) if top >= 2**30 else ("MiB", 2**20)


_BATCHING_STYLE = {"full": {"linestyle": "-", "fill": True, "label": "full batch"},
                   "parts": {"linestyle": "--", "fill": False, "label": "1 of 10 random parts"}}


def batching_file(path: str) -> tuple[list[dict], dict]:
    """The points of a committed ``benchmarks/fig5_memory.py`` record (each with the file's provenance and
    ``source``) and the file's other fields; ``([], {})`` when it does not exist. A relative path is read from the
    repository root."""
    import json

    file = resolve_path(path)
    if not file.is_file():
        return [], {}
    content = json.loads(file.read_text())
    if not isinstance(content, dict) or content.get("benchmark") != "fig5_memory":
        raise ValueError(f"parameter committed_file={path!r} is not a Fig. 5 record of benchmarks/fig5_memory.py")
    rows = [{**r, "provenance": content.get("provenance"), "source": _display(file),
             "num_nodes": r.get("num_nodes") or r["step_graph"]["num_nodes"],
             "num_edges": r.get("num_edges") or r["step_graph"]["num_edges"]} for r in content.get("rows", [])]
    return rows, {k: v for k, v in content.items() if k != "rows"}


def batching_setting(records: Sequence[dict]) -> str:
    """One line naming the graphs of the records: whole graph, step graph per batching, D, C."""
    parts = []
    for batching in ("full", "parts"):
        rs = [r for r in records if r["batching"] == batching and r.get("num_nodes")]
        if rs:
            parts.append(f"{_BATCHING_STYLE[batching]['label']}: N = {rs[0]['num_nodes']:,}, "
                         f"E = {rs[0]['num_edges']:,}")
    d = sorted({r.get("hidden_channels") for r in records} - {None})
    return "; ".join(parts) + (f"; D = {', '.join(map(str, d))}, C = 2" if d else "")


def batching_panels(records: Sequence[dict], limit_bytes: float | None = None, title: str | None = None) -> Figure:
    """Fig. 5 in two panels: total peak of one training step, and peak above the model state, against depth L, for
    ResGNN and RevGNN (colour and marker as every memory figure), full batch (solid, filled) and one random part of 10
    (dashed, hollow). Out-of-memory points are crosses on the limit line of the left panel."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.4), layout="constrained")
    unit, scale = _unit(records)
    for model in ("res", "rev"):
        style = MODEL_STYLES[model]
        for batching, how in _BATCHING_STYLE.items():
            rows = sorted((r for r in records if r["model"] == model and r["batching"] == batching),
                          key=lambda r: r["depth"])
            fits = [r for r in rows if not r.get("oom") and r.get("peak_bytes")]
            label = f"{MODEL_NAMES[model]}, {how['label']}"
            kw = dict(color=style["color"], marker=style["marker"], linestyle=how["linestyle"],
                      markerfacecolor=style["color"] if how["fill"] else "white", label=label)
            xs = [r["depth"] for r in fits]
            if fits:
                left.plot(xs, [r["peak_bytes"] / scale for r in fits], **kw)
                right.plot(xs, [(r["peak_bytes"] - r["state_bytes"]) / scale for r in fits], **kw)
            for r in rows:
                if r.get("oom") and limit_bytes:
                    left.scatter(r["depth"], limit_bytes / scale, marker="x", s=70, color=style["color"], zorder=3)
    if limit_bytes:
        left.axhline(limit_bytes / scale, color="grey", linestyle=":", linewidth=1,
                     label=f"memory limit ({limit_bytes / scale:,.1f} {unit}): x = does not fit")
    for ax, ylabel in ((left, f"total peak of one training step ({unit})"),
                       (right, f"peak above params + grads + Adam ({unit})")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("number of layers L (log scale)")
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
    # one legend for both panels, beside them: inside, it hid points (ResGNN's mini-batch L = 8 on the products record)
    _legend_once(left, fig, fontsize=8, loc="outside right center")
    left.set_title("total peak")
    right.set_title("peak above the model state")
    fig.suptitle(title or batching_setting(records), fontsize=10)
    return fig


def batching_table(records: Sequence[dict]) -> str:
    """Every point of the figure: peak, model state, step graph, step time; OOM points say whether they ran."""
    rows = []
    unit, scale = _unit(records)
    for r in sorted(records, key=lambda r: (r["model"], r["batching"], r["depth"])):
        if r.get("oom") and not r.get("peak_bytes"):
            why = (f"predicted {r['predicted_peak_bytes'] / scale:,.2f} {unit}, not run"
                   if r.get("predicted_peak_bytes") else "not run (a shallower point did not fit)")
            peak = "OOM"
        else:
            peak, why = f"{r['peak_bytes'] / scale:,.3f}", ("OOM (above the limit)" if r.get("oom") else "")
        rows.append({"model": MODEL_NAMES[r["model"]], "batching": _BATCHING_STYLE[r["batching"]]["label"],
                     "L": r["depth"], "peak": peak, "why": why,
                     "state": f"{r['state_bytes'] / 2**20:,.1f}" if r.get("state_bytes") else "–",
                     "N": f"{r['num_nodes']:,}" if r.get("num_nodes") else "–",
                     "E": f"{r['num_edges']:,}" if r.get("num_edges") else "–",
                     "time": f"{r['step_seconds']:,.1f}" if r.get("step_seconds") else "–"})
    return markdown_table(rows, [("model", "model"), ("batching", "batch"), ("L", "L"), ("peak", f"peak {unit}"),
                                 ("why", ""), ("state", "model state MiB"), ("N", "step N"), ("E", "step E"),
                                 ("time", "step s")])


def batching_reading(records: Sequence[dict], limit_bytes: float | None = None) -> str:
    """The figure's reading, computed from its records: RevGNN's flatness and ResGNN's growth per batching."""
    out = []
    unit, scale = _unit(records)
    for batching in ("full", "parts"):
        name = _BATCHING_STYLE[batching]["label"]
        for model in ("rev", "res"):
            rs = sorted((r for r in records if r["model"] == model and r["batching"] == batching
                         and r.get("peak_bytes") and not r.get("oom")), key=lambda r: r["depth"])
            if len(rs) < 2:
                continue
            lo, hi = rs[0], rs[-1]
            above = [(r["peak_bytes"] - r["state_bytes"]) / scale for r in (lo, hi)]
            slope = (hi["peak_bytes"] - lo["peak_bytes"]) / (hi["depth"] - lo["depth"]) / 2**20
            line = (f"{MODEL_NAMES[model]}, {name}: peak {lo['peak_bytes'] / scale:,.2f} {unit} at L = {lo['depth']} "
                    f"and {hi['peak_bytes'] / scale:,.2f} {unit} at L = {hi['depth']} ({slope:,.1f} MiB per layer); "
                    f"above the model state {above[0]:,.2f} -> {above[1]:,.2f} {unit}")
            oom = [r["depth"] for r in records if r["model"] == model and r["batching"] == batching and r.get("oom")]
            if oom and limit_bytes:
                line += f"; from L = {min(oom)} on it does not fit in {limit_bytes / scale:,.1f} {unit}"
            out.append(f"- {line}.")
    return "\n".join(out) if out else "No measured points to read."


def batching_extrapolation(meta: dict) -> str:
    """What a full-batch step needs at ogbn-products' full shape, from the record's probe: the peaks at small
    fractions of the shape (L = 1 and 2) extrapolated linearly in the fraction (nodes and edges scale together)."""
    probe = (meta.get("probe") or {}).get("extrapolation") or {}
    if not probe:
        return "The record carries no extrapolation to the full shape."
    fractions = sorted({r["fraction"] for r in meta["probe"].get("rows", []) if r.get("fraction")})
    rows = []
    for key, fit in sorted(probe.items()):
        model, depth = key.split("_L")
        rows.append({"model": MODEL_NAMES[model], "L": int(depth), "full": f"{fit['full_shape_bytes'] / 2**30:,.1f}",
                     "slope": f"{fit['slope'] / 2**30:,.2f}"})
    shown = ", ".join(f"1/{round(1 / f)}" for f in fractions)
    return (f"Extrapolated to the full shape from full-batch steps at {shown} of it (ours, linear in the fraction; "
            f"the record's `probe`):\n\n" + markdown_table(rows, [("model", "model"), ("L", "L"),
                                                                    ("full", "full-batch peak at the full shape, GiB"),
                                                                    ("slope", "GiB per unit fraction")]))
