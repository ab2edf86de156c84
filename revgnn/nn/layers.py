r"""Building blocks: the DeeperGCN "res+" GENConv block and the DEQ-GNN cell (Li et al., 2021; Li et al., 2020).

Notation: N nodes, E edges, D channels, c = D/C channels of one group.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm
from torch_geometric.nn import GENConv
from torch_geometric.nn import Linear as PyGLinear

from .fused import AGGRS as _AGGRS
from .fused import KERNELS as _KERNELS
from .fused import gen_aggregate

__all__ = ["GENBlock", "DEQCell", "SpectralNorm", "shared_dropout_mask", "CELL_NORMS"]

CELL_NORMS = ("weight", "spectral")


def shared_dropout_mask(x: Tensor, p: float, training: bool) -> Tensor | None:
    """The paper's shared dropout: one Bernoulli(1-p) mask of x's shape, scaled by 1/(1-p), drawn once per forward.

    Returns None when no dropout applies (eval mode or p == 0).
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout must be in [0, 1) (got {p})")
    if not training or p == 0.0:
        return None
    return torch.empty_like(x).bernoulli_(1.0 - p).div_(1.0 - p)  # (N, D)


class GENBlock(nn.Module):
    r"""Pre-activation DeeperGCN block ("res+"): LayerNorm -> ReLU -> dropout -> GENConv.

    GENConv (Li et al., 2020) with messages and update

    .. math::
        m_{ij} = \mathrm{ReLU}(x_j + e_{ij}) + \epsilon, \qquad
        x_i' = \mathrm{MLP}\big(x_i + \mathrm{AGG}_{j \in N(i)}\, m_{ij}\big),

    where MLP = Linear(c, 2c) -> LayerNorm(2c) -> ReLU -> Linear(2c, c). This is PyG's
    ``GENConv(c, c, aggr, norm='layer', num_layers=2, expansion=2, bias=True, edge_dim=edge_dim)``; its ``lin_edge``
    is the per-group edge encoder Linear(D, c). PyG builds no edge encoder when ``edge_dim == c`` (the full-width
    ResGNN), so the block adds the official code's ``conv_encode_edge`` Linear(D, D) itself in that case.

    Args:
        channels (int): c, the block's input and output width.
        edge_dim (int, optional): width of the edge embedding passed to :meth:`forward`; ``None`` for no edge input.
        aggr (str): ``"max"`` (RevGNN), ``"softmax"`` (DeeperGCN/ResGNN), ``"mean"``, ``"add"``. (default: ``"max"``)
        learn_t (bool): learnable softmax temperature (only with ``aggr="softmax"``). (default: ``False``)
        pre_norm (bool): apply LayerNorm -> ReLU -> dropout before the convolution; ResGNN's first layer has none.
        dropout (float): probability of the ordinary dropout used when no shared mask is given. (default: 0)
        fused (bool): compute messages and aggregation over edge chunks (:func:`~revgnn.nn.fused.gen_aggregate`) with
            the edge encoders folded, instead of PyG's ``GENConv.propagate`` (the reference). Same parameters, same
            ``state_dict``, equal outputs and gradients. (default: ``True``)
        chunk_size (int, optional): edges per chunk of the fused path (default: from a 64 MiB budget).
        kernel (str): the fused path's kernel, ``"auto"`` (native where it builds), ``"native"`` or ``"torch"``
            (:func:`~revgnn.nn.fused.gen_aggregate`). (default: ``"auto"``)

    Forward arguments ``enc_weight`` (edge_dim, k) and ``enc_bias`` (edge_dim,) are the model-level edge encoder
    Linear(k, edge_dim): given them, ``edge_attr`` holds the raw (E, k) features and the block computes
    e_ij = W_g (enc_weight u_ij + enc_bias) + b_g. The fused path folds this into one (c, k) map, so no (E, edge_dim)
    tensor is ever built; the reference path encodes first.

    Shapes:
        - x: (N, c); edge_index: (2, E); edge_attr: (E, edge_dim), or (E, k) with enc_weight (edge_dim, k) and
          enc_bias (edge_dim,); mask: (N, c) or None
        - output: (N, c)
    """

    def __init__(self, channels: int, edge_dim: int | None = None, aggr: str = "max", learn_t: bool = False,
                 pre_norm: bool = True, dropout: float = 0.0, fused: bool = True, chunk_size: int | None = None,
                 kernel: str = "auto"):
        super().__init__()
        if aggr not in _AGGRS:
            raise ValueError(f"aggr must be one of {_AGGRS} (got {aggr!r})")
        self.norm = nn.LayerNorm(channels) if pre_norm else None
        self.dropout = dropout
        self.edge_encoder = nn.Linear(edge_dim, channels) if edge_dim is not None and edge_dim == channels else None
        self._aggr = aggr
        self.conv = GENConv(channels, channels, aggr=aggr, t=1.0, learn_t=learn_t and aggr == "softmax",
                            norm="layer", num_layers=2, expansion=2, bias=True, edge_dim=edge_dim)
        self.fused = fused
        self.chunk_size = chunk_size
        if kernel not in _KERNELS:
            raise ValueError(f"kernel must be one of {_KERNELS} (got {kernel!r})")
        self.kernel = kernel

    def edge_map(self, enc_weight: Tensor | None = None, enc_bias: Tensor | None = None):
        """The block's edge term as one affine map e = A u + a of the raw features: (A (c, k), a (c,)).

        A = W_g enc_weight and a = W_g enc_bias + b_g, where W_g, b_g is this block's encoder (the group's
        ``lin_edge``, or ``edge_encoder`` when edge_dim == c); ``(None, None)`` means e = u.
        """
        lin = self.edge_encoder if self.edge_encoder is not None else getattr(self.conv, "lin_edge", None)
        weight, bias = (lin.weight, lin.bias) if lin is not None else (None, None)
        if enc_weight is None:
            return weight, bias
        if weight is None:
            return enc_weight, enc_bias
        folded_bias = None if enc_bias is None else weight @ enc_bias          # (c, D) @ (D,)
        if bias is not None:
            folded_bias = bias if folded_bias is None else folded_bias + bias
        return weight @ enc_weight, folded_bias                      # (c, D) @ (D, k), (c,)

    def _conv_fused(self, h: Tensor, edge_index: Tensor, edge_attr: Tensor | None, enc_weight: Tensor | None,
                    enc_bias: Tensor | None) -> Tensor:
        conv = self.conv
        weight, bias = self.edge_map(enc_weight, enc_bias) if edge_attr is not None else (None, None)
        aggr_module = conv.aggr_module
        t = getattr(aggr_module, "t", 1.0)
        agg = gen_aggregate(h, edge_index, edge_attr, weight, bias, aggr=self._aggr, t=t, eps=conv.eps,
                            chunk_size=self.chunk_size, kernel=self.kernel)   # (N, c)
        return conv.mlp(agg + h)                                     # GENConv: MLP(x_i + AGG), in == out channels

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor | None = None,
                enc_weight: Tensor | None = None, enc_bias: Tensor | None = None,
                mask: Tensor | None = None) -> Tensor:
        h = x
        if self.norm is not None:
            h = F.relu(self.norm(h))
            if mask is not None:
                h = h * mask                                   # shared dropout mask (N, c)
            elif self.dropout > 0:
                h = F.dropout(h, p=self.dropout, training=self.training)
        if self.fused:
            return self._conv_fused(h, edge_index, edge_attr, enc_weight, enc_bias)
        if edge_attr is not None and enc_weight is not None:
            edge_attr = F.linear(edge_attr, enc_weight, enc_bias)  # (E, k) -> (E, D), reference path
        if edge_attr is not None and self.edge_encoder is not None:
            edge_attr = self.edge_encoder(edge_attr)           # (E, D) -> (E, D)
        return self.conv(h, edge_index, edge_attr)


