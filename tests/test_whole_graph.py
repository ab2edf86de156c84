"""revgnn.measure.whole_graph: the edge sweep and the committed whole-graph records name the kernel that ran, and the
figure draws one line per kernel."""
from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

from revgnn import ModelConfig  # noqa: E402
from revgnn.measure.whole_graph import edge_sweep, load_edge_records, plot_step_vs_edges  # noqa: E402
from revgnn.nn.fused import resolve_kernel  # noqa: E402


def test_live_sweep_runs_each_kernel_and_pyg():
    rows = edge_sweep(120, [600], ModelConfig("rev", 2, 8, dropout=0.0), seed=0)
    want = ["native", "torch", "pyg"] if resolve_kernel("auto") == "native" else ["torch", "pyg"]
    assert [r["kernel"] for r in rows] == want
    assert all(r["fused"] == (r["kernel"] != "pyg") and r["peak_bytes"] > 0 for r in rows)


def test_committed_records_name_their_kernel(tmp_path):
    base = {"graph": {"num_nodes": 10, "num_edges": 50}, "peak_tensor_bytes": None, "rss_peak_bytes": 4,
            "step_seconds": 1.0, "floor_bytes": 2}
    old = {**base, "config": {"fused": True, "num_layers": 2, "hidden_channels": 8}}          # before kernels
    new = {**base, "kernel_ran": "native",
           "config": {"fused": True, "kernel": "native", "num_layers": 2, "hidden_channels": 8}}
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "new.json").write_text(json.dumps(new))
    rows = load_edge_records(tmp_path / "absent.json", [tmp_path / "old.json", tmp_path / "new.json"])
    assert [r["kernel"] for r in rows] == ["torch", "native"], "a record without a kernel ran the pure-torch one"
    fig = plot_step_vs_edges(rows)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any("native kernel" in t for t in labels) and any("pure-torch kernel" in t for t in labels), labels


def test_committed_records_are_named_from_the_repository_root():
    """A page names a committed record by its path in the repository, never by the build machine's absolute path."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    rows = load_edge_records(root / "results" / "fused_sweep.json", [root / "results" / "fused_memory_cli.json"])
    assert rows and {r["source"] for r in rows} == {"results/fused_sweep.json", "results/fused_memory_cli.json"}
