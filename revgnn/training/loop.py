"""Training and evaluation protocol of "Training Graph Neural Networks with 1000 Layers" (Li et al., ICML 2021).

Per epoch a fresh random node partition (10 parts on ogbn-proteins), one Adam step per part's induced subgraph,
gradient-norm clipping; evaluation on a random partition (5 parts) or the full graph, averaging the logits over
several random partitions ("multi-view") when asked; the test score is read at the best validation epoch. As in the
paper, a final multi-view test (``test_views`` random ``test_parts``-way partitions, 10 x 3 in the paper) can be run
once on the best-validation weights. Several seeded runs give mean ± std.

Reproducibility: every random partition (and label-reuse mask) comes from a generator seeded by (seed, epoch), the
dropout RNG, optimizer and best-so-far are checkpointed, so a run killed at any point (``kill -9``) and restarted
with ``resume=True`` ends with the same metrics as an uninterrupted run (on the same machine, CPU).

Featureless graphs (``ppi``): the node input is the standardised log-degree plus *label reuse* (``label_reuse``,
0.5 by default in ``revgnn train --dataset ppi``; a learnable per-node embedding, ``node_embeddings``, is available
but scored at chance on held-out nodes in our runs), the trick of the paper's ogbn-arxiv RevGAT models
(Wang et al., 2021, "Bag of tricks"): every epoch a random ``label_reuse`` fraction of the training nodes shows its
labels as input features (plus a "label known" flag) and the loss is taken on the other training nodes; at
evaluation all training labels are shown. Validation and test labels are never input.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from revgnn.data.datasets import GraphDataset, evaluate, load_dataset
from revgnn.data.partition import partition_subgraphs
from revgnn.nn.deq import solver_fields
from revgnn.nn.presets import ModelConfig, build_model, count_parameters

from . import budget, distributed
from .records import atomic_torch_save, environment, peak_memory_bytes, read_json, write_json
from .runtime import (
    LOCK_NAME,
    STOP,
    TrainingInterrupted,
    apply_thread_policy,
    lock_holder,
    output_lock,
    remove_stale_temps,
    thread_info,
)

log = logging.getLogger(__name__)
SPLITS = ("train", "valid", "test")


@dataclass
class TrainConfig:
    """Optimisation and evaluation settings (the paper's values in comments; defaults run in minutes on a CPU).

    Args:
        dataset: A name for :func:`revgnn.data.datasets.load_dataset`.
        root: Data root (None: ``$REVGNN_DATA`` or ``~/.cache/revgnn``).
        dataset_kwargs: Parameters of ``synthetic-proteins`` (e.g. ``num_nodes``).
        epochs: Training epochs (paper: 2000).
        lr: Adam learning rate (paper: 0.001).
        weight_decay: Adam weight decay.
        clip_grad_norm: Gradient-norm clip (paper: 1.0); None disables.
        train_parts: Random partition parts per training epoch (paper: 10); None uses the dataset's default.
        eval_parts: Parts at evaluation (paper: 5; 1 = full graph); None uses the dataset's default.
        eval_views: Random partitions whose logits are averaged at each evaluation during training (paper: 1;
            its reported numbers come from the final multi-view test, ``test_views``).
        eval_every: Evaluate every k epochs (and at the last epoch).
        test_views: After training, restore the best-validation weights and average the logits of this many random
            ``test_parts``-way partitions, once (the paper's reported numbers: 10 views of 3 parts, after training
            with 5-part evaluation); recorded as ``multiview``. 0 skips it.
        test_parts: Parts per final test view; None uses ``eval_parts``.
        runs: Seeded runs (seeds ``seed .. seed + runs - 1``).
        seed: First seed.
        checkpoint_every: Checkpoint every N epochs when ``out_dir`` is set (0 disables).
        out_dir: Folder for records and checkpoints (None: nothing written).
        resume: Continue from checkpoints and finished records in ``out_dir``.
        restart: Discard the checkpoints and records of this configuration's seeds in ``out_dir`` and train them
            again. Without ``resume`` or ``restart``, a seed that has a checkpoint or a record there is refused.
        keep_checkpoint: Keep ``checkpoint.pt`` (the last epoch's full training state, and the best validation
            epoch's weights, which ``revgnn evaluate --checkpoint`` scores) after a run finishes.
        force: Train even when the size estimate (:mod:`revgnn.training.budget`) says a step cannot fit in memory.
        label_reuse: Fraction of training nodes whose labels are input per epoch (0 disables).
        node_embeddings: Add a learnable embedding per node.
        embedding_dim: Width of that embedding.
        device: ``cpu`` or ``cuda``.
        progress: Show a tqdm progress bar.
        threads: CPU threads for torch; None applies :func:`revgnn.training.runtime.apply_thread_policy` (one thread
            unless ``OMP_NUM_THREADS`` or ``torch.set_num_threads`` chose otherwise).
        recipe: The dataset-recipe values this configuration took (recorded only; see ``revgnn train --help``).
        accumulate: Parts per optimizer step (per rank under torch.distributed), their gradients averaged; with more
            than one (or more than one rank) the dropout RNG is seeded per part (:mod:`revgnn.training.distributed`).
    """

    dataset: str = "synthetic-proteins"
    root: str | None = None
    dataset_kwargs: dict[str, Any] = field(default_factory=dict)
    epochs: int = 50
    lr: float = 1e-3
    weight_decay: float = 0.0
    clip_grad_norm: float | None = 1.0
    train_parts: int | None = None
    eval_parts: int | None = None
    eval_views: int = 1
    eval_every: int = 1
    test_views: int = 0
    test_parts: int | None = None
    runs: int = 1
    seed: int = 0
    checkpoint_every: int = 5
    out_dir: str | None = None
    resume: bool = False
    restart: bool = False
    keep_checkpoint: bool = True
    force: bool = False
    label_reuse: float = 0.0
    node_embeddings: bool = False
    embedding_dim: int = 64
    device: str = "cpu"
    progress: bool = True
    threads: int | None = None
    recipe: dict[str, Any] = field(default_factory=dict)
    accumulate: int = 1

    def __post_init__(self):
        for name in ("epochs", "runs", "eval_every", "eval_views", "accumulate"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.test_views < 0:
            raise ValueError(f"test_views must be >= 0 (0 skips the final multi-view test), got {self.test_views}")
        for name in ("train_parts", "eval_parts", "test_parts"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.label_reuse < 1.0:
            raise ValueError(f"label_reuse must be in [0, 1), got {self.label_reuse}")
        if self.resume and self.restart:
            raise ValueError("--resume continues the runs in --out and --restart discards them; pass one of them")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr}")
        _validate_more(self)


# Settings that do not change the numbers: a resumed run may differ in these.
_RUNTIME_KEYS = ("runs", "out_dir", "resume", "progress", "checkpoint_every", "root", "threads", "recipe", "restart",
                 "keep_checkpoint", "force")
_DATASET_FIELDS = ("in_channels", "out_channels", "edge_dim", "num_species", "num_embeddings")  # filled from the data
MAX_SEED = 2**32 - 1  # numpy's seed range; also keeps the (seed, epoch) generator seeds in torch's range


def check_device(device: str, name: str = "device") -> None:
    """ValueError naming ``device`` (as ``name``, e.g. a flag) and the fix unless it is ``cpu`` or a visible
    ``cuda[:N]``: the devices revgnn runs on (``revgnn train`` and ``revgnn evaluate`` share this check)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):  # 'CPU', 'foo', 'cuda:x'
        raise ValueError(f"unknown {name} {device!r}; use cpu or cuda (cuda:N)") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"{name} {device!r} is not supported; use cpu or cuda (cuda:N)")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{name} {device!r}: this torch build sees no CUDA GPU; use --device cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"{name} {device!r}: only {torch.cuda.device_count()} CUDA GPU(s) are visible")


