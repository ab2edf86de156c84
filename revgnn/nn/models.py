r"""The paper's models: ResGNN, RevGNN, WT-ResGNN, WT-RevGNN and DEQ-GNN (Li et al., ICML 2021).

Notation: N nodes, E edges, D = hidden_channels, C = num_groups, L = num_layers, T = out_channels.

All models share the ogbn-proteins heads of the official code, configurable for other datasets:

- node input: [x | Linear(S, 8)(one_hot(species)) | Embedding(n_id)] -> Linear(., D); on ogbn-proteins x is the sum
  of each node's incident 8-dim edge features and S = 8 species;
- edge embedding: Linear(edge_dim, D), shared by all layers (each block re-encodes it to its own width); with
  ``fused=True`` (the default) no (E, D) embedding is built: each block folds this encoder into its own and computes
  its edge term from the raw (E, edge_dim) features chunk by chunk (:mod:`revgnn.nn.fused`), with the same parameters;
- output: LayerNorm(D) -> ReLU -> dropout -> Linear(D, T).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .deq import DEQLayer
from .layers import DEQCell, GENBlock, shared_dropout_mask
from .reversible import ReversibleStack, check_groups

__all__ = ["GraphHeads", "ResGNN", "RevGNN", "WTResGNN", "WTRevGNN", "DEQGNN"]


class GraphHeads(nn.Module):
    """Input encoders and output head shared by every model (the official ogbn-proteins heads).

    Args:
        in_channels (int): width of x (0 when nodes have no features, e.g. with embeddings only).
        hidden_channels (int): D.
        out_channels (int): T.
        edge_dim (int, optional): width of edge_attr; ``None`` when the graph has none.
        num_species (int, optional): number of species ids (one-hot encoded); ``None`` when absent.
        species_dim (int): width of the species encoding. (default: 8)
        num_embeddings (int, optional): nodes of a learnable per-node embedding looked up with ``n_id``.
        embedding_dim (int): width of that embedding. (default: 64)
        dropout (float): dropout before the output Linear.
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int, edge_dim: int | None = None,
                 num_species: int | None = None, species_dim: int = 8, num_embeddings: int | None = None,
                 embedding_dim: int = 64, dropout: float = 0.0):
        super().__init__()
        node_in = in_channels
        self.num_species = num_species
        self.species_encoder = nn.Linear(num_species, species_dim) if num_species else None
        node_in += species_dim if num_species else 0
        self.embedding = nn.Embedding(num_embeddings, embedding_dim) if num_embeddings else None
        node_in += embedding_dim if num_embeddings else 0
        if node_in <= 0:
            raise ValueError("the model has no node input: give in_channels > 0, num_species or num_embeddings")
        self.node_encoder = nn.Linear(node_in, hidden_channels)
        self.edge_encoder = nn.Linear(edge_dim, hidden_channels) if edge_dim else None
        self.out_norm = nn.LayerNorm(hidden_channels)
        self.out_lin = nn.Linear(hidden_channels, out_channels)
        self.dropout = dropout

    def encode(self, x: Tensor | None, edge_attr: Tensor | None = None, species: Tensor | None = None,
               n_id: Tensor | None = None, embed_edges: bool = True) -> tuple[Tensor, Tensor | None]:
        """Node states (N, D) and the edge embedding (E, D); the latter is ``None`` without edge features or with
        ``embed_edges=False`` (fused models fold the edge encoder into their blocks instead)."""
        parts = [] if x is None or x.size(-1) == 0 else [x]
        if self.species_encoder is not None:
            if species is None:
                raise ValueError("this model encodes species: pass species=LongTensor (N,) of species ids")
            parts.append(self.species_encoder(F.one_hot(species.view(-1), self.num_species).to(self.out_lin.weight)))
        if self.embedding is not None:
            if n_id is None:
                raise ValueError("this model has a node embedding: pass n_id=LongTensor (N,) of global node ids")
            parts.append(self.embedding(n_id))
        h = self.node_encoder(torch.cat(parts, dim=-1))                      # (N, D)
        e = None
        if self.edge_encoder is not None:
            if edge_attr is None:
                raise ValueError("this model was built with edge_dim: pass edge_attr (E, edge_dim)")
            if embed_edges:
                e = self.edge_encoder(edge_attr)                             # (E, D)
        return h, e

    def edge_inputs(self, edge_attr: Tensor | None, e: Tensor | None) -> tuple:
        """The blocks' edge arguments ``(edge_attr, enc_weight, enc_bias)``: the embedding ``e`` (E, D) when it was
        built, else the raw (E, k) features with this encoder's weights, which each block folds into its own."""
        if self.edge_encoder is None:
            return None, None, None
        if e is not None:
            return e, None, None
        return edge_attr, self.edge_encoder.weight, self.edge_encoder.bias

    def decode(self, h: Tensor) -> Tensor:
        h = F.relu(self.out_norm(h))
        h = F.dropout(h, p=self.dropout, training=self.training)
        return self.out_lin(h)                                               # (N, T)


