r"""A grouped reversible layer around any block (Li et al., ICML 2021, Sec. 3.1, eq. 1-2), for GAT, SAGE, GCN or
any ``torch.nn.Module`` whose output has its input's width.

Notation: N nodes, D channels, C groups, L layers; f_i is group i's copy of the block.

    X'_0 = X_2 + ... + X_C,    X'_i = f_i(X'_{i-1}, A) + X_i    (i = 1..C)                         (eq. 1)

:class:`GroupAddRev` takes PyG's ``GroupAddRev`` arguments (``conv``, ``split_dim=-1``, ``num_groups``,
``disable``, ``num_bwd_passes``), so switching is a change of import; :class:`ReversibleSequential` runs several of
them as one stack. Both run on the package's engine (:class:`~revgnn.nn.reversible.ReversibleStack`), which is what
they add over PyG's:

- each block runs twice per training step (forward, then once in backward: the inverse and the gradient from one
  call), not three times;
- extra inputs have an explicit policy: positional ones are passed whole to every block (``edge_index``, edge
  features, degrees); ``per_group=`` ones (a shared dropout mask) are split along channels like X. PyG splits any
  argument whose size happens to equal the channel count;
- ``rng="replay"`` (the default) seeds each block call and replays the seed in backward, so dropout or edge drop
  inside a block gives exact gradients (PyG's recomputation draws new random numbers: silently wrong gradients);
- group copies get independent initial weights (``reset_parameters`` of each copy; ``copy_weights=True`` keeps the
  seed block's weights in every group, as the official RevGAT does);
- ``disable=True`` runs the same blocks with plain autograd (the non-reversible baseline, O(LND) memory);
- BatchNorm inside a block updates its running statistics once per forward, as the plain model would, though the
  block also runs in backward (see :func:`running_stats_once`).

A :class:`ReversibleSequential` stores only the top layer's output for backward: activation memory O(ND) whatever L.
Single :class:`GroupAddRev` layers chained in Python each keep their own output (N, D) for backward (O(LND), still
without the blocks' intermediate tensors); PyG frees those outputs' storage behind the caller's back, which breaks any
other use of them, so this module does not.
"""
from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from .reversible import ReversibleStack, check_num_groups

__all__ = ["GroupAddRev", "ReversibleSequential", "running_stats_once"]

_STATE = threading.local()  # depth of the wrapper forwards running in this thread


@contextmanager
def _forward_pass():
    _STATE.depth = getattr(_STATE, "depth", 0) + 1
    try:
        yield
    finally:
        _STATE.depth -= 1


def _update_running_stats(bn: nn.modules.batchnorm._BatchNorm, args) -> None:
    """Forward pre-hook of a converted BatchNorm: update its running statistics from this call's batch, as torch's
    BatchNorm would in training mode, but only inside a wrapper's forward (not in the engine's backward)."""
    if not bn.training or getattr(_STATE, "depth", 0) == 0:
        return
    x = args[0]
    with torch.no_grad():
        dims = [0, *range(2, x.dim())]                                  # every dimension but the channels
        n = x.numel() // x.size(1)
        mean = x.mean(dims)                                             # (channels,)
        var = x.var(dims, unbiased=n > 1)                               # unbiased, as torch's running_var
        tracked = bn.num_batches_tracked
        # .data: the same storage, updated in place without bumping the version counter that the engine checks
        # (a running statistic is no input of the gradient)
        tracked.data.add_(1)
        f = 1.0 / float(tracked) if bn.momentum is None else bn.momentum
        bn.running_mean.data.mul_(1 - f).add_(mean.to(bn.running_mean.dtype), alpha=f)
        bn.running_var.data.mul_(1 - f).add_(var.to(bn.running_var.dtype), alpha=f)


def running_stats_once(blocks: Sequence[nn.Module]) -> list[nn.Module]:
    """Make every BatchNorm with running statistics inside ``blocks`` update them once per wrapper forward.

    The reversible engine calls each block again in backward to rebuild its input; a BatchNorm would then update its
    running statistics twice per step (PyG's ``GroupAddRev``: three times). A converted BatchNorm keeps its buffers
    and behaves as before (batch statistics in training, running statistics in eval), but its running statistics are
    updated by a forward hook that acts only inside the forward of a :class:`GroupAddRev` or
    :class:`ReversibleSequential`: once per call of the block in the forward pass, never in backward. Its
    ``track_running_stats`` becomes ``False`` (what keeps torch from updating them itself); calling the block
    directly, outside a wrapper, then leaves the statistics alone. Converting twice changes nothing.

    Returns:
        The BatchNorm modules converted by this call.
    """
    done = []
    for block in blocks:
        for m in block.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats \
                    and m.running_mean is not None:
                m.track_running_stats = False
                m.register_forward_pre_hook(_update_running_stats)
                m._revgnn_stats_once = True
                done.append(m)
    return done


