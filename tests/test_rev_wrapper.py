"""The reversible wrapper for any block (revgnn.nn.rev_wrapper): exact gradients for SAGE, GAT and GCN blocks with
dropout inside, against plain autograd and against PyG's GroupAddRev; two block calls per step instead of three;
BatchNorm statistics updated once per step; independent group weights; O(ND) memory whatever the depth."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import GATConv, GCNConv, SAGEConv
from torch_geometric.nn import GroupAddRev as PygGroupAddRev

from revgnn.measure.memory import SavedTensorMeter
from revgnn.nn.rev_wrapper import GroupAddRev, ReversibleSequential

N, E, D, C = 40, 240, 16, 2
CONVS = {
    "sage": lambda c: SAGEConv(c, c),
    "gat": lambda c: GATConv(c, c // 2, heads=2),
    "gcn": lambda c: GCNConv(c, c),
}


class Block(nn.Module):
    """LayerNorm -> ReLU -> dropout (an explicit mask when given, else F.dropout drawn inside) -> conv."""

    def __init__(self, conv: nn.Module, p: float = 0.0, batch_norm: bool = False):
        super().__init__()
        c = conv.in_channels
        self.norm = nn.BatchNorm1d(c) if batch_norm else nn.LayerNorm(c)
        self.conv, self.p = conv, p

    def reset_parameters(self):
        self.norm.reset_parameters()
        self.conv.reset_parameters()

    def forward(self, x, edge_index, mask=None):
        h = F.relu(self.norm(x))
        h = h * mask if mask is not None else F.dropout(h, self.p, self.training)
        return self.conv(h, edge_index)


def graph(seed=0):
    g = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, N, (2, E), generator=g)
    x = torch.randn(N, D, generator=g, dtype=torch.float64)
    return x, edge_index


def stack(kind, layers=3, p=0.3, batch_norm=False, disable=False, seed=0):
    torch.manual_seed(seed)
    return ReversibleSequential([GroupAddRev(Block(CONVS[kind](D // C), p, batch_norm), num_groups=C,
                                             disable=disable) for _ in range(layers)]).double()


def grads(model, x, *args, per_group=(), seed=1):
    x = x.clone().requires_grad_()
    torch.manual_seed(seed)
    out = model(x, *args, per_group=per_group)
    out.pow(2).sum().backward()
    return out.detach(), [x.grad, *(p.grad for p in model.parameters())]


def assert_close(a, b, what):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        torch.testing.assert_close(u, v, rtol=1e-10, atol=1e-12, msg=what)


@pytest.mark.parametrize("kind", CONVS)
def test_gradients_equal_plain_autograd_with_dropout_inside(kind):
    x, ei = graph()
    rev = stack(kind)
    plain = stack(kind, disable=True)
    plain.load_state_dict(rev.state_dict())
    out_r, g_r = grads(rev, x, ei)
    out_p, g_p = grads(plain, x, ei)
    assert_close([out_r], [out_p], "the reversible forward equals the plain one")
    assert_close(g_r, g_p, f"{kind}: gradients with F.dropout inside the block equal plain autograd's (RNG replay)")
    assert all(g.abs().sum() > 0 for g in g_r), "every parameter gets a gradient"


def pyg_layers(kind, ours: ReversibleSequential):
    layers = nn.ModuleList()
    for layer in ours.layers:
        pyg = PygGroupAddRev(copy.deepcopy(layer.convs), num_groups=C)
        pyg.load_state_dict(layer.state_dict())  # the same keys: convs.<i>.*
        layers.append(pyg)
    return layers.double()


@pytest.mark.parametrize("kind", CONVS)
def test_gradients_equal_pyg_group_add_rev(kind):
    x, ei = graph()
    ours = stack(kind)
    pyg = pyg_layers(kind, ours)
    mask = torch.empty(N, D, dtype=torch.float64).bernoulli_(0.7) / 0.7   # dropout inside the block, as a mask
    out_o, g_o = grads(ours, x, ei, per_group=(mask,))
    xp = x.clone().requires_grad_()
    h = xp.clone()  # PyG frees the storage of its input: give it a copy
    for layer in pyg:
        h = layer(h, ei, mask)  # PyG splits the mask by its size
    out_p = h.detach().clone()  # PyG frees its output's storage in backward: reading h after it crashes
    h.pow(2).sum().backward()
    g_p = [xp.grad, *(p.grad for p in pyg.parameters())]
    assert_close([out_o], [out_p], "our forward equals PyG's GroupAddRev with the same weights")
    assert_close(g_o, g_p, f"{kind}: gradients equal PyG's GroupAddRev given the same weights")


@pytest.mark.parametrize("kind", ["sage", "gat"])
def test_pyg_group_add_rev_gets_random_blocks_wrong_and_we_do_not(kind):
    x, ei = graph()
    plain = stack(kind, layers=2, disable=True)
    ours = stack(kind, layers=2)
    ours.load_state_dict(plain.state_dict())
    _, g_plain = grads(plain, x, ei)
    _, g_ours = grads(ours, x, ei)
    assert_close(g_ours, g_plain, "with F.dropout inside, our gradients are plain autograd's")
    pyg = pyg_layers(kind, ours)
    xp = x.clone().requires_grad_()
    torch.manual_seed(1)
    h = xp.clone()
    for layer in pyg:
        h = layer(h, ei)
    h.pow(2).sum().backward()
    err = max(float((a - b).abs().max() / b.abs().max()) for a, b in
              zip([xp.grad, *(p.grad for p in pyg.parameters())], g_plain))
    assert err > 1e-3, "PyG's recomputation redraws the dropout, so its gradients differ from the true ones"


class Counting(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv, self.calls = SAGEConv(c, c), 0

    def forward(self, x, edge_index):
        self.calls += 1
        return self.conv(x, edge_index)


def test_each_block_runs_twice_per_step_not_three_times():
    x, ei = graph()
    torch.manual_seed(0)
    ours = GroupAddRev(Counting(D // C), num_groups=C).double()
    pyg = PygGroupAddRev(copy.deepcopy(ours.convs), num_groups=C).double()
    ours(x.clone().requires_grad_(), ei).sum().backward()
    pyg(x.clone().requires_grad_(), ei).sum().backward()
    assert [b.calls for b in ours.convs] == [2, 2], "forward, then one call in backward (inverse and gradient)"
    assert [b.calls for b in pyg.convs] == [3, 3], "PyG: forward, inverse, recompute"


def test_batch_norm_statistics_once_per_step_and_equal_to_plain():
    x, ei = graph()
    rev = stack("sage", batch_norm=True, p=0.0)
    plain = stack("sage", batch_norm=True, p=0.0, disable=True)
    plain.load_state_dict(rev.state_dict())
    _, g_r = grads(rev, x, ei)
    _, g_p = grads(plain, x, ei)
    assert_close(g_r, g_p, "gradients with BatchNorm inside equal plain autograd's")
    for a, b in zip(rev.modules(), plain.modules()):
        if isinstance(a, nn.BatchNorm1d):
            assert int(a.num_batches_tracked) == 1, "one update per training step (the backward call adds none)"
            torch.testing.assert_close(a.running_mean, b.running_mean, msg="the running mean of the plain model")
            torch.testing.assert_close(a.running_var, b.running_var, msg="the running variance of the plain model")
    rev.eval()
    plain.eval()
    with torch.no_grad():
        assert_close([rev(x, ei)], [plain(x, ei)], "eval mode uses the running statistics")


def test_batch_norm_momentum_none_is_a_cumulative_average_as_plain():
    x, ei = graph()
    models = [stack("sage", layers=2, batch_norm=True, p=0.0, disable=d) for d in (False, True)]
    models[1].load_state_dict(models[0].state_dict())
    for m in models:
        for bn in m.modules():
            if isinstance(bn, nn.BatchNorm1d):
                bn.momentum = None
        for step in range(3):
            m(x * (step + 1), ei).sum().backward()
    for a, b in zip(models[0].modules(), models[1].modules()):
        if isinstance(a, nn.BatchNorm1d):
            assert int(a.num_batches_tracked) == 3, "three steps, three updates"
            torch.testing.assert_close(a.running_var, b.running_var, msg="the cumulative average of the plain model")


def test_group_copies_are_independent_unless_asked_to_copy():
    torch.manual_seed(0)
    fresh = GroupAddRev(SAGEConv(8, 8), num_groups=2)
    same = GroupAddRev(SAGEConv(8, 8), num_groups=2, copy_weights=True)
    w = [c.lin_l.weight for c in fresh.convs]
    assert not torch.equal(w[0], w[1]), "each group copy is re-initialised by default"
    w = [c.lin_l.weight for c in same.convs]
    assert torch.equal(w[0], w[1]) and w[0].data_ptr() != w[1].data_ptr(), "copy_weights: equal values, own tensors"


def test_inverse_rebuilds_the_input_and_the_input_is_left_alone():
    x, ei = graph()
    model = stack("gat").train()
    y = model(x, ei)
    torch.testing.assert_close(model.inverse(y, ei), x, msg="inverse(forward(x)) == x, dropout replayed")
    xr = x.clone().requires_grad_()
    out = model(xr, ei)
    out.sum().backward()
    torch.testing.assert_close(xr.detach(), x, msg="the caller's input is intact (PyG frees its storage)")
    assert out.sum().isfinite(), "the output stays readable after backward"


def test_memory_does_not_grow_with_depth():
    x, ei = graph()
    saved = {}
    for layers in (2, 8):
        model = stack("sage", layers=layers)
        with SavedTensorMeter(model.parameters()) as meter:
            model(x.clone().requires_grad_(), ei).sum()
        saved[layers] = meter.bytes
    assert saved[8] == saved[2], "a stack keeps the same tensors for backward at 2 and 8 layers: O(ND)"
    plain = stack("sage", layers=8, disable=True)
    with SavedTensorMeter(plain.parameters()) as meter:
        plain(x.clone().requires_grad_(), ei).sum()
    assert meter.bytes > 4 * saved[8], "the disabled (plain) stack keeps every layer's activations"


def test_bad_arguments_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="num_groups is required"):
        GroupAddRev(SAGEConv(8, 8))
    with pytest.raises(ValueError, match="split_dim"):
        GroupAddRev(SAGEConv(8, 8), split_dim=0, num_groups=2)
    with pytest.raises(ValueError, match=">= 2"):
        GroupAddRev(SAGEConv(8, 8), num_groups=1)

    class NoReset(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(8))

        def forward(self, x, edge_index):
            return x * self.w

    with pytest.raises(ValueError, match="copy_weights=True"):
        GroupAddRev(NoReset(), num_groups=2)
    assert GroupAddRev(NoReset(), num_groups=2, copy_weights=True).num_groups == 2
    a = GroupAddRev(SAGEConv(8, 8), num_groups=2)
    b = GroupAddRev(SAGEConv(8, 8), num_groups=2, disable=True)
    with pytest.raises(ValueError, match="differ in disable"):
        ReversibleSequential([a, b])