class _FusedSwitch:
    """The ``fused`` switch of a model: every :class:`~revgnn.nn.layers.GENBlock` runs the fused edge-chunked path
    (``True``) or PyG's ``GENConv`` (``False``, the reference); the parameters and ``state_dict`` are the same."""

    @property
    def fused(self) -> bool:
        return all(b.fused for b in self.modules() if isinstance(b, GENBlock))

    @fused.setter
    def fused(self, value: bool) -> None:
        for b in self.modules():
            if isinstance(b, GENBlock):
                b.fused = bool(value)

    def _edges(self, x, edge_attr, species, n_id) -> tuple:
        """Node states and the blocks' edge arguments (edge_attr, enc_weight, enc_bias)."""
        h, e = self.heads.encode(x, edge_attr, species, n_id, embed_edges=not self.fused)
        return h, self.heads.edge_inputs(edge_attr, e)


def _check(num_layers: int, hidden_channels: int, dropout: float) -> None:
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1 (got {num_layers})")
    if hidden_channels < 1:
        raise ValueError(f"hidden_channels must be >= 1 (got {hidden_channels})")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1) (got {dropout})")


def check_edge_attr(edge_index: Tensor, edge_attr: Tensor | None) -> None:
    """Raise a ValueError unless ``edge_attr`` is None or has one row per edge (it would silently broadcast)."""
    if edge_attr is not None and (edge_attr.dim() != 2 or edge_attr.size(0) != edge_index.size(1)):
        raise ValueError(f"edge_attr must have shape (E, edge_dim) with one row per edge, E={edge_index.size(1)} "
                         f"(got {tuple(edge_attr.shape)}); give every edge its own features.")


