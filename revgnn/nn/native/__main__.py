"""Build the native GENConv kernel ahead of use: ``python -m revgnn.nn.native [--all]``.

Without ``--all``: the build this machine loads (as the first :func:`revgnn.nn.native.load` would). With ``--all``:
every build this CPU can run (AVX-512, AVX2, generic: its own and those below it), each in its own process
(``REVGNN_NATIVE_ISA``), two at a time, into the shared cache; ``make setup`` runs it, so that the tests that check
the other builds load them instead of compiling them. One line per build; exit 1 if the default build fails.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

_ONE = "from revgnn.nn import native; m = native.load(); print(native._state.get('isa') if m else native.error())"


def _build(variant: str | None) -> tuple[str, bool, str, float]:
    env = dict(os.environ)
    if variant:
        env["REVGNN_NATIVE_ISA"] = variant
    t0 = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", _ONE], env=env, capture_output=True, text=True)
    got = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr.strip()[-300:]
    ok = run.returncode == 0 and (variant is None or got == variant)
    return variant or "default", ok, got, time.perf_counter() - t0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--all", action="store_true", help="every build this CPU can run, not only its own")
    args = p.parse_args(argv)
    from revgnn.nn.native import runnable_variants

    variants = runnable_variants() if args.all else [None]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(_build, variants))
    for name, ok, got, seconds in results:
        outcome = f"ok ({got})" if ok else f"FAILED: {got}"
        print(f"revgnn native kernel, {name} build: {outcome} in {seconds:.0f} s")
    return 0 if results[0][1] else 1


if __name__ == "__main__":
    sys.exit(main())
