r"""``synthetic-proteins``: a generated graph with ogbn-proteins' exact schema, where depth genuinely matters.

Companion data for "Training Graph Neural Networks with 1000 Layers" (Li et al., ICML 2021). The real ogbn-proteins
graph (132,534 proteins, 79,122,504 directed edges, 8-dim edge features in [0, 1], 8 species, species split,
112 binary tasks) cannot be downloaded on every machine, so this module generates a graph with the same schema,
sized by parameters, deterministic by seed. At full size (:data:`FULL_SIZE`) every tensor has exactly the shape of
ogbn-proteins, which is what memory measurements need; at the default size (4,000 nodes, mean degree 16) a 4-layer
RevGNN trains 200 epochs in about a minute on one CPU core.

Generative process (every step vectorised; one ``torch.Generator`` seeded with ``seed``):

1. **Species.** Nodes are laid out in 8 contiguous species blocks with ogbn-proteins' proportions: six training
   species share 86,619 / 132,534 of the nodes equally, the validation species holds 21,236 / 132,534 and the test
   species 24,679 / 132,534. The split is by species, as in OGB: species 0-5 train, 6 valid, 7 test.
2. **Pathways (functional edges).** Each species' proteins are put in a random order and cut into chains of
   ``pathway_length`` proteins; consecutive proteins of a chain are *functionally* associated. So almost every
   protein has exactly two functional partners, and the ball of radius k around a protein holds 2k + 1 proteins
   whatever its degree: the local neighbourhood says nothing about how far a pathway reaches.
3. **Background edges.** The remaining ``num_edges / 2 - #functional`` undirected pairs are drawn inside species
   (as in STRING, associations are within an organism): a species with probability proportional to its size, then
   both endpoints uniformly inside it (a self-loop is moved to the next node of the block; repeated pairs are kept).
   Each pair is stored in both directions, so ``edge_index`` has exactly ``num_edges`` columns. At the default size a
   protein has 2 functional and about 14 background partners. (When ``num_edges`` is too small for all pathway
   links, a random subset of them is kept and no background edge is drawn.)
4. **Marks and edge features.** Each protein carries mark m (m = 0..4, :data:`NUM_MARKS` kinds) independently
   with probability :math:`r_m`, rising evenly from 0.02 to 0.06. Each pair's 8 association scores in [0, 1]:
   channels 0-2 ("evidence") uniform on [0.5, 1] for functional pairs and on [0, 0.5] for background pairs, so a
   functional link is readable from its features; channel 3 + m uniform on [0.8, 1] when either end carries mark m,
   uniform on [0, 1] otherwise. Both directions of a pair carry the same scores.
5. **Observable input.** As in the paper, the model sees :math:`x_i = \sum_j u_{ij}`, the sum of a protein's incident
   edge features (plus its species). A marked protein's channel 3 + m is raised on every incident edge, so its own
   marks stand out in :math:`x_i`; whether a *neighbour* carries a mark is visible only on that neighbour or on the
   edge between them.
6. **Labels: reach of a mark along pathways.** Task t (112 tasks) asks whether a protein lies within
   :math:`k_t = 1 + (t \bmod 8)` functional hops of a protein carrying mark :math:`m_t = \lfloor t / 8 \rfloor
   \bmod 5`: :math:`y_{it} = [\, \exists j \in B_{k_t}(i) : j \text{ carries } m_t \,]`, with :math:`B_k(i)` the
   proteins within k functional hops of i (i included). Each of the 40 (mark, radius) pairs backs two or three
   tasks; each label is then flipped independently with probability ``label_noise`` (0.02), which bounds every
   model's ROC-AUC below 1. Positive rates run from about 13 % (radius 1) to about 44 % (radius 8).
   ``max_hops`` (default 8) sets the largest radius: with ``max_hops=16`` task t asks about radius
   :math:`1 + (t \bmod 16)` and mark :math:`\lfloor t / 16 \rfloor \bmod 5` (7 tasks per radius), so hops 9-16
   matter too (use ``pathway_length`` >= 33 so that every ball fits inside one pathway).

Why depth matters: a task of radius k needs k rounds of "max over functional partners" (what GENConv's max
aggregation computes once background edges are gated out by their evidence channels); a model that passes fewer
messages sees only part of the ball. A RevGNN layer with C groups passes C messages, so at C = 2 a 1-layer RevGNN sees
2 hops and a 4-layer one all 8. On the default graph's test species, a predictor that knows the hidden truth within
8 hops scores a mean ROC-AUC of 0.960 over the tasks, and one that knows only 1 or 2 hops 0.703 or 0.790
(:func:`oracle_rocauc`; ``tests/test_data.py`` checks the ordering, ``results/accuracy_synthetic-depth.json`` holds
the ceilings next to trained RevGNNs).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch_geometric.data import Data
from torch_geometric.utils import scatter

from .metrics import rocauc

NUM_SPECIES = 8
NUM_TASKS = 112
EDGE_DIM = 8
NUM_MARKS = 5
MAX_HOPS = 8
MARK_RATES = (0.02, 0.06)  # lowest and highest mark rate
SPECIES_SIZES_OGB = (14_436, 14_437, 14_436, 14_437, 14_436, 14_437, 21_236, 24_679)  # 6 x train, valid, test
FULL_SIZE = {"num_nodes": 132_534, "num_edges": 79_122_504}


@dataclass
class SyntheticProteinsConfig:
    """Size and seed of a ``synthetic-proteins`` graph (the process is in the module docstring).

    Args:
        num_nodes: Number of proteins; ogbn-proteins has 132,534. The default trains in about a minute on a CPU.
        num_edges: Number of directed edges (even); ogbn-proteins has 79,122,504 (mean degree about 597).
        pathway_length: Proteins per pathway (chain of functional associations); more than 2 * ``max_hops``
            keeps the ball of every radius inside one pathway (shorter chains cap how far a mark can reach).
        label_noise: Probability that a label is flipped.
        max_hops: Largest task radius: task t asks about radius ``1 + (t mod max_hops)``. The default 8 is what a
            4-layer RevGNN (C = 2) sees; 16 makes hops 9-16 matter, so an 8-layer RevGNN has something to gain
            over a 4-layer one (use ``pathway_length`` >= 33 then).
        seed: Seed of the only random generator used.
    """

    num_nodes: int = 4_000    # a few thousand nodes: about a minute for a 4-layer RevGNN on one CPU core
    num_edges: int = 64_000   # mean degree 16: 2 functional partners among about 16
    pathway_length: int = 32  # > 2 * MAX_HOPS, so the ball of every radius fits inside a pathway
    label_noise: float = 0.02
    seed: int = 0
    max_hops: int = MAX_HOPS

    def __post_init__(self):
        if self.num_nodes < 10 * NUM_SPECIES:
            raise ValueError(f"synthetic-proteins needs num_nodes >= {10 * NUM_SPECIES}, got {self.num_nodes}")
        if self.num_edges <= 0 or self.num_edges % 2:
            raise ValueError(f"synthetic-proteins needs a positive even num_edges, got {self.num_edges}")
        if not 1 <= self.max_hops <= NUM_TASKS:
            raise ValueError(f"max_hops must lie in 1..{NUM_TASKS}, got {self.max_hops}")
        if self.pathway_length < 2:
            raise ValueError(f"pathway_length must be >= 2, got {self.pathway_length}")
        if not 0.0 <= self.label_noise < 0.5:
            raise ValueError(f"label_noise must lie in [0, 0.5), got {self.label_noise}")


def _species_sizes(num_nodes: int) -> torch.Tensor:
    ref = torch.tensor(SPECIES_SIZES_OGB, dtype=torch.float64)
    sizes = torch.floor(ref / ref.sum() * num_nodes).long()
    sizes[-1] += num_nodes - int(sizes.sum())  # remainder goes to the test species
    return sizes


def _pathway_links(species: torch.Tensor, sizes: torch.Tensor, length: int, g: torch.Generator):
    """Random chains of ``length`` proteins inside each species: returns (src, dst) of the chain links."""
    n = species.numel()
    order = (species.double() + torch.rand(n, generator=g, dtype=torch.float64)).argsort()  # species-major shuffle
    offsets = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    slot = torch.arange(n) - offsets[species]  # slot's position in its species block (blocks are contiguous)
    link = (slot[1:] % length != 0) & (species[1:] == species[:-1])  # slot i-1 -- slot i in the same chain
    return order[:-1][link], order[1:][link]


def _reach(marks: torch.Tensor, f_index: torch.Tensor, hops: int) -> list[torch.Tensor]:
    """``[R_0, ..., R_hops]``, R_k (N, M) bool: a protein carrying each mark lies within k functional hops."""
    n = marks.size(0)
    reach = [marks]
    for _ in range(hops):
        r = reach[-1].to(torch.uint8)
        nbr = scatter(r[f_index[1]], f_index[0], dim=0, dim_size=n, reduce="max")  # no partner: 0
        reach.append(reach[-1] | nbr.bool())
    return reach


def generate_synthetic_proteins(cfg: SyntheticProteinsConfig | None = None) -> tuple[Data, dict[str, torch.Tensor]]:
    """Generate a ``synthetic-proteins`` graph (process in the module docstring).

    Args:
        cfg: Size, noise and seed; defaults to :class:`SyntheticProteinsConfig()`.

    Returns:
        ``(data, split)``: ``data`` holds ``edge_index`` (2, E), ``edge_attr`` (E, 8) float in [0, 1], ``x`` (N, 8)
        sum of incident edge features, ``species`` (N,) long in [0, 8), ``y`` (N, 112) long in {0, 1}, ``hop``
        (112,) each task's radius, ``mark`` (112,) each task's mark, ``marks`` (N, 5) bool the hidden marks and
        ``functional`` (E,) bool the hidden pathway edges (the last two are ground truth for analysis, not model
        input); ``split`` maps train/valid/test to node indices (species split).
    """
    cfg = cfg or SyntheticProteinsConfig()
    g = torch.Generator().manual_seed(cfg.seed)
    n, m = cfg.num_nodes, cfg.num_edges // 2  # m undirected pairs

    sizes = _species_sizes(n)
    offsets = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    species = torch.repeat_interleave(torch.arange(NUM_SPECIES), sizes)  # (N,)

    fsrc, fdst = _pathway_links(species, sizes, cfg.pathway_length, g)
    if fsrc.numel() > m:  # too few edges for every link: keep a random subset
        keep = torch.randperm(fsrc.numel(), generator=g)[:m]
        fsrc, fdst = fsrc[keep], fdst[keep]
    mb = m - fsrc.numel()  # background pairs
    pair_species = torch.multinomial(sizes.double(), mb, replacement=True, generator=g) if mb else \
        torch.zeros(0, dtype=torch.long)
    block = sizes[pair_species]
    src = (torch.rand(mb, generator=g, dtype=torch.float64) * block).long().clamp_max_(block - 1)
    dst = (torch.rand(mb, generator=g, dtype=torch.float64) * block).long().clamp_max_(block - 1)
    dst = torch.where(src == dst, (dst + 1) % block, dst)  # no self-loops, same edge count
    src, dst = src + offsets[pair_species], dst + offsets[pair_species]
    del block, pair_species
    perm = torch.randperm(m, generator=g)  # functional pairs do not sit at fixed positions
    functional = (torch.arange(m) < fsrc.numel())[perm]  # (m,)
    src, dst = torch.cat([fsrc, src])[perm], torch.cat([fdst, dst])[perm]
    del perm

    lo, hi = MARK_RATES
    rate = lo + (hi - lo) * torch.arange(NUM_MARKS, dtype=torch.float32) / (NUM_MARKS - 1)  # (M,)
    marks = torch.rand(n, NUM_MARKS, generator=g) < rate  # (N, M)
    feat = torch.rand(m, EDGE_DIM, generator=g)  # (m, 8) in [0, 1)
    feat[:, :3] = torch.where(functional[:, None], 0.5 + 0.5 * feat[:, :3], 0.5 * feat[:, :3])
    marked = marks[src] | marks[dst]  # (m, M): either end carries the mark
    feat[:, 3:] = torch.where(marked, 0.8 + 0.2 * feat[:, 3:], feat[:, 3:])
    del marked

    edge_index = torch.stack([torch.cat([src, dst]), torch.cat([dst, src])])  # (2, E)
    del src, dst
    edge_attr = torch.cat([feat, feat])  # (E, 8): both directions share a pair's scores
    del feat
    x = scatter(edge_attr, edge_index[0], dim=0, dim_size=n, reduce="sum")  # (N, 8), the paper's node input
    functional = torch.cat([functional, functional])  # (E,)

    t = torch.arange(NUM_TASKS)
    task_hop = t % cfg.max_hops + 1  # (T,) radius k_t in 1..max_hops (default 8)
    task_mark = (t // cfg.max_hops) % NUM_MARKS  # (T,) mark m_t
    reach = _reach(marks, edge_index[:, functional], cfg.max_hops)
    y = torch.stack([reach[int(k)][:, int(mk)] for k, mk in zip(task_hop, task_mark)], dim=1).long()  # (N, T)
    del reach
    flip = torch.rand(n, NUM_TASKS, generator=g) < cfg.label_noise
    y = torch.where(flip, 1 - y, y)

    data = Data(x=x, edge_index=edge_index, edge_attr=edge_attr, species=species, y=y, num_nodes=n)
    data.hop, data.mark, data.marks, data.functional = task_hop, task_mark, marks, functional
    split = {
        "train": (species < 6).nonzero().view(-1),
        "valid": (species == 6).nonzero().view(-1),
        "test": (species == 7).nonzero().view(-1),
    }
    return data, split


def oracle_rocauc(data: Data, nodes: torch.Tensor, hops: int) -> float:
    """Mean ROC-AUC over tasks of a predictor that knows the hidden marks and pathways up to ``hops`` hops.

    Scores each task (mark m, radius k) by whether a protein carrying m lies within ``min(k, hops)`` functional hops,
    breaking ties by closeness; it is the best such a ``hops``-hop model can rank up to label noise. ``hops=8``
    (every radius of the default graph; its ``max_hops`` in general) is the ceiling set by the label noise;
    ``hops=1`` or 2 is what a model passing 1 or 2 messages can know at best.

    Args:
        data: A graph from :func:`generate_synthetic_proteins` (needs ``marks``, ``functional``, ``hop``, ``mark``).
        nodes: Indices of the nodes to score (e.g. ``split["test"]``).
        hops: How many functional hops the predictor sees (>= 0).
    """
    if hops < 0:
        raise ValueError(f"hops must be >= 0, got {hops}")
    max_hops = int(data.hop.max())
    reach = _reach(data.marks, data.edge_index[:, data.functional], min(hops, max_hops))
    closeness = torch.stack(reach).float().sum(0)  # (N, M): hops - distance + 1 to the nearest mark within reach
    visible = torch.stack([reach[min(int(k), len(reach) - 1)][:, int(mk)] for k, mk in zip(data.hop, data.mark)],
                          dim=1).float()  # (N, T)
    score = visible * (1 + max_hops) + closeness[:, data.mark]  # visible first, then closer first
    return rocauc(data.y[nodes], score[nodes])
