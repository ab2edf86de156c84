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

Aggregations, each equal to PyG's (``torch_geometric.nn.aggr``) up to rounding:

- ``max``: a running maximum (``scatter_reduce_``, ``amax``). Backward as torch's ``scatter_reduce`` backward,
  which PyG's ``scatter(reduce='max')`` uses on CPU: the gradient of a node's maximum is split evenly among the
  edges whose message equals it (ties), then ReLU's derivative applies. The forward pass counts the ties per
  (node, channel); the backward pass routes g / count to the edges whose recomputed message equals the maximum.
- ``softmax`` with (learnable) inverse temperature t: a running maximum of t m, then sum-exp S and the weighted sum
  T in a second pass; out = T / (S + 1e-16). Backward: dL/dm = g p (1 + t (m - out)) and
  dL/dt = sum g p (m - out) m = sum g p (m - out)^2, since sum_j p_ij (m_ij - out_i) = 0; the squared form has no
  cancellation (the first loses every digit by t = 1e3).
- ``mean`` and ``add`` (``sum``): one pass of ``index_add_``.

Nodes without in-edges aggregate to 0, as in PyG (also in float16, where the 1e-16 guard underflows), and a graph
without edges (E = 0) has zero gradients.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["gen_aggregate", "default_chunk_size", "AGGRS", "DEFAULT_BUDGET_BYTES"]

AGGRS = ("max", "softmax", "mean", "add", "sum")
DEFAULT_BUDGET_BYTES = 64 * 2**20   # temporaries of one chunk; small enough to stay in cache-friendly territory
_TEMPORARIES = 8                    # (B, c) tensors alive at once in the backward pass (z, m, masks, gathers)
_SOFTMAX_EPS = 1e-16                # PyG's softmax denominator guard
_WIN_BASE = 2**40                   # > any edge count; int64 holds 2^23 such terms


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


def _spans(num_edges: int, chunk_size: int):
    return [(lo, min(lo + chunk_size, num_edges)) for lo in range(0, num_edges, chunk_size)]


def _message(x: Tensor, src: Tensor, u: Tensor | None, weight: Tensor | None, bias: Tensor | None, eps: float,
             lo: int, hi: int, keep_z: bool = True, raw: bool = False):
    """z = x_j + A u_ij + a and m = ReLU(z) + eps for edges lo..hi-1; both (B, c). Without ``keep_z`` the ReLU
    runs in place and z is not returned; with ``raw`` only x_j + A u_ij + a is returned."""
    z = x.index_select(0, src[lo:hi])                             # (B, c) x_j
    if u is not None:
        uc = u[lo:hi]                                             # (B, k)
        if weight is None:
            z = z + uc                                            # e_ij = u_ij (k == c, no encoder)
        else:
            z.addmm_(uc, weight.t())                              # (B, k) @ (k, c)
        if bias is not None:
            z.add_(bias)
    if raw:
        return z
    if not keep_z:
        return None, z.clamp_min_(0).add_(eps)
    return z, z.relu().add_(eps)