class SpectralNorm(nn.Module):
    r"""Spectral normalisation W / sigma(W) (Miyato et al., 2018) as a parametrization, fixed between power steps.

    sigma = u^T W v with v = W^T u / ||W^T u|| and u a buffer (u and v held constant, as in Miyato et al.). Unlike
    ``torch.nn.utils.parametrizations.spectral_norm``, which advances u at every call in training mode, u moves only
    in :meth:`power_step`, which :class:`~revgnn.nn.models.DEQGNN` calls once per training forward: a fixed-point
    solve and its implicit backward must see one and the same f.

    Args:
        weight (Tensor): the (out, in) weight; u starts from 15 power iterations (as PyTorch's).
    """

    def __init__(self, weight: Tensor):
        super().__init__()
        gen = torch.Generator().manual_seed(0)                     # the global RNG (weight init) is left untouched
        u = torch.randn(weight.size(0), generator=gen).to(weight)
        self.register_buffer("u", F.normalize(u, dim=0))
        self.power_step(weight, 15)

    @torch.no_grad()
    def power_step(self, weight: Tensor, iters: int = 1) -> None:
        u = self.u
        for _ in range(iters):
            u = F.normalize(weight @ F.normalize(weight.t() @ u, dim=0), dim=0)
        self.u.copy_(u)

    def forward(self, weight: Tensor) -> Tensor:
        with torch.no_grad():
            v = F.normalize(weight.t() @ self.u, dim=0)               # (in,)
        return weight / (self.u @ weight @ v)                       # sigma = u^T W v, differentiated in W only


