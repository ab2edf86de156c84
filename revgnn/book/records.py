"""Records of the revgnn book: the paper's published numbers and ours, as flat dicts, for "Training Graph Neural
Networks with 1000 Layers" (Li et al., ICML 2021).

Two sources are never mixed up. The paper's numbers (:data:`PAPER_112_LAYERS`, :data:`PAPER_MAIN`) carry the
confidence mark of the project's PAPER.md (:data:`PAPER_MARKS`, the key the book's index shows). Ours are *records*:
flat dicts with ``model`` (one of :data:`MODEL_NAMES`), ``num_layers``, ``hidden_channels``, the measured values
(``roc_auc``, ``test`` ± ``test_std``, ``peak_bytes``, ...), ``source`` (the committed file, or none for a fresh run)
and their provenance. :func:`load_records` reads memory records, :func:`accuracy_records` accuracy records,
:func:`memory_records` and :func:`live_record` make fresh ones; :func:`markdown_table` prints any of them.

The bottom layer of :mod:`revgnn.book` with :mod:`revgnn.book.params`: it imports nothing else of the book.
"""
from __future__ import annotations

import contextlib
import json
import math
import shlex
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from revgnn.nn.presets import PAPER_PARAMS

__all__ = ["REPO_ROOT", "FRESH", "MODEL_NAMES", "PAPER_MARKS", "PAPER_112_LAYERS", "PAPER_MAIN", "resolve_path",
           "load_records", "memory_records", "solver_misses", "solver_summary", "accuracy_records", "live_record",
           "markdown_table"]

REPO_ROOT = Path(__file__).resolve().parents[2]  # a relative results path means the same file from any folder


FRESH = "fresh (this run)"  # the source of a record this notebook computed


