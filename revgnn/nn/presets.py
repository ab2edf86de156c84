"""Model configurations and the paper's named presets (Li et al., ICML 2021, Tables 1-2 and Sec. 5.3).

:class:`ModelConfig` is the one place where a configuration meets a model (:func:`build_model`). The ogbn-proteins
presets carry its heads (8-dim summed edge features + 8 species in, 8-dim edge features, 112 tasks out); the
ogbn-arxiv RevGAT and the ogbn-products RevGNN-112 (GraphSAGE blocks) carry those datasets' widths (128 features + 40
label channels in, 40 classes out; 100 features in, 47 classes out), the shapes of the official RevGAT and of PyG's
``examples/rev_gnn.py``.

Weight tying, as read here: the released WT-RevGNN parameter counts equal exactly two distinct grouped layers plus
the heads, so a weight-tied model has one untied first layer followed by one tied layer repeated L-1 times
(WT-ResGNN likewise: an untied first GENConv, then one tied res+ block). The DEQ-GNN cell holds two full-width
GENConvs and two LayerNorms. Parameter counts then match the paper's 51.2K / 35.0K / 51.4K / 337K / 51.3K / 537K
within 0.2 %.
"""
from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .solver_options import check_solver_options

if TYPE_CHECKING:
    from torch import nn

__all__ = ["ModelConfig", "PRESETS", "PAPER_PARAMS", "build_model", "get_preset", "list_presets",
           "count_parameters", "MODEL_KINDS", "NODE_FEATURE_KINDS", "EXTRA_DEFAULTS", "min_layers",
           "DEQ_ONLY_FIELDS", "WARMUP_EPOCHS", "WARMUP_ITERS"]

# DEQ-GNN's warm-up (issue 29): two epochs as the weight-tied network of k = 8 cells, then the solver. Checked by
# benchmarks/deq_convergence.py (results/deq_convergence.json): its `fig1` section runs issue 29's check at the Fig. 1
# settings with these defaults (every solve of the first 10 solver steps of seeds 0-9), its `warmup` section compares
# the other warm-ups (epochs x k) on that graph and on a 200-node one.
WARMUP_EPOCHS, WARMUP_ITERS = 2, 8
# ModelConfig fields that only DEQ-GNN reads and that came after its first records: a run of another model records
# none of them, so its configuration (and the checkpoints that must match it) are as before.
DEQ_ONLY_FIELDS = ("backward_max_iter", "stop_mode", "node_factor", "anderson_m", "damping", "broyden_memory",
                   "warmup_epochs", "warmup_iters", "deq_norm", "deq_backward", "phantom_steps", "jac_reg",
                   "spectral_iters")
MODEL_KINDS = ("res", "rev", "wt-res", "wt-rev", "deq", "revgat", "revsage", "ressage")
# Models of node features only (revgnn.nn.revgat, revgnn.nn.revsage): no edge features, species or node embeddings.
NODE_FEATURE_KINDS = ("revgat", "revsage", "ressage")
# Fields added for them, left out of a recorded configuration at these defaults (older records stay equal).
EXTRA_DEFAULTS = {"heads": 1, "input_dropout": 0.0, "edge_drop": 0.0, "input_residual": True, "self_loops": False,
                  "attention_dropout": 0.0, "batch_norm": True, "attention_dst": False, "symmetric_norm": True}