def _validate_more(c: TrainConfig) -> None:
    """The checks of :class:`TrainConfig` that name each bad value and its fix (ValueError)."""
    if not (math.isfinite(c.weight_decay) and c.weight_decay >= 0):
        raise ValueError(f"weight_decay must be a finite number >= 0, got {c.weight_decay}")
    if c.clip_grad_norm is not None and not (math.isfinite(c.clip_grad_norm) and c.clip_grad_norm > 0):
        raise ValueError(f"clip_grad_norm must be > 0 (a negative clip reverses the gradient), or None (--clip 0) "
                         f"to disable clipping; got {c.clip_grad_norm}")
    if not (isinstance(c.seed, int) and 0 <= c.seed and c.seed + c.runs - 1 <= MAX_SEED):
        raise ValueError(f"seed must be an integer with 0 <= seed and seed + runs - 1 <= {MAX_SEED}, got {c.seed}")
    if c.checkpoint_every < 0:
        raise ValueError(f"checkpoint_every must be >= 0 (0 disables checkpoints), got {c.checkpoint_every}")
    if c.embedding_dim < 1:
        raise ValueError(f"embedding_dim must be >= 1, got {c.embedding_dim}")
    if c.threads is not None and c.threads < 1:
        raise ValueError(f"threads must be >= 1, got {c.threads}")
    check_device(c.device)
    for name in ("root", "out_dir"):
        path = getattr(c, name)
        if path is None:
            continue
        p = Path(path)
        while not p.exists() and p != p.parent:  # the first existing ancestor must be a folder
            p = p.parent
        if p.exists() and not p.is_dir():
            flag = "--out" if name == "out_dir" else "--root"
            raise ValueError(f"{name} {path}: {p} is a file, not a folder; give a folder for {flag}")


