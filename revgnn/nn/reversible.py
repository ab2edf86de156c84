r"""Grouped reversible connections (Li et al., ICML 2021, Sec. 3.1, "Grouped Reversible GNNs").

Notation: N nodes, D channels, C groups, L layers. A layer splits X (N, D) into C groups X_1..X_C (N, D/C) and
applies one block f_i per group::

    forward   X'_0 = X_2 + ... + X_C
              X'_i = f_i(X'_{i-1}) + X_i                  i = 1..C          (eq. 1)
    inverse   X_i  = X'_i - f_i(X'_{i-1})                 i = C..2
              X_1  = X'_1 - f_1(X_2 + ... + X_C)                            (eq. 2)

:class:`ReversibleStack` runs each of its L layers as one custom autograd node. The forward passes run under
``no_grad`` and only the top layer keeps its output, so activation memory is O(ND) whatever L is. The backward walks
the layers from the top and, per group, calls f_i once *with* grad on the already known input X'_{i-1}: that one call
gives both the inverse (X_i = X'_i - f_i(X'_{i-1})) and the vector-Jacobian product. Each group function therefore
runs twice per training step (forward, then once in backward) instead of three times (forward, inverse,
recompute) as in the official code and PyG's ``GroupAddRev``. The rebuilt input passes to the layer below through a
tape that the L nodes of one forward share.

Gradients leave as they are made: each layer's node returns its parameters' gradients when its backward ends, and
autograd adds them into ``.grad`` before the layer below is rebuilt (running the hooks that DDP's reducer and
``register_post_accumulate_grad_hook`` listen on), so at most one layer's parameter gradients are in flight and the
peak above the model state does not grow with L. A weight-tied block's gradient is summed by autograd over the layers
that use it (one copy). The result is bit for bit that of one node for the whole stack: the same operations in the
same order, only handed over earlier.

Extra inputs have an explicit policy: ``*shared`` arguments (``edge_index``, an edge embedding) are passed whole to
every block; ``per_group`` arguments (a shared dropout mask) are split along the channel dimension like X. Shared
tensors that require grad (a learnt edge embedding) receive their gradient.

Randomness: the paper's shared dropout mask is an explicit per-group input, so the inverse sees the same mask
(exact gradients). With ``rng="replay"`` each block call gets its own seed, drawn once per forward from the global
generator, and the call is re-run under the same seed in backward, so an ordinary ``nn.Dropout`` inside a block
also gives exact gradients.

Guards (what plain autograd would catch, the engine checks itself): a parameter or buffer changed in place between
forward and backward (``optimizer.step()`` before ``loss.backward()``) raises autograd's in-place error instead of
differentiating the new weights at the old activations; ``create_graph=True`` (a gradient penalty) raises, since the
rebuilt activations carry no graph and the second-order terms would silently vanish (use ``reversible=False``).
``per_group`` tensors that require grad get their gradient.

Float32 drift: the inverse (eq. 2) is exact in real arithmetic only. Each rebuilt input carries the rounding of one
block call and one subtraction, and every inverse below amplifies it, so a float32 gradient drifts with depth (with
max aggregation a last-bit difference can also flip a near-tie and send a gradient to another edge, in plain float32
autograd too); PyG's ``GroupAddRev`` drifts exactly as this engine does. The option ``anchor_every=K`` keeps the exact
input of layers 0, K, 2K, ... (ceil(L/K) tensors of (N, D)) and uses it in backward in place of the rebuilt one, so
the drift accumulates over at most K layers; ``K = 1`` reproduces plain float32 autograd bit for bit. The drift and
the memory of each K at L = 1001 are measured by ``benchmarks/drift.py`` (``results/drift.json``; its figures are
quoted in ``results/README.md``).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["ReversibleStack", "check_groups"]

_RNG_MODES = ("none", "replay")


def check_num_groups(num_groups: int) -> None:
    """Raise a ValueError that says what to change unless ``num_groups`` is an integer >= 2."""
    if not isinstance(num_groups, int) or num_groups < 2:
        raise ValueError(
            f"num_groups must be an integer >= 2 (got {num_groups!r}): a reversible layer needs at least two "
            "groups, since group 1's input is rebuilt from the others. Use num_groups=2 (the paper's setting).")


def check_groups(channels: int, num_groups: int) -> None:
    """Raise a ValueError that says what to change unless ``channels`` splits into ``num_groups >= 2`` groups."""
    check_num_groups(num_groups)
    if channels % num_groups != 0:
        lo = channels - channels % num_groups
        raise ValueError(
            f"hidden_channels={channels} is not divisible by num_groups={num_groups}; choose hidden_channels as "
            f"a multiple of num_groups (e.g. {lo} or {lo + num_groups}) or another num_groups.")


def check_anchor_every(anchor_every: int | None) -> None:
    """Raise a ValueError that says what to change unless ``anchor_every`` is None or an integer >= 1."""
    if anchor_every is not None and (isinstance(anchor_every, bool) or not isinstance(anchor_every, int)
                                     or anchor_every < 1):
        raise ValueError(f"anchor_every must be None (no anchors) or an integer >= 1 (got {anchor_every!r}): "
                         "the exact input of every K-th layer is kept for backward.")


def _reject_running_stats(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats:
            raise ValueError(
                f"{type(m).__name__} with running statistics inside a reversible block would update them twice "
                "per training step (forward and the backward recomputation). Use LayerNorm (the paper's choice) "
                "or construct it with track_running_stats=False.")


def _call(block: nn.Module, seed: int | None, device: torch.device, x: Tensor, shared, group) -> Tensor:
    if seed is None:
        return block(x, *shared, *group)
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return block(x, *shared, *group)


class _Tape:
    """What the L layer nodes of one forward share in backward.

    The forward keeps only the stack's output; in backward each layer rebuilds its own input and leaves it here for
    the layer below (``ys``, C chunks of (N, D/C)), so no layer stores an activation. The gradients of the shared and
    per-group inputs are summed here over all layers, in place, and handed over by layer 0.
    """

    def __init__(self, stack: ReversibleStack, seeds, num_shared: int, num_group: int, shared_group: list):
        self.stack, self.seeds = stack, seeds
        self.num_shared, self.num_group = num_shared, num_group
        self.tensor_slots = [isinstance(t, Tensor) for t in shared_group]  # tensors are saved, the rest kept here
        self.constants = [None if isinstance(t, Tensor) else t for t in shared_group]
        self.versions = record_versions(stack)
        self.ys: list[Tensor] | None = None          # C x (N, D/C): the output of the layer whose backward is next
        self.grad_shared: list[Tensor | None] = []
        self.grad_group: list[list[Tensor | None]] = []


class _LayerFunction(torch.autograd.Function):
    """One reversible layer as one autograd node: the forward stores nothing but the top layer's output; the
    backward rebuilds the layer's input by the inverse and returns the layer's parameter gradients at once."""

    @staticmethod
    def forward(ctx, tape: _Tape, layer_idx: int, x: Tensor, *rest):
        stack, C, K = tape.stack, tape.stack.num_groups, tape.stack.anchor_every
        args = rest[:tape.num_shared + tape.num_group]
        shared, group_args = args[:tape.num_shared], args[tape.num_shared:]
        y = _layer_forward(stack.layers[layer_idx], x, shared, [_chunk(a, C) for a in group_args], C, tape.seeds,
                           layer_idx)
        ctx.tape, ctx.layer_idx = tape, layer_idx
        ctx.top = layer_idx == stack.num_layers - 1
        ctx.anchor = K is not None and layer_idx % K == 0  # keep this layer's exact input (see anchor_every)
        ctx.num_params = len(rest) - len(args)
        ctx.save_for_backward(*([y] if ctx.top else []), *([x] if ctx.anchor else []),
                              *[t for t in args if isinstance(t, Tensor)])
        return y

    @staticmethod
    def backward(ctx, grad_y: Tensor):
        refuse_double_backward("the reversible engine", "use reversible=False (plain autograd) for gradient "
                               "penalties and other second-order terms")
        tape, layer_idx = ctx.tape, ctx.layer_idx
        stack, C = tape.stack, tape.stack.num_groups
        ns, ng = tape.num_shared, tape.num_group
        saved = list(ctx.saved_tensors)
        needs = ctx.needs_input_grad  # (tape, layer_idx, x, *shared, *group, *params)
        shared_req = [needs[3 + k] for k in range(ns)]
        group_req = [needs[3 + ns + k] for k in range(ng)]
        if ctx.top:  # the first layer to run backward: a fresh tape
            check_versions(tape.versions, "the reversible engine recomputes every block in backward")
            tape.ys = list(torch.chunk(saved.pop(0), C, dim=-1))
            tape.grad_shared = [None] * ns
            tape.grad_group = [[None] * C for _ in range(ng)]
        anchor = _chunk(saved.pop(0) if ctx.anchor else None, C)   # the stored exact input, or C x None
        args = [saved.pop(0) if slot else const for slot, const in zip(tape.tensor_slots, tape.constants)]
        shared, group_args = args[:ns], args[ns:]
        shared_d = [t.detach().requires_grad_() if req else t for t, req in zip(shared, shared_req)]
        # each chunk its own leaf, so that autograd.grad can differentiate with respect to it
        group_chunks = [[c.detach().requires_grad_() for c in _chunk(a, C)] if req else _chunk(a, C)
                        for a, req in zip(group_args, group_req)]
        layer = stack.layers[layer_idx]
        params = _layer_parameters(layer)
        param_req = needs[3 + ns + ng:]
        grad_params: list[Tensor | None] = [None] * len(params)
        index = {id(p): k for k, p in enumerate(params)}

        ys = tape.ys                                   # C x (N, D/C) outputs of this layer
        gys = list(torch.chunk(grad_y, C, dim=-1))     # dLoss/dX'_i
        xs: list[Tensor | None] = [None] * C
        gxs: list[Tensor | None] = [None] * C
        for i in range(C - 1, -1, -1):
            block = layer[i]
            # input of f_i: X'_{i-1} for i >= 2, X'_0 = X_2 + ... + X_C for i = 1 (eq. 1)
            inp = ys[i - 1] if i > 0 else torch.stack(xs[1:]).sum(0)
            inp = inp.detach().requires_grad_()
            group_i = [ch[i] for ch in group_chunks]
            block_params = [p for p in block.parameters() if p.requires_grad and param_req[index[id(p)]]]
            with torch.enable_grad():
                out = _call(block, _seed(tape.seeds, layer_idx, i), grad_y.device, inp, shared_d, group_i)
            # inverse, eq. 2; at an anchor layer the stored input replaces the reconstruction (no drift below)
            xs[i] = ys[i] - out.detach() if anchor[i] is None else anchor[i]
            gxs[i] = gys[i]
            wrt_shared = [t for t, req in zip(shared_d, shared_req) if req]
            wrt_group = [t for t, req in zip(group_i, group_req) if req]
            grads = torch.autograd.grad(out, [inp, *wrt_shared, *wrt_group, *block_params], gys[i],
                                        allow_unused=True)
            g_inp, rest = grads[0], grads[1:]
            for k, req in enumerate(shared_req):
                if req:
                    tape.grad_shared[k] = _add(tape.grad_shared[k], rest[0])
                    rest = rest[1:]
            for k, req in enumerate(group_req):
                if req:
                    tape.grad_group[k][i] = _add(tape.grad_group[k][i], rest[0])
                    rest = rest[1:]
            for p, g in zip(block_params, rest):
                k = index[id(p)]
                grad_params[k] = g if grad_params[k] is None else grad_params[k] + g  # a block used twice in a layer
            if g_inp is None:
                g_inp = torch.zeros_like(inp)
            if i > 0:
                gys[i - 1] = gys[i - 1] + g_inp          # X'_{i-1} feeds f_i
            else:
                for j in range(1, C):                    # X'_0 = sum_{j>=2} X_j
                    gxs[j] = gxs[j] + g_inp
        tape.ys = xs if layer_idx > 0 else None
        grad_x = torch.cat(gxs, dim=-1) if needs[2] else None
        if layer_idx > 0:  # the shared and per-group gradients are complete after layer 0
            return (None, None, grad_x, *[None] * (ns + ng), *grad_params)
        grad_group = [torch.cat([g if g is not None else torch.zeros_like(c) for g, c in zip(gs, chunks)], dim=-1)
                      if req else None for gs, chunks, req in zip(tape.grad_group, group_chunks, group_req)]
        grad_shared, tape.grad_shared, tape.grad_group = tape.grad_shared, [], []
        return (None, None, grad_x, *grad_shared, *grad_group, *grad_params)


def refuse_double_backward(what: str, fix: str) -> None:
    """Raise in a custom backward run with ``create_graph=True``, whose result would lack second-order terms.

    The engine runs a custom ``backward`` with grad mode on exactly when ``create_graph=True``. These backward
    passes rebuild activations without a graph (that is how they save memory), so the gradient they return could
    not be differentiated again: a gradient penalty built on it would silently contribute nothing.
    """
    if torch.is_grad_enabled():
        raise RuntimeError(f"double backward through {what} is not supported (create_graph=True, e.g. a gradient "
                           f"penalty): its second-order terms would be silently dropped; {fix}.")


def record_versions(module: nn.Module) -> list[tuple[str, Tensor, int]]:
    """(name, tensor, version counter) of every parameter and buffer of ``module``, taken at forward."""
    return [(name, t, t._version) for name, t in [*module.named_parameters(), *module.named_buffers()]]


def check_versions(versions: list[tuple[str, Tensor, int]], why: str) -> None:
    """Raise autograd's in-place error if a tensor recorded by :func:`record_versions` changed since forward.

    Plain autograd raises when a tensor saved for backward was modified in place (e.g. ``optimizer.step()`` before
    ``loss.backward()``); a backward that recomputes blocks from their parameters would otherwise differentiate the
    new parameters at the old activations, a silently wrong gradient.
    """
    for name, t, version in versions:
        if t._version != version:
            raise RuntimeError(
                f"one of the variables needed for gradient computation has been modified by an inplace operation: "
                f"{name!r} of shape {tuple(t.shape)} is at version {t._version}; expected version {version} "
                f"instead ({why}). Change parameters only after backward, e.g. call optimizer.step() after "
                "loss.backward().")


def _seed(seeds, layer_idx: int, group_idx: int) -> int | None:
    return None if seeds is None else int(seeds[layer_idx][group_idx])


def _add(acc: Tensor | None, g: Tensor | None) -> Tensor | None:
    """Accumulate in place into a buffer we own (one copy at first use), so no second (E, D) buffer appears."""
    if g is None:
        return acc
    return g.clone() if acc is None else acc.add_(g)


def _layer_parameters(layer) -> list[nn.Parameter]:
    """The parameters of one layer's group blocks that require grad, each once."""
    seen, out = set(), []
    for block in layer:
        for p in block.parameters():
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                out.append(p)
    return out