@dataclass
class ModelConfig:
    """Everything needed to build one model.

    Defaults are the ogbn-proteins heads and RevGNN's choices; ``aggr=None`` picks the paper's aggregation for the
    model kind (``max`` for RevGNN/WT-RevGNN, learnable-temperature ``softmax`` for ResGNN, WT-ResGNN, DEQ-GNN).
    """

    model: str = "rev"                 # one of MODEL_KINDS
    num_layers: int = 112              # L (ignored by DEQ-GNN, whose depth is the solver's iterations)
    hidden_channels: int = 64          # D
    num_groups: int = 2                # C, RevGNN only; every released command uses 2
    dropout: float = 0.1               # 0.1 RevGNN-Deep, 0.2 RevGNN-Wide
    in_channels: int = 8               # summed incident edge features on ogbn-proteins
    out_channels: int = 112            # tasks
    edge_dim: int | None = 8           # edge features; None for graphs without
    num_species: int | None = 8        # species one-hot; None for graphs without
    num_embeddings: int | None = None  # learnable per-node embedding (looked up with n_id)
    embedding_dim: int = 64
    aggr: str | None = None            # None: the paper's choice for the model kind
    checkpoint_grads: bool = False     # ResGNN only: gradient checkpointing per layer
    dropout_mode: str = "shared"       # RevGNN: 'shared' mask (paper) or 'replay' (RNG replay)
    anchor_every: int | None = None    # RevGNN: keep every K-th layer's exact input (bounds float drift); None: O(ND)
    solver: str = "anderson"           # DEQ-GNN: anderson, broyden or picard (revgnn.nn.solvers)
    max_iter: int = 30                 # DEQ-GNN forward iterations cap
    tol: float = 1e-4                  # DEQ-GNN whole-graph residual to stop at (stop_mode)
    unrolled_iters: int | None = None  # DEQ-GNN: always the weight-tied unrolled network of this many cells
    backward_max_iter: int | None = None  # DEQ-GNN adjoint cap; None: max_iter
    stop_mode: str = "rel"             # DEQ-GNN: 'rel' ||f(z)-z|| / ||f(z)|| or 'abs' ||f(z)-z||
    node_factor: float | None = 10.0   # DEQ-GNN: the worst node must be within node_factor * tol too; None: not
    anderson_m: int = 5                # DEQ-GNN: Anderson window
    damping: float = 1.0               # DEQ-GNN: Anderson / Picard mixing, 1 undamped
    broyden_memory: int = 20           # DEQ-GNN: Broyden rank-one updates kept
    warmup_epochs: int = WARMUP_EPOCHS  # DEQ-GNN: epochs trained as the unrolled network before the solver; 0: none
    warmup_iters: int = WARMUP_ITERS   # DEQ-GNN: k, cell applications of that unrolled network
    deq_norm: str | None = None        # DEQ-GNN: 'weight' or 'spectral' normalisation of the cell's Linear layers
    deq_backward: str = "implicit"     # DEQ-GNN: 'implicit' (adjoint solve) or 'phantom' (one-step gradient)
    phantom_steps: int = 1             # DEQ-GNN: f applications the phantom gradient differentiates
    jac_reg: float = 0.0               # DEQ-GNN: Jacobian regularisation weight (needs fused=False); 0: off
    spectral_iters: int = 0            # DEQ-GNN: power iterations estimating df/dz's spectral radius per step
    fused: bool = True                 # fused edge-chunked GENConv (revgnn.nn.fused); False: PyG's GENConv reference
    kernel: str = "auto"               # fused path: 'native' C++ kernel where it builds, else 'torch' (revgnn.nn.fused)
    heads: int = 1                     # RevGAT: attention heads H (hidden_channels is per head, as PyG's GATConv)
    input_dropout: float = 0.0         # RevGAT: dropout of the input features (official: 0.25)
    edge_drop: float = 0.0             # RevGAT: fraction of edges dropped per layer in training (official: 0.3)
    input_residual: bool = True        # RevGAT: the first layer's linear residual from the input (official: on)
    self_loops: bool = False           # RevGAT: one self-loop per node added by the model (ogbn loaders add them)
    attention_dropout: float = 0.0     # RevGAT: dropout of the attention coefficients (GAT on Cora: 0.6; official: 0)
    batch_norm: bool = True            # RevGAT: BatchNorm before every layer but the first (official: on)
    attention_dst: bool = False        # RevGAT: the destination attention term of plain GAT (official: off)
    symmetric_norm: bool = True        # RevGAT: symmetric degree normalisation of the messages (official: on)

    def replace(self, **changes) -> ModelConfig:
        return dataclasses.replace(self, **changes)

    def __post_init__(self):
        """Refuse values no model can use, with the fix (also on :meth:`replace`)."""
        if self.model not in MODEL_KINDS:
            raise ValueError(f"unknown model {self.model!r}; choose one of {', '.join(MODEL_KINDS)}")
        for name in ("num_layers", "hidden_channels", "num_groups", "max_iter"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not (isinstance(self.dropout, numbers.Real) and 0.0 <= self.dropout < 1.0):
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.kernel not in ("auto", "native", "torch"):
            raise ValueError(f"kernel must be one of auto, native, torch, got {self.kernel!r}")
        if not isinstance(self.heads, numbers.Integral) or isinstance(self.heads, bool) or self.heads < 1:
            raise ValueError(f"heads must be an integer >= 1, got {self.heads!r}")
        for name in ("input_dropout", "edge_drop"):
            if not (isinstance(getattr(self, name), numbers.Real) and 0.0 <= getattr(self, name) < 1.0):
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")
        if self.model == "revgat" and self.num_layers < 3:
            raise ValueError(f"a RevGAT needs num_layers >= 3 (a first and a last GAT layer around the reversible "
                             f"ones), got {self.num_layers}")
        if self.model == "deq":
            _check_deq(self)
        if self.model in ("rev", "wt-rev", "revgat", "revsage"):
            if self.num_groups < 2:
                raise ValueError(f"num_groups must be >= 2 for a reversible model, got {self.num_groups}; "
                                 f"the paper uses 2")
            if self.hidden_channels % self.num_groups:
                raise ValueError(f"hidden_channels {self.hidden_channels} is not divisible by num_groups "
                                 f"{self.num_groups}; choose channels that are a multiple of the groups")


def _check_deq(c: ModelConfig) -> None:
    """DEQ-GNN's solver, warm-up and stabiliser settings (ValueError with the fix)."""
    check_solver_options(solver=c.solver, max_iter=c.max_iter, tol=c.tol, backward_max_iter=c.backward_max_iter,
                         stop_mode=c.stop_mode, node_factor=c.node_factor, m=c.anderson_m, damping=c.damping,
                         memory=c.broyden_memory, backward=c.deq_backward, phantom_steps=c.phantom_steps,
                         jac_reg=c.jac_reg, spectral_iters=c.spectral_iters)
    for name, low in (("warmup_epochs", 0), ("warmup_iters", 1)):
        value = getattr(c, name)
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if c.deq_norm not in (None, "weight", "spectral"):
        raise ValueError(f"deq_norm must be 'weight', 'spectral' or None, got {c.deq_norm!r}")
    if c.jac_reg and c.fused:
        raise ValueError("jac_reg differentiates the DEQ cell twice, which the fused GENConv kernels cannot: set "
                         "fused=False (PyG's GENConv, the same weights; revgnn train --no-fused)")


def build_model(config: ModelConfig) -> nn.Module:
    """Build the model a :class:`ModelConfig` describes; raises ValueError with the fix for bad values."""
    model = _build(config)
    return _with_kernel(model, config.kernel) if config.kernel != "auto" else model


def _build_node_feature_model(c: ModelConfig) -> nn.Module:
    from .revgat import RevGAT
    from .revsage import ResSAGE, RevSAGE

    extra = [name for name, value in (("edge features (edge_dim)", c.edge_dim), ("species", c.num_species),
                                      ("node embeddings", c.num_embeddings)) if value]
    if extra:
        raise ValueError(f"--model {c.model} reads node features only, but this configuration has "
                         f"{', '.join(extra)}; use a dataset without them (cora, planetoid:NAME, ogbn-arxiv, "
                         f"ogbn-products) or a GENConv model (--model rev)")
    if c.in_channels < 1:
        raise ValueError(f"--model {c.model} needs node features (in_channels >= 1), got {c.in_channels}")
    common = dict(in_channels=c.in_channels, hidden_channels=c.hidden_channels, out_channels=c.out_channels,
                  num_layers=c.num_layers, dropout=c.dropout)
    if c.model == "revgat":
        return RevGAT(heads=c.heads, num_groups=c.num_groups, input_dropout=c.input_dropout, edge_drop=c.edge_drop,
                      fused=c.fused, input_residual=c.input_residual,
                      add_self_loops=c.self_loops, attention_dropout=c.attention_dropout, batch_norm=c.batch_norm,
                      attention_dst=c.attention_dst, symmetric_norm=c.symmetric_norm, **common)
    if c.model == "revsage":
        return RevSAGE(num_groups=c.num_groups, fused=c.fused, **common)
    return ResSAGE(fused=c.fused, **common)


def _build(config: ModelConfig) -> nn.Module:
    from .models import DEQGNN, ResGNN, RevGNN

    c = config
    if c.model not in MODEL_KINDS:
        raise ValueError(f"unknown model {c.model!r}; choose one of {', '.join(MODEL_KINDS)}")
    if c.model in NODE_FEATURE_KINDS:
        return _build_node_feature_model(c)
    common = dict(in_channels=c.in_channels, hidden_channels=c.hidden_channels, out_channels=c.out_channels,
                  dropout=c.dropout, edge_dim=c.edge_dim, num_species=c.num_species,
                  num_embeddings=c.num_embeddings, embedding_dim=c.embedding_dim, fused=c.fused)
    if c.model in ("res", "wt-res"):
        aggr = c.aggr or "softmax"
        return ResGNN(num_layers=c.num_layers, aggr=aggr, learn_t=aggr == "softmax",
                      checkpoint_grads=c.checkpoint_grads, weight_tied=c.model == "wt-res", **common)
    if c.model in ("rev", "wt-rev"):
        aggr = c.aggr or "max"
        return RevGNN(num_layers=c.num_layers, num_groups=c.num_groups, aggr=aggr, learn_t=aggr == "softmax",
                      weight_tied=c.model == "wt-rev", dropout_mode=c.dropout_mode, anchor_every=c.anchor_every,
                      **common)
    aggr = c.aggr or "softmax"
    return DEQGNN(aggr=aggr, learn_t=aggr == "softmax", solver=c.solver, max_iter=c.max_iter, tol=c.tol,
                  backward_max_iter=c.backward_max_iter, unrolled_iters=c.unrolled_iters, stop_mode=c.stop_mode,
                  node_factor=c.node_factor, m=c.anderson_m, damping=c.damping, memory=c.broyden_memory,
                  norm=c.deq_norm, backward=c.deq_backward, phantom_steps=c.phantom_steps, jac_reg=c.jac_reg,
                  spectral_iters=c.spectral_iters, **common)


def _with_kernel(model: nn.Module, kernel: str) -> nn.Module:
    """Set the fused kernel of every GENBlock of ``model``."""
    from .layers import GENBlock

    for m in model.modules():
        if isinstance(m, GENBlock):
            m.kernel = kernel
    return model


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters, each counted once (tied weights once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


PRESETS: dict[str, ModelConfig] = {
    "revgnn-deep": ModelConfig("rev", 1001, 80, dropout=0.1),
    "revgnn-wide": ModelConfig("rev", 448, 224, dropout=0.2),
    "revgnn-64": ModelConfig("rev", 112, 64),
    "revgnn-80": ModelConfig("rev", 112, 80),
    "revgnn-224": ModelConfig("rev", 112, 224),
    "resgnn-64": ModelConfig("res", 112, 64),
    "resgnn-224": ModelConfig("res", 112, 224),
    "wt-resgnn-64": ModelConfig("wt-res", 112, 64),
    "wt-revgnn-64": ModelConfig("wt-rev", 112, 64),
    "wt-revgnn-80": ModelConfig("wt-rev", 112, 80),
    "wt-revgnn-224": ModelConfig("wt-rev", 112, 224),
    "deq-gnn-64": ModelConfig("deq", 1, 64),
    "deq-gnn-224": ModelConfig("deq", 1, 224),
    # ogbn-arxiv, the official RevGAT command: 128 features + 40 label channels (label reuse), 3 heads of 256
    "revgat-arxiv": ModelConfig("revgat", 5, 256, dropout=0.75, in_channels=168, out_channels=40, edge_dim=None,
                                num_species=None, heads=3, input_dropout=0.25, edge_drop=0.3),
    # ogbn-products, PyG's examples/rev_gnn.py: SAGEConv blocks, D = 160, dropout 0.5
    "revgnn-112-products": ModelConfig("revsage", 112, 160, dropout=0.5, in_channels=100, out_channels=47,
                                       edge_dim=None, num_species=None),
    "revgnn-7-products": ModelConfig("revsage", 7, 160, dropout=0.5, in_channels=100, out_channels=47,
                                     edge_dim=None, num_species=None),
}

# The paper's parameter counts with their confidence marks (../shared/spec/PAPER.md, section 2).
PAPER_PARAMS: dict[str, tuple[int, str]] = {
    "revgnn-deep": (20_031_384, "OGB"),
    "revgnn-wide": (68_471_608, "OGB"),
    "revgnn-64": (1_457_080, "derived"),
    "revgnn-80": (2_251_384, "derived"),
    "revgnn-224": (17_141_560, "derived"),
    "resgnn-64": (2_374_568, "OGB"),
    "resgnn-224": (28_400_000, "unconfirmed, 28.4M"),
    "wt-resgnn-64": (51_200, "unconfirmed, 51.2K"),
    "wt-revgnn-64": (35_000, "derived from unconfirmed"),
    "wt-revgnn-80": (51_384, "derived from unconfirmed"),
    "wt-revgnn-224": (337_080, "derived from unconfirmed"),
    "deq-gnn-64": (51_300, "unconfirmed, 51.3K"),
    "deq-gnn-224": (537_000, "unconfirmed, 537K"),
    "revgat-arxiv": (2_098_256, "code, OGB"),
    "revgnn-112-products": (2_945_007, "OGB"),
    "revgnn-7-products": (206_607, "derived"),
}


def min_layers(model: str) -> int:
    """The fewest layers a model kind builds with (RevGAT: a first and a last layer around one reversible)."""
    return 3 if model == "revgat" else 1


def list_presets() -> list[str]:
    return list(PRESETS)


def get_preset(name: str) -> ModelConfig:
    """The named preset's :class:`ModelConfig` (a copy)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)} "
                         "(or `revgnn params --list`)")
    return dataclasses.replace(PRESETS[name])
