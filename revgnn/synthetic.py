r"""``synthetic-proteins``: a generated graph with ogbn-proteins' exact schema, where depth genuinely matters.

Companion data for "Training Graph Neural Networks with 1000 Layers" (Li et al., ICML 2021). The real ogbn-proteins
graph (132,534 proteins, 79,122,504 directed edges, 8-dim edge features in [0, 1], 8 species, species split,
112 binary tasks) cannot be downloaded on every machine, so this module generates a graph with the same schema,
sized by parameters, deterministic by seed. At full size (:data:`FULL_SIZE`) every tensor has exactly the shape of
ogbn-proteins, which is what memory measurements need; at the default size (4,000 nodes) models train in seconds.

Generative process (every step vectorised; one ``torch.Generator`` seeded with ``seed``):

1. **Species.** Nodes are laid out in 8 contiguous species blocks with ogbn-proteins' proportions: six training
   species share 86,619 / 132,534 of the nodes equally, the validation species holds 21,236 / 132,534 and the test
   species 24,679 / 132,534. The split is by species, as in OGB: species 0-5 train, 6 valid, 7 test.
2. **Edges.** ``num_edges / 2`` undirected pairs are drawn inside species (as in STRING, where associations are
   within an organism): a species is drawn with probability proportional to its size, then both endpoints uniformly
   inside it (a self-loop is moved to the next node of the block; repeated pairs are kept as multi-edges). Each pair is
   stored in both directions, so ``edge_index`` has exactly ``num_edges`` columns and degrees are Poisson-like.
3. **Functional edges and edge features.** Each pair is *functional* with probability
   ``functional_degree / mean_degree`` (about 3 functional neighbours per node at every size). Its 8 association
   scores in [0, 1] are: channels 0-2 (the "evidence" channels) uniform on [0.45, 1] for functional pairs and on
   [0, 0.55] otherwise, so functionality is readable from the features but not from any single threshold; channels
   3-7 uniform on [0, 1]. Both directions of a pair carry the same features.
4. **Observable node signal.** The model sees :math:`x_i = \sum_{j} u_{ij}`, the sum of the incident edge features
   (the paper's ogbn-proteins input). The base signal is its channel contrast,
   :math:`h_i = \mathrm{std}(x_i - \bar{x}_i \mathbf{1})`, a linear function of :math:`x_i` that removes the
   degree, standardised per channel over all nodes.
5. **Labels: reachability of marked proteins over functional edges.** Task t (112 tasks) has a random unit
   direction :math:`w_t \in \mathbb{R}^8`, a radius :math:`k_t = 1 + (t \bmod 6)` and a positive rate
   :math:`p_t \sim U(0.1, 0.4)`. With :math:`s_{jt} = w_t^\top h_j` and :math:`B_k(i)` the nodes within k
   functional hops of i (i included),
   :math:`y_{it} = [\, \max_{j \in B_{k_t}(i)} s_{jt} > \tau_t \,]`, where :math:`\tau_t` is the
   :math:`(1 - p_t)`-quantile of that maximum, so a protein has function t when a strongly marked protein lies
   within :math:`k_t` functional associations. Finally each label is flipped with probability ``label_noise``.

So one task in six needs a single message-passing step that tells functional from non-functional edges by their
features, and the others need 2 to 6 such steps (k rounds of "max over functional neighbours", which GENConv's max
aggregation can express): a 1-2 layer GNN sees only part of each ball, a deeper one all of it. The label noise
bounds every model below ROC-AUC 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch_geometric.data import Data
from torch_geometric.utils import scatter

NUM_SPECIES = 8
NUM_TASKS = 112
EDGE_DIM = 8
MAX_HOPS = 6
SPECIES_SIZES_OGB = (14_436, 14_437, 14_436, 14_437, 14_436, 14_437, 21_236, 24_679)  # 6 x train, valid, test
FULL_SIZE = {"num_nodes": 132_534, "num_edges": 79_122_504}


@dataclass
class SyntheticProteinsConfig:
    """Size and seed of a ``synthetic-proteins`` graph (the process is in the module docstring).

    Args:
        num_nodes: Number of proteins; ogbn-proteins has 132,534. The default trains in seconds on a CPU.
        num_edges: Number of directed edges (even); ogbn-proteins has 79,122,504 (mean degree about 597).
        functional_degree: Expected number of functional neighbours per node, which carry the multi-hop signal.
        label_noise: Probability that a label is flipped.
        seed: Seed of the only random generator used.
    """

    num_nodes: int = 4_000   # a few thousand nodes: seconds per epoch on 2 CPU cores
    num_edges: int = 120_000  # mean degree 30: enough neighbours that functional edges must be picked out
    functional_degree: float = 3.0  # sparse enough that 6 hops stay distinguishable
    label_noise: float = 0.02
    seed: int = 0

    def __post_init__(self):
        if self.num_nodes < 10 * NUM_SPECIES:
            raise ValueError(f"synthetic-proteins needs num_nodes >= {10 * NUM_SPECIES}, got {self.num_nodes}")
        if self.num_edges <= 0 or self.num_edges % 2:
            raise ValueError(f"synthetic-proteins needs a positive even num_edges, got {self.num_edges}")
        if not 0 < self.functional_degree <= self.num_edges / self.num_nodes:
            raise ValueError("functional_degree must lie in (0, mean degree]")


def _species_sizes(num_nodes: int) -> torch.Tensor:
    ref = torch.tensor(SPECIES_SIZES_OGB, dtype=torch.float64)
    sizes = torch.floor(ref / ref.sum() * num_nodes).long()
    sizes[-1] += num_nodes - int(sizes.sum())  # remainder goes to the test species
    return sizes


def _standardise(h: torch.Tensor) -> torch.Tensor:
    return (h - h.mean(0)) / h.std(0).clamp_min(1e-12)


def _has_functional(f_index: torch.Tensor, n: int) -> torch.Tensor:
    has = torch.zeros(n, dtype=torch.bool)
    has[f_index[0]] = True
    return has


def generate_synthetic_proteins(cfg: SyntheticProteinsConfig | None = None) -> tuple[Data, dict[str, torch.Tensor]]:
    """Generate a ``synthetic-proteins`` graph (process in the module docstring).

    Args:
        cfg: Size, noise and seed; defaults to :class:`SyntheticProteinsConfig()`.

    Returns:
        ``(data, split)``: ``data`` holds ``edge_index`` (2, E), ``edge_attr`` (E, 8) float in [0, 1], ``x`` (N, 8)
        sum of incident edge features, ``species`` (N,) long in [0, 8), ``y`` (N, 112) long in {0, 1}, and ``hop``
        (112,) each task's radius; ``split`` maps train/valid/test to node indices (species split).
    """
    cfg = cfg or SyntheticProteinsConfig()
    g = torch.Generator().manual_seed(cfg.seed)
    n, m = cfg.num_nodes, cfg.num_edges // 2  # m undirected pairs

    sizes = _species_sizes(n)
    offsets = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    species = torch.repeat_interleave(torch.arange(NUM_SPECIES), sizes)  # (N,)

    pair_species = torch.multinomial(sizes.double(), m, replacement=True, generator=g)  # (m,)
    block = sizes[pair_species]
    src = (torch.rand(m, generator=g, dtype=torch.float64) * block).long().clamp_max_(block - 1)
    dst = (torch.rand(m, generator=g, dtype=torch.float64) * block).long().clamp_max_(block - 1)
    dst = torch.where(src == dst, (dst + 1) % block, dst)  # no self-loops, same edge count
    src, dst = src + offsets[pair_species], dst + offsets[pair_species]
    del block, pair_species

    functional = torch.rand(m, generator=g) < cfg.functional_degree * n / cfg.num_edges  # (m,)
    feat = torch.rand(m, EDGE_DIM, generator=g)  # (m, 8) in [0, 1)
    evidence = feat[:, :3]
    feat[:, :3] = torch.where(functional[:, None], 0.45 + 0.55 * evidence, 0.55 * evidence)

    edge_index = torch.stack([torch.cat([src, dst]), torch.cat([dst, src])])  # (2, E)
    del src, dst
    edge_attr = torch.cat([feat, feat])  # (E, 8): both directions share a pair's scores
    del feat
    x = scatter(edge_attr, edge_index[0], dim=0, dim_size=n, reduce="sum")  # (N, 8), the paper's node input

    fsrc = edge_index[0, : m][functional]
    fdst = edge_index[1, : m][functional]
    f_index = torch.stack([torch.cat([fsrc, fdst]), torch.cat([fdst, fsrc])])  # functional edges, both directions
    h = _standardise(x - x.mean(1, keepdim=True))  # (N, 8) observable base signal
    w = torch.randn(NUM_TASKS, EDGE_DIM, generator=g)
    w = w / w.norm(dim=1, keepdim=True)  # (T, 8) unit directions
    task_hop = torch.arange(NUM_TASKS) % MAX_HOPS + 1  # (T,) radius k_t in 1..6
    rate = 0.1 + 0.3 * torch.rand(NUM_TASKS, generator=g)  # (T,) positive rates
    best = h @ w.t()  # (N, T) s_jt, then max over the growing ball B_k
    reach = torch.empty_like(best)
    has = _has_functional(f_index, n)[:, None]  # nodes without functional neighbours keep their own score
    for k in range(1, MAX_HOPS + 1):
        nbr = scatter(best[f_index[1]], f_index[0], dim=0, dim_size=n, reduce="max")  # isolated nodes: 0
        best = torch.maximum(best, torch.where(has, nbr, best))
        reach[:, task_hop == k] = best[:, task_hop == k]
    threshold = torch.stack([torch.quantile(reach[:, t], 1 - float(rate[t])) for t in range(NUM_TASKS)])  # (T,)
    y = (reach > threshold).long()  # (N, T)
    flip = torch.rand(n, NUM_TASKS, generator=g) < cfg.label_noise
    y = torch.where(flip, 1 - y, y)

    data = Data(x=x, edge_index=edge_index, edge_attr=edge_attr, species=species, y=y, num_nodes=n)
    data.hop = task_hop
    train_mask = species < 6
    split = {
        "train": train_mask.nonzero().view(-1),
        "valid": (species == 6).nonzero().view(-1),
        "test": (species == 7).nonzero().view(-1),
    }
    return data, split
