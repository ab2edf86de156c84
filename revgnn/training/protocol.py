"""Training and evaluation protocol of "Training Graph Neural Networks with 1000 Layers" (Li et al., ICML 2021).

Per epoch a fresh random node partition (10 parts on ogbn-proteins), one Adam step per part's induced subgraph,
gradient-norm clipping; evaluation on a random partition (5 parts) or the full graph, averaging the logits over
several random partitions ("multi-view") when asked; the test score is read at the best validation epoch. As in the
paper, a final multi-view test (``test_views`` random ``test_parts``-way partitions, 10 x 3 in the paper) can be run
once on the best-validation weights. Several seeded runs give mean ± std.

Every random partition (and label-reuse mask) comes from a generator seeded by (seed, epoch, stream)
(:func:`_generator`), so an epoch's parts are the same in a resumed run and on every rank. This module holds what an
epoch and an evaluation do with the graph: the parts and their loss, label reuse, the forward pass of a part,
:func:`predict` and the scores; the loop that drives them is :mod:`revgnn.training.loop`.

Featureless graphs (``ppi``): the node input is the standardised log-degree plus *label reuse* (``label_reuse``,
0.5 by default in ``revgnn train --dataset ppi``; a learnable per-node embedding, ``node_embeddings``, is available
but scored at chance on held-out nodes in our runs), the trick of the paper's ogbn-arxiv RevGAT models
(Wang et al., 2021, "Bag of tricks"): every epoch a random ``label_reuse`` fraction of the training nodes shows its
labels as input features (plus a "label known" flag) and the loss is taken on the other training nodes; at
evaluation all training labels are shown. Validation and test labels are never input. The official RevGAT's variant
(ogbn-arxiv) shows the labels without the flag (``label_flag=False``: 128 + 40 input channels) and adds label
iterations, the log-CE loss and self-distillation (:mod:`revgnn.training.tricks`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from revgnn.data.datasets import GraphDataset, evaluate
from revgnn.data.partition import partition_subgraphs

from . import distributed
from .tricks import kd_loss, label_iterations, node_loss

__all__ = ["SPLITS", "predict", "label_columns"]

SPLITS = ("train", "valid", "test")


def _label_features(ds: GraphDataset, known: torch.Tensor, flag: bool = True) -> torch.Tensor:
    """(N, T + 1): the labels of ``known`` nodes (multi-hot or one-hot) and a known flag; zeros elsewhere. Without
    ``flag``: (N, T), the labels only (the official RevGAT's input)."""
    y = ds.data.y
    lab = y.float() if ds.multilabel else F.one_hot(y.view(-1), ds.num_tasks).float()
    shown = torch.zeros(ds.num_nodes, 1)
    shown[known] = 1.0
    return torch.cat([lab * shown, shown], dim=1) if flag else lab * shown


def label_columns(ds: GraphDataset) -> slice:
    """Where the label channels lie in the node input under label reuse: after the dataset's features."""
    return slice(ds.num_features, ds.num_features + ds.num_tasks)


def _inputs(ds: GraphDataset, label_feat: torch.Tensor | None) -> torch.Tensor | None:
    x = ds.data.x
    if label_feat is None:
        return x
    return label_feat if x is None else torch.cat([x, label_feat], dim=1)


def _eval_inputs(ds: GraphDataset, tcfg) -> torch.Tensor | None:
    """The node input at evaluation: with label reuse every training label is shown; else None (``ds.data.x``)."""
    if tcfg.label_reuse <= 0:
        return None
    return _inputs(ds, _label_features(ds, ds.split["train"], tcfg.label_flag))


def _unlabelled(ds: GraphDataset) -> torch.Tensor:
    """(N,) bool: the validation and test nodes, whose label channels label iterations fill with predictions."""
    mask = torch.zeros(ds.num_nodes, dtype=torch.bool)
    mask[ds.split["valid"]] = True
    mask[ds.split["test"]] = True
    return mask


def _forward(model, batch, device, x: torch.Tensor | None = None) -> torch.Tensor:
    g = batch.to(device)
    return model(g.x if x is None else x, g.edge_index, edge_attr=g.edge_attr, species=g.get("species"), n_id=g.n_id)


def _logits(model, ds, batch, device, label_iters: int, refill: torch.Tensor | None, grad: bool) -> torch.Tensor:
    """A part's logits; with ``label_iters`` the label channels of the ``refill`` nodes ((N,) mask) are filled with
    predictions first (:func:`revgnn.training.tricks.label_iterations`)."""
    if label_iters <= 0:
        return _forward(model, batch, device)
    g = batch.to(device)
    return label_iterations(lambda x: _forward(model, g, device, x), g.x, refill[g.n_id.cpu()].to(device),
                            label_columns(ds), label_iters, grad)


def _generator(seed: int, epoch: int, stream: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch * 7 + stream)


@torch.no_grad()
def predict(model: torch.nn.Module, ds: GraphDataset, num_parts: int = 1, num_views: int = 1,
            generator: torch.Generator | None = None, x: torch.Tensor | None = None,
            device: str | torch.device = "cpu", shard: bool = False, label_iters: int = 0) -> torch.Tensor:
    """Logits for every node, averaged over ``num_views`` random ``num_parts``-way partitions (multi-view).

    Args:
        model: A model with the :func:`revgnn.build_model` forward signature.
        ds: The dataset.
        num_parts: Parts per view; 1 is full-graph evaluation (a single view suffices then).
        num_views: Random partitions whose logits are averaged.
        generator: Randomness of the partitions.
        x: Node input overriding ``ds.data.x`` (label reuse).
        shard: Under torch.distributed, deal the parts out over the ranks and sum the logits (every rank must
            call it); without a process group it changes nothing.
        label_iters: Label iterations (:mod:`revgnn.training.tricks`): the validation and test nodes' label channels
            of ``x`` take the softmax of the prediction, and the model runs again, this many times.

    Shapes:
        output: (N, T) logits.
    """
    model.eval()
    data = ds.data if x is None else ds.data.clone().update({"x": x})
    views = 1 if num_parts == 1 else num_views
    out = torch.zeros(ds.num_nodes, ds.num_tasks)
    share = distributed.Share(shard)
    refill = _unlabelled(ds) if label_iters > 0 else None
    for _ in range(views):
        for batch in share(partition_subgraphs(data, num_parts, generator)):
            out[batch.n_id] += _logits(model, ds, batch, device, label_iters, refill, grad=False).float().cpu()
    return share.sum(out) / views


def _score(ds: GraphDataset, logits: torch.Tensor, loss: str | None = None) -> dict[str, float]:
    """Each split's metric; with ``loss`` (the run's loss kind) also ``valid_loss``, for ``select="valid_loss"``."""
    y = ds.data.y
    scores = {s: evaluate(ds.metric, y[ds.split[s]], logits[ds.split[s]]) for s in SPLITS}
    if loss is not None:
        idx = ds.split["valid"]
        scores["valid_loss"] = float(node_loss(loss, logits[idx], y[idx], ds.multilabel))
    return scores


def _epoch_parts(ds, tcfg, train_parts, seed, epoch):
    """Yield (part id, subgraph, loss mask) of the epoch's random partition, parts without loss nodes skipped."""
    g = _generator(seed, epoch, 0)
    train_mask = torch.zeros(ds.num_nodes, dtype=torch.bool)
    train_mask[ds.split["train"]] = True
    x = ds.data.x
    if tcfg.label_reuse > 0:
        train_idx = ds.split["train"]
        shown = train_idx[torch.rand(train_idx.numel(), generator=g) < tcfg.label_reuse]
        train_mask[shown] = False  # loss on the training nodes whose labels are hidden
        x = _inputs(ds, _label_features(ds, shown, tcfg.label_flag))
    data = ds.data if x is ds.data.x else ds.data.clone().update({"x": x})
    for k, batch in enumerate(partition_subgraphs(data, train_parts, g)):
        mask = train_mask[batch.n_id]
        if bool(mask.any()):
            yield k, batch, mask


def _part_loss(model, ds, batch, mask, device, tcfg=None, teacher: torch.Tensor | None = None) -> torch.Tensor:
    """The loss of one part on its ``mask`` nodes: the run's loss kind (``tcfg.loss``), after label iterations
    (``tcfg.label_iters``: the loss nodes and the part's validation and test nodes take predictions as labels),
    mixed with self-distillation from ``teacher`` logits (N, T) over every node of the part."""
    iters = tcfg.label_iters if tcfg is not None else 0
    refill = None
    if iters > 0:
        refill = _unlabelled(ds)
        refill[batch.n_id[mask]] = True
    logits = _logits(model, ds, batch, device, iters, refill, grad=True)
    dev_mask = mask.to(device)
    loss = node_loss(tcfg.loss if tcfg is not None else "ce", logits[dev_mask], batch.y.to(device)[dev_mask],
                     ds.multilabel)
    if teacher is not None and tcfg.kd_alpha > 0:
        kd = kd_loss(logits, teacher[batch.n_id.cpu()].to(device), tcfg.kd_temperature)
        loss = (1 - tcfg.kd_alpha) * loss + tcfg.kd_alpha * kd
    return loss
