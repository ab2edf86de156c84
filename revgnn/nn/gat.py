r"""The graph attention convolution of the official RevGAT (Li et al., ICML 2021, ogbn-arxiv), in PyG and torch.

It is GAT (Velickovic et al., 2018) with the "bag of tricks" of the ogbn-arxiv leaderboard entries it builds on
(Wang et al., 2021): no bias, attention from the source only, a linear residual, a symmetric degree normalisation and
edge drop. Notation: N nodes, E edges, H heads, F channels per head, d_out / d_in a node's out- / in-degree.

    h_j = W x_j (H x F),    s_j = d_out(j)^{-1/2} h_j                        (normalised source features)
    e_ij = LeakyReLU(a_src . s_j [+ a_dst . h_i])                             (per head; a_dst off in RevGAT)
    alpha_ij = softmax_j(e_ij) over the kept in-edges of i
    x'_i = d_in(i)^{1/2} sum_j alpha_ij s_j + W_res x_i

Edge drop (training only) keeps a random (1 - p) fraction of the edges for the softmax and the sum; the degrees
stay those of the whole graph, as in the official code (``examples/ogb_eff/ogbn_arxiv_dgl/model_rev.py`` of
lightaime/deep_gcns_torch, there in DGL).

Fused sum: the attention-weighted sum runs over edge chunks in one autograd function (:func:`attention_sum`), which
keeps only the (E, H) attention and the (N, H, F) features for backward, where PyG's gather and scatter would build
and save an (E, H, F) message tensor (7.6 GB for RevGAT's first layer on ogbn-arxiv). Its gradient is exact.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.utils import degree, scatter, softmax

__all__ = ["BoTGATConv", "attention_sum", "degree_norms", "keep_edges"]

CHUNK_BYTES = 64 * 2**20  # the (chunk, H, F) message block of the fused sum


class _AttentionSum(torch.autograd.Function):
    """out[i] = sum over edges e = (j -> i) of alpha[e] * s[j], edge chunk by edge chunk."""

    @staticmethod
    def forward(ctx, alpha: Tensor, s: Tensor, src: Tensor, dst: Tensor, num_nodes: int, chunk: int) -> Tensor:
        out = s.new_zeros(num_nodes, *s.shape[1:])                             # (N, H, F)
        for a in range(0, src.numel(), chunk):
            b = a + chunk
            out.index_add_(0, dst[a:b], s[src[a:b]] * alpha[a:b].unsqueeze(-1))  # (c, H, F) at a time
        ctx.save_for_backward(alpha, s, src, dst)
        ctx.chunk = chunk
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        alpha, s, src, dst = ctx.saved_tensors
        need_alpha, need_s = ctx.needs_input_grad[:2]
        grad_alpha = torch.empty_like(alpha) if need_alpha else None
        grad_s = torch.zeros_like(s) if need_s else None
        for a in range(0, src.numel(), ctx.chunk):
            b = a + ctx.chunk
            g = grad[dst[a:b]]                                                   # (c, H, F)
            if need_alpha:
                grad_alpha[a:b] = (g * s[src[a:b]]).sum(-1)                      # d out / d alpha_e
            if need_s:
                grad_s.index_add_(0, src[a:b], g * alpha[a:b].unsqueeze(-1))     # d out / d s_j
        return grad_alpha, grad_s, None, None, None, None


def attention_sum(alpha: Tensor, s: Tensor, src: Tensor, dst: Tensor, num_nodes: int,
                  chunk_size: int | None = None) -> Tensor:
    """The attention-weighted sum of GAT over edge chunks: out[i] = sum_{e = (j -> i)} alpha_e s_j, no (E, H, F)
    tensor kept.

    Shapes:
        - alpha: (E, H); s: (N, H, F); src, dst: (E,)
        - output: (N, H, F)
    """
    chunk = chunk_size or max(1, CHUNK_BYTES // max(1, s[0].numel() * s.element_size()))
    return _AttentionSum.apply(alpha, s, src, dst, num_nodes, chunk)


def degree_norms(edge_index: Tensor, num_nodes: int, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """(d_out^{-1/2}, d_in^{1/2}) of every node (degrees clamped to >= 1), the symmetric normalisation.

    Shapes:
        output: two (N,) tensors.
    """
    d_out = degree(edge_index[0], num_nodes, dtype=dtype).clamp_(min=1)
    d_in = degree(edge_index[1], num_nodes, dtype=dtype).clamp_(min=1)
    return d_out.pow_(-0.5), d_in.pow_(0.5)


def keep_edges(num_edges: int, p: float, device=None, generator: torch.Generator | None = None) -> Tensor:
    """Ids of the edges kept by edge drop with probability ``p``: a random permutation without its first
    ``int(E p)`` entries, as the official code draws it.

    Shapes:
        output: (E - int(E p),) edge ids.
    """
    perm = torch.randperm(num_edges, device=device, generator=generator)
    return perm[int(num_edges * p):]


class BoTGATConv(nn.Module):
    r"""GAT with the ogbn-arxiv tricks, as in the official RevGAT (Li et al., 2021; Wang et al., 2021).

    .. math::
        x'_i = d_{in}(i)^{1/2} \sum_{j \in N(i)} \alpha_{ij}\, d_{out}(j)^{-1/2} W x_j + W_{res} x_i, \qquad
        \alpha_{ij} = \mathrm{softmax}_j\big(\mathrm{LeakyReLU}(a_{src}^\top d_{out}(j)^{-1/2} W x_j)\big)

    Args:
        in_channels (int): input width.
        out_channels (int): F, channels per head.
        heads (int): H. (default: 1)
        concat (bool): output (N, H F) (``True``) or the mean over heads (N, F). (default: ``True``)
        negative_slope (float): LeakyReLU slope of the attention logits. (default: 0.2)
        attention_dst (bool): add the destination term a_dst . h_i (plain GAT); RevGAT has none. (default: ``False``)
        residual (bool): add the linear residual W_res x_i (no bias). (default: ``True``)
        symmetric_norm (bool): the degree normalisation above. (default: ``True``)
        edge_drop (float): fraction of edges dropped in training; the kept ids may be passed to :meth:`forward`
            (drawn outside, e.g. shared by a layer's groups), else they are drawn here. (default: 0)
        fused (bool): the attention-weighted sum over edge chunks (:func:`attention_sum`, no (E, H, F) tensor);
            ``False`` gathers and scatters with PyG (the reference). (default: ``True``)
        attention_dropout (float): dropout of the attention coefficients alpha_ij in training, as GAT (0.6 on Cora);
            the official RevGAT has the option but leaves it at 0. (default: 0)

    Shapes:
        - x: (N, in_channels); edge_index: (2, E); keep: (E',) kept edge ids or None;
          norms: ``(d_out^{-1/2}, d_in^{1/2})`` (two (N,) tensors) or None (computed from edge_index)
        - output: (N, H F) or (N, F)
    """

    def __init__(self, in_channels: int, out_channels: int, heads: int = 1, concat: bool = True,
                 negative_slope: float = 0.2, attention_dst: bool = False, residual: bool = True,
                 symmetric_norm: bool = True, edge_drop: float = 0.0, fused: bool = True,
                 attention_dropout: float = 0.0):
        super().__init__()
        self.fused = fused
        for name, p in (("edge_drop", edge_drop), ("attention_dropout", attention_dropout)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{name} must be in [0, 1) (got {p})")
        self.attention_dropout = attention_dropout
        self.in_channels, self.out_channels, self.heads, self.concat = in_channels, out_channels, heads, concat
        self.negative_slope, self.symmetric_norm, self.edge_drop = negative_slope, symmetric_norm, edge_drop
        self.lin = nn.Linear(in_channels, heads * out_channels, bias=False)
        self.att_src = nn.Parameter(torch.empty(1, heads, out_channels))
        self.att_dst = nn.Parameter(torch.empty(1, heads, out_channels)) if attention_dst else None
        self.res = nn.Linear(in_channels, heads * out_channels, bias=False) if residual else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-normal initialisation with ReLU's gain, as the official code."""
        gain = nn.init.calculate_gain("relu")
        nn.init.xavier_normal_(self.lin.weight, gain=gain)
        nn.init.xavier_normal_(self.att_src, gain=gain)
        if self.att_dst is not None:
            nn.init.xavier_normal_(self.att_dst, gain=gain)
        if self.res is not None:
            nn.init.xavier_normal_(self.res.weight, gain=gain)

    def forward(self, x: Tensor, edge_index: Tensor, keep: Tensor | None = None,
                norms: tuple[Tensor, Tensor] | None = None) -> Tensor:
        N, H, Fh = x.size(0), self.heads, self.out_channels
        h = self.lin(x).view(N, H, Fh)                                          # (N, H, F)
        if self.symmetric_norm:
            out_norm, in_norm = norms if norms is not None else degree_norms(edge_index, N, x.dtype)
            s = h * out_norm.view(N, 1, 1)
        else:
            s = h
        src, dst = edge_index[0], edge_index[1]
        if self.training and self.edge_drop > 0:
            if keep is None:
                keep = keep_edges(src.numel(), self.edge_drop, device=x.device)
            src, dst = src[keep], dst[keep]
        logits = (s * self.att_src).sum(-1)[src]                                # (E', H)
        if self.att_dst is not None:
            logits = logits + (h * self.att_dst).sum(-1)[dst]
        alpha = softmax(F.leaky_relu(logits, self.negative_slope), dst, num_nodes=N)  # (E', H)
        alpha = F.dropout(alpha, self.attention_dropout, self.training)
        if self.fused:
            out = attention_sum(alpha, s, src, dst, N)                                  # (N, H, F)
        else:
            out = scatter(s[src] * alpha.unsqueeze(-1), dst, dim=0, dim_size=N, reduce="sum")
        if self.symmetric_norm:
            out = out * in_norm.view(N, 1, 1)
        if self.res is not None:
            out = out + self.res(x).view(N, H, Fh)
        return out.flatten(1) if self.concat else out.mean(1)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, heads={self.heads}, residual={self.res is not None}, "
                f"attention_dst={self.att_dst is not None}, symmetric_norm={self.symmetric_norm}, "
                f"edge_drop={self.edge_drop}, attention_dropout={self.attention_dropout}")
