"""Random node partitions: the mini-batching of "Training Graph Neural Networks with 1000 Layers" (Li et al., 2021).

On ogbn-proteins the paper draws a fresh random partition of the nodes every epoch, 10 parts in training (one
optimizer step per part's induced subgraph) and 5 parts at test time; a random k-way partition keeps about 1/k of
the edges. Reported test numbers average the logits over several random partitions ("multi-view").

Everything here is vectorised: one permutation assigns parts, one pass over ``edge_index`` finds the edges whose
endpoints share a part (PyG's :func:`~torch_geometric.utils.subgraph`), no Python loop over nodes or edges.
"""
from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.utils import subgraph

NODE_KEYS = ("x", "y", "species")


def random_partition(num_nodes: int, num_parts: int, generator: torch.Generator | None = None) -> Tensor:
    """Assign nodes to ``num_parts`` parts of equal size (to within one node) uniformly at random.

    Args:
        num_nodes: N.
        num_parts: k >= 1.
        generator: Source of randomness (a fresh draw per epoch comes from a fresh state).

    Shapes:
        output: (N,) part ids in [0, k).
    """
    if num_parts < 1:
        raise ValueError(f"num_parts must be >= 1, got {num_parts}")
    perm = torch.randperm(num_nodes, generator=generator)
    part = torch.empty(num_nodes, dtype=torch.long)
    part[perm] = torch.arange(num_nodes) % num_parts
    return part


def partition_subgraphs(data: Data, num_parts: int, generator: torch.Generator | None = None) -> Iterator[Data]:
    """Yield the induced subgraphs of a random ``num_parts``-way node partition.

    Args:
        data: Graph with ``edge_index`` and optionally ``x``, ``edge_attr``, ``y``, ``species``.
        num_parts: k; 1 yields the whole graph (with ``n_id`` = all nodes).
        generator: Source of randomness for the partition.

    Yields:
        ``Data`` with the node attributes sliced, ``edge_index`` relabelled to local ids, ``edge_attr`` sliced, and
        ``n_id`` (n,) the global node ids.
    """
    n = int(data.num_nodes)
    if num_parts == 1:
        out = Data(edge_index=data.edge_index, edge_attr=data.edge_attr, n_id=torch.arange(n), num_nodes=n)
        for key in NODE_KEYS:
            if data.get(key) is not None:
                out[key] = data[key]
        yield out
        return
    part = random_partition(n, num_parts, generator)
    for k in range(num_parts):
        n_id = (part == k).nonzero().view(-1)  # (n,)
        edge_index, edge_attr = subgraph(n_id, data.edge_index, data.edge_attr, relabel_nodes=True, num_nodes=n)
        out = Data(edge_index=edge_index, edge_attr=edge_attr, n_id=n_id, num_nodes=n_id.numel())
        for key in NODE_KEYS:
            if data.get(key) is not None:
                out[key] = data[key][n_id]
        yield out
