"""Fingerprints of the computation behind a committed record (issue 26: records that cannot go stale).

A record of ours (``results/*.json``) is only worth showing while today's code would give it. Memory records are
deterministic bytes and are checked by measuring a sample again (:mod:`revgnn.measure.registry`); records of training
or timing are not (seeds, rounding, load), so they carry a *fingerprint*: numbers of the same computation, small
enough to recompute in seconds, that change when the computation's numbers change and stay put otherwise.

- :func:`training_numerics`: a few epochs of the record's own ``revgnn train`` configuration (model, recipe, protocol:
  random partitions, label reuse, clipping, Adam, evaluation) through :func:`revgnn.training.loop.fit`, on a tiny
  graph of the same dataset (``synthetic-proteins`` at :data:`TINY_NODES` nodes; the shipped graphs as they are),
  in float64: the loss of every epoch and the three scores after it.
- :func:`model_numerics`: a few full-graph training steps (forward, loss, backward, Adam) or one inference forward of
  a :class:`~revgnn.nn.presets.ModelConfig` on a tiny ``synthetic-proteins`` graph, in float64: the loss of each step,
  the logits' sum and sum of squares, and the gradients' norm.

Float64 makes the numbers independent of the CPU's vector width and of the thread count (both move a float32 sum in
its last bits, and a max aggregation's near-tie with it); the values are kept to :data:`SIGNIFICANT` digits and
compared with a relative tolerance of :data:`RTOL`, far above float64 rounding (1e-16) and far below any change of the
computation (an initialisation, a default, a formula: 1e-3 and more). A pure refactor (the same operations in
another order or place) leaves a fingerprint alone.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import warnings
from collections.abc import Iterator, Mapping

import torch
import torch.nn.functional as F

from revgnn.nn.presets import ModelConfig, build_model
from revgnn.training.config import TrainConfig

__all__ = ["FINGERPRINT_VERSION", "SIGNIFICANT", "RTOL", "TINY_NODES", "TINY_EDGES", "training_numerics",
           "model_numerics", "differences", "float64_default"]

FINGERPRINT_VERSION = 1
SIGNIFICANT = 10       # digits kept of each value
RTOL = 1e-7            # relative tolerance of a comparison (float64 rounding is ~1e-16; any real change is >> 1e-7)
TINY_NODES, TINY_EDGES = 240, 2_400   # the tiny synthetic-proteins graph (8 species, mean degree 10)
EPOCHS, STEPS = 2, 3


def _round(value) -> float | None:
    if value is None:
        return None
    value = float(value.detach() if isinstance(value, torch.Tensor) else value)
    return value if not math.isfinite(value) else float(f"{value:.{SIGNIFICANT}g}")


@contextlib.contextmanager
def float64_default() -> Iterator[None]:
    """Tensors created without a dtype are float64 inside the block (parameters, partitions' buffers, scores)."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def _float64_graph(data):
    data = data.clone()
    for key in data.keys():
        value = data[key]
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            data[key] = value.double()
    return data


def tiny_train_config(tcfg: TrainConfig, epochs: int = EPOCHS) -> TrainConfig:
    """``tcfg`` for a fingerprint: ``epochs`` epochs, every one evaluated, seed 0, one run, nothing written; a
    ``synthetic-proteins`` graph shrunk to :data:`TINY_NODES` nodes (its generator's other settings kept)."""
    kwargs = dict(tcfg.dataset_kwargs)
    if tcfg.dataset.startswith("synthetic-proteins"):
        kwargs.update(num_nodes=TINY_NODES, num_edges=TINY_EDGES)
    return dataclasses.replace(tcfg, dataset_kwargs=kwargs, epochs=epochs, eval_every=1, runs=1, seed=0,
                               out_dir=None, resume=False, restart=False, progress=False, test_views=0,
                               keep_checkpoint=False, checkpoint_every=0, force=True, threads=None)


def training_numerics(model_config: ModelConfig, train_config: TrainConfig, epochs: int = EPOCHS) -> dict:
    """The fingerprint of a training record: ``epochs`` epochs of its configuration on a tiny graph, in float64.

    Args:
        model_config, train_config: the record's configuration, as today's command line gives it
            (:func:`revgnn.commands.train.model_config` and ``train_config`` of its ``revgnn train`` command).
        epochs: epochs run (each evaluated).

    Returns:
        ``{"loss": [...], "train": [...], "valid": [...], "test": [...]}``, one value per epoch, rounded.
    """
    from revgnn.data.datasets import load_dataset
    from revgnn.training.loop import fit

    tcfg = tiny_train_config(train_config, epochs)
    ds = load_dataset(tcfg.dataset, tcfg.root, **tcfg.dataset_kwargs)
    ds = dataclasses.replace(ds, data=_float64_graph(ds.data))
    quiet = logging.getLogger("revgnn")
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        with float64_default(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a DEQ solve above its tolerance is part of the numbers, not news
            summary = fit(model_config, tcfg, dataset=ds)
    finally:
        quiet.setLevel(level)
    history = summary["runs"][0]["history"]
    return {key: [_round(h.get(key)) for h in history] for key in ("loss", "train", "valid", "test")}


def model_numerics(config: ModelConfig, train: bool = True, steps: int = STEPS, seed: int = 0,
                   lr: float = 1e-3) -> dict:
    """The fingerprint of a timing or memory record's model: ``steps`` full-graph training steps (BCE over the 112
    tasks, backward, Adam) or, with ``train=False``, one forward under ``no_grad``, on a tiny ``synthetic-proteins``
    graph, in float64, dropout as configured (seeded).

    Returns:
        ``{"loss": [...], "logits_sum": [...], "logits_sq": [...], "grad_norm": [...]}``, one value per step, rounded.
    """
    from revgnn.measure.memory import synthetic_graph

    data = _float64_graph(synthetic_graph(TINY_NODES, TINY_EDGES, seed=0))
    with float64_default(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(seed)
        model = build_model(config).double()
        opt = torch.optim.Adam(model.parameters(), lr=lr) if train else None
        out = {"loss": [], "logits_sum": [], "logits_sq": [], "grad_norm": []}
        target = data.y.double()
        for _ in range(steps if train else 1):
            model.train(train)
            with torch.set_grad_enabled(train):
                logits = model(data.x, data.edge_index, data.edge_attr, data.species)
                loss = F.binary_cross_entropy_with_logits(logits, target)
            out["logits_sum"].append(_round(logits.sum()))
            out["logits_sq"].append(_round(logits.pow(2).sum()))
            out["loss"].append(_round(loss))
            if train:
                opt.zero_grad()
                loss.backward()
                grads = [p.grad for p in model.parameters() if p.grad is not None]
                out["grad_norm"].append(_round(torch.linalg.vector_norm(torch.stack(
                    [torch.linalg.vector_norm(g) for g in grads]))))
                opt.step()
    return out


def differences(stored: Mapping, fresh: Mapping, rtol: float = RTOL, where: str = "") -> list[str]:
    """Where two fingerprints (nested dicts and lists of numbers) differ by more than ``rtol``; ``[]`` if nowhere."""
    out = []
    for key in sorted(set(stored) | set(fresh)):
        a, b, at = stored.get(key), fresh.get(key), f"{where}{key}"
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += differences(a, b, rtol, at + ".")
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for k, (u, v) in enumerate(zip(a, b)):
                if not _close(u, v, rtol):
                    out.append(f"{at}[{k}]: {u} (recorded) != {v} (today)")
        elif not _close(a, b, rtol):
            out.append(f"{at}: {a} (recorded) != {b} (today)")
    return out


def _close(a, b, rtol: float) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return abs(a - b) <= rtol * max(abs(a), abs(b)) or a == b
    return a == b
