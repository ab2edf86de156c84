"""benchmarks/gpu_campaign.py: its --smoke mode runs the CUDA campaign's code on CPU, so the GPU run works the first
time; out-of-memory errors, the time budget and a crash mid-campaign are recorded, never lose finished items."""
import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import gpu_campaign  # noqa: E402

from revgnn.measure.memory import StepMemory  # noqa: E402

ITEMS = ("revgnn-deep", "revgnn-wide", "resgnn-64-112", "families-112", "full-graph-revgnn-64",
         "fused-kernels-partition", "extras-112", "resgnn-64-deeper")


def _run(tmp_path, *argv):
    assert gpu_campaign.main(["--smoke", "--no-progress", "--out-dir", str(tmp_path), *argv]) == 0
    return json.loads((tmp_path / "gpu_campaign_smoke_cpu.json").read_text())


def _fake_measure(fail=lambda cfg: False, peak=1_000_000):
    """A stand-in for revgnn.measure.memory.measure_config: instant, out of memory where ``fail(cfg)``."""
    def measure(cfg, num_nodes, num_edges, device="cpu", repeats=1, warmup=1, data=None, **kw):
        if fail(cfg):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return StepMemory(device="cpu", device_name="fake", method="fake", mode="train", peak_bytes=peak,
                          baseline_bytes=10, state_bytes=100, saved_bytes=0, step_seconds=0.01,
                          num_nodes=num_nodes, num_edges=num_edges)
    return measure


@pytest.mark.slow
def test_smoke_mode_measures_every_item_and_names_the_device(tmp_path):
    r = _run(tmp_path)
    assert list(r["items"]) == list(ITEMS), "every item is recorded, in order"
    assert r["provenance"]["device_name"] and r["provenance"]["device"] == "cpu", "the device is named"
    for name in ("revgnn-deep", "revgnn-wide", "resgnn-64-112", "families-112", "extras-112"):
        assert r["items"][name]["status"] == "ok", f"{name} ran in smoke mode: {r['items'][name]}"
        for row in r["items"][name]["rows"]:
            assert row["status"] == "ok" and row["peak_bytes"] > row["state_bytes"] > 0, f"{name}: a real peak"
            assert row["device"] == "cpu" and row["num_nodes"] == gpu_campaign.SMOKE_GRAPHS["partition"]["num_nodes"]
    deep = r["items"]["revgnn-deep"]["rows"][0]
    assert deep["paper_gb"] == 2.86 and deep["peak_over_paper"] == pytest.approx(deep["peak_gb"] / 2.86)
    assert deep["config"]["model"] == "rev" and deep["config"]["num_layers"] == 32, "RevGNN-Deep at sqrt(1001) layers"
    fams = [row["config"]["model"] for row in r["items"]["families-112"]["rows"]]
    assert fams == ["res", "rev", "wt-res", "wt-rev", "deq"], "the five 112-layer families of Fig. 1"
    kern = r["items"]["fused-kernels-partition"]
    assert kern["status"] == "ok" and [row["kernel"] for row in kern["rows"]] == ["torch", "pyg"], \
        "the fused pure-torch kernel and PyG's GENConv, each named"
    assert kern["fused_torch_over_pyg_step"] > 0 and kern["fused_torch_over_pyg_peak"] > 0
    full = r["items"]["full-graph-revgnn-64"]
    if gpu_campaign.has_fused():
        assert full["status"] == "ok" and full["rows"][0]["config"]["fused"] is True
    else:
        assert full["status"] == "skipped" and "fused" in full["reason"], "skipped out loud without a fused path"


def test_out_of_memory_is_recorded_and_the_ladder_finds_the_depth_that_fits(tmp_path, monkeypatch):
    too_deep = 9  # smoke depths of ResGNN-64: 11 (for 112), 10 (96), 9 (80), ...
    monkeypatch.setattr(gpu_campaign, "measure_config",
                        _fake_measure(lambda cfg: cfg.model == "res" and cfg.num_layers > too_deep))
    r = _run(tmp_path)
    res = r["items"]["resgnn-64-112"]
    assert [row["status"] for row in res["rows"]] == ["oom", "oom", "ok"], "112 and 96 run out, 80 fits"
    assert (res["oom_at_layers"], res["largest_fitting_layers"]) == (11, 9)
    assert "out of memory" in res["rows"][0]["error"]
    assert r["items"]["resgnn-64-deeper"]["status"] == "skipped", "no deeper sweep when 112 did not fit"
    assert r["items"]["revgnn-deep"]["status"] == "ok", "the other items still ran"


def test_an_item_over_budget_is_skipped_with_its_reason(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_campaign, "measure_config", _fake_measure())
    r = _run(tmp_path, "--budget-s", "0")
    assert {v["status"] for v in r["items"].values()} == {"skipped"}
    assert all("over budget" in v["reason"] for v in r["items"].values())


def test_a_crash_mid_campaign_keeps_the_items_done(tmp_path, monkeypatch):
    def fail(cfg):
        if cfg.hidden_channels == 28:   # RevGNN-Wide in smoke shape: the run is killed here
            raise KeyboardInterrupt
        return False
    monkeypatch.setattr(gpu_campaign, "measure_config", _fake_measure(fail))
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path)
    r = json.loads((tmp_path / "gpu_campaign_smoke_cpu.json").read_text())
    assert r["items"]["revgnn-deep"]["status"] == "ok" and "revgnn-wide" not in r["items"], \
        "the file written after each item holds what finished before the crash"
