r"""Fused, edge-chunked GENConv message passing: no edge-sized hidden tensor beyond one chunk.

Notation: N nodes, E edges, c channels of the block, k width of the raw edge features, B edges in one chunk.

GENConv (Li et al., 2020) aggregates the messages

.. math::
    m_{ij} = \mathrm{ReLU}(x_j + e_{ij}) + \epsilon, \qquad e_{ij} = A u_{ij} + a,

over the in-edges of each node. On ogbn-proteins the model's edge encoder Linear(k, D) and each block's
Linear(D, c) have no nonlinearity between them, so they fold into one affine map: A = W_g W_0 (c, k) and
a = W_g b_0 + b_g (c,) (Li et al., 2021, Sec. 4 model). :func:`gen_aggregate` computes the messages of B edges at a
time from the raw (E, k) features and reduces them into (N, c) node statistics; its backward pass recomputes the
messages chunk by chunk. Autograd flows through A and a to W_0, b_0, W_g and b_g by the chain rule, so the model
never holds an (E, D) edge embedding and no block holds an (E, c) tensor beyond one chunk.

Edges are sorted by destination once (:func:`sort_by_destination`, cached per ``edge_index`` tensor), with a CSR
row pointer and the permutation, so results and gradients to edge features come back in the user's order;
constant edge features up to 512 MiB get one cached sorted copy (larger ones are read through the permutation),
and :func:`sort_graph` sorts a graph at load time so that no permutation is needed at all. Two
kernels compute the same function: ``"native"`` (:mod:`revgnn.native`, a C++ loop per destination node with OpenMP)
and ``"torch"`` (chunks of whole destination nodes, one pass per chunk); ``"auto"`` takes the native one when it
builds (CPU, float32/float64) and the torch one otherwise.

Aggregations, each equal to PyG's (``torch_geometric.nn.aggr``) up to rounding:

- ``max``: the maximum per (node, channel). Backward as torch's ``scatter_reduce`` backward, which PyG's
  ``scatter(reduce='max')`` uses on CPU: the gradient of a node's maximum is split evenly among the edges whose
  message equals it (ties), then ReLU's derivative applies. The forward pass records, in the same pass, two
  floating-point codes per (node, channel): the tie count and the sum of [z > 0] (1 + position among the node's
  edges) over the ties (exact: positions < 2^24), so a count of 1 names its edge; backward routes g to that edge
  with no edge pass and recomputes only the chunks that hold tied nodes (the native kernel: only the tied nodes).
- ``softmax`` with (learnable) inverse temperature t: per chunk of whole nodes the maximum of t m, then sum-exp S
  and the weighted sum T (the native kernel: the same over a node's buffered messages); out = T / (S + 1e-16).
  Backward: dL/dm = g p (1 + t (m - out)) and dL/dt = sum g p (m - out) m = sum g p (m - out)^2, since
  sum_j p_ij (m_ij - out_i) = 0; the squared form has no cancellation (the first loses every digit by t = 1e3).
- ``mean`` and ``add`` (``sum``): one pass of ``index_add_``.

Nodes without in-edges aggregate to 0, as in PyG (also in float16, where the 1e-16 guard underflows), and a graph
without edges (E = 0) has zero gradients.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["gen_aggregate", "default_chunk_size", "sort_by_destination", "sort_graph", "sort_graph_", "resolve_kernel",
           "SortedEdges", "AGGRS", "KERNELS", "DEFAULT_BUDGET_BYTES"]

AGGRS = ("max", "softmax", "mean", "add", "sum")
KERNELS = ("auto", "native", "torch")
DEFAULT_BUDGET_BYTES = 64 * 2**20   # temporaries of one chunk; small enough to stay in cache-friendly territory
_TEMPORARIES = 8                    # (B, c) tensors alive at once in the backward pass (z, m, masks, gathers)
_SOFTMAX_EPS = 1e-16                # PyG's softmax denominator guard
_CACHE_SIZE = 8


def default_chunk_size(channels: int, edge_dim: int | None, dtype: torch.dtype = torch.float32,
                       budget_bytes: int = DEFAULT_BUDGET_BYTES) -> int:
    """Edges per chunk so that one chunk's temporaries fit ``budget_bytes``.

    Args:
        channels (int): c. edge_dim (int, optional): k. dtype: the message dtype.
        budget_bytes (int): bytes for one chunk's temporaries. (default: 64 MiB)
    """
    item = torch.finfo(dtype).bits // 8
    per_edge = item * (_TEMPORARIES * channels + (edge_dim or 0)) + 3 * 8   # + src, dst and one int64 index copy
    return max(1, int(budget_bytes) // per_edge)


@dataclass(frozen=True)
class SortedEdges:
    """Edges sorted by destination: src (E,) and dst (E,) in the graph's index dtype, rowptr (N+1,) int64 with node
    i's edges at rowptr[i]..rowptr[i+1]-1, and perm (E,) mapping a sorted position to the user's edge (``None``
    when the user's order was already sorted)."""

    src: Tensor
    dst: Tensor
    rowptr: Tensor
    perm: Tensor | None


_sort_cache: dict[int, tuple] = {}


def _key(t: Tensor, *extra) -> tuple:
    """Identity of a tensor's data: saved-tensor copies that autograd hands back (as in the reversible backward)
    share it with the original, so all L layers of a step hit one cache entry."""
    return (t.data_ptr(), t.storage_offset(), tuple(t.shape), t.stride(), t.dtype, str(t.device), *extra)


def _lookup(cache: dict, t: Tensor, key: tuple):
    hit = cache.get(key)
    # the original tensor still alive holds the memory, so an equal address is the same data; and no in-place
    # change since (views and saved copies share the version counter)
    if hit is not None and hit[0]() is not None and hit[1] == t._version:
        return hit[2]
    return None


def _store(cache: dict, t: Tensor, key: tuple, value) -> None:
    if len(cache) >= _CACHE_SIZE:
        cache.pop(next(iter(cache)))
    cache[key] = (weakref.ref(t), t._version, value)
    weakref.finalize(t, _drop, cache, key, value)                      # freed with the graph


def sort_by_destination(edge_index: Tensor, num_nodes: int) -> SortedEdges:
    """Sort a (2, E) ``edge_index`` by destination (stable), once: the result is cached per tensor data (address,
    shape, in-place version and ``num_nodes``, while the tensor lives), so the L layers of a model share one sort."""
    key = _key(edge_index, num_nodes)
    hit = _lookup(_sort_cache, edge_index, key)
    if hit is not None:
        return hit
    src, dst = edge_index[0], edge_index[1]
    if dst.numel() > 0 and (int(dst.min()) < 0 or int(dst.max()) >= num_nodes or int(src.min()) < 0
                            or int(src.max()) >= num_nodes):
        raise ValueError(f"edge_index has node ids outside [0, {num_nodes}); pass edges of this graph")
    perm = None
    if dst.numel() > 1 and not bool((dst[1:] >= dst[:-1]).all()):
        perm = torch.sort(dst, stable=True).indices.to(edge_index.dtype)               # (E,)
        src, dst = src.index_select(0, perm), dst.index_select(0, perm)
    counts = torch.bincount(dst.long() if dst.dtype != torch.long else dst, minlength=num_nodes)
    rowptr = torch.zeros(num_nodes + 1, dtype=torch.long, device=dst.device)
    torch.cumsum(counts, 0, out=rowptr[1:])
    result = SortedEdges(src.contiguous(), dst.contiguous(), rowptr, perm)
    _store(_sort_cache, edge_index, key, result)
    return result


def destination_order(dst: Tensor, num_nodes: int, chunk: int = 1 << 22) -> Tensor:
    """The stable permutation that sorts ``dst`` (sorted position -> edge), by a counting sort over chunks of
    ``chunk`` edges: int32 where E < 2^31, with transients of one chunk, so a 79M-edge graph is ordered in 0.3 GB
    beyond the permutation itself (``torch.sort`` needs about 2.5 GB there)."""
    E = dst.numel()
    dtype = torch.int32 if E < 2**31 else torch.long
    counts = torch.bincount(dst, minlength=num_nodes)
    fill = torch.zeros(num_nodes + 1, dtype=torch.long, device=dst.device)
    torch.cumsum(counts, 0, out=fill[1:])                              # next free sorted position of each node
    del counts
    perm = torch.empty(E, dtype=dtype, device=dst.device)
    for lo in range(0, E, chunk):
        d = dst[lo:lo + chunk]
        keys, idx = torch.sort(d, stable=True)
        n = keys.numel()
        new_run = torch.ones(n, dtype=torch.bool, device=dst.device)
        new_run[1:] = keys[1:] != keys[:-1]
        starts = torch.nonzero(new_run).squeeze(1)
        run_len = torch.diff(starts, append=torch.tensor([n], device=dst.device))
        rank = torch.arange(n, device=dst.device) - torch.repeat_interleave(starts, run_len)  # rank among equal keys
        perm[fill[keys] + rank] = (idx + lo).to(dtype)
        fill.index_add_(0, keys[starts], run_len)
    return perm


def sort_graph_(data):
    """Sort a PyG ``Data``'s edges by destination **in place** (``edge_index`` and every (E, ...) edge tensor
    permuted alike) and return it. The transient memory is an int32 permutation (:func:`destination_order`) and one
    row or column at a time, about 12 bytes per edge, instead of a sorted second copy of the graph; a sorted graph
    needs no permutation and no sorted copies in :func:`sort_by_destination`'s cache (79M edges: 1.9 GB less for the
    whole run). Use it on graphs this package loaded; :func:`sort_graph` leaves the caller's graph alone."""
    ei = data.edge_index
    E = ei.size(1)
    if E <= 1 or bool((ei[1, 1:] >= ei[1, :-1]).all()):
        return data
    perm = destination_order(ei[1], int(data.num_nodes))
    for row in (0, 1):
        ei[row].copy_(ei[row].index_select(0, perm))
    for key, value in data:
        if key == "edge_index" or not isinstance(value, Tensor) or value.dim() == 0 or value.size(0) != E \
                or not data.is_edge_attr(key):
            continue
        flat = value.view(E, -1) if value.is_contiguous() else None
        if flat is None:
            data[key] = value.index_select(0, perm)
            continue
        for j in range(flat.size(1)):                                  # one column's copy at a time
            flat[:, j].copy_(flat[:, j].index_select(0, perm))
    return data


def _drop(cache: dict, key: tuple, value) -> None:
    if key in cache and cache[key][-1] is value:
        del cache[key]


def sort_graph(data):
    """A shallow copy of a PyG ``Data`` with its edges sorted by destination (``edge_index`` and every (E, ...)
    edge tensor permuted alike): sort once at load or partition time, so that no layer needs a permutation."""
    E = data.edge_index.size(1)
    se = sort_by_destination(data.edge_index, data.num_nodes)
    out = data.clone() if se.perm is None else data.__class__()
    if se.perm is None:
        return out
    for key, value in data:
        if key == "edge_index":
            value = torch.stack([se.src, se.dst])
        elif isinstance(value, Tensor) and value.dim() >= 1 and value.size(0) == E and data.is_edge_attr(key):
            value = value.index_select(0, se.perm)
        out[key] = value
    out.num_nodes = data.num_nodes
    return out


_attr_cache: dict[int, tuple] = {}
SORTED_COPY_BYTES = 512 * 2**20     # edge features up to this size get a sorted copy; larger ones are read via perm


def _sorted_attr(edge_attr: Tensor, se: SortedEdges) -> Tensor | None:
    """A cached copy of constant (no-grad) edge features in sorted order, or ``None`` when they need a gradient or
    exceed :data:`SORTED_COPY_BYTES` (then the kernels read them through the permutation)."""
    if edge_attr.requires_grad or edge_attr.numel() * edge_attr.element_size() > SORTED_COPY_BYTES:
        return None
    key = _key(edge_attr)
    hit = _lookup(_attr_cache, edge_attr, key)
    if hit is not None and hit[0] is se.perm:                          # sorted by this very permutation
        return hit[1]
    copy = edge_attr.index_select(0, se.perm)
    _store(_attr_cache, edge_attr, key, (se.perm, copy))
    return copy


def _node_spans(rowptr: Tensor, chunk_size: int) -> list[tuple[int, int, int, int]]:
    """(lo, hi, n0, n1): chunks of about ``chunk_size`` sorted edges that hold whole nodes n0..n1-1 (a node with
    more edges than ``chunk_size`` forms its own chunk)."""
    N, E = rowptr.numel() - 1, int(rowptr[-1])
    if E == 0:
        return []
    bounds = torch.arange(chunk_size, max(E, chunk_size), chunk_size, device=rowptr.device)
    cuts = torch.searchsorted(rowptr, bounds, right=True).sub_(1).tolist()              # node starting at/after
    spans, n0 = [], 0
    for n in cuts + [N]:
        if n > n0:
            spans.append((int(rowptr[n0]), int(rowptr[n]), n0, n))
            n0 = n
    return [s for s in spans if s[1] > s[0]]


def _message(x: Tensor, src: Tensor, perm: Tensor | None, u: Tensor | None, weight: Tensor | None,
             bias: Tensor | None, eps: float, sel, raw: bool = False):
    """z = x_j + A u_ij + a and m = ReLU(z) + eps for the sorted edges ``sel`` (a slice or an index); both (B, c).
    With ``raw`` only x_j + A u_ij + a is returned."""
    z = x.index_select(0, src[sel])                               # (B, c) x_j
    if u is not None:
        uc = u[sel] if perm is None else u.index_select(0, perm[sel])   # (B, k) in the user's order
        if weight is None:
            z = z + uc                                            # e_ij = u_ij (k == c, no encoder)
        else:
            z.addmm_(uc, weight.t())                              # (B, k) @ (k, c)
        if bias is not None:
            z.add_(bias)
    if raw:
        return z
    return z, z.relu().add_(eps)


class _GENAggregate(torch.autograd.Function):
    """AGG_{j in N(i)} (ReLU(x_j + A u_ij + a) + eps) over chunks of whole destination nodes of sorted edges;
    backward recomputes the chunks (max: only the tied nodes)."""

    @staticmethod
    def forward(ctx, x, u, weight, bias, t, src, dst, rowptr, perm, aggr: str, eps: float, chunk_size: int):
        N, c = x.shape
        spans = _node_spans(rowptr, chunk_size)
        needs_grad = any(ctx.needs_input_grad[:5])
        out = x.new_zeros(N, c)
        stats: tuple = ()
        if aggr == "max":
            cdt = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32   # exact below 2^24
            cnt = torch.zeros((N, c), dtype=cdt, device=x.device) if needs_grad else None
            pos = torch.zeros((N, c), dtype=cdt, device=x.device) if needs_grad else None
            for lo, hi, n0, n1 in spans:
                z = _message(x, src, perm, u, weight, bias, eps, slice(lo, hi), raw=True)    # (B, c)
                dl = dst[lo:hi].long() - n0                                                 # local node ids
                d = dl.unsqueeze(1).expand_as(z)
                run = z.new_full((n1 - n0, c), float("-inf")).scatter_reduce_(0, d, z, "amax")
                has = run != float("-inf")                                    # nodes without in-edges: 0, as PyG
                o = run.clamp_min_(0).add_(eps).mul_(has)
                out[n0:n1] = o
                if needs_grad:      # ties, in the same pass: their count, and the sum of [z > 0] (1 + position
                    tie = z.relu().add_(eps) == o.gather(0, d)                 # among the node's edges)
                    cnt[n0:n1].index_add_(0, dl, tie.to(cdt))
                    lpos = torch.arange(lo + 1, hi + 1, device=x.device).sub_(rowptr[n0:n1][dl]).to(cdt)
                    pos[n0:n1].index_add_(0, dl, tie.logical_and_(z > 0).to(cdt).mul_(lpos.unsqueeze(1)))
            stats = (cnt, pos) if needs_grad else ()
        elif aggr == "softmax":
            M, S = x.new_zeros(N, c), x.new_ones(N, c)          # no in-edges: max 0, S 1 (out 0, also in float16)
            for lo, hi, n0, n1 in spans:
                _, m = _message(x, src, perm, u, weight, bias, eps, slice(lo, hi))
                d = (dst[lo:hi].long() - n0).unsqueeze(1).expand_as(m)
                s = m * t
                mx = s.new_full((n1 - n0, c), float("-inf")).scatter_reduce_(0, d, s, "amax")
                w = s.sub_(mx.gather(0, d)).exp_()                # exp(t m - max)
                Sl = x.new_zeros(n1 - n0, c).index_add_(0, d[:, 0], w)
                Tl = x.new_zeros(n1 - n0, c).index_add_(0, d[:, 0], w.mul_(m))
                has = Sl > 0
                Sl = Sl.add_(_SOFTMAX_EPS).masked_fill_(~has, 1.0)   # S + 1e-16; 1 without in-edges
                out[n0:n1], M[n0:n1], S[n0:n1] = Tl.div_(Sl), mx.masked_fill_(~has, 0.0), Sl
            stats = (M, S)
        else:
            for lo, hi, n0, n1 in spans:
                _, m = _message(x, src, perm, u, weight, bias, eps, slice(lo, hi))
                out[n0:n1].index_add_(0, dst[lo:hi].long() - n0, m)
            if aggr == "mean":
                deg = (rowptr[1:] - rowptr[:-1]).clamp_(min=1).to(x.dtype).unsqueeze(1)   # (N, 1)
                out = out.div_(deg)
                stats = (deg,)
        ctx.aggr, ctx.eps, ctx.chunk_size = aggr, eps, chunk_size
        ctx.t_is_tensor = isinstance(t, Tensor)
        ctx.t_const = None if ctx.t_is_tensor else t
        if needs_grad:
            ctx.perm_is_none = perm is None
            ctx.save_for_backward(x, u, weight, bias, t if ctx.t_is_tensor else None, src, dst, rowptr,
                                  perm, out, *stats)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor):
        x, u, weight, bias, t, src, dst, rowptr, perm, out, *stats = ctx.saved_tensors
        t = t if ctx.t_is_tensor else ctx.t_const
        aggr, eps = ctx.aggr, ctx.eps
        need_x, need_u, need_w, need_b, need_t = ctx.needs_input_grad[:5]
        gx = x.new_zeros(x.shape) if need_x else None
        gu = torch.zeros_like(u) if need_u else None
        gw = torch.zeros_like(weight) if need_w else None
        gb = torch.zeros_like(bias) if need_b else None
        gt = torch.zeros_like(t) if need_t else None
        g = g.contiguous()
        none = (None,) * 7

        def scatter(sel, dz):
            """dz (B, c) of the sorted edges sel to x, A, a and u."""
            if need_x:
                gx.index_add_(0, src[sel], dz)
            if need_w or need_u:
                uc = u[sel] if perm is None else u.index_select(0, perm[sel])
                if need_w:
                    gw.addmm_(dz.t(), uc)                              # (c, B) @ (B, k)
                if need_u:
                    gu_e = dz if weight is None else dz @ weight
                    if perm is None:
                        gu[sel] += gu_e
                    else:
                        gu.index_add_(0, perm[sel], gu_e)
            if need_b:
                gb.add_(dz.sum(0))

        if src.numel() == 0:                                          # E = 0: every gradient is 0
            return gx, gu, gw, gb, gt, *none
        if aggr == "max":
            cnt, pos = stats
            single = cnt <= 1                                          # (N, c): at most one tied edge
            hit = single & (pos > 0)                                   # ... and it passes ReLU
            if bool(hit.any()):                                        # route g to that edge, no edge pass
                node, chan = hit.nonzero(as_tuple=True)                # (P,) entries with one winning edge
                eid = rowptr[node] + pos[node, chan].long() - 1       # its sorted position
                val = g[node, chan]                                    # (P,)
                if need_x:
                    gx.view(-1).index_add_(0, src.index_select(0, eid).long() * x.size(1) + chan, val)
                if need_b:
                    gb.index_add_(0, chan, val)
                if need_w or need_u:
                    ue = eid if perm is None else perm.index_select(0, eid).long()
                    if need_w:
                        gw.index_put_((chan,), val.unsqueeze(1) * u.index_select(0, ue), accumulate=True)
                    if need_u:
                        rows = val.unsqueeze(1) * (weight.index_select(0, chan) if weight is not None
                                                   else torch.nn.functional.one_hot(chan, x.size(1)).to(x.dtype))
                        gu.index_add_(0, ue, rows)
            tied = ((~single) & (pos > 0)).any(1)                    # (N,) nodes with a tie that passes ReLU
            if not bool(tied.any()):
                return gx, gu, gw, gb, gt, *none
            for lo, hi, n0, n1 in _node_spans(rowptr, ctx.chunk_size):
                if not bool(tied[n0:n1].any()):                       # recompute only chunks with ties, as in
                    continue                                          # the forward pass (bitwise the same m)
                z, m = _message(x, src, perm, u, weight, bias, eps, slice(lo, hi))
                d = (dst[lo:hi].long() - n0).unsqueeze(1).expand_as(m)
                tie = (m == out[n0:n1].gather(0, d)).logical_and_(~single[n0:n1].gather(0, d))
                cnt = x.new_zeros(n1 - n0, x.size(1)).scatter_add_(0, d, tie.to(x.dtype)).clamp_(min=1)
                gn = g[n0:n1] / cnt                                   # split evenly among the ties
                scatter(slice(lo, hi), torch.where(tie.logical_and_(z > 0), gn.gather(0, d), 0))
            return gx, gu, gw, gb, gt, *none
        if aggr == "mean":
            gn = g / stats[0]
        elif aggr == "softmax":
            M, S = stats
            gn = g / S                                                 # g / (S + 1e-16)
        else:
            gn = g
        for lo, hi, _, _ in _node_spans(rowptr, ctx.chunk_size):
            sel = slice(lo, hi)
            z, m = _message(x, src, perm, u, weight, bias, eps, sel)
            d = dst[sel].long()
            if aggr == "softmax":
                gp = (m * t).sub_(M.index_select(0, d)).exp_().mul_(gn.index_select(0, d))   # g_i p_ij
                diff = m.sub_(out.index_select(0, d))                   # m_ij - out_i
                if need_t:
                    gt += (gp * diff * diff).sum()                     # sum g p (m - out)^2: no cancellation
                dm = gp.add_(diff.mul_(gp).mul_(t))                   # g p (1 + t (m - out))
            else:
                dm = gn.index_select(0, d)
            scatter(sel, dm.masked_fill_(z <= 0, 0))                  # ReLU'
        return gx, gu, gw, gb, gt, *none