class _GENAggregate(torch.autograd.Function):
    """AGG_{j in N(i)} (ReLU(x_j + A u_ij + a) + eps) over edge chunks; backward recomputes the chunks."""

    @staticmethod
    def forward(ctx, x, u, weight, bias, t, edge_index, aggr: str, eps: float, chunk_size: int):
        N, c = x.shape
        src, dst = edge_index[0], edge_index[1]
        spans = _spans(src.numel(), chunk_size)
        needs_grad = any(ctx.needs_input_grad[:5])

        def messages(keep_z: bool = False):
            for lo, hi in spans:
                z, m = _message(x, src, u, weight, bias, eps, lo, hi, keep_z)
                yield lo, hi, dst[lo:hi].long(), z, m

        stats: tuple = ()
        if aggr == "max":
            # running maximum of v = x_j + A u_ij alone: rounding is monotone, so fl(ReLU(fl(max v + a)) + eps) is
            # exactly the maximum of the messages fl(ReLU(fl(v + a)) + eps), with three fewer (B, c) ops per chunk
            run = x.new_full((N, c), float("-inf"))
            for lo, hi in spans:
                v = _message(x, src, u, weight, None, eps, lo, hi, raw=True)
                d = dst[lo:hi].long()
                run.scatter_reduce_(0, d.unsqueeze(1).expand_as(v), v, "amax", include_self=True)
            empty = run == float("-inf")                              # nodes without in-edges: 0, as PyG
            if bias is not None:
                run.add_(bias)
            out = run.clamp_min_(0).add_(eps).masked_fill_(empty, 0.0)
            if needs_grad:
                # gradient edges: messages equal to the maximum (ties) whose z > 0 (ReLU' = 1). Per (node,
                # channel) one int64 sum of 2^40 + edge id over them: its quotient by 2^40 counts them, its
                # remainder is the edge id when there is one, so that backward needs no edge pass then
                code = torch.zeros((N, c), dtype=torch.long, device=x.device)
                for lo, hi, d, z, m in messages(keep_z=True):
                    pos = (m == out.index_select(0, d)).logical_and_(z > 0)            # (B, c)
                    eid = torch.arange(lo + _WIN_BASE, hi + _WIN_BASE, device=x.device).unsqueeze(1)
                    code.index_add_(0, d, torch.where(pos, eid, 0))
                stats = (code,)
        elif aggr == "softmax":
            run = x.new_full((N, c), float("-inf"))                   # running maximum of t m
            for _, _, d, _, m in messages():
                s = m.mul_(t)
                run.scatter_reduce_(0, d.unsqueeze(1).expand_as(s), s, "amax", include_self=True)
            run.masked_fill_(run == float("-inf"), 0.0)
            S, T = x.new_zeros(N, c), x.new_zeros(N, c)
            for _, _, d, _, m in messages():
                w = (m * t).sub_(run.index_select(0, d)).exp_()   # exp(t m - max)
                S.index_add_(0, d, w)
                T.index_add_(0, d, w.mul_(m))
            # S + 1e-16, but 1 where S == 0 (no in-edges): the guard underflows in float16, where T / S = 0 / 0
            S = S.add_(_SOFTMAX_EPS).masked_fill_(S == 0, 1.0)
            out = T.div_(S)
            stats = (run, S)
        else:
            out = x.new_zeros(N, c)
            for _, _, d, _, m in messages():
                out.index_add_(0, d, m)
            if aggr == "mean":
                deg = torch.bincount(dst.long() if dst.dtype != torch.long else dst, minlength=N).to(x.dtype)
                deg = deg.clamp_(min=1).unsqueeze(1)                  # (N, 1), PyG's count.clamp(min=1)
                out = out.div_(deg)
                stats = (deg,)
        ctx.aggr, ctx.eps, ctx.chunk_size = aggr, eps, chunk_size
        ctx.t_is_tensor = isinstance(t, Tensor)
        ctx.t_const = None if ctx.t_is_tensor else t
        if needs_grad:
            ctx.save_for_backward(x, u, weight, bias, t if ctx.t_is_tensor else None, edge_index, out, *stats)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor):
        x, u, weight, bias, t, edge_index, out, *stats = ctx.saved_tensors
        t = t if ctx.t_is_tensor else ctx.t_const
        aggr, eps = ctx.aggr, ctx.eps
        need_x, need_u, need_w, need_b, need_t = ctx.needs_input_grad[:5]
        src, dst = edge_index[0], edge_index[1]
        gx = x.new_zeros(x.shape) if need_x else None
        gu = torch.empty_like(u) if need_u else None
        gw = torch.zeros_like(weight) if need_w else None
        gb = torch.zeros_like(bias) if need_b else None
        gt = torch.zeros_like(t) if need_t else None
        g = g.contiguous()
        if src.numel() == 0:                                          # E = 0: every gradient is 0
            gu = torch.zeros_like(u) if need_u else None
            return gx, gu, gw, gb, gt, None, None, None, None
        if aggr == "max":
            code = stats[0]
            npos, win = code // _WIN_BASE, code % _WIN_BASE           # (N, c) gradient edges, edge id if one
            single = npos <= 1
            eps_t = torch.zeros((), dtype=x.dtype).add_(eps)      # the message of z <= 0
            if bool(single.all()) and not bool(((npos > 0) & (out == eps_t)).any()) and not need_u:
                # every (node, channel) has at most one gradient edge and no tie can hide a z > 0 at m == eps:
                # its gradient g goes to that single edge, found in the (N, c) index; no edge pass
                val = torch.where(npos == 1, g, 0)                    # (N, c)
                idx = win.clamp(min=0)                                # (N, c) edge ids
                if need_x:
                    chan = torch.arange(x.size(1), device=x.device)
                    flat = src.index_select(0, idx.view(-1)).long().view_as(idx) * x.size(1) + chan
                    gx.view(-1).index_add_(0, flat.view(-1), val.view(-1))
                if need_w:
                    for k in range(u.size(1)):                        # (c,) += sum_i val_i u_{w_i, k}
                        gw[:, k] += (val * u[:, k].index_select(0, idx.view(-1)).view_as(val)).sum(0)
                if need_b:
                    gb += val.sum(0)
                return gx, gu, gw, gb, gt, None, None, None, None
            count = x.new_zeros(out.shape)                            # ties: edges whose message is the maximum
            for lo, hi in _spans(src.numel(), ctx.chunk_size):
                _, m = _message(x, src, u, weight, bias, eps, lo, hi, keep_z=False)
                d = dst[lo:hi].long()
                count.index_add_(0, d, (m == out.index_select(0, d)).to(x.dtype))
            gn = g / count.clamp(min=1)                               # (N, c) split evenly among ties
        elif aggr == "mean":
            gn = g / stats[0]
        elif aggr == "softmax":
            M, S = stats
            gn = g / S                                                 # g / (S + 1e-16)
        else:
            gn = g
        for lo, hi in _spans(src.numel(), ctx.chunk_size):
            z, m = _message(x, src, u, weight, bias, eps, lo, hi)
            d = dst[lo:hi].long()
            if aggr == "max":
                dm = torch.where(m == out.index_select(0, d), gn.index_select(0, d), 0)
            elif aggr == "softmax":
                gp = (m * t).sub_(M.index_select(0, d)).exp_().mul_(gn.index_select(0, d))   # g_i p_ij
                diff = m - out.index_select(0, d)                      # m_ij - out_i
                if need_t:
                    gt += (gp * diff * diff).sum()              # sum g p (m - out)^2: no cancellation
                dm = gp.add_(diff.mul_(gp).mul_(t))                   # g p (1 + t (m - out))
            else:
                dm = gn.index_select(0, d)
            dz = dm.masked_fill_(z <= 0, 0)                            # ReLU'
            if need_x:
                gx.index_add_(0, src[lo:hi], dz)
            if need_w:
                gw.addmm_(dz.t(), u[lo:hi])                           # (c, B) @ (B, k)
            if need_b:
                gb += dz.sum(0)
            if need_u:
                gu[lo:hi] = dz if weight is None else dz @ weight
        return gx, gu, gw, gb, gt, None, None, None, None