def _reset_running_stats(module: nn.Module) -> None:
    """``reset_running_stats`` of converted BatchNorms (torch's skips them, as their ``track_running_stats`` is
    ``False``)."""
    for m in module.modules():
        if getattr(m, "_revgnn_stats_once", False):
            m.running_mean.data.zero_()
            m.running_var.data.fill_(1)
            m.num_batches_tracked.data.zero_()


def _reset_parameters(module: nn.Module) -> bool:
    """Re-initialise ``module``: its own ``reset_parameters``, else that of every submodule that has one (PyG's and
    torch's layers do). False when some parameter was not reached."""
    if hasattr(module, "reset_parameters"):
        module.reset_parameters()
        return True
    reached = set()
    for m in module.modules():
        if m is not module and hasattr(m, "reset_parameters"):
            m.reset_parameters()
            reached |= {id(p) for p in m.parameters()}
    return all(id(p) in reached for p in module.parameters())


def _group_blocks(conv, num_groups: int | None, copy_weights: bool) -> nn.ModuleList:
    if isinstance(conv, nn.ModuleList):
        if num_groups is not None and num_groups != len(conv):
            raise ValueError(f"conv is a ModuleList of {len(conv)} group blocks but num_groups={num_groups}; "
                             "give one block per group, or one block and num_groups")
        check_num_groups(len(conv))
        return conv
    if not isinstance(conv, nn.Module):
        raise TypeError(f"conv must be a torch.nn.Module or a ModuleList of group blocks (got {type(conv).__name__})")
    if num_groups is None:
        raise ValueError("num_groups is required with one seed block (its copies are the other groups); "
                         "the paper uses num_groups=2")
    check_num_groups(num_groups)
    blocks = nn.ModuleList([conv])
    for _ in range(num_groups - 1):
        block = copy.deepcopy(conv)
        if not copy_weights and not _reset_parameters(block):
            raise ValueError(f"{type(conv).__name__} has parameters that no reset_parameters() re-initialises, so "
                             "its group copies would start with identical weights; give it a reset_parameters(), "
                             "pass a ModuleList of num_groups blocks, or copy_weights=True")
        blocks.append(block)
    return blocks


def _check_split_dim(split_dim: int) -> None:
    if split_dim != -1:
        raise ValueError(f"split_dim={split_dim}: the groups are split along the last dimension (split_dim=-1, "
                         "PyG's default); move the channels last")


class GroupAddRev(nn.Module):
    r"""One grouped reversible layer around any block (Li et al., 2021, eq. 1), a drop-in for PyG's ``GroupAddRev``.

    .. math::
        X'_0 = \sum_{i=2}^{C} X_i, \qquad X'_i = f_{\theta(i)}(X'_{i-1}, A) + X_i, \quad i = 1..C

    Args:
        conv (nn.Module or nn.ModuleList): the seed block, mapping (N, D/C) to (N, D/C) and called as
            ``block(x, *args, *per_group_chunks)``; or a ModuleList of C blocks (used as they are).
        split_dim (int): the dimension split into groups; only ``-1`` (PyG's default). (default: ``-1``)
        num_groups (int, optional): C >= 2, required with one seed block.
        disable (bool): run the blocks with plain autograd (stores activations): the non-reversible baseline.
            (default: ``False``)
        num_bwd_passes (int): accepted for PyG's signature; any number of backward passes works with
            ``retain_graph=True``. (default: 1)
        copy_weights (bool): every group starts with the seed block's weights (a deep copy, as the official RevGAT);
            ``False`` re-initialises each copy with ``reset_parameters()``. (default: ``False``)
        rng (str): ``"replay"`` (each block call seeded, the seed replayed in backward: random ops inside a block give
            exact gradients) or ``"none"`` (blocks are deterministic given their inputs). (default: ``"replay"``)

    BatchNorm layers inside the blocks update their running statistics once per forward
    (:func:`running_stats_once`). The state dict has PyG's keys (``convs.<i>.*``).

    Shapes:
        - x: (N, D); args: passed whole to every block; per_group: (N, D) tensors, split into C chunks like x
        - output: (N, D)
    """

    def __init__(self, conv: nn.Module | nn.ModuleList, split_dim: int = -1, num_groups: int | None = None,
                 disable: bool = False, num_bwd_passes: int = 1, *, copy_weights: bool = False,
                 rng: str = "replay"):
        super().__init__()
        _check_split_dim(split_dim)
        if not isinstance(num_bwd_passes, int) or num_bwd_passes < 1:
            raise ValueError(f"num_bwd_passes must be an integer >= 1 (got {num_bwd_passes!r})")
        self.split_dim, self.num_bwd_passes = split_dim, num_bwd_passes
        self.convs = _group_blocks(conv, num_groups, copy_weights)
        running_stats_once(self.convs)
        # the engine is kept out of the module tree, so the state dict has PyG's keys; it holds the same blocks
        object.__setattr__(self, "_engine", ReversibleStack([list(self.convs)], len(self.convs),
                                                            reversible=not disable, rng=rng))

    @property
    def num_groups(self) -> int:
        return len(self.convs)

    @property
    def disable(self) -> bool:
        return not self._engine.reversible

    @disable.setter
    def disable(self, value: bool) -> None:
        self._engine.reversible = not value

    @property
    def rng(self) -> str:
        return self._engine.rng

    def reset_parameters(self) -> None:
        """Re-initialise every group block (running statistics included)."""
        for conv in self.convs:
            _reset_parameters(conv)
        _reset_running_stats(self)

    def forward(self, x: Tensor, *args, per_group: Sequence[Tensor | None] = ()) -> Tensor:
        self._engine.train(self.training)
        with _forward_pass():
            return self._engine(x, *args, per_group=per_group)

    def inverse(self, y: Tensor, *args, per_group: Sequence[Tensor | None] = (), seeds="last") -> Tensor:
        """The input that gave ``y`` (eq. 2), with the same ``args`` and ``per_group`` (and, in training with
        ``rng="replay"``, the seeds of that forward: the last one's by default)."""
        self._engine.train(self.training)
        return self._engine.inverse(y, *args, per_group=per_group, seeds=seeds)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.convs[0]}, num_groups={self.num_groups}, rng={self.rng!r}"
                f"{', disable=True' if self.disable else ''})")


