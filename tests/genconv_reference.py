"""A float64 reference of GENConv's aggregation for the exactness tests, and graphs whose ties hold on every CPU.

Why a reference of our own beside PyG's GENConv: PyG forms the edge term A u + a with one matrix product over all
edges, and a BLAS may round two equal rows of a product differently (row blocks and remainder rows run different
code; seen on an AMD EPYC, not on an Intel Xeon). Two duplicate edges then tie in one computation and not in
another, and the gradient of max goes to one edge or is split between two: both are valid subgradients, so a test
must not depend on which. Here:

- **Exact ties by construction.** A tie edge's raw features are ``TIE_SCALE`` times the first unit vector, so
  A u = TIE_SCALE A[:, 0] is one product by a power of two, exact in every order of summation, with or without
  fused multiply-adds; two tie edges with equal source states then have bitwise equal messages in every path
  (native kernel, torch kernel, PyG, this reference). The rule they all follow: the gradient of a maximum is split
  evenly among the edges whose message equals it, then ReLU's derivative applies (torch's ``scatter_reduce``
  backward, which PyG uses).
- **Near ties are masked.** Every other (node, channel) whose maximum is within a rounding margin of a second edge,
  and every one with an in-edge at ReLU's kink (|z| within the margin), gets weight 0 in the loss whose gradients
  are compared, so no path's rounding can move the compared gradients by a subgradient jump.
- **float32 tolerances from conditioning.** A float32 result is compared with this reference on the same
  (float32) inputs in float64; the tolerance is set by how much the reference moves when its inputs are perturbed
  at float32's rounding level (:func:`tolerance`), not by one machine's observed error.

``order="reversed"`` forms every message with its terms in the opposite order and the edges in reverse: a second
rounding of the reference, so a test that passes with both does not lean on one summation order.
"""
from __future__ import annotations

import torch
from torch import Tensor

TIE_SCALE = 32.0                       # a power of two: TIE_SCALE * A[:, 0] is exact in any arithmetic
TIE_EDGES = ((0, 3), (1, 3), (4, 4), (4, 4), (6, 6), (2, 7))   # 0->3 and 1->3 tie (equal sources); 4->4 twice
MARGIN = 64                            # units of the rounding error bound of a message


def tie_graph(dtype, N: int = 30, E: int = 240, k: int = 3, c: int = 5, seed: int = 0, duplicates: int = 7):
    """A random graph in random edge order with nodes N-3..N-1 without in-edges, self-loops, ``duplicates``
    repeated random edges (near ties in a BLAS, masked by :func:`stable_entries`) and :data:`TIE_EDGES`, exact
    ties whose features are ``TIE_SCALE`` e_0 (sources 0 and 1 have equal positive states)."""
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, N - 3, (2, E), generator=g)
    u = torch.randn(E, k, generator=g, dtype=dtype)
    x = torch.randn(N, c, generator=g, dtype=dtype)
    x[1] = x[0].abs() + 0.5
    x[0] = x[1]
    ties = torch.tensor(TIE_EDGES).t()
    u_tie = torch.zeros(ties.size(1), k, dtype=dtype)
    u_tie[:, 0] = TIE_SCALE
    ei = torch.cat([ei, ties, ei[:, :duplicates]], 1)
    u = torch.cat([u, u_tie, u[:duplicates]], 0)
    return x, ei, u


def messages(x: Tensor, ei: Tensor, u: Tensor | None, A: Tensor | None, a: Tensor | None,
             order: str = "forward") -> Tensor:
    """z = x_j + a + sum_q u_q A[:, q], (E, c), formed element by element, one term at a time (no matrix product,
    so equal rows give equal results): ``order="forward"`` adds x_j, a, then q = 0..k-1; ``"reversed"`` the
    opposite."""
    terms = [] if a is None else [a.expand(ei.size(1), -1)]
    if u is not None:
        terms += [u] if A is None else [u[:, q:q + 1] * A[:, q] for q in range(u.size(1))]
    if order == "reversed":
        terms = terms[::-1]
    z = x.index_select(0, ei[0])
    for term in terms:
        z = z + term
    return z


