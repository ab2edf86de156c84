r"""RevGAT, the paper's ogbn-arxiv model (Li et al., ICML 2021, Sec. 5.3), in PyG and torch.

Notation: N nodes, H heads, F channels per head (``hidden_channels``), D = H F, C groups, L layers (the first and
the last plain, L - 2 reversible), T classes. As the official DGL code (lightaime/deep_gcns_torch,
``examples/ogb_eff/ogbn_arxiv_dgl/model_rev.py``):

    x -> Dropout(input_dropout)
      -> BoTGATConv(in -> H x F)                                           layer 0, (N, D)
      -> L - 2 grouped reversible layers, each C groups of                 (N, D/C) per group
             BatchNorm(D/C) -> ReLU -> shared dropout mask -> BoTGATConv(D/C -> H x F/C)
      -> BatchNorm(D) -> ReLU -> Dropout -> BoTGATConv(D -> T, 1 head) -> mean over heads -> + bias

One dropout mask (N, D) per forward is shared by every reversible layer (split per group); edge drop keeps a fresh
random subset of the edges per layer, drawn outside the reversible blocks and shared by a layer's groups. The group
copies start with the same weights (the official code deep-copies one block); ``copy_weights=False`` draws each.
The small-graph options (Cora) move it towards plain GAT: ``batch_norm=False`` (no BatchNorm), attention dropout,
the destination attention term, no degree normalisation, one self-loop per node, no input residual.
At the paper's shape (in 128 + 40 label channels, F = 256, H = 3, C = 2, L = 5, T = 40) the parameters are
258,816 + 6 x 296,064 + 61,480 + 1,536 + 40 = 2,098,256, the count the paper reports.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.utils import add_self_loops, remove_self_loops

from .gat import BoTGATConv, degree_norms, keep_edges
from .layers import shared_dropout_mask
from .rev_wrapper import GroupAddRev, ReversibleSequential
from .reversible import check_groups

__all__ = ["RevGATBlock", "RevGAT"]


class RevGATBlock(nn.Module):
    r"""One group block of a RevGAT layer: BatchNorm -> ReLU -> shared dropout mask -> :class:`BoTGATConv`.

    Args:
        channels (int): D/C, the block's input and output width.
        heads (int): H; the convolution has ``channels // heads`` channels per head.
        layer_index (int): which row of the stacked kept-edge ids (one row per reversible layer) this block uses.
        edge_drop, attention_dst, symmetric_norm, fused, attention_dropout: as in :class:`~revgnn.nn.gat.BoTGATConv`.
        batch_norm (bool): the BatchNorm before the ReLU; ``False``: none. (default: ``True``)

    Shapes:
        - x: (N, D/C); edge_index: (2, E); keep: (L - 2, E') kept edge ids per reversible layer, or None;
          out_norm, in_norm: (N,) or None; mask: (N, D/C) or None
        - output: (N, D/C)
    """

    def __init__(self, channels: int, heads: int, layer_index: int = 0, edge_drop: float = 0.0,
                 attention_dst: bool = False, symmetric_norm: bool = True, fused: bool = True,
                 attention_dropout: float = 0.0, batch_norm: bool = True):
        super().__init__()
        if channels % heads:
            raise ValueError(f"a RevGAT group has {channels} channels, not divisible by heads={heads}; choose "
                             f"hidden_channels divisible by num_groups")
        self.layer_index = layer_index
        self.norm = nn.BatchNorm1d(channels) if batch_norm else nn.Identity()
        self.conv = BoTGATConv(channels, channels // heads, heads, attention_dst=attention_dst, residual=True,
                               symmetric_norm=symmetric_norm, edge_drop=edge_drop, fused=fused,
                               attention_dropout=attention_dropout)

    def forward(self, x: Tensor, edge_index: Tensor, keep: Tensor | None = None, out_norm: Tensor | None = None,
                in_norm: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        h = F.relu(self.norm(x))
        if mask is not None:
            h = h * mask                                                    # shared dropout (N, D/C)
        norms = None if out_norm is None else (out_norm, in_norm)
        return self.conv(h, edge_index, None if keep is None else keep[self.layer_index], norms)


class RevGAT(nn.Module):
    r"""RevGAT (Li et al., 2021): a GAT whose middle layers are grouped reversible (eq. 1-2), O(ND) activation memory
    in them; the ogbn-arxiv model with 74.02 ± 0.18 % test accuracy [code, OGB].

    Args:
        in_channels (int): input width (ogbn-arxiv: 128 features + 40 label channels with label reuse).
        hidden_channels (int): F, channels per head. (default: 256)
        out_channels (int): T.
        num_layers (int): L >= 3: a plain first and last layer around L - 2 reversible ones. (default: 5)
        heads (int): H. (default: 3)
        num_groups (int): C >= 2, dividing ``hidden_channels``. (default: 2)
        dropout (float): the shared mask of the reversible layers and the dropout before the last layer.
            (default: 0.75)
        input_dropout (float): dropout of the input features. (default: 0.25)
        edge_drop (float): fraction of edges dropped per layer in training. (default: 0.3)
        attention_dst (bool): destination attention term (plain GAT). (default: ``False``, as RevGAT)
        symmetric_norm (bool): symmetric degree normalisation. (default: ``True``)
        copy_weights (bool): the groups of a layer start with the same weights, as the official code.
            (default: ``True``)
        reversible (bool): ``False`` runs the same blocks with plain autograd (the non-reversible baseline).
        input_residual (bool): the first layer's linear residual from the input features, as the official code;
            ``False`` drops it (on sparse bag-of-words inputs such as Cora's it lets the model fit the training labels
            from a node's own features alone). (default: ``True``)
        fused (bool): every attention sum over edge chunks, no (E, H, F) tensor (:func:`~revgnn.nn.gat.attention_sum`);
            ``False``: PyG's gather and scatter (the reference). (default: ``True``)
        add_self_loops (bool): replace the graph's self-loops by one per node before the first layer, as GAT and PyG's
            ``GATConv`` do; the official code adds them to the graph instead, as the ogbn loaders of
            :mod:`revgnn.data` do. (default: ``False``)
        attention_dropout (float): dropout of every layer's attention coefficients in training, as GAT (0.6 on
            Cora); the reversible layers then replay each block's random numbers in backward (``rng="replay"``), so
            the rebuilt inputs and the gradients stay exact. The official code leaves it at 0. (default: 0)
        batch_norm (bool): the BatchNorm of every reversible block and before the last layer, as the official code;
            ``False`` drops them (plain GAT has none: on Cora's 140 training labels they cost RevGAT about 5 points of
            validation accuracy, ``revgnn.commands.train.RECIPES``). (default: ``True``)

    Shapes:
        - x: (N, in_channels); edge_index: (2, E)
        - output: (N, out_channels) logits
    """

    def __init__(self, in_channels: int, hidden_channels: int = 256, out_channels: int = 40, num_layers: int = 5,
                 heads: int = 3, num_groups: int = 2, dropout: float = 0.75, input_dropout: float = 0.25,
                 edge_drop: float = 0.3, attention_dst: bool = False, symmetric_norm: bool = True,
                 copy_weights: bool = True, reversible: bool = True, fused: bool = True, input_residual: bool = True,
                 add_self_loops: bool = False, attention_dropout: float = 0.0, batch_norm: bool = True):
        super().__init__()
        if num_layers < 3:
            raise ValueError(f"RevGAT needs num_layers >= 3 (a first and a last GAT layer around the reversible "
                             f"ones), got {num_layers}")
        check_groups(hidden_channels, num_groups)
        for name, p in (("dropout", dropout), ("input_dropout", input_dropout), ("edge_drop", edge_drop),
                        ("attention_dropout", attention_dropout)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{name} must be in [0, 1) (got {p})")
        D, C = heads * hidden_channels, num_groups
        conv = dict(attention_dst=attention_dst, symmetric_norm=symmetric_norm, edge_drop=edge_drop, fused=fused,
                    attention_dropout=attention_dropout)
        self.input_dropout = nn.Dropout(input_dropout)
        self.first = BoTGATConv(in_channels, hidden_channels, heads, residual=input_residual, **conv)  # (N, D)
        rng = "replay" if attention_dropout else "none"  # edge drop and the mask come from outside; attention
        self.stack = ReversibleSequential([              # dropout is drawn inside, so it is replayed in backward
            GroupAddRev(RevGATBlock(D // C, heads, layer_index=l, batch_norm=batch_norm, **conv), num_groups=C,
                        disable=not reversible, copy_weights=copy_weights, rng=rng)
            for l in range(num_layers - 2)])
        self.norm = nn.BatchNorm1d(D) if batch_norm else nn.Identity()
        self.last = BoTGATConv(D, out_channels, 1, concat=False, **conv)                   # (N, T)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.dropout, self.edge_drop, self.symmetric_norm = dropout, edge_drop, symmetric_norm
        self.add_self_loops = add_self_loops

    @property
    def num_layers(self) -> int:
        return self.stack.num_layers + 2

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor | None = None, species: Tensor | None = None,
                n_id: Tensor | None = None) -> Tensor:
        if edge_attr is not None:
            raise ValueError("RevGAT takes no edge features (edge_attr); use a dataset without them or --model rev")
        if self.add_self_loops:                                   # (2, E') with one (i, i) per node
            edge_index, _ = add_self_loops(remove_self_loops(edge_index)[0], num_nodes=x.size(0))
        N, E = x.size(0), edge_index.size(1)
        keep = None
        if self.training and self.edge_drop > 0:                 # one fresh subset per layer (official: a permutation)
            keep = torch.stack([keep_edges(E, self.edge_drop, device=x.device) for _ in range(self.num_layers)])
        norms = degree_norms(edge_index, N, x.dtype) if self.symmetric_norm else (None, None)
        h = self.first(self.input_dropout(x), edge_index, None if keep is None else keep[0],
                       None if norms[0] is None else norms)                                # (N, D)
        mask = shared_dropout_mask(h, self.dropout, self.training)                         # (N, D) or None
        h = self.stack(h, edge_index, None if keep is None else keep[1:-1], *norms, per_group=(mask,))
        h = F.dropout(F.relu(self.norm(h)), self.dropout, self.training)
        h = self.last(h, edge_index, None if keep is None else keep[-1], None if norms[0] is None else norms)
        return h + self.bias
