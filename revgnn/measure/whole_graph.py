"""The whole graph: full-batch RevGNN training memory against the number of edges, and its floor.

With reversible connections the activations no longer grow with depth L; what remains is edge-level. PyG's GENConv
builds (E, c) temporaries per block and the model an (E, D) edge embedding; the fused path (:mod:`revgnn.nn.fused`)
builds none beyond one chunk. Whatever the model, a full-graph training step holds at least the *floor*:
edge_index, the edge features, the labels, one N x D state and the parameters with their gradients and Adam's two
moments (:func:`revgnn.training.budget.floor_bytes`, which the size estimate starts from). This module measures step
memory and time over a range of edge counts (fused and PyG) against that floor, reads the committed records of
``benchmarks/fused.py`` and plots them.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from revgnn.nn.presets import ModelConfig, build_model
from revgnn.training.budget import floor_bytes

__all__ = ["edge_sweep", "load_edge_records", "plot_step_vs_edges"]

ROOT = Path(__file__).resolve().parents[2]  # the repository root, against which record paths are shown


def edge_sweep(num_nodes: int, edge_counts: Sequence[int], config: ModelConfig, seed: int = 0,
               repeats: int = 1, pyg_max_edges: int | None = None) -> list[dict]:
    """One training step of ``config`` on ``synthetic-proteins`` graphs of ``num_nodes`` nodes and each of
    ``edge_counts`` edges (:func:`revgnn.measure.memory.measure_config`): fused with each kernel that runs here (the
    native C++ one where it builds, and pure torch) and with PyG's GENConv. PyG's path runs only up to ``pyg_max_edges``
    edges (it needs about 2 KB per edge at D = 80).

    Returns records with ``num_edges``, ``fused``, ``kernel`` (``native``, ``torch`` or ``pyg``), ``peak_bytes``,
    ``step_seconds``, ``floor_bytes``.
    """
    from revgnn.nn.fused import resolve_kernel

    from .memory import measure_config, synthetic_graph

    kernels = ["native", "torch"] if resolve_kernel("auto") == "native" else ["torch"]
    records = []
    for E in edge_counts:
        data = synthetic_graph(num_nodes, E, seed)
        for kernel in [*kernels, "pyg"]:
            fused = kernel != "pyg"
            if not fused and pyg_max_edges is not None and E > pyg_max_edges:
                continue
            cfg = config.replace(fused=fused, kernel=kernel if fused else "auto")
            rec = measure_config(cfg, 0, 0, data=data, repeats=repeats, seed=seed)
            torch.manual_seed(seed)
            records.append({"num_nodes": num_nodes, "num_edges": rec.num_edges, "fused": fused, "kernel": kernel,
                            "peak_bytes": rec.peak_bytes, "step_seconds": rec.step_seconds,
                            "floor_bytes": floor_bytes(data, build_model(cfg), cfg.hidden_channels),
                            "layers": cfg.num_layers, "channels": cfg.hidden_channels, "source": "live",
                            "peak_kind": "tensors"})
    return records


def load_edge_records(sweep_file: str | Path, full_files: Sequence[str | Path] = ()) -> list[dict]:
    """Committed records of ``benchmarks/fused.py``: the ``sweep`` rows and each ``full`` (or ``memory-cli``) run
    that exists.

    ``peak_kind`` says what ``peak_bytes`` is: ``"tensors"`` (the allocator's peak, as ``revgnn memory``) or
    ``"resident"`` (the process's peak resident set size over an un-instrumented ``full`` step, which also counts
    the Python and libtorch process itself; used when the run was not profiled). ``kernel`` is the fused kernel the
    record names (records from before the native kernel, which name none, ran the pure-torch one), or ``pyg``.
    """
    from revgnn.training.records import read_json

    def shown(path: Path) -> str:  # relative to the repository root where it lies there: no build paths on a page
        try:
            return path.resolve().relative_to(ROOT).as_posix()
        except ValueError:
            return str(path)

    records = []
    path = Path(sweep_file)
    if path.is_file():
        result = read_json(path)
        for row in result["rows"]:
            records.append({**row, "kernel": _kernel_of(row.get("config", row), row["fused"]),
                            "step_seconds": row.get("step_seconds_profiled"), "source": shown(path),
                            "peak_kind": "tensors", "provenance": result.get("provenance", {})})
    for f in full_files:
        f = Path(f)
        if f.is_file():
            r = read_json(f)
            if "record" in r:  # benchmarks/fused.py memory-cli: a `revgnn memory --json` record (allocator peak)
                m = r["record"]
                records.append({"num_nodes": m["num_nodes"], "num_edges": m["num_edges"],
                                "fused": m["model"].get("fused", True), "peak_bytes": m["peak_bytes"],
                                "kernel": m["model"].get("kernel_ran") or _kernel_of(m["model"],
                                                                                     m["model"].get("fused", True)),
                                "peak_kind": "tensors", "step_seconds": m["step_seconds"],
                                "floor_bytes": r["floor_bytes"], "layers": m["model"]["num_layers"],
                                "channels": m["model"]["hidden_channels"], "source": shown(f),
                                "provenance": r.get("provenance", {})})
                continue
            tensors = r.get("peak_tensor_bytes")
            records.append({"num_nodes": r["graph"]["num_nodes"], "num_edges": r["graph"]["num_edges"],
                            "fused": r["config"]["fused"], "kernel": r.get("kernel_ran") or _kernel_of(
                                r["config"], r["config"]["fused"]),
                            "peak_bytes": tensors if tensors is not None else r["rss_peak_bytes"],
                            "peak_kind": "tensors" if tensors is not None else "resident",
                            "step_seconds": r["step_seconds"], "floor_bytes": r["floor_bytes"],
                            "layers": r["config"]["num_layers"], "channels": r["config"]["hidden_channels"],
                            "source": shown(f), "provenance": r.get("provenance", {})})
    return records


def _kernel_of(config: dict, fused: bool) -> str:
    if not fused:
        return "pyg"
    kernel = config.get("kernel", "torch")
    return "torch" if kernel == "auto" else kernel  # 'auto' in a record written before kernel_ran: not resolvable


_PATHS = {"native": ("fused, native kernel", "tab:purple", "o"), "torch": ("fused, pure-torch kernel", "tab:blue", "o"),
          "pyg": ("PyG GENConv", "tab:red", "s")}


def plot_step_vs_edges(records: Sequence[dict]):
    """Peak memory and step time against the number of edges, fused and PyG, committed and live, with the floor.

    Returns the matplotlib Figure (two panels, log-log).
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter

    fig, (ax_m, ax_t) = plt.subplots(1, 2, figsize=(11, 5.2), layout="constrained")
    groups, floors = {}, set()
    for r in records:
        live = r.get("source") == "live"
        kernel = r.get("kernel") or _kernel_of({}, r["fused"])
        groups.setdefault((kernel, live, r.get("peak_kind", "tensors")), []).append(r)
    order = list(_PATHS)
    for (kernel, live, kind), rows in sorted(groups.items(), key=lambda kv: (order.index(kv[0][0]), kv[0][1:])):
        rows = sorted(rows, key=lambda r: r["num_edges"])
        fused = kernel != "pyg"
        name, color, marker = _PATHS[kernel]
        label = f"{name} ({'live' if live else 'committed'})"
        style = dict(marker=marker, linestyle="--" if live else "-", color=color, alpha=0.6 if live else 1.0,
                     label=label)
        if kind == "resident":  # whole-graph steps measured by the process's resident set, not the allocator
            label = (f"{name}, whole graph, L = "
                     f"{', '.join(str(r['layers']) for r in rows)} (resident set, committed)")
            style.update(marker="*", markersize=12, linestyle="none", label=label,
                         markeredgecolor="black", markeredgewidth=0.6)
        if kernel == "native":
            style["zorder"] = 4                                         # drawn over the torch points it meets
        E = [r["num_edges"] for r in rows]
        ax_m.plot(E, [r["peak_bytes"] / 2**30 for r in rows], **style)
        ax_t.plot(E, [r["step_seconds"] for r in rows], **style)
        if fused:
            floor_label = f"floor ({'live' if live else 'committed'})"
            ax_m.plot(E, [r["floor_bytes"] / 2**30 for r in rows], color="gray", linestyle=":",
                      marker="_", markersize=14 if kind == "resident" else 6,
                      label=None if floor_label in floors else floor_label)
            floors.add(floor_label)
    for ax, ylabel in ((ax_m, "peak memory of one training step (GiB)"), (ax_t, "step time (s)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("number of edges E")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    handles, labels = ax_m.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=8, frameon=False)  # off the data
    return fig