def aggregate(z: Tensor, dst: Tensor, N: int, aggr: str, t, eps: float) -> Tensor:
    """AGG over in-edges of ReLU(z) + eps; nodes without in-edges give 0. max's backward splits the gradient
    evenly among tied messages (``scatter_reduce``); softmax has PyG's 1e-16 guard."""
    m = z.relu() + eps
    c = z.size(1)
    idx = dst.unsqueeze(1).expand_as(m)
    has = torch.zeros(N, dtype=torch.bool).index_fill_(0, dst, True).unsqueeze(1)
    if aggr == "max":
        out = m.new_zeros(N, c).scatter_reduce(0, idx, m, "amax", include_self=False)
    elif aggr == "softmax":
        s = m * t
        top = s.new_zeros(N, c).scatter_reduce(0, idx, s.detach(), "amax", include_self=False)
        w = (s - top.index_select(0, dst)).exp()
        den = m.new_zeros(N, c).index_add(0, dst, w) + 1e-16
        out = m.new_zeros(N, c).index_add(0, dst, w * m) / den
    else:
        out = m.new_zeros(N, c).index_add(0, dst, m)
        if aggr == "mean":
            out = out / torch.bincount(dst, minlength=N).clamp_min(1).to(m.dtype).unsqueeze(1)
    return torch.where(has, out, torch.zeros_like(out))


def reference(x, ei, u, A, a, aggr: str, t, eps: float, w: Tensor, order: str = "forward") -> list[Tensor]:
    """[output, d/dx, d/du, d/dA, d/da(, d/dt)] of sum(w * AGG(...)) in float64, from the given inputs cast to
    float64 (the float32 inputs of a float32 test, so only the arithmetic differs); entries of A, a, u, t that are
    None are skipped."""
    leaves = [None if v is None else (v.detach().double().requires_grad_() if isinstance(v, Tensor) else v)
              for v in (x, u, A, a, t)]
    x64, u64, A64, a64, t64 = leaves
    N = x.size(0)
    sel = torch.arange(ei.size(1))
    if order == "reversed":
        sel = sel.flip(0)
    ei = ei[:, sel]
    u_sel = None if u64 is None else u64.index_select(0, sel)
    z = messages(x64, ei, u_sel, A64, a64, order)
    out = aggregate(z, ei[1], N, aggr, t64, eps)
    wrt = [v for v in (x64, u64, A64, a64, t64) if isinstance(v, Tensor)]
    return [out.detach(), *torch.autograd.grad((out * w.double()).sum(), wrt)]


def stable_entries(x, ei, u, A, a, aggr: str, eps: float, dtype) -> Tensor:
    """(N, c) bool: the (node, channel) entries whose gradient no rounding of ``dtype`` can move by a subgradient
    jump: no in-edge within the margin of ReLU's kink, and (max) no second edge within the margin of the maximum,
    unless all edges at the maximum are exact ties by construction (equal source states, features TIE_SCALE e_0)."""
    with torch.no_grad():
        x64 = x.detach().double()
        u64 = None if u is None else u.detach().double()
        A64 = None if A is None else A.detach().double()
        a64 = None if a is None else a.detach().double()
        z = messages(x64, ei, u64, A64, a64)
        size = messages(x64.abs(), ei, None if u64 is None else u64.abs(), None if A64 is None else A64.abs(),
                        None if a64 is None else a64.abs())                        # |terms|: the rounding scale
        margin = MARGIN * torch.finfo(dtype).eps * (size + eps)                     # (E, c)
        N, c = x.shape
        dst = ei[1]
        kink = (z.abs() <= margin).to(torch.int32)
        ok = torch.zeros(N, c, dtype=torch.int32).index_add_(0, dst, kink) == 0
        if aggr != "max":
            return ok
        m = z.relu() + eps
        top = m.new_full((N, c), float("-inf")).scatter_reduce(0, dst.unsqueeze(1).expand_as(m), m, "amax")
        near = (m >= top.index_select(0, dst) - margin)                            # (E, c) at the maximum
        if u64 is None:
            exact = torch.zeros(ei.size(1), dtype=torch.bool)
        else:
            exact = (u64[:, 0] == TIE_SCALE) & (u64[:, 1:] == 0).all(1)             # the built tie edges
        count = torch.zeros(N, c, dtype=torch.int32).index_add_(0, dst, near.to(torch.int32))
        odd = near & ~exact.unsqueeze(1)                                           # an edge at the max, not built
        has_odd = torch.zeros(N, c, dtype=torch.int32).index_add_(0, dst, odd.to(torch.int32)) > 0
        # built ties must also have equal sources: compare each near edge's source state with the first one's
        return ok & ((count <= 1) | ~has_odd) & _equal_sources(x64, ei, near, N)


