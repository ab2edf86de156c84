r"""RevGNN with GraphSAGE blocks, the paper's ogbn-products model (RevGNN-112, Li et al., ICML 2021), and its
residual baseline.

Notation: N nodes, E edges, D channels, C groups, L layers, T classes. As PyG's ``examples/rev_gnn.py`` (by the
paper's first author; the official repository has no products code):

    x -> Linear(in, D) -> L grouped reversible layers, each C groups of             (N, D/C) per group
             LayerNorm(D/C) -> ReLU -> shared dropout mask -> SAGEConv(D/C, D/C, mean)
      -> LayerNorm(D) -> ReLU -> Dropout -> Linear(D, T)

At D = 160, C = 2, in 100, T = 47 the parameters are 16,160 + L x 26,080 + 7,887: 2,945,007 at L = 112 and 206,607
at L = 7, the counts of the OGB entry and of PyG's example.

Fused aggregation: with ``fused=True`` (the default) every SAGEConv aggregates with one sparse-matrix product on a CSR
adjacency built from the destination-sorted graph (:func:`csr_adjacency`; PyG's own sparse path of SAGEConv), so no
(E, D/C) message tensor exists; ``fused=False`` passes ``edge_index`` (PyG's gather-scatter, the reference). Same
parameters, equal outputs and gradients.
"""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import SAGEConv

from .layers import shared_dropout_mask
from .rev_wrapper import GroupAddRev, ReversibleSequential
from .reversible import check_groups

__all__ = ["SAGEBlock", "RevSAGE", "ResSAGE", "csr_adjacency"]


def csr_adjacency(edge_index: Tensor, num_nodes: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """The (N_dst, N_src) adjacency of ``edge_index`` as a torch sparse CSR tensor of ones: row i lists the sources
    of node i's in-edges. On a destination-sorted graph (what :func:`revgnn.nn.fused.sort_graph_` leaves, and the
    random parts of one) it is built without copying the edges (the row pointer from a count of destinations, the
    columns a view of ``edge_index[0]``); otherwise the edges are sorted first.

    Shapes:
        output: (N, N) sparse CSR with E stored ones.
    """
    src, dst = edge_index[0], edge_index[1]
    if dst.numel() > 1 and not bool((dst[1:] >= dst[:-1]).all()):
        order = torch.argsort(dst, stable=True)
        src, dst = src[order], dst[order]
    crow = torch.zeros(num_nodes + 1, dtype=torch.long, device=dst.device)
    torch.cumsum(torch.bincount(dst, minlength=num_nodes), 0, out=crow[1:])
    values = torch.ones(src.numel(), dtype=dtype, device=src.device)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Sparse CSR tensor support is in beta.*")
        warnings.filterwarnings("ignore", message=".*Sparse invariant checks.*")
        return torch.sparse_csr_tensor(crow, src.contiguous(), values, (num_nodes, num_nodes))


class SAGEBlock(nn.Module):
    r"""Pre-activation GraphSAGE block: LayerNorm -> ReLU -> shared dropout mask -> SAGEConv (mean aggregation).

    .. math::
        x'_i = W_1 h_i + W_2 \operatorname{mean}_{j \in N(i)} h_j + b, \qquad h = \mathrm{mask} \odot
        \mathrm{ReLU}(\mathrm{LayerNorm}(x))

    Args:
        channels (int): the block's input and output width.

    Shapes:
        - x: (N, c); adj: (2, E) edge_index or (N, N) sparse CSR adjacency; mask: (N, c) or None
        - output: (N, c)
    """

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.conv = SAGEConv(channels, channels, aggr="mean")

    def reset_parameters(self) -> None:
        self.norm.reset_parameters()
        self.conv.reset_parameters()

    def forward(self, x: Tensor, adj: Tensor, mask: Tensor | None = None) -> Tensor:
        h = F.relu(self.norm(x))
        if mask is not None:
            h = h * mask
        return self.conv(h, adj)


class _SAGEHeads(nn.Module):
    """Linear(in, D) in, LayerNorm(D) -> ReLU -> Dropout -> Linear(D, T) out; the adjacency the blocks take."""

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int, dropout: float, fused: bool):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1) (got {dropout})")
        self.lin_in = nn.Linear(in_channels, hidden_channels)
        self.norm = nn.LayerNorm(hidden_channels)
        self.lin_out = nn.Linear(hidden_channels, out_channels)
        self.dropout, self.fused = dropout, fused

    def adjacency(self, x: Tensor, edge_index: Tensor) -> Tensor:
        return csr_adjacency(edge_index, x.size(0), x.dtype) if self.fused else edge_index

    def decode(self, h: Tensor) -> Tensor:
        h = F.dropout(F.relu(self.norm(h)), self.dropout, self.training)
        return self.lin_out(h)


