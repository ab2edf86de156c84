"""Memory measurement (Li et al., 2021, Fig. 2-4): what a training step keeps for backward, and its peak.

:class:`SavedTensorMeter` counts the bytes autograd saves for backward, through
``torch.autograd.graph.saved_tensors_hooks``: each storage once, parameters excluded (they exist anyway). This is the
activation memory of the paper's complexity table: O(LND) for ResGNN, O(ND) for RevGNN and DEQ-GNN.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

__all__ = ["SavedTensorMeter"]


class SavedTensorMeter:
    """Context manager that sums the bytes of the distinct storages autograd saves for backward.

    Args:
        exclude (Iterable[Tensor]): tensors whose storages are not counted (e.g. ``model.parameters()``).

    Example::

        with SavedTensorMeter(model.parameters()) as meter:
            loss = model(x, edge_index).sum()
        meter.bytes
    """

    def __init__(self, exclude: Iterable[Tensor] = ()):
        self._exclude = {t.untyped_storage().data_ptr() for t in exclude}
        self._seen: set[int] = set()
        self.bytes = 0
        self.count = 0
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)

    def _pack(self, t: Tensor) -> Tensor:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in self._exclude and ptr not in self._seen:
            self._seen.add(ptr)
            self.bytes += storage.nbytes()
            self.count += 1
        return t

    @staticmethod
    def _unpack(t: Tensor) -> Tensor:
        return t

    def __enter__(self) -> SavedTensorMeter:
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)