def _equal_sources(x64: Tensor, ei: Tensor, near: Tensor, N: int) -> Tensor:
    """(N, c): all edges at a node's maximum have bitwise equal source states in that channel."""
    xs = x64.index_select(0, ei[0])                                                # (E, c)
    dst = ei[1].unsqueeze(1).expand_as(xs)
    hi = xs.new_full((N, xs.size(1)), float("-inf")).scatter_reduce(0, dst, torch.where(near, xs, -torch.inf),
                                                                     "amax")
    lo = xs.new_full((N, xs.size(1)), float("inf")).scatter_reduce(0, dst, torch.where(near, xs, torch.inf), "amin")
    return (hi == lo) | torch.isinf(hi)


def tolerance(x, ei, u, A, a, aggr: str, t, eps: float, w: Tensor, dtype, draws: int = 4, seed: int = 0,
              factor: float = 8.0) -> list[float]:
    """Per compared tensor ([output, d/dx, d/du, d/dA, d/da(, d/dt)], as :func:`reference`), the absolute (norm)
    tolerance of a ``dtype`` computation, from the computation's conditioning: the largest change of the float64
    reference's result when every input (x, u, A, a, t, w) is perturbed at random by up to one rounding unit of
    ``dtype`` (relative), over ``draws`` draws, times ``factor`` sqrt(n) with n the most terms summed into one entry
    of that tensor (in-degree, out-degree, c, E, E, E c: rounding errors of a sum of n terms grow as sqrt(n) times
    one term's), plus one rounding unit of the result's norm. A t-gradient summed from terms of both signs gets a
    wider bound than an output; no machine's observed error enters."""
    if dtype == torch.float64:
        return [1e-10 * float(r.norm()) for r in reference(x, ei, u, A, a, aggr, t, eps, w)]
    unit = torch.finfo(dtype).eps
    base = reference(x, ei, u, A, a, aggr, t, eps, w)
    g = torch.Generator().manual_seed(seed)

    def jitter(v):
        if not isinstance(v, Tensor):
            return v
        v = v.detach().double()
        return v * (1 + unit * (2 * torch.rand(v.shape, generator=g, dtype=torch.float64) - 1))

    spread = [0.0] * len(base)
    for _ in range(draws):
        moved = reference(jitter(x), ei, jitter(u), jitter(A), jitter(a), aggr, jitter(t), eps, jitter(w))
        spread = [max(s, float((p - q).norm())) for s, p, q in zip(spread, moved, base)]
    N, E, c = x.size(0), ei.size(1), x.size(1)
    terms = [int(torch.bincount(ei[1], minlength=N).max()), int(torch.bincount(ei[0], minlength=N).max())]
    terms += [n for n, v in ((c, u), (E, A), (E, a), (E * c, t)) if isinstance(v, Tensor)]
    return [factor * max(n, 1) ** 0.5 * s + unit * float(r.norm()) for s, n, r in zip(spread, terms, base)]