def resolve_path(path: str | Path) -> Path:
    """``path`` as given when absolute, else relative to the repository root (never to the working directory)."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else REPO_ROOT / path


def _display(path: Path) -> str:
    try:
        return path.resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(path)


MODEL_NAMES = {"res": "ResGNN", "res-ckpt": "ResGNN + checkpointing", "rev": "RevGNN", "wt-res": "WT-ResGNN",
               "wt-rev": "WT-RevGNN", "deq": "DEQ-GNN", "revgat": "RevGAT", "revsage": "RevSAGE", "ressage": "ResSAGE"}


PAPER_MARKS = {
    "paper": "the paper's own text",
    "code": "the official code or its README",
    "OGB": "the OGB leaderboard entry the authors submitted",
    "derived": "arithmetic that reproduces an [OGB] number exactly",
    "derived from paper": "arithmetic on [paper] numbers (e.g. seconds per epoch from days of training)",
    "derived from unconfirmed": "arithmetic on [unconfirmed] numbers",
    "unconfirmed": "second-hand transcription of the paper's tables, not checked against the PDF",
}  # the key of the book's index; every mark on a page is one of these (tests/test_book.py checks it)


# The paper's 112-layer comparison on ogbn-proteins (Fig. 1 and its table): ROC-AUC % and training GPU memory
# (GB, one V100 32 GB) are [unconfirmed]; parameter counts carry their own marks (PAPER.md, sections 2 and 4).
def _paper_112(name: str, model: str, channels: int, roc_auc: float | None, memory_gb: float | None,
               oom: bool = False) -> dict:
    """One point of the paper's 112-layer comparison; the parameter count and its mark come from
    :data:`revgnn.nn.presets.PAPER_PARAMS` (the same record the preset tests assert)."""
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


def solver_summary(entries: Sequence[dict]) -> dict | None:
    """DEQ-GNN's solves from :func:`revgnn.nn.deq.solver_fields` records (a training history, or one measured step):
    ``{"forward"|"backward": {"iterations", "residual", "converged", "tol", "solves", "unconverged"}}``, the last
    solve's statistics and, over all entries, how many solves ran and how many stopped above the tolerance; None when
    no entry carries them (a layered model)."""
    entries = [e for e in entries if e.get("deq_forward_iters") is not None]
    if not entries:
        return None
    out = {}
    for kind in ("forward", "backward"):
        last = next((e for e in reversed(entries) if e.get(f"deq_{kind}_iters") is not None), None)
        if last is None:
            continue
        counted = [e for e in entries if e.get(f"deq_{kind}_solves") is not None]
        out[kind] = {"iterations": last[f"deq_{kind}_iters"], "residual": last[f"deq_{kind}_residual"],
                     "converged": last[f"deq_{kind}_converged"], "tol": last.get("deq_tol"),
                     "solves": sum(e[f"deq_{kind}_solves"] for e in counted) if counted else None,
                     "unconverged": sum(e[f"deq_{kind}_unconverged"] for e in counted) if counted else None}
    return out


@contextlib.contextmanager
def solver_misses() -> Iterator[dict]:
    """Count DEQ-GNN's solves that missed their tolerance (:class:`revgnn.nn.deq.ConvergenceWarning`) instead of letting
    each print a warning line: a page then says how many forward and backward solves did not converge (one line,
    :func:`revgnn.book.prose.deq_solver_note`) where a notebook would show a wall of warnings.

    Yields:
        ``{"forward": n, "backward": n, "last": the last warning's text}``, filled when the block ends. Other warnings
        pass through.
    """
    from revgnn.nn.deq import ConvergenceWarning

    counts: dict = {"forward": 0, "backward": 0}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        try:
            yield counts
        finally:
            others = []
            for w in caught:
                if issubclass(w.category, ConvergenceWarning):
                    counts["backward" if "backward" in str(w.message) else "forward"] += 1
                    counts["last"] = str(w.message)
                else:
                    others.append(w)
    for w in others:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def memory_records(points: Iterable[tuple[dict, object]], data, device="cpu", seed: int = 0,
                   limit_bytes: float | None = None, repeats: int = 1) -> list[dict]:
    """Measure one training step per ``(labels, ModelConfig)`` point with :func:`revgnn.measure.memory.measure_config`.

    Each record is the :class:`~revgnn.measure.memory.StepMemory` as a dict, plus ``labels`` (e.g. model, depth, width),
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

    from revgnn.measure.memory import measure_config
    from revgnn.training.records import environment

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
            with solver_misses() as misses:
                step = measure_config(config, data.num_nodes, data.num_edges, device=str(device), seed=seed,
                                      data=data, repeats=repeats).to_dict()
            if config.model == "deq":  # at tol 0 (Fig. 4) every solve runs its cap: "converged" means nothing there
                step["solver_misses"] = misses
                step["solver"] = solver_summary([step])
                if config.tol > 0 and step["solver"]:
                    step["converged"] = all(v["converged"] for v in step["solver"].values())
        except torch.cuda.OutOfMemoryError:
            step = {"peak_bytes": None, "oom": True}
            torch.cuda.empty_cache()
        step["oom"] = step.get("oom", False) or (limit_bytes is not None and step["peak_bytes"] > limit_bytes)
        if step["oom"]:
            out_of_memory.add(series)
        records.append({**step, "config": step.get("model"), **record, "oom": step["oom"]})
    return records


def _pct(value: float | None) -> float | None:
    """A ROC-AUC or accuracy as a percentage, whether it was recorded as a fraction or as %."""
    return None if value is None else value * (100 if value <= 1 else 1)


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


def accuracy_records(path: str | Path) -> list[dict]:
    """Rows of a committed ``results/accuracy_*.json`` as records, with the setting read from each row's command.

    Each record has the row's fields (``name``, ``test``, ``test_std``, ``valid``, ``params``, ``seeds``, ...) plus
    ``model``, ``num_layers``, ``hidden_channels``, ``epochs``, ``dataset``, ``num_nodes``, ``num_edges`` (the
    values the command trains with, defaults included), ``source``, ``git_revision`` and ``device_name``.
    ``[]`` when the file does not exist.
    """
    from revgnn.cli import build_parser
    from revgnn.commands.train import model_config, train_config
    from revgnn.data.synthetic import SyntheticProteinsConfig

    path = resolve_path(path)
    if not path.is_file():
        return []
    content = json.loads(path.read_text())
    prov = content.get("provenance") or {}
    records = []
    for row in content.get("rows", []):
        args = build_parser().parse_args(shlex.split(row["command"])[1:])
        mcfg, tcfg = model_config(args), train_config(args)
        size = {}
        if tcfg.dataset.startswith("synthetic-proteins"):
            synthetic = SyntheticProteinsConfig(**{k: v for k, v in tcfg.dataset_kwargs.items()
                                                   if k in ("num_nodes", "num_edges", "max_hops")})
            size = {"num_nodes": synthetic.num_nodes, "num_edges": synthetic.num_edges,
                    "max_hops": synthetic.max_hops}
        records.append({
            "model": row.get("model", mcfg.model), "num_layers": row.get("num_layers", mcfg.num_layers),
            "hidden_channels": row.get("hidden_channels", mcfg.hidden_channels), "epochs": tcfg.epochs,
            "dataset": tcfg.dataset, **size, **row, "peak_bytes": row.get("peak_bytes", row.get("peak_memory_bytes")),
            "source": _display(path), **_provenance_fields(row.get("provenance") or prov)})  # a rerun row has its own
    return records


def _provenance_fields(prov: dict) -> dict:
    return {"git_revision": prov.get("git_revision"), "device_name": prov.get("device_name") or prov.get("device"),
            "device": prov.get("device")}


def live_record(run: dict, config, data, epochs: int, **labels) -> dict:
    """A record of one seeded run of :func:`revgnn.training.loop.fit` (``summary["runs"][i]``), with the setting the
    "plotted from" table reads: model, L, D, graph size, epochs, seed, device, revision; ``roc_auc`` is the test
    metric at the best validation epoch (a fraction)."""
    hop = getattr(data.data, "hop", None)  # synthetic-proteins: each task's radius
    return {"model": config.model, "num_layers": config.num_layers, "hidden_channels": config.hidden_channels,
            "dataset": data.name, "num_nodes": data.num_nodes, "num_edges": data.data.num_edges, "epochs": epochs,
            "max_hops": int(hop.max()) if hop is not None else None,
            "seed": run["seed"], "roc_auc": run["best"]["test"], "valid": run["best"]["valid"],
            "params": run["params"], "device_name": run["device"], "git_revision": run["git_revision"],
            **({"solver": solver_summary(run.get("history") or []), "max_iter": config.max_iter}
               if config.model == "deq" else {}), **labels}
