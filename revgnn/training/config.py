"""The settings of a training run of "Training Graph Neural Networks with 1000 Layers" (Li et al., ICML 2021).

:class:`TrainConfig` holds the optimisation, evaluation and output settings (the paper's values beside the defaults)
and checks each one, naming a bad value and its fix; :func:`adapt_model_config` fills a model configuration's
dataset-dependent widths; :func:`_config_block` is the configuration a run records and a checkpoint must match.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from revgnn.data.datasets import GraphDataset
from revgnn.nn.presets import DEQ_ONLY_FIELDS, EXTRA_DEFAULTS, ModelConfig

from . import distributed
from .runtime import MAX_THREADS, check_threads
from .tricks import LOSSES, OPTIMIZERS, SELECT

__all__ = ["TrainConfig", "MAX_SEED", "MAX_THREADS", "check_threads", "check_device", "adapt_model_config"]


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
        optimizer: ``adam`` (the paper's ogbn-proteins and ogbn-products runs) or ``rmsprop`` (the official RevGAT).
        lr_warmup_epochs: Linear learning-rate warm-up over this many epochs (official RevGAT: 50; 0: none).
        loss: ``ce`` (cross-entropy; BCE for multi-label tasks) or ``log-ce`` (:mod:`revgnn.training.tricks`).
        label_iters: Label iterations with label reuse (official RevGAT: 1).
        label_flag: Label reuse adds a "label known" channel (T + 1 channels); the official RevGAT has none (T).
        select: The reported epoch: best ``valid`` score, or lowest ``valid_loss`` (the official RevGAT).
        teacher: Output folder of a teacher run saved with ``save_logits``: self-distillation (its seed's logits).
        kd_alpha: Weight of the distillation term (official RevGAT student: 0.95).
        kd_temperature: Temperature T of the distillation (official: 0.7).
        save_logits: Save each run's logits at its reported epoch as ``run-seed<S>/best_logits.pt`` (a teacher).
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
    optimizer: str = "adam"
    lr_warmup_epochs: int = 0
    loss: str = "ce"
    label_iters: int = 0
    label_flag: bool = True
    select: str = "valid"
    teacher: str | None = None
    kd_alpha: float = 0.0
    kd_temperature: float = 1.0
    save_logits: bool = False

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
                 "keep_checkpoint", "force", "save_logits")
# The ogbn-arxiv tricks' settings, left out of a recorded configuration at these defaults (older records stay equal).
TRICK_DEFAULTS = {"optimizer": "adam", "lr_warmup_epochs": 0, "loss": "ce", "label_iters": 0, "label_flag": True,
                  "select": "valid", "teacher": None, "kd_alpha": 0.0, "kd_temperature": 1.0}
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
    check_threads(c.threads)
    check_device(c.device)
    for name, choices in (("optimizer", OPTIMIZERS), ("loss", LOSSES), ("select", SELECT)):
        if getattr(c, name) not in choices:
            raise ValueError(f"{name} must be one of {', '.join(choices)}, got {getattr(c, name)!r}")
    if c.lr_warmup_epochs < 0 or c.label_iters < 0:
        raise ValueError(f"lr_warmup_epochs and label_iters must be >= 0, got {c.lr_warmup_epochs} and {c.label_iters}")
    if c.label_iters and c.label_reuse <= 0:
        raise ValueError("label iterations fill the label channels of label reuse: give --label-reuse > 0 (official "
                         "RevGAT: 0.5) or --label-iters 0")
    if not 0.0 <= c.kd_alpha <= 1.0 or not (math.isfinite(c.kd_temperature) and c.kd_temperature > 0):
        raise ValueError(f"kd_alpha must be in [0, 1] and kd_temperature > 0, got {c.kd_alpha} and "
                         f"{c.kd_temperature}")
    if c.kd_alpha > 0 and c.teacher is None:
        raise ValueError("--kd-alpha > 0 distils from a teacher: pass --teacher DIR (a run saved with --save-logits)")
    if c.teacher is not None and not Path(c.teacher).is_dir():
        raise ValueError(f"--teacher {c.teacher} is not a folder; give the --out folder of a teacher run saved with "
                         f"--save-logits")
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
    label_dim = ds.num_tasks + (1 if tcfg.label_flag else 0) if tcfg.label_reuse > 0 else 0  # labels (+ known flag)
    return dataclasses.replace(
        cfg, in_channels=ds.num_features + label_dim, out_channels=ds.num_tasks, edge_dim=ds.edge_dim,
        num_species=ds.num_species, num_embeddings=ds.num_nodes if tcfg.node_embeddings else None,
        embedding_dim=tcfg.embedding_dim)


def _config_block(mcfg: ModelConfig, tcfg: TrainConfig) -> dict[str, Any]:
    t = {k: v for k, v in dataclasses.asdict(tcfg).items() if k not in _RUNTIME_KEYS}
    t["accumulate"] = tcfg.accumulate * distributed.world_size()  # K ranks = accumulate K: one trajectory
    if t["accumulate"] == 1:
        del t["accumulate"]  # configs (and checkpoints) of ungrouped runs as before
    for key, default in TRICK_DEFAULTS.items():
        if t[key] == default:
            del t[key]
    model = dataclasses.asdict(mcfg)
    del model["kernel"]  # how the fused sum is computed, not what is trained: a run resumes under either kernel
    if mcfg.model != "deq":  # settings no other model reads: their configurations (and checkpoints) as before
        for name in DEQ_ONLY_FIELDS:
            del model[name]
    for key, default in EXTRA_DEFAULTS.items():  # RevGAT's fields: configurations of other models as before
        if model[key] == default:
            del model[key]
    return {"model": model, "train": t}