def gen_aggregate(x: Tensor, edge_index: Tensor, edge_attr: Tensor | None = None, weight: Tensor | None = None,
                  bias: Tensor | None = None, aggr: str = "max", t: float | Tensor = 1.0, eps: float = 1e-7,
                  chunk_size: int | None = None) -> Tensor:
    r"""GENConv's aggregated messages :math:`\mathrm{AGG}_{j \in N(i)} (\mathrm{ReLU}(x_j + A u_{ij} + a) +
    \epsilon)`, computed over chunks of edges with a recomputing backward.

    Args:
        x (Tensor): node states x_j. edge_index (Tensor): (2, E) source, target; int64 or int32.
        edge_attr (Tensor, optional): u, the raw (E, k) edge features; ``None`` for messages ReLU(x_j) + eps.
        weight (Tensor, optional): A, the folded edge encoder (c, k); ``None`` when u already has c channels.
        bias (Tensor, optional): a (c,).
        aggr (str): ``"max"``, ``"softmax"``, ``"mean"``, ``"add"`` or ``"sum"``. (default: ``"max"``)
        t (float or Tensor): softmax inverse temperature (a learnable (1,) parameter or a number). (default: 1)
        eps (float): GENConv's message epsilon. (default: 1e-7)
        chunk_size (int, optional): edges per chunk; default :func:`default_chunk_size`.

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
    if aggr == "sum":
        aggr = "add"
    if aggr == "max" and edge_index.size(1) >= 2**23 and int(torch.bincount(edge_index[1]).max()) >= 2**23:
        raise ValueError("max aggregation supports in-degrees below 2^23 (its tie count shares an int64 with ids)")
    return _GENAggregate.apply(x, edge_attr, weight, bias, t, edge_index, aggr, float(eps), int(chunk_size))
