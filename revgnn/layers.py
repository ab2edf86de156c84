r"""Building blocks: the DeeperGCN "res+" GENConv block and the DEQ-GNN cell (Li et al., 2021; Li et al., 2020).

Notation: N nodes, E edges, D channels, c = D/C channels of one group.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GENConv

__all__ = ["GENBlock", "DEQCell", "shared_dropout_mask"]

_AGGRS = ("max", "softmax", "mean", "add", "sum")


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

    Shapes:
        - x: (N, c); edge_index: (2, E); edge_attr: (E, edge_dim) or None; mask: (N, c) or None
        - output: (N, c)
    """

    def __init__(self, channels: int, edge_dim: int | None = None, aggr: str = "max", learn_t: bool = False,
                 pre_norm: bool = True, dropout: float = 0.0):
        super().__init__()
        if aggr not in _AGGRS:
            raise ValueError(f"aggr must be one of {_AGGRS} (got {aggr!r})")
        self.norm = nn.LayerNorm(channels) if pre_norm else None
        self.dropout = dropout
        self.edge_encoder = nn.Linear(edge_dim, channels) if edge_dim is not None and edge_dim == channels else None
        self.conv = GENConv(channels, channels, aggr=aggr, t=1.0, learn_t=learn_t and aggr == "softmax",
                            norm="layer", num_layers=2, expansion=2, bias=True, edge_dim=edge_dim)

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor | None = None,
                mask: Tensor | None = None) -> Tensor:
        h = x
        if self.norm is not None:
            h = F.relu(self.norm(h))
            if mask is not None:
                h = h * mask                                   # shared dropout mask (N, c)
            elif self.dropout > 0:
                h = F.dropout(h, p=self.dropout, training=self.training)
        if edge_attr is not None and self.edge_encoder is not None:
            edge_attr = self.edge_encoder(edge_attr)           # (E, D) -> (E, D)
        return self.conv(h, edge_index, edge_attr)


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

    Shapes:
        - z, x: (N, D); edge_index: (2, E); edge_attr: (E, edge_dim) or None; mask: (N, D) or None
        - output: (N, D)
    """

    def __init__(self, channels: int, edge_dim: int | None = None, aggr: str = "softmax", learn_t: bool = True):
        super().__init__()
        self.conv1 = GENBlock(channels, edge_dim, aggr, learn_t, pre_norm=False)
        self.norm1 = nn.LayerNorm(channels)
        self.conv2 = GENBlock(channels, edge_dim, aggr, learn_t, pre_norm=False)
        self.norm2 = nn.LayerNorm(channels)

    def forward(self, z: Tensor, x: Tensor, edge_index: Tensor, edge_attr: Tensor | None = None,
                mask: Tensor | None = None) -> Tensor:
        z1 = self.conv1(z, edge_index, edge_attr)
        z2 = F.relu(self.norm1(z1 + x))
        if mask is not None:
            z2 = z2 * mask
        z3 = self.conv2(z2, edge_index, edge_attr)
        return self.norm2(F.relu(z3 + z1))
