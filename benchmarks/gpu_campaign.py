"""One GPU campaign for the paper's configurations (Li et al., 2021, Table 1 and Fig. 1): peak memory and time of
one training step on a shape-identical ogbn-proteins training partition, next to the paper's figures.

    python benchmarks/gpu_campaign.py                       # one CUDA GPU, within 8 minutes (budget 420 s of work)
    OMP_NUM_THREADS=1 python benchmarks/gpu_campaign.py --smoke   # the same code on CPU, tiny shapes, seconds

Items, in order of value (each in its own try/except: an out-of-memory error is recorded, not fatal):

1. ``revgnn-deep`` (1001 x 80) and ``revgnn-wide`` (448 x 224): peak memory and step time on a 13,253-node,
   791,224-edge ``synthetic-proteins`` graph (one of 10 random parts of ogbn-proteins: N/10 nodes, about E/100 edges),
   against the paper's 2.86 / 7.91 GB.
2. ``resgnn-64`` at 112 layers against the paper's 27.1 GB; if it runs out of memory, the largest depth on a
   descending ladder that fits.
3. The five 112-layer families of Fig. 1 at D = 64 (ResGNN, RevGNN, WT-ResGNN, WT-RevGNN, DEQ-GNN).
4. The full-graph step (132,534 nodes, 79,122,504 edges) of RevGNN-64, only where the model has a fused (edge-chunked)
   message-passing path (``ModelConfig.fused``); otherwise recorded as skipped. With it, ``revgnn evaluate``'s cost:
   full-graph no-grad inference at the RevGNN-Deep and -Wide widths at 4 and 16 layers (peak flat in L; time per
   layer, extrapolated to 1001 and 448 layers).
5. The fused operator's pure-torch kernel against PyG's GENConv: a RevGNN-80 step at 16 layers on the partition
   (step time and peak ratio; the native C++ kernel is CPU-only and timed by ``benchmarks/fused.py kernels``).
6. With budget left: the other Fig. 1 widths (80, 224) and ResGNN-64 deeper than 112 until it runs out of memory.

Budget: each item carries an estimate of its seconds on one H100 (guesses from the paper's V100 epoch times,
583 s / 739 s for 10 parts + evaluation); estimates are rescaled by the measured/estimated ratio of the items done,
and an item that would overrun ``--budget-s`` is recorded as skipped. The JSON is rewritten after every item, so a
run killed by a time limit loses only the item in progress. Writes ``results/gpu_campaign_cuda.json`` (``--smoke``:
``gpu_campaign_smoke_cpu.json``); ``--out-dir`` puts it elsewhere.
"""
from __future__ import annotations

import argparse
import dataclasses
import gc
import math
import sys
import time
import warnings
from pathlib import Path

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import RESULTS, provenance  # noqa: E402

from revgnn import ModelConfig, get_preset  # noqa: E402
from revgnn.data.synthetic import FULL_SIZE  # noqa: E402
from revgnn.measure.memory import measure_config, synthetic_graph  # noqa: E402
from revgnn.nn.fused import resolve_kernel  # noqa: E402
from revgnn.training.records import write_json  # noqa: E402

GB = 1e9  # the paper's "GB"; GiB (2**30) is recorded beside it
PARTITION = {"num_nodes": 13_253, "num_edges": 791_224}
SMOKE_GRAPHS = {"partition": {"num_nodes": 200, "num_edges": 1_000}, "full": {"num_nodes": 600, "num_edges": 6_000}}
PAPER_GB = {  # Table 1 and Fig. 1 (../shared/spec/PAPER.md, [unconfirmed] there: taken from the paper's text)
    "revgnn-deep": 2.86, "revgnn-wide": 7.91, "resgnn-64": 27.1, "wt-resgnn-64": 27.4, "deq-gnn-64": 2.22,
    "revgnn-64": 2.09, "wt-revgnn-64": 1.60, "revgnn-80": 2.56, "revgnn-224": 7.30, "wt-revgnn-80": 2.08,
    "wt-revgnn-224": 5.55, "deq-gnn-224": 7.60, "resgnn-224": None,  # None: out of memory in the paper
}
FAMILIES = ("resgnn-64", "revgnn-64", "wt-resgnn-64", "wt-revgnn-64", "deq-gnn-64")
EXTRAS = ("revgnn-80", "revgnn-224", "wt-revgnn-80", "wt-revgnn-224", "deq-gnn-224", "resgnn-224")
RES_LADDER = (96, 80, 64, 48, 32, 16)       # ResGNN-64 depths tried below 112 after an out-of-memory error
RES_DEEPER = (224, 448, 896)                # and above 112, with budget left, until one runs out of memory
INFERENCE_DEPTHS = (4, 16)                  # full-graph inference of the released shapes: two depths, same peak