def resolve_kernel(kernel: str = "auto", dtype: torch.dtype = torch.float32, device="cpu") -> str:
    """The kernel that ``gen_aggregate(..., kernel=kernel)`` runs for messages of ``dtype`` on ``device``:
    ``"native"`` or ``"torch"``. ``"native"`` where it cannot run raises ValueError with the fix."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS} (got {kernel!r})")
    if kernel == "torch":
        return "torch"
    fits = torch.device(device).type == "cpu" and dtype in (torch.float32, torch.float64)
    if kernel == "auto":
        if not fits:
            return "torch"
        from . import native

        return "native" if native.available() else "torch"
    if not fits:
        raise ValueError(f"the native GENConv kernel runs float32/float64 on CPU (got {dtype} on {device}); "
                         "use kernel='torch'")
    from . import native

    if not native.available():
        raise ValueError(f"the native GENConv kernel could not be built ({native.error()}); install g++ and ninja "
                         "(make setup) or use kernel='torch'")
    return "native"


def gen_aggregate(x: Tensor, edge_index: Tensor, edge_attr: Tensor | None = None, weight: Tensor | None = None,
                  bias: Tensor | None = None, aggr: str = "max", t: float | Tensor = 1.0, eps: float = 1e-7,
                  chunk_size: int | None = None, kernel: str = "auto") -> Tensor:
    r"""GENConv's aggregated messages :math:`\mathrm{AGG}_{j \in N(i)} (\mathrm{ReLU}(x_j + A u_{ij} + a) +
    \epsilon)` on destination-sorted edges, with a recomputing backward.

    Args:
        x (Tensor): node states x_j. edge_index (Tensor): (2, E) source, target; int64 or int32; any order (sorted
            once and cached, see :func:`sort_by_destination`).
        edge_attr (Tensor, optional): u, the raw (E, k) edge features; ``None`` for messages ReLU(x_j) + eps.
        weight (Tensor, optional): A, the folded edge encoder (c, k); ``None`` when u already has c channels.
        bias (Tensor, optional): a (c,).
        aggr (str): ``"max"``, ``"softmax"``, ``"mean"``, ``"add"`` or ``"sum"``. (default: ``"max"``)
        t (float or Tensor): softmax inverse temperature (a learnable (1,) parameter or a number). (default: 1)
        eps (float): GENConv's message epsilon. (default: 1e-7)
        chunk_size (int, optional): edges per chunk of the torch kernel; default :func:`default_chunk_size`.
        kernel (str): ``"auto"`` (native where it builds, else torch), ``"native"`` or ``"torch"``.

    Shapes:
        - x: (N, c); edge_index: (2, E); edge_attr: (E, k); weight: (c, k); bias: (c,)
        - output: (N, c)
    """
    if aggr not in AGGRS:
        raise ValueError(f"aggr must be one of {AGGRS} (got {aggr!r})")
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"edge_index must have shape (2, E) (got {tuple(edge_index.shape)})")
    if edge_attr is not None and edge_attr.size(0) != edge_index.size(1):
        raise ValueError(f"edge_attr has {edge_attr.size(0)} rows but edge_index has {edge_index.size(1)} edges")
    if chunk_size is None:
        chunk_size = default_chunk_size(x.size(1), None if edge_attr is None else edge_attr.size(1), x.dtype)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1 (got {chunk_size})")
    if edge_index.size(1) >= 2**31:
        raise ValueError("gen_aggregate supports fewer than 2^31 edges")
    aggr = "add" if aggr == "sum" else aggr
    which = resolve_kernel(kernel, x.dtype, x.device)
    se = sort_by_destination(edge_index, x.size(0))
    perm = se.perm
    if perm is not None and edge_attr is not None:
        sorted_attr = _sorted_attr(edge_attr, se)
        if sorted_attr is not None:
            edge_attr, perm = sorted_attr, None
    if which == "native":
        from .native import NativeAggregate, aggregate_no_grad

        if not (torch.is_grad_enabled() and any(isinstance(v, Tensor) and v.requires_grad
                                                for v in (x, edge_attr, weight, bias, t))):
            return aggregate_no_grad(x, edge_attr, weight, bias, t, se.src, se.rowptr, perm, aggr, float(eps))
        return NativeAggregate.apply(x, edge_attr, weight, bias, t, se.src, se.rowptr, perm, aggr, float(eps))
    return _GENAggregate.apply(x, edge_attr, weight, bias, t, se.src, se.dst, se.rowptr, perm, aggr, float(eps),
                               int(chunk_size))
