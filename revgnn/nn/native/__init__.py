r"""The native CPU kernel of GENConv's aggregation (Li et al., 2020; 2021) on destination-sorted edges.

A torch C++ extension (``genconv.cpp``) built on first use with ``torch.utils.cpp_extension.load`` (g++ and ninja,
``-O3 -fopenmp -fno-trapping-math``; one more build, chosen at run time from what the CPU has, adds ``-mavx512f
-mavx512vl -mavx512bw -mavx512dq -mavx2 -mfma`` (AVX-512: 32 vector registers, which hold the folded encoder's
columns) or ``-mavx2 -mfma``; the generic one runs elsewhere or if that build fails) and cached under
``$TORCH_EXTENSIONS_DIR`` or ``~/.cache/revgnn/torch_extensions``. The first build, measured on this project's
shared 2-core machine, took 56-130 s of wall time for one variant (42-54 s of compiler CPU time; 56 s at load
average 1.5, 130 s at 6.5 under ``nice``); later processes load the cached library in 0.3 s. ``make setup``
pre-builds it; it needs g++ (or another C++17 compiler), the Python headers and ninja (a pip dependency). Where it
cannot be built, :func:`load` returns ``None`` after one logged line and :func:`revgnn.fused.gen_aggregate` runs its
pure-torch path.

Per destination node i (rows rowptr[i]..rowptr[i+1] of the sorted edges) the kernel computes the messages
m_ij = ReLU(x_j + A u_ij + a) + eps into a per-thread buffer and reduces them (max with its tie count and arg edge,
softmax, mean, add); the backward pass recomputes them, scatters the gradients to sources into per-thread buffers
and reduces those. OpenMP runs over destination nodes with ``torch.get_num_threads()`` threads. Where no gradient
will be asked for (:func:`aggregate_no_grad`), max keeps its running maximum alone, without the tie count and arg
edge that its backward reads.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["load", "available", "build_seconds", "error", "isa", "cpu_isa", "runnable_variants", "NativeAggregate",
           "aggregate_no_grad", "AGGR_CODES"]

log = logging.getLogger(__name__)
AGGR_CODES = {"max": 0, "softmax": 1, "mean": 2, "add": 3}
_SOURCE = Path(__file__).with_name("genconv.cpp")
_state: dict = {}


_FLAGS = ["-O3", "-fopenmp", "-fno-trapping-math"]
_ISA = {"generic": [], "avx2": ["-mavx2", "-mfma"],      # a build runs only where the CPU has its instructions
        "avx512": ["-mavx512f", "-mavx512vl", "-mavx512bw", "-mavx512dq", "-mavx2", "-mfma"]}
_FALLBACK = {"avx512": ["avx512", "avx2", "generic"], "avx2": ["avx2", "generic"], "generic": ["generic"]}


def _build_dir(name: str) -> Path:
    root = os.environ.get("TORCH_EXTENSIONS_DIR") or Path.home() / ".cache" / "revgnn" / "torch_extensions"
    tag = f"torch{torch.__version__.split('+')[0]}"
    path = Path(root) / tag / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def cpu_isa() -> str:
    """The best variant this CPU runs, from what torch reports (``REVGNN_NATIVE_ISA`` aside)."""
    return {"AVX512": "avx512", "AVX2": "avx2"}.get(torch.backends.cpu.get_cpu_capability(), "generic")


def runnable_variants() -> list[str]:
    """Every build this CPU can run, best first (its own and those below it)."""
    return list(_FALLBACK[cpu_isa()])


def isa() -> str:
    """The instruction-set variant this machine runs: ``"avx512"`` where torch reports AVX-512, ``"avx2"`` where it
    reports AVX2, else ``"generic"`` (SSE2 on x86-64, the compiler's default). ``REVGNN_NATIVE_ISA`` (one of these
    names) overrides the choice; it should name one the CPU has."""
    wanted = os.environ.get("REVGNN_NATIVE_ISA", "auto")
    if wanted in _ISA:
        return wanted
    return cpu_isa()


def load(verbose: bool = False):
    """The compiled extension module, building it on first use; ``None`` (with one logged line) if it cannot be
    built. The outcome is remembered for the process. The AVX-512 or AVX2 variant is chosen at run time where the
    CPU supports it; if it fails to build, the next one down is tried, down to the generic one."""
    if "module" in _state:
        return _state["module"]
    from torch.utils.cpp_extension import load as _load

    module, errors, t0 = None, [], time.perf_counter()
    for variant in _FALLBACK[isa()]:
        name = "revgnn_genconv" if variant == "generic" else f"revgnn_genconv_{variant}"
        try:
            module = _load(name=name, sources=[str(_SOURCE)], build_directory=str(_build_dir(name)),
                           extra_cflags=_FLAGS + _ISA[variant], extra_ldflags=["-fopenmp"], verbose=verbose)
            _state["isa"] = variant
            break
        except Exception as err:                   # no compiler, no ninja, no headers: the torch path runs
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            errors.append(f"{variant}: {type(err).__name__}: {first}")
    _state["seconds"] = time.perf_counter() - t0
    if module is None:
        log.warning("revgnn: native GENConv kernel unavailable (%s); using the pure-torch path", errors[-1])
        _state["error"] = "; ".join(errors)
    _state["module"] = module
    return module


def available() -> bool:
    """Whether the native kernel is (or can be) built on this machine."""
    return load() is not None


def build_seconds() -> float | None:
    """Seconds the :func:`load` call of this process took (a build, or loading the cached library)."""
    return _state.get("seconds")


def error() -> str | None:
    """Why the kernel could not be built, if it could not."""
    return _state.get("error")


_EMPTY = torch.empty(0)


def aggregate_no_grad(x, u, weight, bias, t, src, rowptr, perm, aggr: str, eps: float) -> Tensor:
    """:class:`NativeAggregate`'s output where no gradient will be asked for (inference, the reversible engine's
    first pass): max computes its maximum alone, without the tie count and arg edge that its backward needs."""
    mod = load()
    x = x.contiguous()
    mode = 0 if u is None else (1 if weight is None else 2)
    uu = u.contiguous() if u is not None else _EMPTY.to(x.dtype)
    At = weight.t().contiguous() if weight is not None else _EMPTY.to(x.dtype)
    a = bias.contiguous() if (bias is not None and u is not None) else _EMPTY.to(x.dtype)
    pp = perm if perm is not None else _EMPTY.to(src.dtype)
    return mod.forward(x, src, rowptr, uu, pp, At, a, mode, AGGR_CODES[aggr], float(t), eps,
                       torch.get_num_threads(), False)[0]


class NativeAggregate(torch.autograd.Function):
    """AGG_{j in N(i)} (ReLU(x_j + A u_ij + a) + eps) per destination node on sorted edges, natively.

    Args (forward): x (N, c); src (E,) sorted by destination, int64 or int32; rowptr (N+1,) int64; u (E, k) raw
    edge features in the user's order or None; perm (E,) sorted position -> user's edge, or None; weight A (c, k)
    or None (u has c channels); bias a (c,) or None; t (float or (1,) Tensor); aggr; eps.
    """

    @staticmethod
    def forward(ctx, x, u, weight, bias, t, src, rowptr, perm, aggr: str, eps: float):
        mod = load()
        x = x.contiguous()
        mode = 0 if u is None else (1 if weight is None else 2)
        uu = u.contiguous() if u is not None else _EMPTY.to(x.dtype)
        At = weight.t().contiguous() if weight is not None else _EMPTY.to(x.dtype)   # (k, c)
        a = bias.contiguous() if (bias is not None and u is not None) else _EMPTY.to(x.dtype)
        pp = perm if perm is not None else _EMPTY.to(src.dtype)
        tv = float(t)
        code = AGGR_CODES[aggr]
        res = mod.forward(x, src, rowptr, uu, pp, At, a, mode, code, tv, eps, torch.get_num_threads(), True)
        out, stats = res[0], list(res[1:]) + [_EMPTY] * (3 - len(res))
        ctx.meta = (mode, code, tv, eps, isinstance(t, Tensor), u is not None and bias is not None)
        ctx.save_for_backward(x, uu, At, a, src, rowptr, pp, out, stats[0], stats[1], weight if weight is not None
                              else _EMPTY, t if isinstance(t, Tensor) else _EMPTY)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        x, uu, At, a, src, rowptr, pp, out, s1, s2, weight, t = ctx.saved_tensors
        mode, code, tv, eps, t_is_tensor, bias_used = ctx.meta
        need_x, need_u, need_w, need_b, need_t = ctx.needs_input_grad[:5]
        gx, gu, gw, gb, gt = load().backward(g.contiguous(), x, src, rowptr, uu, pp, At, a, mode, code, tv, eps,
                                             out, s1, s2, need_x, need_u and mode > 0, need_w and mode == 2,
                                             need_b and bias_used, need_t, torch.get_num_threads())
        gx = gx if need_x else None
        gu = gu if need_u and mode > 0 else None
        gw = gw if need_w and mode == 2 else None
        gb = gb if need_b and bias_used else None
        gt = gt.to(t.dtype).view_as(t) if need_t and t_is_tensor else None
        return gx, gu, gw, gb, gt, None, None, None, None, None