def _no_edge_features(edge_attr: Tensor | None, name: str) -> None:
    if edge_attr is not None:
        raise ValueError(f"{name} takes no edge features (edge_attr); use a dataset without them or --model rev")


class RevSAGE(_SAGEHeads):
    r"""Grouped reversible GraphSAGE (RevGNN-112 on ogbn-products, Li et al., 2021): L reversible layers of C
    :class:`SAGEBlock` groups, activation memory O(ND) whatever L.

    Args:
        in_channels (int), hidden_channels (int): D (default 160), out_channels (int): T.
        num_layers (int): L. (default: 112)
        num_groups (int): C >= 2 dividing D. (default: 2)
        dropout (float): the shared mask of the blocks and the dropout before the output. (default: 0.5)
        fused (bool): aggregate by a sparse-matrix product on a CSR adjacency (:func:`csr_adjacency`). (default: True)
        reversible (bool): ``False`` runs the same blocks with plain autograd (the non-reversible baseline).
        copy_weights (bool): the groups of a layer start with the same weights. (default: ``False``)

    Shapes:
        - x: (N, in_channels); edge_index: (2, E)
        - output: (N, out_channels) logits
    """

    def __init__(self, in_channels: int, hidden_channels: int = 160, out_channels: int = 47, num_layers: int = 112,
                 num_groups: int = 2, dropout: float = 0.5, fused: bool = True, reversible: bool = True,
                 copy_weights: bool = False):
        super().__init__(in_channels, hidden_channels, out_channels, dropout, fused)
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1 (got {num_layers})")
        check_groups(hidden_channels, num_groups)
        c = hidden_channels // num_groups
        self.stack = ReversibleSequential([
            GroupAddRev(SAGEBlock(c), num_groups=num_groups, disable=not reversible, copy_weights=copy_weights,
                        rng="none")                            # the mask comes from outside: nothing random inside
            for _ in range(num_layers)])

    @property
    def num_layers(self) -> int:
        return self.stack.num_layers

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor | None = None, species: Tensor | None = None,
                n_id: Tensor | None = None) -> Tensor:
        _no_edge_features(edge_attr, "RevSAGE")
        h = self.lin_in(x)                                                      # (N, D)
        mask = shared_dropout_mask(h, self.dropout, self.training)              # (N, D) or None
        h = self.stack(h, self.adjacency(x, edge_index), per_group=(mask,))
        return self.decode(h)


class ResSAGE(_SAGEHeads):
    r"""The residual baseline of :class:`RevSAGE` (DeeperGCN "res+" with GraphSAGE, Li et al., 2020):
    :math:`X^{l+1} = X^l + \mathrm{SAGEBlock}(X^l)` at the full width D, activation memory O(LND).

    Args: as :class:`RevSAGE` (no groups).

    Shapes:
        - x: (N, in_channels); edge_index: (2, E)
        - output: (N, out_channels) logits
    """

    def __init__(self, in_channels: int, hidden_channels: int = 160, out_channels: int = 47, num_layers: int = 112,
                 dropout: float = 0.5, fused: bool = True):
        super().__init__(in_channels, hidden_channels, out_channels, dropout, fused)
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1 (got {num_layers})")
        self.blocks = nn.ModuleList([SAGEBlock(hidden_channels) for _ in range(num_layers)])

    @property
    def num_layers(self) -> int:
        return len(self.blocks)

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor | None = None, species: Tensor | None = None,
                n_id: Tensor | None = None) -> Tensor:
        _no_edge_features(edge_attr, "ResSAGE")
        h = self.lin_in(x)
        mask = shared_dropout_mask(h, self.dropout, self.training)
        adj = self.adjacency(x, edge_index)
        for block in self.blocks:
            h = h + block(h, adj, mask)
        return self.decode(h)