class ReversibleSequential(nn.Module):
    r"""L :class:`GroupAddRev` layers run as one reversible stack: only the top layer's output is kept for backward,
    so activation memory is O(ND) whatever L is (Li et al., 2021, Sec. 3.1).

    Args:
        layers (Sequence[GroupAddRev]): the layers, in order; they share ``num_groups``, ``disable`` and ``rng``.
        anchor_every (int, optional): keep the exact input of every K-th layer for backward, bounding float32 drift
            (:class:`~revgnn.nn.reversible.ReversibleStack`). (default: ``None``: O(ND) memory)

    Shapes:
        - x: (N, D); args: passed whole to every block of every layer; per_group: (N, D) tensors split like x
        - output: (N, D)
    """

    def __init__(self, layers: Sequence[GroupAddRev], anchor_every: int | None = None):
        super().__init__()
        layers = list(layers)
        if not layers:
            raise ValueError("ReversibleSequential needs at least one GroupAddRev layer")
        if not all(isinstance(layer, GroupAddRev) for layer in layers):
            kinds = sorted({type(layer).__name__ for layer in layers if not isinstance(layer, GroupAddRev)})
            raise TypeError(f"ReversibleSequential takes GroupAddRev layers (got {', '.join(kinds)})")
        for name in ("num_groups", "disable", "rng"):
            values = {getattr(layer, name) for layer in layers}
            if len(values) > 1:
                raise ValueError(f"the layers differ in {name} ({sorted(map(str, values))}); give them all the same")
        self.layers = nn.ModuleList(layers)
        first = layers[0]
        object.__setattr__(self, "_engine", ReversibleStack([list(layer.convs) for layer in layers], first.num_groups,
                                                            reversible=not first.disable, rng=first.rng,
                                                            anchor_every=anchor_every))

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def num_groups(self) -> int:
        return self.layers[0].num_groups

    @property
    def disable(self) -> bool:
        return not self._engine.reversible

    @disable.setter
    def disable(self, value: bool) -> None:
        self._engine.reversible = not value
        for layer in self.layers:
            layer.disable = value

    def reset_parameters(self) -> None:
        for layer in self.layers:
            layer.reset_parameters()

    def forward(self, x: Tensor, *args, per_group: Sequence[Tensor | None] = ()) -> Tensor:
        self._engine.train(self.training)
        with _forward_pass():
            return self._engine(x, *args, per_group=per_group)

    def inverse(self, y: Tensor, *args, per_group: Sequence[Tensor | None] = (), seeds="last") -> Tensor:
        """The input that gave ``y`` (eq. 2 through every layer, from the top)."""
        self._engine.train(self.training)
        return self._engine.inverse(y, *args, per_group=per_group, seeds=seeds)
