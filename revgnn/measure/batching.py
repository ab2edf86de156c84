"""Fig. 5 of "Training Graph Neural Networks with 1000 Layers" (Li et al., ICML 2021): on ogbn-products, the memory of
one training step of ResGNN and RevGNN against depth, full batch against mini-batches of random parts.

No public script produces the figure, so the protocol is ours, and the book says so:

- the graph: ogbn-products' shape (N = 2,449,029 nodes, 123,718,280 directed edges, as ogb doubles its 61,859,140,
  plus one self-loop per node: 126,167,309; 100 features, 47 classes), or a fraction of it at the same mean degree,
  generated with random edges (:func:`products_graph`): memory depends on the shape only;
- the models: RevGNN is :class:`~revgnn.nn.revsage.RevSAGE` (PyG's ``examples/rev_gnn.py``: D = 160, C = 2, shared
  dropout 0.5), ResGNN its residual baseline :class:`~revgnn.nn.revsage.ResSAGE` at the same width; both aggregate by
  a sparse CSR product (no (E, D) tensor), as PyG's example does with its ``SparseTensor``;
- full batch: one step on the whole graph; mini-batch: one step on one part of a random 10-part node partition (the
  training of PyG's example: about N / 10 nodes and E / 100 edges a part);
- one training step: forward, cross-entropy on every node, backward, Adam step; its peak is measured by
  :func:`revgnn.measure.memory.measure_step` (CUDA: ``max_memory_allocated``; CPU: the allocator's events).

A step predicted to exceed the memory limit from the series' shallower points (linear in depth) is recorded as out of
memory without being run, as are the deeper points of a series once one did not fit.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch_geometric.data import Data

from revgnn.nn.presets import ModelConfig
from revgnn.training.records import environment

from .memory import measure_config

__all__ = ["PRODUCTS", "BATCHING_MODELS", "products_graph", "random_part", "batching_config", "batching_records"]

PRODUCTS = {"num_nodes": 2_449_029, "num_edges": 2 * 61_859_140 + 2_449_029, "num_features": 100, "num_classes": 47}
BATCHING_MODELS = {"res": "ressage", "rev": "revsage"}  # the figure's labels -> model kinds


def products_graph(num_nodes: int, num_edges: int, seed: int = 0) -> Data:
    """A graph of ogbn-products' schema: ``num_nodes`` nodes, about ``num_edges`` directed edges (undirected random
    edges stored both ways, plus one self-loop per node), sorted by destination; ``x`` (N, 100) standard normal,
    ``y`` (N,) class ids in 0..46.

    The transient memory is about 24 bytes per edge beyond the graph's own 16 (the two random columns and the sort's
    int32 permutation).
    """
    from revgnn.nn.fused import sort_graph_

    if num_nodes < 2 or num_edges < num_nodes:
        raise ValueError(f"a products-shaped graph needs num_nodes >= 2 and num_edges >= num_nodes (the self-loops), "
                         f"got {num_nodes} and {num_edges}")
    g = torch.Generator().manual_seed(seed)
    m = (num_edges - num_nodes) // 2                                          # undirected random edges
    edge_index = torch.empty(2, 2 * m + num_nodes, dtype=torch.long)
    torch.randint(0, num_nodes, (m,), generator=g, out=edge_index[0, :m])
    torch.randint(0, num_nodes, (m,), generator=g, out=edge_index[1, :m])
    edge_index[0, m:2 * m] = edge_index[1, :m]                                # each edge both ways
    edge_index[1, m:2 * m] = edge_index[0, :m]
    edge_index[:, 2 * m:] = torch.arange(num_nodes)                           # self-loops
    x = torch.randn(num_nodes, PRODUCTS["num_features"], generator=g)
    y = torch.randint(0, PRODUCTS["num_classes"], (num_nodes,), generator=g)
    return sort_graph_(Data(x=x, edge_index=edge_index, y=y, num_nodes=num_nodes))


def random_part(data: Data, parts: int, seed: int = 0) -> Data:
    """The first part of a random ``parts``-way node partition of ``data``: its induced subgraph, as one mini-batch
    of PyG's ``RandomNodeLoader`` (:func:`revgnn.data.partition.partition_subgraphs`)."""
    from revgnn.data.partition import partition_subgraphs

    part = next(partition_subgraphs(data, parts, torch.Generator().manual_seed(seed)))
    return Data(x=part.x, edge_index=part.edge_index, y=part.y, num_nodes=part.num_nodes)


