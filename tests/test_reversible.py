"""The reversible engine's claims (Li et al., 2021, eq. 1-2), on tiny seeded graphs."""
import copy

import pytest
import torch
from torch import nn
from torch_geometric.nn import GroupAddRev

from revgnn import GENBlock, ReversibleStack, RevGNN, WTRevGNN
from revgnn.measure.memory import SavedTensorMeter


def graph(N=20, E=60, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, N, (2, E), generator=g)
    ea = torch.rand(E, 8, generator=g, dtype=dtype)
    x = torch.rand(N, 8, generator=g, dtype=dtype)
    sp = torch.randint(0, 8, (N,), generator=g)
    return x, ei, ea, sp


def grads(model, x, ei, ea, sp, reversible: bool, seed=5):
    model.stack.reversible = reversible
    x = x.clone().requires_grad_()
    torch.manual_seed(seed)
    out = model(x, ei, ea, sp)
    loss = (out ** 2).sum()
    return torch.autograd.grad(loss, [x, *model.parameters()])


def rel(a, b):
    return float((a - b).norm() / (b.norm() + 1e-300))


CASES = [(L, C) for L in (1, 8, 64) for C in (2, 3, 4)]


@pytest.mark.parametrize("mode", ["shared", "replay"])
@pytest.mark.parametrize("L,C", CASES)
def test_gradients_equal_plain_path_float64(L, C, mode):
    x, ei, ea, sp = graph(dtype=torch.float64)
    torch.manual_seed(1)
    model = RevGNN(8, 24, 5, L, C, dropout=0.2, edge_dim=8, num_species=8, dropout_mode=mode).double()
    rev, plain = grads(model, x, ei, ea, sp, True), grads(model, x, ei, ea, sp, False)
    names = ["x"] + [n for n, _ in model.named_parameters()]
    for n, a, b in zip(names, rev, plain):
        assert rel(a, b) < 1e-10, f"reversible gradient of {n} equals the non-reversible path in float64"


@pytest.mark.parametrize("mode", ["shared", "replay"])
@pytest.mark.parametrize("L,C", CASES)
def test_gradients_equal_plain_path_float32(L, C, mode):
    """Float32: the whole gradient (inputs and every parameter, concatenated) within 1e-5 relative.

    Per tensor the bound is 1e-4: at L=64 the plain float32 path itself is ~8e-6 from the float64 gradient, so
    per-tensor differences of 1-2e-5 in the first layers are rounding, not a defect (float64 test: 1e-10).
    """
    x, ei, ea, sp = graph()
    torch.manual_seed(1)
    model = RevGNN(8, 24, 5, L, C, dropout=0.2, edge_dim=8, num_species=8, dropout_mode=mode)
    rev, plain = grads(model, x, ei, ea, sp, True), grads(model, x, ei, ea, sp, False)
    flat = lambda gs: torch.cat([g.flatten() for g in gs])  # noqa: E731
    assert rel(flat(rev), flat(plain)) < 1e-5, "reversible gradients equal the non-reversible path (float32)"
    for a, b in zip(rev, plain):
        assert rel(a, b) < 1e-4, "every reversible gradient tensor equals the non-reversible one (float32)"


@pytest.mark.parametrize("L", [1, 8, 64])
def test_weight_tied_gradients_equal_plain_path(L):
    x, ei, ea, sp = graph(dtype=torch.float64)
    torch.manual_seed(2)
    model = WTRevGNN(8, 24, 5, L, 3, dropout=0.2, edge_dim=8, num_species=8).double()
    from revgnn import count_parameters
    two = WTRevGNN(8, 24, 5, 2, 3, edge_dim=8, num_species=8)
    if L >= 2:
        assert count_parameters(model) == count_parameters(two), "weight-tied parameters do not grow with depth"
    rev, plain = grads(model, x, ei, ea, sp, True), grads(model, x, ei, ea, sp, False)
    for a, b in zip(rev, plain):
        assert rel(a, b) < 1e-10, "weight-tied reversible gradients (summed over layers) equal the plain path"


