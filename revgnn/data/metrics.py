"""ROC-AUC as ogbn-proteins scores it, the metric of "Training Graph Neural Networks with 1000 Layers" (2021).

:func:`rocauc` is the mean over tasks of each task's ROC-AUC, vectorised with average ranks (the Mann-Whitney U
statistic), equal to ogb's ``Evaluator`` to float precision. It lives apart from :mod:`revgnn.data.datasets` and
:mod:`revgnn.data.synthetic` so that both import it and neither imports the other for it.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["rocauc"]


def rocauc(y_true: torch.Tensor, y_pred: torch.Tensor) -> float:
    """Mean ROC-AUC over tasks, vectorised, with ogb's ``Evaluator`` rules (tasks lacking a positive or a negative
    label are skipped; NaN labels are ignored). Equal to ogb's value to float precision (tested); ogb calls
    scikit-learn once per task, about 100x slower, which dominated a training epoch on small graphs.

    Shapes:
        y_true: (n, T) in {0, 1} (NaN = unlabeled); y_pred: (n, T) scores.
    """
    yt = y_true.detach().cpu().double().numpy()
    yp = y_pred.detach().cpu().double().numpy()
    if yt.shape != yp.shape or yt.ndim != 2:
        raise ValueError(f"y_true {yt.shape} and y_pred {yp.shape} must both be (n, T)")
    scores = []
    for cols in (np.flatnonzero(~np.isnan(yt).any(0)), np.flatnonzero(np.isnan(yt).any(0))):
        if cols.size == 0:
            continue
        if np.isnan(yt[:, cols]).any():  # rare: ragged labels, one task at a time
            for c in cols:
                ok = ~np.isnan(yt[:, c])
                scores += _auc_columns(yt[ok][:, [c]], yp[ok][:, [c]])
        else:
            scores += _auc_columns(yt[:, cols], yp[:, cols])
    if not scores:
        raise RuntimeError("No positively labeled data available. Cannot compute ROC-AUC.")
    return float(np.mean(scores))


def _average_ranks(v: torch.Tensor) -> torch.Tensor:
    """Column-wise 1-based ranks, ties sharing their average rank. Shapes: (n, T) -> (n, T)."""
    s, order = v.sort(dim=0)
    n = v.size(0)
    pos = torch.arange(n, dtype=torch.float64).view(-1, 1).expand_as(s)
    new = torch.ones_like(s, dtype=torch.bool)
    new[1:] = s[1:] != s[:-1]  # first element of a tie group
    last = torch.ones_like(new)
    last[:-1] = new[1:]  # last element of a tie group
    first_pos = torch.where(new, pos, torch.zeros_like(pos)).cummax(0).values
    last_pos = torch.where(last, pos, torch.full_like(pos, n)).flip(0).cummin(0).values.flip(0)
    return torch.empty_like(s).scatter_(0, order, (first_pos + last_pos) / 2 + 1)


def _auc_columns(yt: np.ndarray, yp: np.ndarray) -> list[float]:
    pos = (yt == 1).sum(0)
    neg = (yt == 0).sum(0)
    ranks = _average_ranks(torch.from_numpy(yp)).numpy()  # ties: average rank (= scikit-learn's trapezoids)
    u = (ranks * (yt == 1)).sum(0) - pos * (pos + 1) / 2  # Mann-Whitney U of the positives
    keep = (pos > 0) & (neg > 0)
    return list(u[keep] / (pos[keep] * neg[keep]))