def adapt_model_config(cfg: ModelConfig, ds: GraphDataset, tcfg: TrainConfig) -> ModelConfig:
    """Fill the dataset-dependent fields of a model config (input, output, edge and species widths)."""
    label_dim = (ds.num_tasks + 1) if tcfg.label_reuse > 0 else 0  # labels (one-hot or multi-hot) + known flag
    return dataclasses.replace(
        cfg, in_channels=ds.num_features + label_dim, out_channels=ds.num_tasks, edge_dim=ds.edge_dim,
        num_species=ds.num_species, num_embeddings=ds.num_nodes if tcfg.node_embeddings else None,
        embedding_dim=tcfg.embedding_dim)


def _label_features(ds: GraphDataset, known: torch.Tensor) -> torch.Tensor:
    """(N, T + 1): the labels of ``known`` nodes (multi-hot or one-hot) and a known flag; zeros elsewhere."""
    y = ds.data.y
    lab = y.float() if ds.multilabel else F.one_hot(y.view(-1), ds.num_tasks).float()
    flag = torch.zeros(ds.num_nodes, 1)
    flag[known] = 1.0
    return torch.cat([lab * flag, flag], dim=1)


def _inputs(ds: GraphDataset, label_feat: torch.Tensor | None) -> torch.Tensor | None:
    x = ds.data.x
    if label_feat is None:
        return x
    return label_feat if x is None else torch.cat([x, label_feat], dim=1)


def _forward(model, batch, device) -> torch.Tensor:
    g = batch.to(device)
    return model(g.x, g.edge_index, edge_attr=g.edge_attr, species=g.get("species"), n_id=g.n_id)


def _generator(seed: int, epoch: int, stream: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch * 7 + stream)