def test_ordinary_dropout_without_replay_is_wrong_and_replay_fixes_it():
    """The failure the paper's shared mask avoids: nn.Dropout inside a block, no replay, gives wrong gradients."""
    x, ei, ea, sp = graph(dtype=torch.float64)
    torch.manual_seed(1)
    model = RevGNN(8, 12, 5, 4, 2, dropout=0.3, edge_dim=8, num_species=8, dropout_mode="replay").double()
    plain = grads(model, x, ei, ea, sp, False)
    model.stack.rng = "none"  # same blocks, seeds not replayed
    broken = grads(model, x, ei, ea, sp, True)
    assert max(rel(a, b) for a, b in zip(broken, plain)) > 1e-3, "unreplayed dropout breaks exactness"
    model.stack.rng = "replay"
    fixed = grads(model, x, ei, ea, sp, True)
    assert max(rel(a, b) for a, b in zip(fixed, plain)) < 1e-10, "RNG replay restores exact gradients"


def blocks(D, C, seed=0, edge_dim=8):
    torch.manual_seed(seed)
    return [GENBlock(D // C, edge_dim) for _ in range(C)]


@pytest.mark.parametrize("C", [2, 3, 4])
def test_inverse_of_forward_is_identity(C):
    x, ei, ea, _ = graph(dtype=torch.float64)
    D = 12
    stack = ReversibleStack([blocks(D, C, s) for s in range(8)], C).double()
    h = torch.randn(20, D, dtype=torch.float64)
    with torch.no_grad():
        y = stack(h, ei, ea)
    assert torch.allclose(stack.inverse(y, ei, ea), h, atol=1e-10), "inverse(forward(x)) == x"
    assert not torch.allclose(y, h), "the layer is not the identity"


@pytest.mark.parametrize("C", [2, 3])
def test_agrees_with_pyg_group_add_rev(C):
    """Oracle: PyG's GroupAddRev over the same block modules gives the same output and gradients."""
    x, ei, ea, _ = graph()
    D = 12
    bl = blocks(D, C)
    ours = ReversibleStack([bl], C)
    pyg = GroupAddRev(nn.ModuleList(bl))
    h = torch.randn(20, D)
    h1, h2 = h.clone().requires_grad_(), h.clone().requires_grad_()
    y1, y2 = ours(h1, ei, ea), pyg(h2, ei, ea)
    assert torch.allclose(y1, y2, atol=1e-6), "forward agrees with PyG's GroupAddRev"
    w = torch.randn_like(y1)
    g1 = torch.autograd.grad((y1 * w).sum(), [h1, *ours.parameters()])
    g2 = torch.autograd.grad((y2 * w).sum(), [h2, *pyg.parameters()])
    for a, b in zip(g1, g2):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4), "gradients agree with PyG's GroupAddRev"


def test_each_group_function_runs_twice_per_training_step():
    x, ei, ea, sp = graph()
    model = RevGNN(8, 12, 3, 5, 3, dropout=0.1, edge_dim=8, num_species=8)
    calls = {}
    for l, layer in enumerate(model.stack.layers):
        for i, b in enumerate(layer):
            b.register_forward_hook(lambda m, a, o, k=(l, i): calls.__setitem__(k, calls.get(k, 0) + 1))
    model(x, ei, ea, sp).sum().backward()
    assert len(calls) == 15 and set(calls.values()) == {2}, \
        f"each group function runs twice per step (forward + fused inverse/recompute), got {calls}"


def test_user_tensors_are_never_wiped():
    x, ei, ea, _ = graph()
    D = 8
    stack = ReversibleStack([blocks(D, 2, s) for s in range(3)], 2)
    h = torch.randn(20, D)
    keep = h.clone()
    with torch.no_grad():
        stack(h, ei, ea)
    assert torch.equal(h, keep), "a user's input survives a no_grad forward"
    hg = h.clone().requires_grad_()
    y = stack(hg, ei, ea)
    y.sum().backward()
    assert torch.equal(hg.detach(), keep), "a user's input survives forward and backward"
    assert y.untyped_storage().size() > 0 and torch.isfinite(y).all(), "the output stays readable after backward"


def test_only_the_output_is_kept_for_backward():
    """The reversible stack keeps no activation for backward, only its output and the shared inputs: O(ND)."""
    x, ei, ea, _ = graph()
    D = 8
    stack = ReversibleStack([blocks(D, 2, s) for s in range(4)], 2)
    h = torch.randn(20, D, requires_grad=True)
    for reversible in (True, False):
        stack.reversible = reversible
        saved = set()

        def pack(t, saved=saved):
            saved.add(t.untyped_storage().data_ptr())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            y = stack(h, ei, ea)
        mine = {t.untyped_storage().data_ptr() for t in (y, ei, ea)}
        params = {p.untyped_storage().data_ptr() for p in stack.parameters()}
        activations = saved - mine - params
        if reversible:
            assert not activations and h.untyped_storage().data_ptr() not in saved, \
                "the reversible stack keeps only its output and shared inputs for backward"
        else:
            assert len(activations) > 4 * 2 * 4, "plain autograd keeps activations of every layer"
        y.sum().backward()


def test_saved_bytes_flat_in_depth_for_revgnn_linear_for_resgnn():
    from revgnn import ResGNN
    x, ei, ea, sp = graph(N=200, E=1000)

    def saved(model):
        with SavedTensorMeter(model.parameters()) as m:
            model(x, ei, ea, sp).sum()
        return m.bytes

    torch.manual_seed(0)
    r4 = saved(RevGNN(8, 32, 5, 4, 2, dropout=0.1, edge_dim=8, num_species=8))
    r64 = saved(RevGNN(8, 32, 5, 64, 2, dropout=0.1, edge_dim=8, num_species=8))
    assert abs(r64 - r4) <= 0.05 * r4, f"RevGNN's saved bytes are flat in depth ({r4} at L=4, {r64} at L=64)"
    s4 = saved(ResGNN(8, 32, 5, 4, dropout=0.1, edge_dim=8, num_species=8))
    s64 = saved(ResGNN(8, 32, 5, 64, dropout=0.1, edge_dim=8, num_species=8))
    assert 10 < s64 / s4 < 20, f"ResGNN's saved bytes grow about linearly (x{s64 / s4:.1f} for 16x depth)"


def test_autograd_grad_and_second_backward():
    x, ei, ea, sp = graph()
    model = RevGNN(8, 12, 3, 3, 2, edge_dim=8, num_species=8)
    out = model(x, ei, ea, sp).sum()
    g1 = torch.autograd.grad(out, list(model.parameters()), retain_graph=True)
    g2 = torch.autograd.grad(out, list(model.parameters()))
    for a, b in zip(g1, g2):
        assert torch.equal(a, b), "a retained graph backpropagates twice with equal gradients"
    with pytest.raises(RuntimeError, match="second time|freed"):
        torch.autograd.grad(out, list(model.parameters()))


def test_batchnorm_with_running_stats_is_rejected():
    class BNBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.bn = nn.BatchNorm1d(4)

        def forward(self, x, *args):
            return self.bn(x)

    with pytest.raises(ValueError, match="running statistics"):
        ReversibleStack([[BNBlock(), BNBlock()]], 2)
    ReversibleStack([[nn.BatchNorm1d(4, track_running_stats=False)] * 2], 2)


@pytest.mark.parametrize("kwargs,match", [
    (dict(hidden_channels=10, num_groups=3), "not divisible by num_groups=3"),
    (dict(hidden_channels=10, num_groups=1), "num_groups must be an integer >= 2"),
    (dict(hidden_channels=10, num_groups=2, dropout=1.0), "dropout must be in"),
    (dict(hidden_channels=10, num_groups=2, dropout_mode="fancy"), "dropout_mode"),
    (dict(hidden_channels=10, num_groups=2, num_layers=0), "num_layers"),
])
def test_bad_configuration_errors(kwargs, match):
    args = dict(in_channels=8, out_channels=3, num_layers=2) | kwargs
    with pytest.raises(ValueError, match=match):
        RevGNN(**args)


def test_per_group_argument_shape_is_checked():
    stack = ReversibleStack([blocks(8, 2)], 2)
    x, ei, ea, _ = graph()
    with pytest.raises(ValueError, match="per_group"):
        stack(torch.randn(20, 8), ei, ea, per_group=(torch.randn(20, 4),))


def test_shared_edge_embedding_is_not_split_and_gets_gradients():
    """An (E, D) edge embedding with D == channels is passed whole (no size heuristic) and learns."""
    x, ei, _, _ = graph(dtype=torch.float64)
    D = 8
    torch.manual_seed(0)
    stack = ReversibleStack([[GENBlock(D // 2, D) for _ in range(2)] for _ in range(3)], 2).double()
    e = torch.randn(60, D, dtype=torch.float64, requires_grad=True)
    h = torch.randn(20, D, dtype=torch.float64)
    outs = []
    for rev in (True, False):
        stack.reversible = rev
        outs.append(torch.autograd.grad(stack(h, ei, e).pow(2).sum(), e)[0])
    assert rel(outs[0], outs[1]) < 1e-10, "the shared edge embedding's gradient equals the plain path"


def test_group_copies_have_independent_weights():
    model = RevGNN(8, 16, 3, 2, 2)
    a, b = model.stack.layers[0]
    assert not torch.equal(a.conv.mlp[0].weight, b.conv.mlp[0].weight), "group blocks start from different weights"
    clone = copy.deepcopy(model)
    assert torch.equal(clone.stack.layers[0][0].conv.mlp[0].weight, a.conv.mlp[0].weight)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device: peak GPU memory vs depth")
def test_cuda_peak_memory_flat_in_depth():
    dev = torch.device("cuda")
    x, ei, ea, sp = (t.to(dev) for t in graph(N=2000, E=40000))
    peaks = []
    for L in (4, 64):
        model = RevGNN(8, 64, 112, L, 2, dropout=0.1, edge_dim=8, num_species=8).to(dev)
        model(x, ei, ea, sp).sum().backward()          # allocate the gradients, part of the model state
        model.zero_grad(set_to_none=False)
        state = torch.cuda.memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        model(x, ei, ea, sp).sum().backward()
        peaks.append(torch.cuda.max_memory_allocated(dev) - state)
        del model
    assert abs(peaks[1] - peaks[0]) <= 0.05 * peaks[0], f"GPU peak above model state is flat in depth: {peaks}"


class MaskedBlock(nn.Module):
    """A GENBlock whose input is scaled by a per-group tensor: f(x, ei, ea, m) = GEN(x * m)."""

    def __init__(self, c):
        super().__init__()
        self.block = GENBlock(c, 8)

    def forward(self, x, edge_index, edge_attr, m):
        return self.block(x * m, edge_index, edge_attr)


def test_per_group_tensor_that_requires_grad_gets_its_gradient():
    x, ei, ea, _ = graph(dtype=torch.float64)
    D = 8
    torch.manual_seed(0)
    stack = ReversibleStack([[MaskedBlock(D // 2) for _ in range(2)] for _ in range(3)], 2).double()
    h = torch.randn(20, D, dtype=torch.float64)
    m = torch.rand(20, D, dtype=torch.float64, requires_grad=True)
    out = []
    for rev in (True, False):
        stack.reversible = rev
        out.append(torch.autograd.grad(stack(h, ei, ea, per_group=(m,)).pow(2).sum(), m)[0])
    assert out[1].norm() > 0
    assert rel(out[0], out[1]) < 1e-10, "a per_group tensor's gradient equals the non-reversible path"


def test_double_backward_is_refused_not_silently_wrong():
    """create_graph=True (a gradient penalty) would drop the stack's second-order terms; it raises instead."""
    x, ei, ea, sp = graph()
    model = RevGNN(8, 8, 3, 3, 2, edge_dim=8, num_species=8)
    out = model(x, ei, ea, sp).pow(2).sum()
    with pytest.raises(RuntimeError, match="double backward through the reversible engine is not supported"):
        torch.autograd.grad(out, list(model.parameters()), create_graph=True)
    model.stack.reversible = False
    gs = torch.autograd.grad(model(x, ei, ea, sp).pow(2).sum(), list(model.stack.parameters()), create_graph=True)
    assert all(g.requires_grad for g in gs), "the plain path (reversible=False) supports gradient penalties"


@pytest.mark.parametrize("reversible", [True, False])
def test_parameter_changed_in_place_before_backward_raises(reversible):
    """optimizer.step() between forward and backward: plain autograd raises, and so does the reversible engine."""
    x, ei, ea, sp = graph()
    torch.manual_seed(0)
    model = RevGNN(8, 8, 3, 4, 2, edge_dim=8, num_species=8, reversible=reversible)
    loss = model(x, ei, ea, sp).pow(2).sum()
    with torch.no_grad():
        model.stack.layers[1][0].conv.mlp[0].weight.mul_(1.1)  # (c, 2c) weight of a middle block
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_unchanged_parameters_pass_the_version_check():
    x, ei, ea, sp = graph()
    model = RevGNN(8, 8, 3, 4, 2, edge_dim=8, num_species=8)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(2):                                   # the ordinary order: forward, backward, step
        opt.zero_grad()
        model(x, ei, ea, sp).pow(2).sum().backward()
        opt.step()


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_inverse_replays_the_last_forwards_seeds_by_default(dtype, tol):
    """Replay mode: inverse() without seeds= rebuilds the input of the last training forward to rounding."""
    _, ei, ea, _ = graph(dtype=dtype)
    D, C = 12, 2
    torch.manual_seed(0)
    layers = [[GENBlock(D // C, 8, dropout=0.3) for _ in range(C)] for _ in range(6)]
    stack = ReversibleStack(layers, C, rng="replay").to(dtype).train()
    h = torch.randn(20, D, dtype=dtype)
    with torch.no_grad():
        y = stack(h, ei, ea)
    assert rel(stack.inverse(y, ei, ea), h) < tol, "inverse(forward(x)) == x with dropout replayed"
    assert rel(stack.inverse(y, ei, ea, seeds=stack.last_seeds), h) < tol
    stack.eval()
    with pytest.raises(ValueError, match="different train/eval mode"):
        stack.inverse(y, ei, ea)


def test_inverse_without_seeds_in_replay_training_mode_raises():
    _, ei, ea, _ = graph()
    stack = ReversibleStack([blocks(8, 2)], 2, rng="replay").train()
    with pytest.raises(ValueError, match="needs the seeds"):
        stack.inverse(torch.randn(20, 8), ei, ea)


class TanhBlock(nn.Module):
    """f(x) = tanh(x W + b) with ||W||_2 = gain: smooth, so float drift is the only source of error."""

    def __init__(self, c, gain, g):
        super().__init__()
        w = torch.randn(c, c, generator=g)
        self.w = nn.Parameter(gain * w / torch.linalg.matrix_norm(w, 2))
        self.b = nn.Parameter(0.1 * torch.randn(c, generator=g))

    def forward(self, x):
        return torch.tanh(x @ self.w + self.b)


def deep_tanh_stack(seed, L=300, D=16, gain=0.7):
    g = torch.Generator().manual_seed(seed)
    stack = ReversibleStack([[TanhBlock(D // 2, gain, g) for _ in range(2)] for _ in range(L)], 2)
    return stack, torch.randn(30, D, generator=g), torch.randn(30, D, generator=g)


def flat_grads(stack, h, w, reversible=True, anchor_every=None):
    stack.reversible, stack.anchor_every = reversible, anchor_every
    h = h.clone().requires_grad_()
    gs = torch.autograd.grad((stack(h) * w).sum(), [h, *stack.parameters()])
    return torch.cat([g.flatten() for g in gs]).double()


@pytest.mark.parametrize("seed", [0, 1])
def test_anchors_remove_float32_drift(seed):
    """At L=300 float32 rounding in the inverse drifts the gradient; an exact anchor every K layers removes it."""
    stack, h, w = deep_tanh_stack(seed)
    truth = flat_grads(copy.deepcopy(stack).double(), h.double(), w.double(), reversible=False)
    plain = flat_grads(stack, h, w, reversible=False)
    drift = flat_grads(stack, h, w)
    k10 = flat_grads(stack, h, w, anchor_every=10)
    k1 = flat_grads(stack, h, w, anchor_every=1)
    assert rel(drift, plain) > 5e-5 and rel(drift, truth) > 3 * rel(plain, truth), \
        "without anchors the float32 drift is measurable (the premise)"
    assert rel(k10, plain) < 5e-6, "with an anchor every 10 layers the gradient equals plain autograd's"
    assert rel(k10, truth) < 1.1 * rel(plain, truth) + 1e-6, "... and is as close to float64 as plain autograd"
    assert rel(k1, plain) < 1e-6, "storing every layer's input (K=1) gives plain autograd's gradient"


def test_anchor_memory_is_one_activation_per_anchor():
    """K stores ceil(L/K) exact (N, D) inputs for backward and nothing else: less than storing all (K=1)."""
    stack, h, _ = deep_tanh_stack(0, L=50)
    h.requires_grad_()
    saved = {}
    for K in (None, 10, 1):
        stack.anchor_every = K
        with SavedTensorMeter(stack.parameters()) as m:
            stack(h)
        saved[K] = m.bytes
    nd = h.numel() * h.element_size()
    assert saved[10] - saved[None] == 5 * nd, f"K=10 at L=50 keeps 5 anchors of N*D floats ({saved})"
    assert saved[1] - saved[None] == 50 * nd, f"K=1 keeps every layer's input ({saved})"
    assert saved[10] < saved[1] / 5


def test_anchor_option_through_the_model_config():
    from revgnn import ModelConfig, build_model, count_parameters
    x, ei, ea, sp = graph()
    cfg = ModelConfig("rev", num_layers=6, hidden_channels=8, dropout=0.0)
    torch.manual_seed(0)
    plain = build_model(cfg)
    torch.manual_seed(0)
    anchored = build_model(cfg.replace(anchor_every=1))
    assert anchored.stack.anchor_every == 1 and plain.stack.anchor_every is None
    assert count_parameters(anchored) == count_parameters(plain), "anchors add no parameters"
    plain.stack.reversible = False
    ga = torch.autograd.grad(anchored(x, ei, ea, sp).pow(2).sum(), list(anchored.parameters()))
    gp = torch.autograd.grad(plain(x, ei, ea, sp).pow(2).sum(), list(plain.parameters()))
    for a, b in zip(ga, gp):
        assert rel(a, b) < 1e-6, "RevGNN with anchor_every=1 has plain autograd's gradients"


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "10"])
def test_bad_anchor_every_is_rejected(bad):
    with pytest.raises(ValueError, match="anchor_every must be None"):
        ReversibleStack([blocks(8, 2)], 2, anchor_every=bad)


def _backward_events(model, step):
    """``step()`` runs forward and backward; returns the backward's events in order: ``("run", l)`` when a group
    block of layer l is called with grad (its recomputation) and ``("grad", l)`` when a parameter of layer l has
    received its gradient in ``.grad`` (a post-accumulate hook, where DDP's reducer and optimisers in backward
    listen)."""
    events, handles = [], []
    owner = {}
    for l, layer in enumerate(model.stack.layers):
        for block in layer:
            handles.append(block.register_forward_hook(
                lambda m, a, o, l=l: events.append(("run", l)) if torch.is_grad_enabled() else None))
            for p in block.parameters():
                owner.setdefault(p, l)  # a tied parameter belongs to the first layer that uses it
    for p, l in owner.items():
        handles.append(p.register_post_accumulate_grad_hook(lambda p, l=l: events.append(("grad", l))))
    try:
        step()
    finally:
        for h in handles:
            h.remove()
    return events


def _loss_step(model, x, ei, ea, sp):
    return lambda: model(x, ei, ea, sp).pow(2).sum().backward()


@pytest.mark.parametrize("fused", [True, False])
def test_gradients_leave_each_layer_as_they_are_made(fused):
    """A layer's parameter gradients reach .grad before the layer below is recomputed: at most one layer's
    gradients are in flight, so the gradient transient does not grow with depth (issue 26)."""
    x, ei, ea, sp = graph()
    torch.manual_seed(0)
    L = 6
    model = RevGNN(8, 12, 3, L, 2, dropout=0.1, edge_dim=8, num_species=8, fused=fused)
    events = _backward_events(model, _loss_step(model, x, ei, ea, sp))
    per_layer = len(list(model.stack.layers[0].parameters()))
    for l in range(L):
        grads = [k for k, e in enumerate(events) if e == ("grad", l)]
        assert len(grads) == per_layer, f"every parameter of layer {l} gets its gradient once"
        if l > 0:
            below = events.index(("run", l - 1))
            assert max(grads) < below, f"layer {l}'s gradients are in .grad before layer {l - 1} is recomputed"


def test_weight_tied_gradients_are_summed_once_and_handed_over_once():
    """WT-RevGNN: the tied layer's parameters receive one gradient, summed over layers 2..L (autograd sums it, one
    copy of one layer's parameters), and the untied first layer's after it."""
    x, ei, ea, sp = graph()
    torch.manual_seed(0)
    model = WTRevGNN(8, 12, 3, 5, 2, dropout=0.1, edge_dim=8, num_species=8)
    events = _backward_events(model, _loss_step(model, x, ei, ea, sp))
    tied = [k for k, e in enumerate(events) if e == ("grad", 1)]
    first = [k for k, e in enumerate(events) if e == ("grad", 0)]
    assert len(tied) == len(list(model.stack.layers[1].parameters())), "each tied parameter's hook fires once"
    assert events.index(("run", 1)) < min(tied) and max(tied) < min(first), "... after its last use, layer 1"


def test_accumulate_path_hands_gradients_over_per_layer():
    """--accumulate (revgnn.training.distributed.train_epoch) runs the same backward: per-layer hand-over, and the
    accumulated step equals the mean of the parts' gradients (test_distributed checks the mean)."""
    from revgnn.training import distributed

    x, ei, ea, sp = graph()
    torch.manual_seed(0)
    L = 4
    model = RevGNN(8, 12, 3, L, 2, dropout=0.1, edge_dim=8, num_species=8)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    parts = [(k, None, None) for k in range(2)]

    def step():
        distributed.train_epoch(model, opt, parts, lambda b, m: model(x, ei, ea, sp).pow(2).mean(), 2, None, 0, 0)

    events = _backward_events(model, step)
    for l in range(1, L):
        starts = [k for k, e in enumerate(events) if e == ("run", l - 1)]
        grads = [k for k, e in enumerate(events) if e == ("grad", l)]
        assert len(grads) == 2 * len(list(model.stack.layers[l].parameters())), "once per part"
        assert grads[len(grads) // 2 - 1] < starts[0] and grads[-1] < starts[len(starts) // 2], \
            f"in each part's backward, layer {l}'s gradients leave before layer {l - 1} is recomputed"


def test_ddp_reducer_hooks_fire_during_the_reversible_backward(tmp_path):
    """torch's DistributedDataParallel (gloo, one rank): its reducer is told of each layer's gradients as they are
    made, so buckets are reduced before the first layer is recomputed (communication can overlap backward), and the
    gradients equal those of the model without DDP."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    x, ei, ea, sp = graph()
    torch.manual_seed(0)
    model = RevGNN(8, 12, 3, 6, 2, dropout=0.0, edge_dim=8, num_species=8)
    ref = copy.deepcopy(model)
    _loss_step(ref, x, ei, ea, sp)()
    runs, reduced = [], []

    def hook(state, bucket):
        reduced.append(len(runs))  # block recomputations so far
        fut = torch.futures.Future()
        fut.set_result(bucket.buffer())
        return fut

    handles = [b.register_forward_hook(lambda m, a, o: runs.append(1) if torch.is_grad_enabled() else None)
               for layer in model.stack.layers for b in layer]
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'init'}", rank=0, world_size=1)
    try:
        ddp = DistributedDataParallel(model, bucket_cap_mb=0.002)  # small buckets: several per backward
        ddp.register_comm_hook(None, hook)
        for _ in range(2):  # DDP orders its buckets by the first backward's arrival order and uses them from the second
            model.zero_grad(set_to_none=True)
            runs.clear(), reduced.clear()
            ddp(x, ei, ea, sp).pow(2).sum().backward()
    finally:
        dist.destroy_process_group()
        for h in handles:
            h.remove()
    assert len(reduced) > 2 and min(reduced) < len(runs) / 2, \
        f"DDP reduces buckets while the backward still recomputes layers ({reduced} of {len(runs)} block calls)"
    for (n, a), b in zip(model.named_parameters(), ref.parameters()):
        assert torch.equal(a.grad, b.grad), f"{n}: DDP on one rank gives the same gradient"