class ResGNN(_FusedSwitch, nn.Module):
    r"""DeeperGCN "res+" baseline (Li et al., 2020): :math:`X^{l+1} = X^l + \mathrm{GEN}(\mathrm{Drop}(\mathrm{ReLU}
    (\mathrm{Norm}(X^l))))`, first layer a plain GENConv. Activation memory O(LND).

    Args:
        in_channels, hidden_channels, out_channels: as in :class:`GraphHeads`.
        num_layers, dropout, edge_dim, num_species, num_embeddings, embedding_dim: as in :class:`GraphHeads`.
        aggr (str): GENConv aggregation. (default: ``"softmax"`` with learnable temperature, as DeeperGCN)
        learn_t (bool): learnable softmax temperature. (default: ``True``)
        checkpoint_grads (bool): gradient checkpointing per layer (recompute in backward; the strong baseline).
        weight_tied (bool): reuse one block for layers 2..L (WT-ResGNN).
        fused (bool): fused edge-chunked GENConv with folded edge encoders (:mod:`revgnn.nn.fused`); ``False`` runs
            PyG's GENConv on an (E, D) edge embedding (the reference). (default: ``True``)

    Shapes:
        - x: (N, in_channels); edge_index: (2, E); edge_attr: (E, edge_dim); species, n_id: (N,)
        - output: (N, out_channels)
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int, num_layers: int,
                 dropout: float = 0.0, edge_dim: int | None = None, num_species: int | None = None,
                 num_embeddings: int | None = None, embedding_dim: int = 64, aggr: str = "softmax",
                 learn_t: bool = True, checkpoint_grads: bool = False, weight_tied: bool = False,
                 fused: bool = True):
        super().__init__()
        _check(num_layers, hidden_channels, dropout)
        D = hidden_channels
        self.heads = GraphHeads(in_channels, D, out_channels, edge_dim, num_species, 8, num_embeddings,
                                embedding_dim, dropout)
        e_dim = D if edge_dim else None
        first = GENBlock(D, e_dim, aggr, learn_t, pre_norm=False, fused=fused)
        if weight_tied:
            tied = GENBlock(D, e_dim, aggr, learn_t, pre_norm=True, dropout=dropout, fused=fused)
            rest = [tied] * (num_layers - 1)
        else:
            rest = [GENBlock(D, e_dim, aggr, learn_t, pre_norm=True, dropout=dropout, fused=fused)
                    for _ in range(num_layers - 1)]
        self.blocks = nn.ModuleList([first, *rest])
        self.checkpoint_grads = checkpoint_grads

    def forward(self, x: Tensor | None, edge_index: Tensor, edge_attr: Tensor | None = None,
                species: Tensor | None = None, n_id: Tensor | None = None) -> Tensor:
        check_edge_attr(edge_index, edge_attr)
        h, edge = self._edges(x, edge_attr, species, n_id)                  # edge: (e, None, None) or (u, W_0, b_0)
        h = self.blocks[0](h, edge_index, *edge)
        for block in self.blocks[1:]:
            if self.checkpoint_grads and self.training and torch.is_grad_enabled():
                h = h + checkpoint(block, h, edge_index, *edge, use_reentrant=False)
            else:
                h = h + block(h, edge_index, *edge)
        return self.heads.decode(h)


class WTResGNN(ResGNN):
    """Weight-tied ResGNN: one untied first GENConv, then one res+ block reused for layers 2..L. Params O(D^2),
    activation memory O(LND). Arguments as :class:`ResGNN`."""

    def __init__(self, *args, **kwargs):
        kwargs["weight_tied"] = True
        super().__init__(*args, **kwargs)


class RevGNN(_FusedSwitch, nn.Module):
    r"""Grouped reversible GNN (Li et al., 2021, eq. 1-2): L reversible layers of C GENConv group blocks.

    Activation memory O(ND) whatever L is; parameters O(L D^2 / C) plus the heads. Dropout is the paper's shared
    mask (one (N, D) mask per forward, used by every layer, chunked per group) unless ``dropout_mode="replay"``,
    where each block draws its own ordinary dropout and the backward pass replays its RNG seed.

    Args:
        in_channels, hidden_channels, out_channels: as in :class:`GraphHeads`.
        num_layers, dropout, edge_dim, num_species, num_embeddings, embedding_dim: as in :class:`GraphHeads`.
        num_groups (int): C >= 2, dividing hidden_channels. (default: 2)
        aggr (str): GENConv aggregation. (default: ``"max"``, as RevGNN-Deep/Wide)
        learn_t (bool): learnable softmax temperature (``aggr="softmax"`` only).
        weight_tied (bool): one untied first layer, then one layer reused for layers 2..L (WT-RevGNN).
        dropout_mode (str): ``"shared"`` or ``"replay"``. (default: ``"shared"``)
        reversible (bool): ``False`` runs the same blocks with ordinary autograd (reference path).
        anchor_every (int, optional): keep every K-th layer's exact input to bound float drift
            (:class:`~revgnn.nn.reversible.ReversibleStack`). (default: ``None``, O(ND) memory)
        fused (bool): fused edge-chunked GENConv with folded edge encoders (:mod:`revgnn.nn.fused`); ``False`` runs
            PyG's GENConv on an (E, D) edge embedding (the reference). (default: ``True``)

    Shapes:
        - x: (N, in_channels); edge_index: (2, E); edge_attr: (E, edge_dim); species, n_id: (N,)
        - output: (N, out_channels)
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int, num_layers: int,
                 num_groups: int = 2, dropout: float = 0.0, edge_dim: int | None = None,
                 num_species: int | None = None, num_embeddings: int | None = None, embedding_dim: int = 64,
                 aggr: str = "max", learn_t: bool = False, weight_tied: bool = False,
                 dropout_mode: str = "shared", reversible: bool = True, fused: bool = True,
                 anchor_every: int | None = None):
        super().__init__()
        _check(num_layers, hidden_channels, dropout)
        check_groups(hidden_channels, num_groups)
        if dropout_mode not in ("shared", "replay"):
            raise ValueError(f"dropout_mode must be 'shared' or 'replay' (got {dropout_mode!r})")
        D, C = hidden_channels, num_groups
        self.heads = GraphHeads(in_channels, D, out_channels, edge_dim, num_species, 8, num_embeddings,
                                embedding_dim, dropout)
        e_dim = D if edge_dim else None
        block_p = dropout if dropout_mode == "replay" else 0.0

        def layer():
            return nn.ModuleList([GENBlock(D // C, e_dim, aggr, learn_t, pre_norm=True, dropout=block_p,
                                           fused=fused) for _ in range(C)])

        layers = [layer()]
        if weight_tied and num_layers > 1:
            layers += [layer()] * (num_layers - 1)                  # one module object, reused
        else:
            layers += [layer() for _ in range(num_layers - 1)]
        self.dropout, self.dropout_mode = dropout, dropout_mode
        self.stack = ReversibleStack(layers, C, reversible=reversible,
                                     rng="replay" if dropout_mode == "replay" else "none",
                                     anchor_every=anchor_every)

    @property
    def num_layers(self) -> int:
        return self.stack.num_layers

    def forward(self, x: Tensor | None, edge_index: Tensor, edge_attr: Tensor | None = None,
                species: Tensor | None = None, n_id: Tensor | None = None) -> Tensor:
        check_edge_attr(edge_index, edge_attr)
        h, edge = self._edges(x, edge_attr, species, n_id)                  # edge: (e, None, None) or (u, W_0, b_0)
        mask = shared_dropout_mask(h, self.dropout, self.training) if self.dropout_mode == "shared" else None
        h = self.stack(h, edge_index, *edge, per_group=(mask,))             # W_0, b_0 shared: they get gradients
        return self.heads.decode(h)