class DEQCell(nn.Module):
    r"""The DEQ-GNN cell f(Z, X) whose fixed point Z* = f(Z*, X) is the node representation (Li et al., 2021).

    .. math::
        Z' &= \mathrm{GEN}_1(Z), \qquad Z'' = \mathrm{Norm}(Z' + X), \\
        Z''' &= \mathrm{GEN}_2(\mathrm{Drop}(\mathrm{ReLU}(Z''))), \\
        f(Z, X) &= \mathrm{Norm}(\mathrm{ReLU}(Z''' + Z'))

    X enters as input injection. Dropout uses an explicit mask so f is deterministic during the solve.

    Args:
        channels (int): D.
        edge_dim (int, optional): width of the edge embedding; ``None`` for no edge input.
        aggr (str): aggregation of both GENConvs. (default: ``"softmax"`` with learnable temperature)
        fused (bool): the GENConvs' fused edge-chunked path (see :class:`GENBlock`). (default: ``True``)
        norm (str, optional): normalise the weights of the GENConvs' MLP Linear layers: ``"weight"`` (weight
            normalisation, Salimans & Kingma, 2016: W = g v / ||v|| per output row, one more parameter per row) or
            ``"spectral"`` (:class:`SpectralNorm`), the two TorchDEQ offers; ``None`` for none. (default: ``None``)

    Shapes:
        - z, x: (N, D); edge_index: (2, E); edge_attr: (E, edge_dim), or (E, k) with enc_weight, enc_bias as in
          :class:`GENBlock`; mask: (N, D) or None
        - output: (N, D)
    """

    def __init__(self, channels: int, edge_dim: int | None = None, aggr: str = "softmax", learn_t: bool = True,
                 fused: bool = True, norm: str | None = None):
        super().__init__()
        if norm is not None and norm not in CELL_NORMS:
            raise ValueError(f"norm must be one of {CELL_NORMS} or None (got {norm!r})")
        self.conv1 = GENBlock(channels, edge_dim, aggr, learn_t, pre_norm=False, fused=fused)
        self.norm1 = nn.LayerNorm(channels)
        self.conv2 = GENBlock(channels, edge_dim, aggr, learn_t, pre_norm=False, fused=fused)
        self.norm2 = nn.LayerNorm(channels)
        self.weight_norm = norm
        for lin in self._linears():
            if norm == "weight":
                weight_norm(lin, "weight", dim=0)
            elif norm == "spectral":
                parametrize.register_parametrization(lin, "weight", SpectralNorm(lin.weight))

    def _linears(self) -> list[nn.Module]:
        """The GENConvs' MLP Linear layers (PyG's), the weights ``norm`` normalises."""
        return [m for block in (self.conv1, self.conv2) for m in block.conv.mlp.modules()
                if isinstance(m, (nn.Linear, PyGLinear))]

    def power_step(self) -> None:
        """Advance each :class:`SpectralNorm`'s u by one power iteration (nothing without spectral normalisation)."""
        for lin in self._linears():
            for p in getattr(getattr(lin, "parametrizations", None), "weight", []):
                if isinstance(p, SpectralNorm):
                    p.power_step(lin.parametrizations.weight.original)

    def forward(self, z: Tensor, x: Tensor, edge_index: Tensor, edge_attr: Tensor | None = None,
                enc_weight: Tensor | None = None, enc_bias: Tensor | None = None,
                mask: Tensor | None = None) -> Tensor:
        z1 = self.conv1(z, edge_index, edge_attr, enc_weight, enc_bias)
        z2 = F.relu(self.norm1(z1 + x))
        if mask is not None:
            z2 = z2 * mask
        z3 = self.conv2(z2, edge_index, edge_attr, enc_weight, enc_bias)
        return self.norm2(F.relu(z3 + z1))
