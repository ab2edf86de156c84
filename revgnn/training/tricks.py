r"""The ogbn-arxiv training tricks of the official RevGAT (Li et al., ICML 2021), from the leaderboard entries it builds
on (Wang et al., 2021, "Bag of tricks for node classification with graph neural networks"; Sun et al., 2020,
self-distillation): the log-CE loss, label iterations, self-knowledge distillation from a saved teacher run, the
learning-rate warm-up and RMSprop. Each is a setting of :class:`~revgnn.training.config.TrainConfig` that is off by
default; the ogbn-arxiv recipe of ``revgnn train`` turns them on (lightaime/deep_gcns_torch,
``examples/ogb_eff/ogbn_arxiv_dgl/main.py``):

- log-CE: :math:`\ell = \log(\epsilon + \mathrm{CE}) - \log \epsilon` per node, averaged, with
  :math:`\epsilon = 1 - \log 2` (``loss="log-ce"``);
- label iterations (``label_iters``, with label reuse): a first forward without gradient predicts every node whose
  label is not shown, its softmax is written into those nodes' label channels, and the model runs again; the official
  code runs the first pass in training mode (dropout, BatchNorm statistics), as here;
- self-KD (``teacher``, ``kd_alpha``, ``kd_temperature``): the loss is
  :math:`(1 - \alpha)\,\ell + \alpha T^2\,\mathrm{KL}(\mathrm{softmax}(z_t / T) \,\|\, \mathrm{softmax}(z / T))`
  over every node of the step, the KL divergence averaged over nodes and classes (torch's ``KLDivLoss()`` default, as
  the official code), :math:`z_t` the teacher run's logits at its best epoch (``best_logits.pt``, saved by a run with
  ``save_logits``);
- warm-up: the learning rate grows linearly over the first ``warmup_epochs`` epochs (``lr * epoch / warmup``);
- ``select="valid_loss"``: the reported epoch is the one with the lowest validation loss (the official choice), not
  the highest validation score.
"""
from __future__ import annotations

import functools
import math
from pathlib import Path

import torch
import torch.nn.functional as F

__all__ = ["LOG_CE_EPSILON", "OPTIMIZERS", "LOSSES", "SELECT", "log_ce", "node_loss", "kd_loss", "warmup_lr",
           "make_optimizer", "TEACHER_FILE", "load_teacher", "label_iterations"]

LOG_CE_EPSILON = 1 - math.log(2)
OPTIMIZERS = ("adam", "rmsprop")
LOSSES = ("ce", "log-ce")
SELECT = ("valid", "valid_loss")
TEACHER_FILE = "best_logits.pt"


def log_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The log-CE loss: mean over nodes of log(eps + CE) - log(eps), eps = 1 - log 2 (Wang et al., 2021)."""
    ce = F.cross_entropy(logits, target, reduction="none")
    return (torch.log(LOG_CE_EPSILON + ce) - math.log(LOG_CE_EPSILON)).mean()


def node_loss(kind: str, logits: torch.Tensor, target: torch.Tensor, multilabel: bool) -> torch.Tensor:
    """The training loss of ``kind`` (``"ce"``: cross-entropy, or BCE for multi-label tasks; ``"log-ce"``)."""
    if multilabel:
        return F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype))
    target = target.view(-1)
    return log_ce(logits, target) if kind == "log-ce" else F.cross_entropy(logits, target)


def kd_loss(logits: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 KL(softmax(teacher / T) || softmax(logits / T)), averaged over every element (torch's ``KLDivLoss()``)."""
    t = temperature
    kl = F.kl_div(F.log_softmax(logits / t, dim=1), F.softmax(teacher.to(logits) / t, dim=1), reduction="sum")
    return kl / logits.numel() * t * t


def warmup_lr(lr: float, epoch: int, warmup_epochs: int) -> float:
    """The learning rate of ``epoch`` (1-based) under a linear warm-up over ``warmup_epochs`` epochs."""
    return lr if warmup_epochs <= 0 else lr * min(1.0, epoch / warmup_epochs)


def make_optimizer(name: str, params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """Adam (the paper's ogbn-proteins and ogbn-products runs) or RMSprop (the official RevGAT)."""
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


def load_teacher(teacher_dir: str, seed: int, num_nodes: int, num_classes: int) -> torch.Tensor:
    """The teacher's logits for ``seed`` (``<teacher_dir>/run-seed<seed>/best_logits.pt``, read with
    ``weights_only=True``), checked: a finite float tensor of shape (N, T). ValueError naming the fix otherwise.
    Read once per file version (cached by path, size and modification time)."""
    path = Path(teacher_dir) / f"run-seed{seed}" / TEACHER_FILE
    if not path.is_file():
        return _read_teacher(path, None, num_nodes, num_classes, teacher_dir)
    st = path.stat()
    return _read_teacher(path, (st.st_size, st.st_mtime_ns), num_nodes, num_classes, teacher_dir)


@functools.lru_cache(maxsize=4)
def _read_teacher(path: Path, version, num_nodes: int, num_classes: int, teacher_dir: str) -> torch.Tensor:
    if version is None:
        raise ValueError(f"--teacher {teacher_dir}: {path} does not exist; train the teacher first with the same "
                         f"seeds and `--save-logits --out {teacher_dir}` (each student seed learns from the teacher "
                         f"run of its seed)")
    try:
        logits = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # damaged, or holding objects other than tensors: refused unread
        raise ValueError(f"--teacher: {path} cannot be read as a tensor ({type(err).__name__}); train the teacher "
                         f"again with --save-logits") from None
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point() \
            or tuple(logits.shape) != (num_nodes, num_classes) or not bool(logits.isfinite().all()):
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"--teacher: {path} holds {got}, not finite logits of shape ({num_nodes}, {num_classes}) "
                         f"for this dataset; was the teacher trained on another dataset?")
    return logits.float()


@torch.no_grad()
def _fill(x: torch.Tensor, rows: torch.Tensor, logits: torch.Tensor, columns: slice) -> torch.Tensor:
    x = x.clone()
    x[rows, columns] = F.softmax(logits[rows].float(), dim=-1).to(x.dtype)
    return x


def label_iterations(forward, x: torch.Tensor, rows: torch.Tensor, columns: slice, iters: int,
                     grad: bool) -> torch.Tensor:
    """Run ``forward(x)`` ``iters + 1`` times, writing the softmax of the last prediction into the label channels
    ``columns`` of the nodes ``rows`` before each rerun; only the last run keeps its graph (``grad``).

    Shapes:
        x: (n, F + T); rows: (k,) node ids or a (n,) mask; output: (n, T) logits
    """
    with torch.no_grad():
        logits = forward(x) if iters > 0 else None
        for _ in range(iters - 1):
            x = _fill(x, rows, logits, columns)
            logits = forward(x)
    if iters > 0:
        x = _fill(x, rows, logits, columns)
    with torch.set_grad_enabled(grad):
        return forward(x)