class WTRevGNN(RevGNN):
    """Weight-tied RevGNN: one untied first reversible layer, then one reused for layers 2..L. Params O(D^2),
    activation memory O(ND). Arguments as :class:`RevGNN`."""

    def __init__(self, *args, **kwargs):
        kwargs["weight_tied"] = True
        super().__init__(*args, **kwargs)


class DEQGNN(_FusedSwitch, nn.Module):
    r"""Deep-equilibrium GNN (Li et al., 2021, Sec. 3.3): node states are the fixed point
    :math:`Z^* = f(Z^*, X)` of a weight-tied :class:`~revgnn.nn.layers.DEQCell`, found by a root finder; gradients by
    implicit differentiation (:class:`~revgnn.nn.deq.DEQLayer`). Activation memory O(ND), parameters O(D^2).

    Args:
        in_channels, hidden_channels, out_channels: as in :class:`GraphHeads`.
        dropout, edge_dim, num_species, num_embeddings, embedding_dim: as in :class:`GraphHeads`.
        aggr (str): GENConv aggregation in the cell. (default: ``"softmax"``, learnable temperature)
        solver (str): ``"anderson"``, ``"broyden"`` or ``"picard"``; max_iter, tol, backward_max_iter, stop_mode,
            node_factor, m, damping, memory: the solver's budget and options (:class:`~revgnn.nn.deq.DEQLayer`).
        unrolled_iters (int, optional): apply the cell this many times with plain autograd instead of solving
            (warm-up phase). Settable between epochs: ``model.deq.unrolled_iters = None`` switches to solving
            (:func:`~revgnn.nn.deq.set_unrolled`; ``revgnn.training`` does it after ``warmup_epochs``).
        norm (str, optional): ``"weight"`` or ``"spectral"`` normalisation of the cell's Linear layers
            (:class:`~revgnn.nn.layers.DEQCell`). (default: ``None``)
        backward (str): ``"implicit"`` or ``"phantom"``; phantom_steps, jac_reg, spectral_iters: as in
            :class:`~revgnn.nn.deq.DEQLayer`. ``jac_reg`` needs ``fused=False``.
        fused (bool): fused edge-chunked GENConv with folded edge encoders. (default: ``True``)

    Shapes:
        - x: (N, in_channels); edge_index: (2, E); edge_attr: (E, edge_dim); species, n_id: (N,)
        - output: (N, out_channels)
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int, dropout: float = 0.0,
                 edge_dim: int | None = None, num_species: int | None = None, num_embeddings: int | None = None,
                 embedding_dim: int = 64, aggr: str = "softmax", learn_t: bool = True, solver: str = "anderson",
                 max_iter: int = 30, tol: float = 1e-4, backward_max_iter: int | None = None,
                 unrolled_iters: int | None = None, fused: bool = True, stop_mode: str = "rel",
                 node_factor: float | None = 10.0, m: int = 5, damping: float = 1.0, memory: int = 20,
                 norm: str | None = None, backward: str = "implicit", phantom_steps: int = 1, jac_reg: float = 0.0,
                 spectral_iters: int = 0):
        super().__init__()
        _check(1, hidden_channels, dropout)
        if jac_reg and fused:
            raise ValueError("jac_reg differentiates the cell twice, which the fused GENConv kernels cannot: build "
                             "the model with fused=False (PyG's GENConv, the same weights)")
        D = hidden_channels
        self.heads = GraphHeads(in_channels, D, out_channels, edge_dim, num_species, 8, num_embeddings,
                                embedding_dim, dropout)
        self.deq = DEQLayer(DEQCell(D, D if edge_dim else None, aggr, learn_t, fused, norm), solver, max_iter, tol,
                            backward_max_iter, unrolled_iters, stop_mode=stop_mode, node_factor=node_factor, m=m,
                            damping=damping, memory=memory, backward=backward, phantom_steps=phantom_steps,
                            jac_reg=jac_reg, spectral_iters=spectral_iters)
        self.dropout = dropout

    @property
    def last_solver_stats(self):
        """The last forward solve's :class:`~revgnn.nn.deq.SolverStats`."""
        return self.deq.last_stats

    @property
    def last_backward_solver_stats(self):
        """The last backward (adjoint) solve's :class:`~revgnn.nn.deq.SolverStats`."""
        return self.deq.last_backward_stats

    @property
    def last_stats(self) -> dict:
        """``{"forward": {...}, "backward": {...}}``: iterations, residual, converged, tol and trace of each solve."""
        return self.deq.solver_stats()

    def forward(self, x: Tensor | None, edge_index: Tensor, edge_attr: Tensor | None = None,
                species: Tensor | None = None, n_id: Tensor | None = None) -> Tensor:
        check_edge_attr(edge_index, edge_attr)
        h, edge = self._edges(x, edge_attr, species, n_id)                  # edge: (e, None, None) or (u, W_0, b_0)
        mask = shared_dropout_mask(h, self.dropout, self.training)
        if self.training and torch.is_grad_enabled():
            self.deq.cell.power_step()                                      # spectral norm: once per step
        z = self.deq(h, edge_index, *edge, mask)
        return self.heads.decode(z)