def _chunk(t, C: int):
    if t is None:
        return [None] * C
    return list(torch.chunk(t, C, dim=-1))


def _layer_forward(layer, x: Tensor, shared, group_chunks, C: int, seeds, layer_idx: int) -> Tensor:
    xs = torch.chunk(x, C, dim=-1)                 # C x (N, D/C)
    y_prev = torch.stack(xs[1:]).sum(0)            # X'_0
    ys = []
    for i in range(C):
        group_i = [ch[i] for ch in group_chunks]
        y_prev = _call(layer[i], _seed(seeds, layer_idx, i), x.device, y_prev, shared, group_i) + xs[i]
        ys.append(y_prev)
    return torch.cat(ys, dim=-1)


class ReversibleStack(nn.Module):
    r"""L grouped reversible layers (Li et al., 2021, eq. 1-2) with O(ND) activation memory.

    .. math::
        X'_0 = \sum_{i=2}^{C} X_i, \qquad X'_i = f_i(X'_{i-1}) + X_i, \quad i = 1..C

    Args:
        layers (Sequence[Sequence[nn.Module]]): ``layers[l][i]`` is group block f_i of layer l; every block maps
            (N, D/C) to (N, D/C) and is called as ``block(x, *shared, *per_group_chunks)``. The same module may
            appear in several layers (weight tying): its gradients are summed.
        num_groups (int): C >= 2.
        reversible (bool): ``False`` runs the same blocks with ordinary autograd (stores activations); used as
            the reference path and for debugging. (default: ``True``)
        rng (str): ``"none"`` (blocks are deterministic given their inputs, e.g. the shared dropout mask) or
            ``"replay"`` (each block call is seeded; the backward recomputation replays the seed, so random ops
            inside blocks give exact gradients). (default: ``"none"``)
        anchor_every (int, optional): K; keep the exact input of layers 0, K, 2K, ... for backward, where it
            replaces the reconstructed one, so float rounding of the inverse accumulates over at most K layers
            (see "Float32 drift" in the module docstring). Costs ceil(L/K) extra (N, D) tensors; ``1`` stores
            every layer's input (plain autograd's accuracy, O(LND) memory). ``None`` keeps none: O(ND) memory.
            (default: ``None``)

    Shapes:
        - x: (N, D); shared: any (passed whole); per_group: (N, D) tensors split into C chunks like x
        - output: (N, D)
    """

    def __init__(self, layers: Sequence[Sequence[nn.Module]], num_groups: int, reversible: bool = True,
                 rng: str = "none", anchor_every: int | None = None):
        super().__init__()
        check_num_groups(num_groups)
        if rng not in _RNG_MODES:
            raise ValueError(f"rng must be one of {_RNG_MODES} (got {rng!r})")
        check_anchor_every(anchor_every)
        self.num_groups = num_groups
        self.reversible = reversible
        self.rng = rng
        self.anchor_every = anchor_every
        self.last_seeds = None             # seeds of the last forward (replay mode, training), for inverse()
        self._last_training: bool | None = None
        mods = nn.ModuleList()
        for l, layer in enumerate(layers):
            if len(layer) != num_groups:
                raise ValueError(f"layer {l} has {len(layer)} group blocks; expected num_groups={num_groups}")
            mods.append(layer if isinstance(layer, nn.ModuleList) else nn.ModuleList(layer))
        self.layers = mods
        _reject_running_stats(self)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def unique_parameters(self) -> list[nn.Parameter]:
        """Parameters of all blocks, each once (tied blocks share theirs)."""
        seen, out = set(), []
        for p in self.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                out.append(p)
        return out

    def _draw_seeds(self):
        if self.rng != "replay" or not self.training:
            return None
        return torch.randint(0, 2**62, (self.num_layers, self.num_groups)).tolist()

    def forward(self, x: Tensor, *shared, per_group: Sequence[Tensor | None] = ()) -> Tensor:
        D = x.size(-1)
        check_groups(D, self.num_groups)
        for t in per_group:
            if t is not None and t.size(-1) != D:
                raise ValueError(f"per_group tensors are split along channels like x and need size {D} in the "
                                 f"last dimension (got {tuple(t.shape)}); pass whole-graph tensors as shared.")
        seeds = self._draw_seeds()
        self.last_seeds, self._last_training = seeds, self.training  # lets inverse() replay this forward
        if not self.reversible or not torch.is_grad_enabled():
            chunks = [_chunk(t, self.num_groups) for t in per_group]
            y = x
            for l, layer in enumerate(self.layers):
                y = _layer_forward(layer, y, shared, chunks, self.num_groups, seeds, l)
            return y
        tape = _Tape(self, seeds, len(shared), len(per_group), [*shared, *per_group])
        y = x
        for l, layer in enumerate(self.layers):  # one autograd node per layer: its gradients leave with it
            y = _LayerFunction.apply(tape, l, y, *shared, *per_group, *_layer_parameters(layer))
        return y

    @torch.no_grad()
    def inverse(self, y: Tensor, *shared, per_group: Sequence[Tensor | None] = (), seeds="last") -> Tensor:
        """Rebuild the input from the output (eq. 2). Needs the same shared/per-group inputs as the forward.

        Args:
            seeds: the block seeds of the forward that produced ``y`` (``rng="replay"``); ``"last"`` uses those of
                the last forward (``last_seeds``), ``None`` replays none.
        """
        if isinstance(seeds, str):
            if seeds != "last":
                raise ValueError(f"seeds must be 'last', None or a forward's seeds (got {seeds!r})")
            seeds = self.last_seeds
            if self.rng == "replay" and self._last_training is not None and self._last_training != self.training:
                raise ValueError("inverse() runs in a different train/eval mode from the last forward, so random "
                                 "blocks would not be replayed; call it in the mode the forward ran in.")
        if self.rng == "replay" and self.training and seeds is None:
            raise ValueError("inverse() in replay mode and training mode needs the seeds of the forward that "
                             "produced y: run that forward first (its seeds are kept in last_seeds) or pass seeds=.")
        C = self.num_groups
        chunks = [_chunk(t, C) for t in per_group]
        for l in range(self.num_layers - 1, -1, -1):
            ys = list(torch.chunk(y, C, dim=-1))
            xs: list[Tensor | None] = [None] * C
            for i in range(C - 1, -1, -1):
                inp = ys[i - 1] if i > 0 else torch.stack(xs[1:]).sum(0)
                group_i = [ch[i] for ch in chunks]
                xs[i] = ys[i] - _call(self.layers[l][i], _seed(seeds, l, i), y.device, inp, shared, group_i)
            y = torch.cat(xs, dim=-1)
        return y

    def extra_repr(self) -> str:
        anchors = f", anchor_every={self.anchor_every}" if self.anchor_every is not None else ""
        return f"num_layers={self.num_layers}, num_groups={self.num_groups}, rng={self.rng!r}{anchors}"