def batching_config(model: str, depth: int, hidden_channels: int = 160, num_groups: int = 2,
                    dropout: float = 0.5) -> ModelConfig:
    """The configuration of a figure point: ``model`` ``"res"`` (ResSAGE) or ``"rev"`` (RevSAGE) at depth L."""
    return ModelConfig(BATCHING_MODELS[model], depth, hidden_channels, num_groups=num_groups, dropout=dropout,
                       in_channels=PRODUCTS["num_features"], out_channels=PRODUCTS["num_classes"], edge_dim=None,
                       num_species=None)


def _predicted(series: list[dict], depth: int) -> float | None:
    """The peak at ``depth`` from the series' two deepest measured points (linear in depth), or None."""
    done = sorted((r["depth"], r["peak_bytes"]) for r in series if r.get("peak_bytes"))
    if len(done) < 2:
        return None
    (x0, y0), (x1, y1) = done[-2:]
    return y1 + (y1 - y0) / (x1 - x0) * (depth - x1)


def batching_records(models: Sequence[str], depths: Sequence[int], graph: Data, parts: int = 10,
                     hidden_channels: int = 160, num_groups: int = 2, seed: int = 0, device: str = "cpu",
                     limit_bytes: float | None = None, repeats: int = 1, warmup: int = 1,
                     batchings: Sequence[str] = ("full", "parts")) -> list[dict]:
    """Measure one training step for every (model, batching, depth) of the figure.

    Args:
        models: ``"res"`` and/or ``"rev"``.
        depths: L of every series, increasing.
        graph: the whole graph (:func:`products_graph`); the mini-batch is its first random part.
        parts: parts of the random partition (PyG's example: 10).
        limit_bytes: a step needing more, or predicted to, is out of memory (None: only the device's own limit).
        repeats, warmup: timed and warm-up steps per point (:func:`~revgnn.measure.memory.measure_step`).

    Returns:
        one record per point: ``model``, ``batching``, ``depth``, ``hidden_channels``, ``num_groups``, ``parts``,
        ``oom`` (and ``oom_predicted``), the :class:`~revgnn.measure.memory.StepMemory` fields (``num_nodes``,
        ``num_edges`` of the step's graph), ``graph`` (the whole graph's size) and ``provenance``.
    """
    dev = torch.device(device)
    provenance = {**environment(dev), "seed": seed}
    steps = {"full": graph, "parts": random_part(graph, parts, seed) if "parts" in batchings else None}
    whole = {"num_nodes": int(graph.num_nodes), "num_edges": int(graph.edge_index.size(1))}
    records = []
    for model in models:
        for batching in batchings:
            series: list[dict] = []
            stopped = False
            for depth in sorted(depths):
                config = batching_config(model, depth, hidden_channels, num_groups)
                rec = {"model": model, "batching": batching, "depth": depth, "hidden_channels": hidden_channels,
                       "num_groups": num_groups, "parts": parts if batching == "parts" else 1, "graph": whole,
                       "provenance": provenance}
                guess = _predicted(series, depth)
                if stopped or (limit_bytes is not None and guess is not None and guess > limit_bytes):
                    rec.update(oom=True, oom_predicted=not stopped, peak_bytes=None,
                               predicted_peak_bytes=None if stopped else int(guess))
                    stopped = True
                    records.append(rec)
                    continue
                try:
                    step = measure_config(config, 0, 0, device=device, seed=seed, data=steps[batching],
                                          repeats=repeats, warmup=warmup).to_dict()
                except (torch.cuda.OutOfMemoryError, MemoryError, RuntimeError) as err:
                    if not isinstance(err, (torch.cuda.OutOfMemoryError, MemoryError)) \
                            and "allocate" not in str(err).lower():
                        raise
                    step = {"peak_bytes": None, "oom": True, "error": str(err).splitlines()[0][:200]}
                    if dev.type == "cuda":
                        torch.cuda.empty_cache()
                step["model_config"] = dataclasses.asdict(config)
                step.pop("model", None)
                oom = step.get("oom", False) or (limit_bytes is not None and step["peak_bytes"] > limit_bytes)
                stopped = oom
                rec = {**step, **rec, "oom": oom}
                series.append(rec)
                records.append(rec)
    return records
