"""The CI depth test's claim over seeds 0-4 and 1 and 2 intra-op threads (a stand-in for another CPU's float paths).

    OMP_NUM_THREADS=1 python benchmarks/depth_claim.py --jobs 2      # 10 (seed, threads) pairs, ~25 min quiet

Runs exactly ``depth_gap`` of ``tests/test_depth.py`` (1- and 4-layer RevGNN, D = 32, 400 epochs, default
synthetic-proteins) for every (seed, threads) pair, each in its own process, and writes ``results/depth_claim.json``:
both test ROC-AUCs per pair, the gap, and whether the test's assertion (gap > MARGIN) holds for every pair.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import provenance, write_result  # noqa: E402

TEST = Path(__file__).resolve().parent.parent / "tests" / "test_depth.py"


def _test_module():
    spec = importlib.util.spec_from_file_location("test_depth", TEST)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _pair(seed: int, threads: int) -> dict:
    torch.set_num_threads(threads)
    start = time.perf_counter()
    auc = _test_module().depth_gap(seed)
    return {"seed": seed, "threads": threads, "auc_L1": auc[1], "auc_L4": auc[4], "gap": auc[4] - auc[1],
            "wall_time_s": time.perf_counter() - start}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--jobs", type=int, default=1, help="pairs run at once, each in its own process")
    p.add_argument("--out", help="output path (default results/depth_claim.json)")
    args = p.parse_args()
    test = _test_module()
    pairs = [(s, t) for t in map(int, args.threads.split(",")) for s in map(int, args.seeds.split(","))]
    rows = []
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(_pair, s, t) for s, t in pairs]
        for f in tqdm(as_completed(futures), total=len(futures), desc="depth claim"):
            rows.append(f.result())
    rows.sort(key=lambda r: (r["threads"], r["seed"]))
    worst = min(rows, key=lambda r: r["gap"])
    result = {"benchmark": "depth_claim", "provenance": provenance("cpu"),
              "setting": {"epochs": test.EPOCHS, "margin": test.MARGIN, "test": "tests/test_depth.py",
                          "model": "RevGNN D=32 C=2 dropout 0.1, lr 0.01, synthetic-proteins 4,000 nodes"},
              "rows": rows,
              "targets": {"gap_above_margin_for_every_pair": {
                  "target": f"auc(L=4) - auc(L=1) > {test.MARGIN} for every seed and thread count",
                  "worst_gap": worst["gap"], "worst_pair": [worst["seed"], worst["threads"]],
                  "met": all(r["gap"] > test.MARGIN for r in rows)}}}
    return write_result("depth_claim", "cpu", args.out, result)


if __name__ == "__main__":
    sys.exit(main())
