"""Where a figure's points come from: committed records or a fresh run, and the "plotted from" table that says so.

Part of the book of "Training Graph Neural Networks with 1000 Layers" (Li et al., ICML 2021). The figure notebooks
either measure their points (a *fresh* run at the notebook's parameters) or read the records a benchmark committed
to ``results/``. A committed record stands in for a fresh run only when every parameter that shapes it equals the
record's (depths, width, graph size, seed, dataset, device); otherwise the notebook measures fresh, or, when asked
for committed records explicitly, stops with an error that names the differences and how to ask for a fresh run
(:func:`committed_or_fresh`).

Every figure page ends with :func:`plotted_from`: one table row per series with its source (committed file and
revision, or fresh), depths, width D, nodes N, edges E, epochs, seeds and device, generated from the records, and
with :func:`rerun_note`, how to rerun it.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .params import check_choice, check_range, check_results_file, check_save_to, notebook_dataset, notebook_device
from .records import (
    FRESH,
    MODEL_NAMES,
    _display,
    accuracy_records,
    load_records,
    markdown_table,
    memory_records,
    resolve_path,
)

__all__ = ["memory_file_setting", "committed_or_fresh", "plotted_from", "describe_values", "memory_comparison",
           "accuracy_results_table", "rerun_note"]

def memory_file_setting(path: str | Path, models: Sequence[str]) -> dict | None:
    """The parameters that shaped a committed ``benchmarks/memory_depth.py`` result, or None when it is missing.

    Returns:
        ``{"x": {model: sorted depths or iterations}, "hidden_channels", "num_nodes", "num_edges", "seed",
        "dataset", "device", "source", "git_revision"}``.
    """
    path = resolve_path(path)
    if not path.is_file():
        return None
    content = check_results_file("results_file", path)
    if not isinstance(content, dict):
        raise ValueError(f"parameter results_file={str(path)!r} is not a memory benchmark record (no 'rows'); give "
                         "one of results/memory_depth_*.json")
    graph = content.get("graph") or {}
    prov = content.get("provenance") or {}
    rows = [r for r in content.get("rows", []) if r.get("mode", "train") == "train"]
    paths = {bool((r.get("model") or {}).get("fused", False)) for r in rows}  # records before revgnn.nn.fused: PyG
    return {"x": {m: sorted({r["x"] for r in rows if r["label"] == m}) for m in models},
            "fused": paths.pop() if len(paths) == 1 else None,
            "hidden_channels": content.get("hidden_channels"), "num_nodes": graph.get("num_nodes"),
            "num_edges": graph.get("num_edges"), "seed": graph.get("seed"),
            "dataset": str(graph.get("name", "")).split(" ")[0], "device": prov.get("device"),
            "source": _display(path), "git_revision": prov.get("git_revision")}


def committed_or_fresh(source: str, results_file: str, asked: dict, models: Sequence[str]) -> tuple[bool, str]:
    """Decide whether committed memory records may stand in for a fresh measurement at the asked parameters.

    Args:
        source: ``"auto"`` (committed when every shaping parameter matches, else fresh), ``"committed"`` (an error
            unless they all match) or ``"fresh"``.
        results_file: the committed file (relative to the repository root, or absolute).
        asked: the notebook's values of the shaping parameters: ``x`` (``{model: depths}``), ``hidden_channels``,
            ``num_nodes``, ``num_edges``, ``seed``, ``dataset``, ``device``, ``fused``.
        models: model kinds the figure draws.

    Returns:
        ``(use_committed, note)``: the note says in one sentence which source was chosen and why.

    Raises:
        ValueError: ``source="committed"`` but the file is missing or differs from the asked parameters.
    """
    if source == "fresh":
        return False, "measured fresh (source fresh)"
    setting = memory_file_setting(results_file, models)
    if setting is None:
        if source == "committed":
            raise ValueError(f"source='committed' but {resolve_path(results_file)} does not exist; "
                             "pass -p source fresh to measure")
        return False, f"measured fresh: {results_file} does not exist"
    differ = []
    for key, value in asked.items():
        have = setting.get(key)
        if key == "x":
            have = {m: setting["x"].get(m) for m in value}
            value = {m: sorted(v) for m, v in value.items()}
        if have != value:
            differ.append(f"{key} {have} (committed) != {value} (asked)")
    if not differ:
        return True, f"committed records of {setting['source']} (every shaping parameter matches)"
    if source == "committed":
        raise ValueError(f"source='committed' but {setting['source']} was measured at other parameters: "
                         + "; ".join(differ) + ". Pass -p source fresh (or source auto) to measure them")
    return False, "measured fresh: the committed records differ in " + "; ".join(differ)


def describe_values(values) -> str:
    """``[1, 2, 4]`` as ``1, 2, 4``; one value as itself; nothing as '–'."""
    values = sorted({v for v in values if v is not None}, key=lambda v: (str(type(v)), v))
    if not values:
        return "–"
    return ", ".join(f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v) for v in values)


def _seeds(record: dict) -> list:
    seeds = record.get("seeds")
    if isinstance(seeds, list):
        return [s["seed"] if isinstance(s, dict) else s for s in seeds]
    prov = record.get("provenance") or {}
    seed = record.get("seed", prov.get("seed"))
    return [] if seed is None else [seed]


def _short(revision: str) -> str:
    """A git revision in 10 characters, keeping the ``+dirty`` mark of a run on uncommitted code."""
    return revision[:10] + ("+dirty" if revision.endswith("+dirty") else "")


def _device(record: dict) -> str | None:
    prov = record.get("provenance") or {}
    name = record.get("device_name") or prov.get("device_name") or prov.get("device") or record.get("device")
    return None if name is None else str(name)


def plotted_from(series: dict[str, Sequence[dict]], x_key: str = "num_layers") -> str:
    """The "plotted from" Markdown table: one row per series, generated from its records.

    Args:
        series: label -> records drawn under it. A record's ``source`` is its committed file (shown with the
            record's ``git_revision``); a record without one was computed by this run.
        x_key: the record key of the depth axis (``num_layers``, or ``depth`` in memory records).

    Columns: series, source, revision, depths L (of the layered models), DEQ-GNN's solver iterations (its cap,
    when a series has DEQ-GNN: it has no layers), D, N, E, epochs, seeds, device.
    """
    rows = []
    for label, records in series.items():
        if not records:
            rows.append({"series": label, "source": "none (no records)"})
            continue
        sources = {r.get("source") or FRESH for r in records}
        revisions = {_short(r.get("git_revision") or (r.get("provenance") or {}).get("git_revision") or "")
                     for r in records}
        rows.append({
            "series": label, "source": describe_values(sources), "revision": describe_values(revisions - {""}),
            "L": describe_values(r.get(x_key) for r in records if r.get("model") != "deq"),
            "iterations": describe_values(r.get(x_key) if x_key == "depth" else r.get("max_iter")
                                          for r in records if r.get("model") == "deq"),
            "D": describe_values(r.get("hidden_channels") for r in records),
            "N": describe_values(r.get("num_nodes") for r in records),
            "E": describe_values(r.get("num_edges") for r in records),
            "epochs": describe_values(r.get("epochs") for r in records),
            "seeds": describe_values(s for r in records for s in _seeds(r)),
            "device": describe_values(_device(r) for r in records),
            "hops": describe_values(r.get("max_hops") for r in records)})
    columns = [("series", "series"), ("source", "source"), ("revision", "revision"), ("L", "depths L"),
               ("D", "D"), ("N", "N (nodes)"), ("E", "E (edges)"), ("epochs", "epochs"), ("seeds", "seeds"),
               ("device", "device")]
    if any(r.get("max_hops") is not None for records in series.values() for r in records):
        columns.insert(7, ("hops", "task radii up to"))  # synthetic-proteins' max_hops
    if any(r.get("model") == "deq" for records in series.values() for r in records):
        columns.insert(4, ("iterations", "DEQ-GNN solver iterations"))  # DEQ-GNN has no layers: its own column
    return "**Plotted from**\n\n" + markdown_table(rows, columns)


def memory_comparison(models: Sequence[str], depths: Sequence[int], hidden_channels: int, memory_limit_mb: float,
                      seed: int, device: str, source: str, results_file: str, save_to: str, dataset: str,
                      num_nodes: int, num_edges: int, data_root: str = "",
                      iterations: Sequence[int] = (), fused: bool = False) -> tuple[list[dict], str, float | None]:
    """The records of one memory figure (Figs. 2-4): committed when they match the parameters, else measured.

    Args:
        models: model kinds to draw (``res``, ``res-ckpt``, ``rev``, ``wt-res``, ``wt-rev``, ``deq``).
        depths: layer counts L of every model but DEQ-GNN.
        iterations: DEQ-GNN's solver iteration caps (tolerance 0, so every iteration runs).
        memory_limit_mb: a step needing more is drawn as out of memory; 0 = the device's own limit.
        source, results_file: see :func:`committed_or_fresh`; save_to: write fresh records there ('' = nowhere).
        fused: message passing of every model: PyG's GENConv (False, as the paper measured) or revgnn.nn.fused.
        The others are the notebook's parameters of the same names.

    Returns:
        ``(records, note, limit_bytes)``; every record has ``model``, ``depth`` (L, or the DEQ iteration cap),
        ``hidden_channels``, ``peak_bytes``, ``state_bytes``, ``oom``, ``num_nodes``, ``num_edges`` and its
        provenance; the note says where they came from.
    """
    import torch


    check_choice("source", source, ("auto", "fresh", "committed"))
    check_range("memory_limit_mb", memory_limit_mb, 0, None)
    check_range("hidden_channels", hidden_channels, 2, None, integer=True)
    for name, values in (("depths", depths), ("iterations", iterations)):
        for value in values:
            check_range(name, value, 1, 4096, integer=True)
    check_save_to("save_to", save_to, resolve_path(save_to) if save_to else None)
    device = notebook_device(device)
    limit = memory_limit_mb * 2**20 or (torch.cuda.get_device_properties(device).total_memory
                                        if device.type == "cuda" else None)
    x = {m: list(iterations if m == "deq" else depths) for m in models}
    if not isinstance(fused, bool):
        raise ValueError(f"parameter fused must be True or False, got {fused!r}")
    asked = {"x": x, "hidden_channels": hidden_channels, "num_nodes": num_nodes, "num_edges": num_edges,
             "seed": seed, "dataset": dataset, "device": device.type, "fused": fused}
    use_committed, note = committed_or_fresh(source, results_file, asked, models)
    if use_committed:
        records = [r for r in load_records(results_file) if r["model"] in models]
        for r in records:  # a committed step counts as out of memory when it would not fit under this limit
            r["oom"] = bool(r.get("oom")) or (limit is not None and (r["peak_bytes"] or 0) > limit)
        return records, note, limit
    from revgnn import ModelConfig
    from revgnn.training.config import TrainConfig, adapt_model_config
    from revgnn.training.records import write_json

    data = notebook_dataset(dataset, num_nodes, num_edges, seed, data_root)
    base = adapt_model_config(ModelConfig("rev", 1, hidden_channels, fused=fused), data, TrainConfig(dataset=dataset))
    points = [({"model": kind, "depth": depth, "dataset": data.name},
               base.replace(model=kind.removesuffix("-ckpt"), checkpoint_grads=kind.endswith("-ckpt"),
                            num_layers=1 if kind == "deq" else depth, max_iter=depth, tol=0.0))
              for kind in models for depth in sorted(x[kind])]
    points = [(labels, config if labels["model"] == "deq" else config.replace(max_iter=base.max_iter, tol=base.tol))
              for labels, config in points]
    records = memory_records(points, data.data, device, seed, limit_bytes=limit)
    if save_to:
        write_json(resolve_path(save_to), records)
    return records, note, limit


ACCURACY_FILES = ("accuracy_synthetic-depth.json", "accuracy_fig1.json", "accuracy_ppi.json", "accuracy_cora.json")


def accuracy_results_table(results_dir: str | Path = "results") -> str:
    """The results page's table of every committed accuracy record (``results/accuracy_*.json``), generated.

    One row per configuration: data and metric, model (``RevGNN-32``: named by its own width), L, D, params, test and
    valid in % as mean ± std over the seeds ('–' for a single seed), seeds, the hidden-truth ceiling where there is
    one, and the file with its revision. Written by the book build into ``_build/_generated/accuracy.md``, which
    ``book/results.md`` includes, so the page always quotes the committed files as they are.
    """
    from revgnn.data.synthetic import MAX_HOPS

    folder = resolve_path(results_dir)
    names = [n for n in ACCURACY_FILES if (folder / n).is_file()]
    names += sorted(p.name for p in folder.glob("accuracy_*.json") if p.name not in names)
    rows = []
    for name in names:
        for r in accuracy_records(folder / name):
            scale = 100
            seeds = len(r.get("seeds") or [])
            size = f", {r['num_nodes']:,} nodes" if r.get("num_nodes") else ""
            if r.get("max_hops") not in (None, MAX_HOPS):  # synthetic-proteins with other radii than the default
                size += f", radii 1-{r['max_hops']}"
            rows.append({
                "data": f"`{r['dataset']}`{size}, {'accuracy' if r['metric'] == 'acc' else 'ROC-AUC'}",
                "model": f"{MODEL_NAMES[r['model']]}-{r['hidden_channels']}", "L": r["num_layers"],
                "epochs": r["epochs"], "params": r["params"],
                "test": f"{scale * r['test']:.1f} ± " + (f"{scale * r['test_std']:.1f}" if seeds > 1 else "–"),
                "valid": f"{scale * r['valid']:.1f} ± " + (f"{scale * r['valid_std']:.1f}" if seeds > 1 else "–"),
                "seeds": seeds, "ceiling": None if r.get("oracle_test") is None else f"{100 * r['oracle_test']:.1f}",
                "file": f"`{r['source']}` ({(r.get('git_revision') or '')[:7]})"})
    return markdown_table(rows, [("data", "data, metric"), ("model", "model"), ("L", "L"), ("epochs", "epochs"),
                                 ("params", "params"), ("test", "test %"), ("valid", "valid %"), ("seeds", "seeds"),
                                 ("ceiling", "hidden-truth ceiling %"), ("file", "file (revision)")])


def rerun_note(notebook: str, example: str, records: Sequence[str] = (), note: str = "", what: str = "figure") -> str:
    """The "Rerun this figure" box of a book page, in plain Markdown (a block quote), so that it reads the same in
    the built book and in JupyterLab (MyST directives show as raw text there).

    Args:
        notebook: the notebook's stem, e.g. ``fig2_memory_res_vs_rev``.
        example: papermill ``-p`` options of a non-default run, shown as the first command.
        records: repository-relative JSON files behind the page; those that exist get a link (a download link in the
            built book, whose pages lie in ``book/_executed/``), a missing one is named as not committed.
        note: one more sentence (e.g. the benchmark command that wrote the records).
        what: "figure", "table" or "run".
    """
    links = []
    for record in records:
        if resolve_path(record).is_file():
            links.append(f"[`{record}`](../../{record})")
        else:
            links.append(f"`{record}` (not committed in this revision)")
    lines = [
        f"**Rerun this {what}.** From the repository root (relative paths such as `results_file` are read from the "
        "repository root, so any working directory gives the same data):", "", "```bash",
        f"papermill notebooks/{notebook}.ipynb /tmp/{notebook}.ipynb {example}",
        f"papermill notebooks/{notebook}.ipynb /tmp/{notebook}.ipynb -f params/smoke/{notebook}.yaml",
        f"python -m revgnn.book --only {notebook} --params smoke   # this page only, then the book",
        "make book PARAMS=smoke          # every page with params/smoke/<notebook>.yaml",
        f"papermill --help-notebook notebooks/{notebook}.ipynb   # every parameter with its type", "```", "",
        '`-p name value` sets one parameter; a list is given as text, `-p depths "[1, 2, 4]"` (or '
        '`-y "depths: [1, 2, 4]"`). A misspelled name stops the run with an error.' + (f" {note}" if note else "")]
    if links:
        lines += ["", "The records behind it: " + ", ".join(links) + "."]
    return "\n".join(("> " + line).rstrip() for line in lines)
