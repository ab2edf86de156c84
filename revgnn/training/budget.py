"""Size estimates before allocating: will one training step of "Training Graph Neural Networks with 1000 Layers"
(Li et al., ICML 2021) fit in this machine's memory?

The estimate is the book's floor (:func:`floor_bytes` of a graph, :func:`shape_floor_bytes` of a graph's shape:
edge_index, edge features, labels, one N x D state, parameters with gradients and Adam's two moments) plus what each
model kind must keep for backward, the paper's memory argument (Sec. 3, Figs. 2-4), each term a float32 tensor counted
once:

- ResGNN / WT-ResGNN / ResSAGE: one (N, D) activation per layer, O(L N D) (also with gradient checkpointing, which
  keeps each block's input); with PyG's GENConv (``fused=False``) also one (E, D) message tensor per layer, O(L E D);
- RevGNN / WT-RevGNN / DEQ-GNN / RevSAGE / RevGAT: one more (N, D) state, O(N D), independent of depth; with PyG's
  GENConv (or ``fused=False``) one (E, D) message tensor at a time, O(E D); the fused kernels (GENConv, RevGAT's
  attention sum, RevSAGE's sparse product) hold one edge chunk, nothing of order E D; DEQ-GNN's warm-up epochs train
  the unrolled network of ``warmup_iters`` cells, which keeps that much once per cell;
- the modules themselves: about 64 KiB of Python and torch objects per layer (a 2000-layer RevGNN, D = 64, built on
  the ``meta`` device grew the process by 79 KiB per layer).

Each term is a lower bound of what the step holds, so a step refused here cannot fit; ``--force`` skips the check.
Under random-partition training the step's subgraph has about N / p nodes and E / p^2 edges (p parts), the whole
graph stays in memory.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from revgnn.nn.presets import ModelConfig

if TYPE_CHECKING:
    from torch import nn

__all__ = ["MAX_CHANNELS", "StepEstimate", "parameter_count", "estimate_step", "available_bytes", "check_fits",
           "dataset_shape", "count", "check_depth", "MAX_LAYERS", "floor_bytes", "shape_floor_bytes"]

MAX_CHANNELS = 2**20        # one D x D weight would be 4 TiB: beyond any machine, refused before building anything
MAX_LAYERS = 10_000        # ten times the paper's deepest model (RevGNN-Deep, 1001 layers)
MODULE_BYTES_PER_LAYER = 64 * 2**10
GIB = 2**30


def parameter_count(cfg: ModelConfig) -> int:
    """Trainable parameters of ``cfg`` without allocating them: one- and two-layer models are built on the ``meta``
    device and the per-layer count extrapolated (layers after the first are identical; weight-tied models and
    DEQ-GNN repeat one layer's weights)."""
    import torch

    from revgnn.nn.presets import build_model, count_parameters, min_layers

    if cfg.hidden_channels > MAX_CHANNELS:
        raise ValueError(f"--channels {cfg.hidden_channels} is beyond what can be built (one D x D weight alone "
                         f"would take {cfg.hidden_channels ** 2 * 4:.3g} bytes); use at most {MAX_CHANNELS}")
    low = min_layers(cfg.model)
    with torch.device("meta"):
        one = count_parameters(build_model(cfg.replace(num_layers=low)))
        if cfg.model == "deq" or cfg.num_layers == low:
            return one
        two = count_parameters(build_model(cfg.replace(num_layers=low + 1)))
    if cfg.model in ("wt-res", "wt-rev"):
        return two
    return one + (cfg.num_layers - low) * (two - one)


def floor_bytes(data, model: nn.Module, hidden_channels: int) -> int:
    """Bytes any full-graph training step of ``model`` on ``data`` must hold: edge_index, edge features, labels,
    one (N, D) float32 state, and float32 parameters + gradients + Adam's two moments (4 P floats)."""
    from revgnn.nn.presets import count_parameters

    graph = sum(t.numel() * t.element_size() for t in (data.edge_index, data.edge_attr, data.y) if t is not None)
    return _floor(graph, data.num_nodes, hidden_channels, count_parameters(model))


def shape_floor_bytes(num_nodes: int, num_edges: int, hidden_channels: int, num_parameters: int) -> int:
    """:func:`floor_bytes` of a ``synthetic-proteins`` graph known only by its shape (int64 edge_index and labels,
    float32 edge features), e.g. the whole ogbn-proteins shape without generating it."""
    from revgnn.data.synthetic import EDGE_DIM, NUM_TASKS

    graph = num_edges * (2 * 8 + EDGE_DIM * 4) + num_nodes * NUM_TASKS * 8
    return _floor(graph, num_nodes, hidden_channels, num_parameters)


def _floor(graph_bytes: int, num_nodes: int, hidden_channels: int, num_parameters: int) -> int:
    return graph_bytes + num_nodes * hidden_channels * 4 + 4 * num_parameters * 4


@dataclass
class StepEstimate:
    """Bytes of one training step by term (see the module docstring) and their sum, ``total``."""

    floor: int
    activations: int
    modules: int
    parameters: int

    @property
    def total(self) -> int:
        return self.floor + self.activations + self.modules

    def describe(self) -> str:
        return (f"{self.total / GIB:,.2f} GiB (floor {self.floor / GIB:,.2f} GiB with {self.parameters:,} "
                f"parameters, activations {self.activations / GIB:,.2f} GiB, modules {self.modules / GIB:,.2f} GiB)")


def estimate_step(cfg: ModelConfig, num_nodes: int, num_edges: int, parts: int = 1, train: bool = True,
                  device: str = "cpu") -> StepEstimate:
    """A lower bound of one training step's memory for ``cfg`` on a graph of ``num_nodes`` nodes and ``num_edges``
    directed edges trained in ``parts`` random parts (1: the whole graph); ``train=False``: a no-grad forward (the
    graph, one state, the parameters). On a GPU only the step's subgraph counts (the whole graph stays in host
    memory); on the CPU the whole graph shares the memory with the step."""
    params = parameter_count(cfg)
    n = -(-num_nodes // parts)
    e = -(-num_edges // parts**2)
    L, D = (1 if cfg.model == "deq" else cfg.num_layers), cfg.hidden_channels * cfg.heads
    stored = L if cfg.model in ("res", "wt-res", "ressage") else 1    # (N, D) activations kept for backward
    if cfg.model == "deq":  # the unrolled network of its warm-up (or of unrolled_iters) keeps one per cell
        stored = max(cfg.unrolled_iters or 0, cfg.warmup_iters if cfg.warmup_epochs else 0, 1)
    act = stored * n * D * 4
    if not cfg.fused:  # PyG's message passing: an (E, D) message tensor
        act += stored * e * D * 4
    gn, ge = (n, e) if device.startswith("cuda") else (num_nodes, num_edges)
    if not train:
        return StepEstimate(floor=shape_floor_bytes(gn, ge, D, 0) + 4 * params, activations=0,
                            modules=L * MODULE_BYTES_PER_LAYER, parameters=params)
    return StepEstimate(floor=shape_floor_bytes(gn, ge, D, params), activations=act,
                        modules=L * MODULE_BYTES_PER_LAYER, parameters=params)


def available_bytes(device: str = "cpu") -> int | None:
    """Memory a step may use now: ``MemAvailable`` of ``/proc/meminfo`` (CPU) or the GPU's free memory; None
    where unknown."""
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            return None
        return int(torch.cuda.mem_get_info(torch.device(device))[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_depth(cfg: ModelConfig, force: bool = False) -> None:
    """ValueError for more than :data:`MAX_LAYERS` layers (unless ``force``): building a layer takes about 9 ms and
    80 KB of Python objects here (2000 layers of a RevGNN, D = 64: 15-18 s), so 100,000 layers would take a quarter
    of an hour before the first step."""
    if cfg.model != "deq" and cfg.num_layers > MAX_LAYERS and not force:
        raise ValueError(f"--layers {cfg.num_layers} is more than revgnn builds ({MAX_LAYERS:,}, ten times the "
                         f"paper's deepest model; building takes about 9 ms per layer); pass --force to build it "
                         f"anyway")


def check_fits(estimate: StepEstimate, what: str, device: str = "cpu", force: bool = False, copies: int = 1) -> None:
    """ValueError with the estimate and the machine's memory when ``copies`` x ``estimate`` (the ranks on this
    machine, each with its own copy, when on the CPU) exceed it (unless ``force``)."""
    if force:
        return
    have = available_bytes(device)
    copies = 1 if device.startswith("cuda") else copies  # one GPU per rank
    if have is not None and estimate.total * copies > have:
        where = "this GPU has" if device.startswith("cuda") else "this machine has"
        ranks = f" for each of {copies} ranks" if copies > 1 else ""
        raise ValueError(f"{what} needs at least {estimate.describe()}{ranks}; {where} {have / GIB:,.2f} GiB "
                         f"available. Use a smaller graph, fewer layers or channels, more parts, or pass --force to "
                         f"try anyway")


def dataset_shape(name: str, kwargs: dict) -> tuple[int, int] | None:
    """(nodes, directed edges) of a dataset known before loading it (synthetic-proteins, ogbn-proteins), else
    None."""
    from revgnn.data.synthetic import FULL_SIZE, SyntheticProteinsConfig

    key = name.lower()
    if key in ("synthetic-proteins", "synthetic-proteins-full"):
        params = {**(FULL_SIZE if key.endswith("-full") else {}), **kwargs}
        base = SyntheticProteinsConfig.__dataclass_fields__
        return (int(params.get("num_nodes", base["num_nodes"].default)),
                int(params.get("num_edges", base["num_edges"].default)))
    if key == "ogbn-proteins":
        return FULL_SIZE["num_nodes"], FULL_SIZE["num_edges"]
    return None


def count(text: str) -> int:
    """An argparse type for counts: an integer, also written in scientific notation (``1e10``) when it is whole."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"not a count: {text!r}") from None
    if not value.is_integer():  # also refuses inf and nan
        raise ValueError(f"not a whole count: {text!r}")
    return int(value)