def has_fused() -> bool:
    """True where :class:`ModelConfig` has the fused edge-chunked message-passing switch."""
    return "fused" in {f.name for f in dataclasses.fields(ModelConfig)}


def is_oom(err: BaseException) -> bool:
    msg = str(err).lower()
    return isinstance(err, torch.cuda.OutOfMemoryError) or "out of memory" in msg or "can't allocate" in msg


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


class Campaign:
    """Runs the items within a time budget and rewrites the result file after each one."""

    def __init__(self, args):
        self.args, self.smoke = args, args.smoke
        self.device = torch.device("cpu" if args.smoke else args.device)
        self.budget_s, self.t0 = args.budget_s, time.perf_counter()
        self.done_estimated = self.done_actual = 0.0
        self.graphs: dict[str, object] = {}
        name = "gpu_campaign_smoke_cpu.json" if self.smoke else f"gpu_campaign_{self.device.type}.json"
        self.path = Path(args.out_dir) / name
        self.result = {
            "benchmark": "gpu_campaign", "provenance": provenance(self.device.type), "smoke": self.smoke,
            "budget_s": self.budget_s, "fused_available": has_fused(),
            "graphs": {"partition": self.graph_size("partition"), "full": self.graph_size("full")},
            "paper_gb": PAPER_GB,
            "notes": "peak_bytes: torch.cuda.max_memory_allocated over one training step (forward, BCE, backward, "
                     "Adam) incl. parameters, Adam state and the graph; peak_reserved_bytes: the caching "
                     "allocator's reserve (closer to nvidia-smi). The paper's GB is read as 1e9 bytes.",
            "items": {}, "seconds": 0.0,
        }

    # shapes -------------------------------------------------------------------------------------------------
    def graph_size(self, which: str) -> dict:
        if self.smoke:
            return SMOKE_GRAPHS[which]
        return dict(PARTITION) if which == "partition" else dict(FULL_SIZE)

    def graph(self, which: str):
        if which not in self.graphs:
            self.graphs.pop("full" if which == "partition" else "partition", None)  # one graph on the device
            _free(self.device)
            size = self.graph_size(which)
            self.graphs[which] = synthetic_graph(size["num_nodes"], size["num_edges"], seed=0).to(self.device)
        return self.graphs[which]

    def shape(self, cfg: ModelConfig) -> ModelConfig:
        """Smoke mode: the same model kind at about sqrt(L) layers (distinct for distinct L) and 1/8 of the width
        (kept even for 2 groups); DEQ-GNN at most 10 solver iterations."""
        if not self.smoke:
            return cfg
        return cfg.replace(num_layers=max(2, round(cfg.num_layers ** 0.5)),
                           hidden_channels=max(4, cfg.hidden_channels // 16 * 2), max_iter=min(cfg.max_iter, 10))

    # measuring ----------------------------------------------------------------------------------------------
    def measure(self, cfg: ModelConfig, graph: str = "partition", preset: str | None = None,
                repeats: int = 1, train: bool = True) -> dict:
        """One training step of ``cfg``: a row with the StepMemory fields, or ``status: oom``.

        Args:
            cfg: The model (shrunk by :meth:`shape` in smoke mode).
            graph: ``partition`` or ``full``.
            preset: The paper's name for it, to compare with :data:`PAPER_GB`.
            repeats: Timed steps after one warm-up step (then one instrumented step gives the peak).
            train: A training step; ``False`` measures one no-grad inference forward (eval mode).
        """
        cfg = self.shape(cfg)
        size = self.graph_size(graph)
        row = {"preset": preset, "config": dataclasses.asdict(cfg), "graph": graph,
               "mode": "train" if train else "eval"}
        oom = None
        try:
            data = self.graph(graph)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="DEQ .* did not converge")
                rec = measure_config(cfg, size["num_nodes"], size["num_edges"], device=str(self.device),
                                     train=train, repeats=repeats, warmup=1, data=data)
        except Exception as err:  # noqa: BLE001 - an out-of-memory error is a result; anything else is reported
            if not is_oom(err):
                raise
            oom = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        if oom is not None:  # outside the except block: the traceback's frames (and their tensors) are gone
            _free(self.device)
            return {**row, "status": "oom", "error": oom}
        row.update(status="ok", **rec.to_dict())
        row["kernel"] = resolve_kernel(cfg.kernel, device=self.device.type) if cfg.fused else "pyg"
        if self.device.type == "cuda":
            row["peak_reserved_bytes"] = int(torch.cuda.max_memory_reserved(self.device))
        row["peak_gb"], row["peak_gib"] = rec.peak_bytes / GB, rec.peak_bytes / 2**30
        if preset in PAPER_GB:
            row["paper_gb"] = PAPER_GB[preset]  # None: out of memory in the paper
            if PAPER_GB[preset]:
                row["peak_over_paper"] = row["peak_gb"] / PAPER_GB[preset]
        _free(self.device)
        return row

    # items --------------------------------------------------------------------------------------------------
    def item_preset(self, name: str, graph: str = "partition") -> dict:
        return {"rows": [self.measure(get_preset(name), graph, preset=name)]}

    def item_resgnn_112(self) -> dict:
        rows = [self.measure(get_preset("resgnn-64"), preset="resgnn-64")]
        out = {"rows": rows}
        if rows[0]["status"] == "oom":
            for L in RES_LADDER:
                rows.append(self.measure(get_preset("resgnn-64").replace(num_layers=L)))
                if rows[-1]["status"] == "ok":
                    break
            fits = [r for r in rows if r["status"] == "ok"]
            out["oom_at_layers"] = rows[0]["config"]["num_layers"]
            out["largest_fitting_layers"] = fits[0]["config"]["num_layers"] if fits else None
        return out

    def item_families(self) -> dict:
        rows = []
        res = self.result["items"].get("resgnn-64-112", {}).get("rows", [])
        for name in FAMILIES:
            if name == "resgnn-64" and res:   # measured by the ResGNN item already
                rows.append(res[0])
                continue
            rows.append(self.measure(get_preset(name), preset=name))
        return {"rows": rows}

    def item_full_graph(self) -> dict:
        if not has_fused():
            return {"status": "skipped", "reason": "this revgnn has no fused message-passing path "
                    "(ModelConfig.fused); the unfused full-graph step holds (E, D) message tensors"}
        cfg = get_preset("revgnn-64").replace(fused=True)
        return {"rows": [self.measure(cfg, graph="full", preset="revgnn-64 (full graph)")],
                "inference": self.full_graph_inference()}

    def full_graph_inference(self) -> dict:
        """``revgnn evaluate``'s cost: one no-grad whole-graph forward of the released shapes (RevGNN-Deep, -Wide;
        fused) at two small depths; the peak should not grow with L, and the time per layer (the difference of the
        two, over the layers between them) extrapolates to the released depth (benchmarks/official_inference.py
        measures the same on a CPU)."""
        out = {}
        for name, depths in (("revgnn-deep", INFERENCE_DEPTHS), ("revgnn-wide", INFERENCE_DEPTHS)):
            full_depth = get_preset(name).num_layers
            rows = [self.measure(get_preset(name).replace(num_layers=L, fused=True), graph="full", preset=None,
                                 train=False) for L in depths]
            entry = {"rows": rows, "layers": full_depth}
            ok = [r for r in rows if r["status"] == "ok"]
            if len(ok) == len(depths):
                (a, b), (la, lb) = ok, [r["config"]["num_layers"] for r in ok]
                per_layer = max(b["step_seconds"] - a["step_seconds"], 0.0) / max(lb - la, 1)
                entry.update(seconds_per_layer=per_layer,
                             seconds_extrapolated=a["step_seconds"] + (full_depth - la) * per_layer,
                             peak_growth=b["peak_bytes"] / a["peak_bytes"])
            out[name] = entry
        return out

    def item_fused_kernels(self) -> dict:
        """The fused operator's pure-torch kernel against PyG's GENConv on this device: one RevGNN-80 training step
        at 16 layers on the partition, median of 3 (the native C++ kernel runs on CPUs only; ``benchmarks/fused.py
        kernels`` times it there). The row's ``kernel`` names what ran."""
        cfg = get_preset("revgnn-80").replace(num_layers=16)
        rows = [self.measure(cfg.replace(fused=True, kernel="torch"), repeats=3),
                self.measure(cfg.replace(fused=False), repeats=3)]
        out = {"rows": rows}
        if all(r["status"] == "ok" for r in rows):
            out["fused_torch_over_pyg_step"] = rows[0]["step_seconds"] / rows[1]["step_seconds"]
            out["fused_torch_over_pyg_peak"] = rows[0]["peak_bytes"] / rows[1]["peak_bytes"]
        return out

    def item_extras(self) -> dict:
        rows = [self.measure(get_preset(name), preset=name) for name in EXTRAS]
        return {"rows": rows}

    def item_resgnn_deeper(self) -> dict:
        first = self.result["items"].get("resgnn-64-112", {}).get("rows", [{}])[0]
        if first.get("status") != "ok":
            return {"status": "skipped", "reason": "ResGNN-64 did not fit at 112 layers"}
        rows = []
        for L in RES_DEEPER:
            rows.append(self.measure(get_preset("resgnn-64").replace(num_layers=L)))
            if rows[-1]["status"] == "oom":
                break
        return {"rows": rows, "oom_at_layers": next((r["config"]["num_layers"] for r in rows
                                                     if r["status"] == "oom"), None)}

    def plan(self) -> list[tuple[str, float, object]]:
        """(item, estimated seconds on one H100, function)."""
        return [
            ("revgnn-deep", 60, lambda: self.item_preset("revgnn-deep")),
            ("revgnn-wide", 75, lambda: self.item_preset("revgnn-wide")),
            ("resgnn-64-112", 20, self.item_resgnn_112),
            ("families-112", 40, self.item_families),
            ("full-graph-revgnn-64", 200, self.item_full_graph),
            ("fused-kernels-partition", 30, self.item_fused_kernels),
            ("extras-112", 90, self.item_extras),
            ("resgnn-64-deeper", 60, self.item_resgnn_deeper),
        ]

    # running ------------------------------------------------------------------------------------------------
    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def save(self) -> None:
        self.result["seconds"] = self.elapsed()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json(self.path, self.result)

    def run(self) -> dict:
        items = self.result["items"]
        plan = self.plan()
        scale_note = "estimates rescaled by measured / estimated seconds of the items done"
        bar = tqdm(plan, desc="gpu campaign", unit="item", disable=self.args.no_progress)
        for name, estimate, fn in bar:
            scale = self.done_actual / self.done_estimated if self.done_estimated > 0 else 1.0
            expected = estimate * scale * (0.01 if self.smoke else 1.0)
            bar.set_postfix(item=name, elapsed=f"{self.elapsed():.0f}s")
            if self.elapsed() + expected > self.budget_s:
                items[name] = {"status": "skipped", "reason": f"over budget: {self.elapsed():.0f} s spent, about "
                               f"{expected:.0f} s expected ({scale_note}), budget {self.budget_s:.0f} s",
                               "estimate_s": estimate}
                self.save()
                continue
            t = time.perf_counter()
            try:
                rec = fn()
            except Exception as err:  # noqa: BLE001 - one failed item must not lose the others
                rec = {"status": "error", "error": f"{type(err).__name__}: {str(err).strip()[:500]}"}
            seconds = time.perf_counter() - t
            rec.setdefault("status", "ok")
            items[name] = {**rec, "estimate_s": estimate, "seconds": seconds}
            if rec["status"] == "ok":
                self.done_estimated += estimate * (0.01 if self.smoke else 1.0)
                self.done_actual += seconds
            tqdm.write(f"{name:22s} {rec['status']:7s} {seconds:7.1f}s  " + "  ".join(
                f"L={r['config']['num_layers']} D={r['config']['hidden_channels']}: "
                + (f"{r['peak_bytes'] / 2**20:.1f} MiB" if r.get("status") == "ok" else r.get("status", "?"))
                for r in rec.get("rows", [])), file=sys.stderr)
            self.save()
        bar.close()
        self.save()
        return self.result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="the same code on CPU with tiny shapes (seconds)")
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--budget-s", type=float, help="seconds of measuring (default 420 on CUDA, 120 with --smoke)")
    p.add_argument("--out-dir", default=str(RESULTS), help="folder for the JSON (default results/)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.budget_s is None:
        args.budget_s = 120.0 if args.smoke else 420.0
    if not args.smoke and args.device == "cuda" and not torch.cuda.is_available():
        p.error("torch sees no CUDA device; run with --smoke (CPU, tiny shapes) or on a GPU machine")
    if not math.isfinite(args.budget_s) or args.budget_s < 0:
        p.error(f"--budget-s must be a finite number >= 0, got {args.budget_s}")
    camp = Campaign(args)
    camp.run()
    sys.stderr.write(f"wrote {camp.path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