@torch.no_grad()
def predict(model: torch.nn.Module, ds: GraphDataset, num_parts: int = 1, num_views: int = 1,
            generator: torch.Generator | None = None, x: torch.Tensor | None = None,
            device: str | torch.device = "cpu", shard: bool = False) -> torch.Tensor:
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

    Shapes:
        output: (N, T) logits.
    """
    model.eval()
    data = ds.data if x is None else ds.data.clone().update({"x": x})
    views = 1 if num_parts == 1 else num_views
    out = torch.zeros(ds.num_nodes, ds.num_tasks)
    share = distributed.Share(shard)
    for _ in range(views):
        for batch in share(partition_subgraphs(data, num_parts, generator)):
            out[batch.n_id] += _forward(model, batch, device).float().cpu()
    return share.sum(out) / views


def _score(ds: GraphDataset, logits: torch.Tensor) -> dict[str, float]:
    y = ds.data.y
    return {s: evaluate(ds.metric, y[ds.split[s]], logits[ds.split[s]]) for s in SPLITS}


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
        x = _inputs(ds, _label_features(ds, shown))
    data = ds.data if x is ds.data.x else ds.data.clone().update({"x": x})
    for k, batch in enumerate(partition_subgraphs(data, train_parts, g)):
        mask = train_mask[batch.n_id]
        if bool(mask.any()):
            yield k, batch, mask


def _part_loss(model, ds, batch, mask, device) -> torch.Tensor:
    logits = _forward(model, batch, device)[mask.to(device)]
    target = batch.y.to(device)[mask.to(device)]
    if ds.multilabel:
        return F.binary_cross_entropy_with_logits(logits, target.float())
    return F.cross_entropy(logits, target.view(-1))


def _train_epoch(model, opt, ds, tcfg, train_parts, seed, epoch, device) -> float:
    model.train()
    parts = _epoch_parts(ds, tcfg, train_parts, seed, epoch)
    if tcfg.accumulate > 1 or distributed.world_size() > 1:  # grouped steps (revgnn.training.distributed)
        return distributed.train_epoch(model, opt, parts, lambda b, m: _part_loss(model, ds, b, m, device),
                                       tcfg.accumulate, tcfg.clip_grad_norm, seed, epoch)
    total, steps = 0.0, 0
    for _, batch, mask in parts:
        opt.zero_grad()
        loss = _part_loss(model, ds, batch, mask, device)
        loss.backward()
        if tcfg.clip_grad_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.clip_grad_norm)
        opt.step()
        total += float(loss.detach())
        steps += 1
    return total / max(steps, 1)


def _config_block(mcfg: ModelConfig, tcfg: TrainConfig) -> dict[str, Any]:
    t = {k: v for k, v in dataclasses.asdict(tcfg).items() if k not in _RUNTIME_KEYS}
    t["accumulate"] = tcfg.accumulate * distributed.world_size()  # K ranks = accumulate K: one trajectory
    if t["accumulate"] == 1:
        del t["accumulate"]  # configs (and checkpoints) of ungrouped runs as before
    model = dataclasses.asdict(mcfg)
    del model["kernel"]  # how the fused sum is computed, not what is trained: a run resumes under either kernel
    return {"model": model, "train": t}


def _kernel_ran(mcfg: ModelConfig, device: torch.device) -> str:
    """The GENConv kernel a run used: 'native' or 'torch' (the fused operator), or 'pyg' (PyG's GENConv)."""
    from revgnn.nn.fused import resolve_kernel

    return resolve_kernel(mcfg.kernel, device=device.type) if mcfg.fused else "pyg"


def train_run(mcfg: ModelConfig, tcfg: TrainConfig, ds: GraphDataset, seed: int,
              run_dir: Path | None = None) -> dict[str, Any]:
    """One seeded run; returns its record (also written to ``run_dir/record.json`` when given)."""
    device = torch.device(tcfg.device)
    train_parts = tcfg.train_parts or ds.train_parts
    eval_parts = tcfg.eval_parts or ds.eval_parts
    config = _config_block(mcfg, tcfg)
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
    model = build_model(mcfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    state = {"epoch": 0, "history": [], "best": None, "best_model": None, "elapsed_s": 0.0}
    ckpt_path = run_dir / "checkpoint.pt" if run_dir else None
    if tcfg.resume and ckpt_path is not None and ckpt_path.is_file():
        state = _restore(_load_checkpoint(ckpt_path, device), ckpt_path, config, model, opt, tcfg)
        log.info("resumed %s at epoch %d", run_dir, state["epoch"])
    distributed.check_same(state["epoch"], f"the epoch {run_dir} resumes at")
    eval_x = _inputs(ds, _label_features(ds, ds.split["train"])) if tcfg.label_reuse > 0 else None  # all train labels
    start = time.perf_counter() - state["elapsed_s"]
    bar = tqdm(range(state["epoch"] + 1, tcfg.epochs + 1), initial=state["epoch"], total=tcfg.epochs,
               desc=f"{tcfg.dataset} seed {seed}", disable=not tcfg.progress, leave=False)
    for epoch in bar:
        loss = _train_epoch(model, opt, ds, tcfg, train_parts, seed, epoch, device)
        entry: dict[str, Any] = {"epoch": epoch, "loss": loss, **solver_fields(model, reset=True)}  # DEQ-GNN
        if epoch % tcfg.eval_every == 0 or epoch == tcfg.epochs:
            logits = predict(model, ds, eval_parts, tcfg.eval_views, _generator(seed, epoch, 1), eval_x, device,
                             shard=True)
            entry.update(_score(ds, logits))
            if state["best"] is None or entry["valid"] > state["best"]["valid"]:
                state["best"] = {k: entry[k] for k in ("epoch", "train", "valid", "test")}
                if tcfg.test_views or tcfg.keep_checkpoint:  # for the final multi-view test, `revgnn evaluate`
                    state["best_model"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
            bar.set_postfix(loss=f"{loss:.4f}", valid=f"{entry['valid']:.4f}")
        state["history"].append(entry)
        state["epoch"] = epoch
        if not math.isfinite(loss):
            raise FloatingPointError(f"the training loss became {loss} at epoch {epoch} (seed {seed}); lower --lr "
                                     f"(now {tcfg.lr:g}) or check the data")
        if ckpt_path is not None and ((tcfg.checkpoint_every and epoch % tcfg.checkpoint_every == 0) or STOP
                                      or (epoch == tcfg.epochs and tcfg.keep_checkpoint)) and distributed.is_main():
            state["elapsed_s"] = time.perf_counter() - start
            _save_checkpoint(config, model, opt, state, ckpt_path)
        if STOP and epoch < tcfg.epochs:
            bar.close()
            raise _interrupted(seed, epoch, run_dir)
    bar.close()
    final = next(h for h in reversed(state["history"]) if "valid" in h)
    multiview = None
    if tcfg.test_views:
        model.load_state_dict(state["best_model"])
        test_parts = tcfg.test_parts or eval_parts
        logits = predict(model, ds, test_parts, tcfg.test_views, _generator(seed, 0, 2), eval_x, device,
                         shard=True)
        multiview = {"epoch": state["best"]["epoch"], "views": tcfg.test_views if test_parts > 1 else 1,
                     "parts": test_parts, **_score(ds, logits)}
    record = {
        "dataset": ds.name, "metric": ds.metric, "num_tasks": ds.num_tasks, "seed": seed, "config": config,
        "params": count_parameters(model), "best": state["best"],
        "final": {k: final[k] for k in ("epoch", "train", "valid", "test")}, "multiview": multiview,
        "history": state["history"],
        "train_parts": train_parts, "eval_parts": eval_parts,
        "wall_time_s": time.perf_counter() - start, **peak_memory_bytes(device), **environment(device),
        **thread_info(), "recipe": tcfg.recipe, "kernel": _kernel_ran(mcfg, device),
    }
    if run_dir is not None and distributed.is_main():
        write_json(run_dir / "record.json", record)
        if not tcfg.keep_checkpoint:
            ckpt_path.unlink(missing_ok=True)
    return record


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    t = torch.tensor(values, dtype=torch.float64)
    return float(t.mean()), float(t.std()) if len(values) > 1 else 0.0


def _load_sorted(tcfg: TrainConfig) -> GraphDataset:
    """``tcfg``'s dataset with its edges sorted by destination in place (:func:`revgnn.nn.fused.sort_graph_`): the fused
    kernels then need no permutation and no sorted copies of the whole graph. A dataset passed to :func:`fit` is used
    as it is."""
    from revgnn.nn.fused import sort_graph_

    ds = load_dataset(tcfg.dataset, root=tcfg.root, **tcfg.dataset_kwargs)
    sort_graph_(ds.data)
    return ds


def _fit(model_config: ModelConfig, train_config: TrainConfig, dataset: GraphDataset | None = None) -> dict[str, Any]:
    """The runs and summary of :func:`fit`, after its checks, folder lock and signal handlers."""
    tcfg = train_config
    ds = dataset or _load_sorted(tcfg)
    mcfg = adapt_model_config(model_config, ds, tcfg)
    out = Path(tcfg.out_dir) if tcfg.out_dir else None
    records = []
    for i in range(tcfg.runs):
        seed = tcfg.seed + i
        run_dir = None
        if out is not None:
            run_dir = out / f"run-seed{seed}"
            done = run_dir / "record.json"
            if tcfg.resume and done.is_file():
                rec = _read_record(done)
                if rec["config"] == _config_block(mcfg, tcfg):
                    records.append(rec)
                    continue
            run_dir.mkdir(parents=True, exist_ok=True)
        records.append(train_run(mcfg, tcfg, ds, seed, run_dir))
    valid, valid_std = mean_std([r["best"]["valid"] for r in records])
    test, test_std = mean_std([r["best"]["test"] for r in records])
    summary = {"dataset": ds.name, "metric": ds.metric, "valid": valid, "valid_std": valid_std, "test": test,
               "test_std": test_std, "params": records[0]["params"], "seeds": [r["seed"] for r in records],
               "runs": records}
    if all(r.get("multiview") for r in records):
        for split in ("valid", "test"):
            mean, std = mean_std([r["multiview"][split] for r in records])
            summary[f"{split}_multiview"], summary[f"{split}_multiview_std"] = mean, std
    if out is not None and distributed.is_main():
        write_json(out / "summary.json", summary)
    return summary


CHECKPOINT_FORMAT = "revgnn-checkpoint-2"  # tensors and plain containers only: read with weights_only=True
_CHECKPOINT_KEYS = ("format", "config", "model", "optimizer", "torch_rng", "numpy_rng", "python_rng", "state")


def _config_text(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, default=str)


def _save_checkpoint(config, model, opt, state, path: Path) -> None:
    """Write the full training state (weights, Adam, every RNG, history, best) as tensors and plain containers, so
    that :func:`_load_checkpoint` can read it with ``weights_only=True``; a write failure is one OSError line."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    ckpt = {"format": CHECKPOINT_FORMAT, "config": _config_text(config), "model": model.state_dict(),
            "optimizer": opt.state_dict(), "torch_rng": torch.get_rng_state(),
            "numpy_rng": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                          "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
            "python_rng": {"version": version, "internal": list(internal), "gauss": gauss}, "state": state}
    try:
        atomic_torch_save(ckpt, path)
    except RuntimeError as err:  # torch's zip writer reports a full disk as "PytorchStreamWriter failed writing"
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise OSError(f"cannot write {path} ({first}); free disk space or choose another --out; nothing partial "
                      f"was left") from None


def _load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """A checkpoint of :func:`train_run`, read with ``weights_only=True`` (no code runs from the file), or
    ValueError with advice when it is unreadable (truncated, foreign, from an older revgnn, or not safe to load)."""
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # torch/pickle/zip raise many types for a damaged or unsafe file
        raise ValueError(f"checkpoint {path} is unreadable (truncated, damaged, from an older revgnn, or holding "
                         f"objects other than tensors: {type(err).__name__}); delete it to restart that run from "
                         f"scratch (or pass --restart), or drop --resume") from None
    if not isinstance(ckpt, dict) or not all(k in ckpt for k in _CHECKPOINT_KEYS) \
            or ckpt["format"] != CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint {path} is not a revgnn training checkpoint; delete it to restart that run from "
                         f"scratch (or pass --restart), or drop --resume")
    return ckpt


def _checked_state(state: Any, tcfg: TrainConfig) -> dict[str, Any]:
    """The ``state`` of a checkpoint, or TypeError/ValueError naming what does not hold."""
    if not isinstance(state, dict) or not {"epoch", "history", "best", "best_model", "elapsed_s"} <= set(state):
        raise ValueError("its state lacks epoch, history, best, best_model or elapsed_s")
    epoch, history = state["epoch"], state["history"]
    if not isinstance(epoch, int) or isinstance(epoch, bool) or not 0 <= epoch <= tcfg.epochs:
        raise ValueError(f"its epoch {epoch!r} is not in [0, {tcfg.epochs}]")
    if not isinstance(history, list) or len(history) != epoch or any(
            not isinstance(h, dict) or h.get("epoch") != i + 1 or not isinstance(h.get("loss"), float)
            for i, h in enumerate(history)):
        raise ValueError("its history does not list one entry per epoch")
    evaluated = [h for h in history if "valid" in h]
    if any(not all(isinstance(h.get(k), float) for k in SPLITS) for h in evaluated):
        raise ValueError("its history holds scores that are not numbers")
    best = state["best"]
    if (best is None) != (not evaluated) or (best is not None and (
            not isinstance(best, dict) or best not in [{k: h[k] for k in ("epoch", *SPLITS)} for h in evaluated])):
        raise ValueError("its best epoch is not one of its history")
    if tcfg.test_views and best is not None and not isinstance(state["best_model"], dict):
        raise ValueError("it lacks the best weights")
    if not isinstance(state["elapsed_s"], float):
        raise ValueError("its elapsed time is not a number")
    return state


def _restore(ckpt: dict[str, Any], path: Path, config: dict[str, Any], model, opt, tcfg: TrainConfig) -> dict:
    """Load a checkpoint's weights, optimizer and RNG states into place and return its training state; one
    ValueError line when its contents do not fit (wrong keys, shapes or types)."""
    if ckpt["config"] != _config_text(config):
        raise ValueError(f"{path} was written with a different configuration; use another --out, or pass "
                         f"--restart to discard it")
    try:
        state = _checked_state(ckpt["state"], tcfg)
        if state["best_model"] is not None:
            model.load_state_dict(state["best_model"])  # the best weights must fit this model too
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        for group in opt.param_groups:  # Adam checks no shapes on loading; a wrong one would fail mid-training
            for param in group["params"]:
                for key, value in opt.state.get(param, {}).items():
                    if key != "step" and (not torch.is_tensor(value) or value.shape != param.shape):
                        raise ValueError(f"its optimizer state {key} has the shape {tuple(getattr(value, 'shape', ()))}"
                                         f" for a parameter of shape {tuple(param.shape)}")
        torch.set_rng_state(ckpt["torch_rng"])
        r = ckpt["numpy_rng"]
        np.random.set_state((r["name"], r["keys"].numpy().astype(np.uint32), r["pos"], r["has_gauss"],
                             r["cached_gaussian"]))
        p = ckpt["python_rng"]
        random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as err:
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise ValueError(f"checkpoint {path} does not fit this run ({type(err).__name__}: {first}); delete it to "
                         f"restart that run from scratch (or pass --restart), or drop --resume") from None
    return state


def _read_record(path: Path) -> dict[str, Any]:
    """A finished run's ``record.json``, or ValueError with advice when it is unreadable."""
    try:
        rec = read_json(path)
    except (OSError, ValueError) as err:  # ValueError: JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"run record {path} is unreadable (truncated or damaged? {type(err).__name__}); delete it to "
                         f"rerun that seed, or drop --resume") from None
    if not isinstance(rec, dict) or not {"config", "best", "seed"} <= set(rec):
        raise ValueError(f"run record {path} is not a revgnn run record; delete it to rerun that seed, or drop "
                         f"--resume")
    return rec


def _interrupted(seed: int, epoch: int, run_dir: Path | None) -> TrainingInterrupted:
    STOP.handled = True
    name = signal.Signals(STOP.signum).name
    if run_dir is None:
        return TrainingInterrupted(STOP.signum, f"{name}: stopped seed {seed} after epoch {epoch}; nothing was saved "
                                                f"(no --out), so a rerun starts from scratch")
    return TrainingInterrupted(STOP.signum, f"{name}: stopped seed {seed} after epoch {epoch}, checkpoint saved in "
                                            f"{run_dir}; run the same command with --resume to continue")


def _folder_config(mcfg: ModelConfig, tcfg: TrainConfig) -> dict[str, Any]:
    """The configuration shared by every run in an output folder (the per-run block without the seed)."""
    block = _config_block(mcfg, tcfg)
    return {"model": block["model"], "train": {k: v for k, v in block["train"].items() if k != "seed"}}


def _folder_config_on_disk(out: Path) -> tuple[dict[str, Any] | None, Path]:
    """The configuration an output folder records (``config.json``, else a run record or the summary) and where it
    was read; (None, ...) for a folder without runs. ValueError for a ``config.json`` or ``summary.json`` that is
    not revgnn's."""
    summary = out / "summary.json"
    summary_runs = []
    if summary.exists():
        try:
            content = read_json(summary)
        except (OSError, ValueError):
            content = None
        if not (isinstance(content, dict) and {"dataset", "metric", "runs"} <= set(content)
                and isinstance(content["runs"], list)):
            raise ValueError(f"{summary} is not a revgnn summary (unreadable, or not one written by revgnn train); "
                             f"move it away or choose another --out: revgnn writes its summary there")
        summary_runs = [(r, summary) for r in content["runs"]]
    source = out / "config.json"
    if source.exists():
        try:
            theirs = read_json(source)
        except (OSError, ValueError):
            theirs = None
        if not (isinstance(theirs, dict) and isinstance(theirs.get("model"), dict)
                and isinstance(theirs.get("train"), dict)):
            raise ValueError(f"{source} is not a revgnn folder configuration (unreadable, or not a JSON object with "
                             f"'model' and 'train'); delete it (it only records the folder's configuration) or "
                             f"choose another --out")
        return theirs, source
    done = []
    for path in sorted(out.glob("run-seed*/record.json")):
        with contextlib.suppress(OSError, ValueError):
            done.append((read_json(path), path))
    for rec, path in [*done, *summary_runs]:
        with contextlib.suppress(KeyError, TypeError, AttributeError):
            cfg = rec["config"]
            return {"model": dict(cfg["model"]), "train": {k: v for k, v in cfg["train"].items()
                                                           if k not in ("seed", *_RUNTIME_KEYS)}}, path
    return None, source


def _check_output_folder(out: Path, mcfg: ModelConfig, tcfg: TrainConfig, write: bool = True) -> None:
    """Refuse an output folder that holds runs of another configuration, or a ``config.json``/``summary.json`` that
    revgnn did not write; else (``write``) record this configuration in ``config.json``. With ``write=False`` (a
    read-only check before the dataset is loaded) the model's dataset-dependent widths are not compared."""
    if not out.is_dir():
        return
    mine = json.loads(json.dumps(_folder_config(mcfg, tcfg), default=str))  # as it reads back from JSON
    theirs, source = _folder_config_on_disk(out)
    if theirs is not None:
        skip = set() if write else set(_DATASET_FIELDS)
        diff = sorted(f"{part}.{k}" for part in ("model", "train") for k in set(mine[part]) | set(theirs[part])
                      if k not in (skip if part == "model" else ()) and mine[part].get(k) != theirs[part].get(k))
        if diff:
            raise ValueError(f"{out} holds runs of another configuration ({source}; differs in {', '.join(diff)}); "
                             f"choose another --out, or delete that folder to replace them")
    if write:
        write_json(out / "config.json", mine)


def _seeds(tcfg: TrainConfig) -> range:
    return range(tcfg.seed, tcfg.seed + tcfg.runs)


def _check_runs(out: Path, tcfg: TrainConfig) -> None:
    """Refuse to overwrite a seed's finished record or interrupted checkpoint unless ``--resume`` or ``--restart``
    says what to do with it; refuse record/checkpoint names that are not files."""
    for seed in _seeds(tcfg):
        run_dir = out / f"run-seed{seed}"
        ckpt, done = run_dir / "checkpoint.pt", run_dir / "record.json"
        for path in (ckpt, done):
            if path.exists() and not path.is_file():
                raise ValueError(f"{path} is not a file; move it away or choose another --out")
        if tcfg.resume or tcfg.restart:
            continue
        if done.exists():
            raise ValueError(f"{done}: a finished run is here: pass --resume to keep it or --restart to train it "
                             f"again")
        if ckpt.exists():
            try:
                epoch = _load_checkpoint(ckpt)["state"]["epoch"]
            except (ValueError, TypeError, KeyError):
                raise ValueError(f"{ckpt}: a checkpoint that cannot be read is here: pass --restart to discard it, "
                                 f"or move it away") from None
            raise ValueError(f"{ckpt}: an interrupted run is here (epoch {epoch}): pass --resume to continue or "
                             f"--restart to discard it")


def _discard_runs(out: Path, tcfg: TrainConfig) -> None:
    """``--restart``: remove this configuration's seeds' checkpoints and records (and nothing else)."""
    for seed in _seeds(tcfg):
        for name in ("checkpoint.pt", "record.json"):
            path = out / f"run-seed{seed}" / name
            if path.is_file():
                path.unlink()
                log.info("--restart: removed %s", path)


def _preflight(model_config: ModelConfig, tcfg: TrainConfig, out: Path | None, main: bool) -> None:
    """Checks that need no data (before loading it, which may take a minute): the model can be built, the step's
    size estimate fits this machine, and (rank 0, reading only) the output folder is free and consistent."""
    mcfg = dataclasses.replace(model_config, embedding_dim=tcfg.embedding_dim)
    budget.check_depth(mcfg, tcfg.force)
    shape = budget.dataset_shape(tcfg.dataset, tcfg.dataset_kwargs)
    if shape is not None:
        n, e = shape
        parts = tcfg.train_parts or (10 if n > 20_000 else 1)
        budget.check_fits(budget.estimate_step(mcfg, n, e, min(parts, n), device=tcfg.device),
                          f"a training step of {mcfg.model} L={mcfg.num_layers} D={mcfg.hidden_channels} on "
                          f"{tcfg.dataset} (N={n:,}, E={e:,}, {parts} parts)", tcfg.device, tcfg.force,
                          _ranks_here())
    else:
        budget.parameter_count(mcfg)  # builds on the meta device: bad settings fail here, in a moment
    if out is not None and main and out.is_dir():
        holder = lock_holder(out)
        if holder is not None:
            raise ValueError(f"{out} is in use by {holder}, which holds {out / LOCK_NAME}; wait for it to finish or "
                             f"choose another --out")
        _check_output_folder(out, mcfg, tcfg, write=False)
        _check_runs(out, tcfg)


def _ranks_here() -> int:
    """Ranks on this machine (torchrun's ``LOCAL_WORLD_SIZE``): each holds its own graph and model."""
    try:
        return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        return 1


def _rank_fields(model_config: ModelConfig, tcfg: TrainConfig) -> dict[str, Any]:
    fields = {f"train.{k}": v for k, v in dataclasses.asdict(tcfg).items() if k != "progress"}
    fields.update({f"model.{k}": v for k, v in dataclasses.asdict(model_config).items()})
    return fields


def fit(model_config: ModelConfig, train_config: TrainConfig, dataset: GraphDataset | None = None) -> dict[str, Any]:
    """Train ``train_config.runs`` seeded runs and summarise them (test at best validation, mean ± std).

    Before anything is written: the thread policy is applied (:func:`revgnn.training.runtime.apply_thread_policy`);
    under torch.distributed every rank must hold the same configuration
    (:func:`revgnn.training.distributed.check_same_config`); before the dataset is loaded the model's size is estimated
    against this machine's memory (:mod:`revgnn.training.budget`) and the output folder checked (reading only); then the
    dataset is loaded and every setting checked. With ``out_dir``, the folder is locked against a second run
    (``.revgnn.lock``), must hold no runs of another configuration (``config.json``) and no ``summary.json`` revgnn did
    not write; a seed's finished record or interrupted checkpoint is kept unless ``resume`` (continue) or ``restart``
    (discard) says otherwise; temporary files of killed revgnn runs are removed. SIGINT/SIGTERM stop training after the
    current epoch with a checkpoint and raise :class:`revgnn.training.runtime.TrainingInterrupted`. Under
    torch.distributed a bad-input error of any rank stops every rank with the same
    :class:`revgnn.training.distributed.AgreedError`.

    Args:
        model_config: The model; dataset-dependent widths are filled in by :func:`adapt_model_config`.
        train_config: Optimisation, evaluation, output.
        dataset: A loaded dataset (default: ``load_dataset(train_config.dataset, ...)``).

    Returns:
        Summary with ``dataset``, ``metric``, ``valid``/``test`` (means at best validation) and their ``*_std``,
        ``params``, ``runs`` (each run's record); with ``test_views`` also ``valid_multiview``/``test_multiview``
        and their ``*_std`` (the final multi-view scores of the best weights). Written to ``out_dir/summary.json``
        when ``out_dir`` is set.
    """
    tcfg = train_config
    apply_thread_policy(tcfg.threads)
    distributed.check_same_config(_rank_fields(model_config, tcfg))
    out = Path(tcfg.out_dir) if tcfg.out_dir else None
    main = os.environ.get("RANK", "0") == "0"  # one lock per job (torchrun: its rank 0)
    distributed.agree(lambda: _preflight(model_config, tcfg, out, main))
    ds = dataset or distributed.agree(lambda: _load_sorted(tcfg))
    mcfg = adapt_model_config(model_config, ds, tcfg)

    def checks():
        for name in ("train_parts", "eval_parts", "test_parts"):
            parts = getattr(tcfg, name)
            if parts is not None and parts > ds.num_nodes:
                raise ValueError(f"{name} {parts} exceeds the {ds.num_nodes:,} nodes of {ds.name}; use at most "
                                 f"{ds.num_nodes} (1 = the full graph)")
        n, e = ds.num_nodes, int(ds.data.edge_index.size(1))
        parts = tcfg.train_parts or ds.train_parts
        budget.check_fits(budget.estimate_step(mcfg, n, e, parts, device=tcfg.device),
                          f"a training step of {mcfg.model} L={mcfg.num_layers} D={mcfg.hidden_channels} on "
                          f"{ds.name} (N={n:,}, E={e:,}, {parts} parts)", tcfg.device, tcfg.force, _ranks_here())

    distributed.agree(checks)
    STOP.reset()
    with contextlib.ExitStack() as stack:
        if out is not None and main:
            distributed.agree(lambda: _enter_output_folder(stack, out, mcfg, tcfg))
        elif out is not None:
            distributed.agree(lambda: None)  # rank 0's folder checks
        stack.enter_context(STOP.installed())
        return _fit(model_config, tcfg, ds)


def _enter_output_folder(stack: contextlib.ExitStack, out: Path, mcfg: ModelConfig, tcfg: TrainConfig) -> None:
    """Lock ``out`` for the rest of ``stack`` and check it (rank 0): configuration, summary, runs; ``--restart``
    discards this configuration's seeds; stale temporary files of killed revgnn runs are removed."""
    try:
        stack.enter_context(output_lock(out))
    except OSError as err:
        raise ValueError(f"cannot create the output folder {out} ({err.strerror or err}); choose another --out") \
            from None
    _check_output_folder(out, mcfg, tcfg)
    _check_runs(out, tcfg)
    if tcfg.restart:
        _discard_runs(out, tcfg)
    remove_stale_temps(out)
