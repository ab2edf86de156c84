"""Cross-check of the CPU peak measurement against the operating system (revgnn.measure.memory.measure_in_subprocess).

For each configuration a fresh Python process runs a warm-up step, resets its peak resident set size
(/proc/self/clear_refs), runs one training step and reports how far the peak RSS rose above the RSS before the step;
then it measures the same step with the profiler's allocator events. The two increments should agree up to allocator
slack (glibc is told to return blocks above 64 KiB to the system immediately).

    OMP_NUM_THREADS=1 python benchmarks/rss_crosscheck.py            # about a minute on 2 CPU cores
Writes results/rss_crosscheck.json.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import provenance, save  # noqa: E402

from revgnn import ModelConfig  # noqa: E402
from revgnn.measure.memory import measure_in_subprocess  # noqa: E402

CASES = [  # (model, L, D, nodes, edges)
    ("res", 10, 16, 500, 5_000),
    ("res", 100, 16, 500, 5_000),
    ("rev", 10, 16, 500, 5_000),
    ("rev", 100, 16, 500, 5_000),
    ("res", 2, 32, 13_253, 791_224),
    ("rev", 2, 32, 13_253, 791_224),
]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small-graph cases only")
    p.add_argument("--out", default="rss_crosscheck.json", help="output file name under results/ (or a path)")
    args = p.parse_args(argv)
    rows, t0 = [], time.time()
    for model, L, D, n, e in CASES[:4] if args.quick else CASES:
        # PyG's GENConv (fused=False), the path results/rss_crosscheck.json was measured on
        config = ModelConfig(model=model, num_layers=L, hidden_channels=D, dropout=0.1, fused=False)
        rec = measure_in_subprocess(config, n, e)
        inc = rec.peak_bytes - rec.baseline_bytes
        row = {"model": model, "num_layers": L, "hidden_channels": D, "num_nodes": n, "num_edges": rec.num_edges,
               "profiler_increment_bytes": inc, "rss_increment_bytes": rec.rss_step_bytes,
               "rss_over_profiler": rec.rss_step_bytes / inc if rec.rss_step_bytes else None,
               "rss_method": rec.rss_method, "record": rec.to_dict()}
        rows.append(row)
        rss = "unavailable" if rec.rss_step_bytes is None else \
            f"+{rec.rss_step_bytes / 2**20:.1f} MiB (ratio {row['rss_over_profiler']:.3f})"
        print(f"{model} L={L} D={D} N={n}: profiler +{inc / 2**20:.1f} MiB, RSS {rss}", flush=True)
    path = save(args.out, {"benchmark": "rss_crosscheck", "provenance": provenance("cpu"),
                                        "rows": rows, "seconds": time.time() - t0})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
