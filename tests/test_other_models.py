"""RevGAT (ogbn-arxiv) and RevGNN with GraphSAGE blocks (ogbn-products): exact reversible gradients, the official
GAT's attention rule, and the fused SAGE aggregation (a sparse-matrix product, no (E, D) tensor)."""
import pytest
import torch
import torch.nn.functional as F
from torch_geometric.utils import softmax

from revgnn.measure.memory import SavedTensorMeter
from revgnn.nn.gat import BoTGATConv, attention_sum, degree_norms
from revgnn.nn.revgat import RevGAT
from revgnn.nn.revsage import ResSAGE, RevSAGE, csr_adjacency

N, E, IN, T = 50, 400, 12, 5


def graph(seed=0, sort=True):
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, N, (2, E), generator=g)
    if sort:
        ei = ei[:, ei[1].argsort(stable=True)]
    x = torch.randn(N, IN, generator=g, dtype=torch.float64)
    y = torch.randint(0, T, (N,), generator=g)
    return x, ei, y


def step(model, x, ei, y, seed=1):
    torch.manual_seed(seed)
    out = model(x, ei)
    F.cross_entropy(out, y).backward()
    return out.detach(), [p.grad.clone() for p in model.parameters()]


MODELS = {
    "revgat": lambda rev: RevGAT(IN, 8, T, num_layers=5, heads=2, dropout=0.3, input_dropout=0.2, edge_drop=0.3,
                                 reversible=rev),
    # the small-graph options; attention dropout is drawn inside the blocks, the reversible layers replay it
    "revgat-small-graph": lambda rev: RevGAT(IN, 8, T, num_layers=5, heads=2, dropout=0.3, edge_drop=0.3,
                                             attention_dropout=0.5, batch_norm=False, input_residual=False,
                                             add_self_loops=True, reversible=rev),
    "revsage": lambda rev: RevSAGE(IN, 16, T, num_layers=4, dropout=0.3, reversible=rev),
}


@pytest.mark.parametrize("name", MODELS)
def test_reversible_gradients_equal_plain_autograd(name):
    x, ei, y = graph()
    torch.manual_seed(0)
    rev = MODELS[name](True).double()
    plain = MODELS[name](False).double()
    plain.load_state_dict(rev.state_dict())
    out_r, g_r = step(rev, x, ei, y)
    out_p, g_p = step(plain, x, ei, y)
    torch.testing.assert_close(out_r, out_p, msg="the same logits with dropout, edge drop and BatchNorm")
    for a, b in zip(g_r, g_p):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12, msg=f"{name}: reversible gradients are exact")
    for a, b in zip(rev.buffers(), plain.buffers()):
        torch.testing.assert_close(a, b, msg="BatchNorm running statistics as the plain model's, once per step")


def test_revgat_groups_start_equal_and_eval_is_deterministic():
    torch.manual_seed(0)
    model = RevGAT(IN, 8, T, num_layers=4, heads=2).double()
    for layer in model.stack.layers:
        a, b = (c.conv.lin.weight for c in layer.convs)
        assert torch.equal(a, b), "a layer's groups start with the same weights, as the official RevGAT"
    x, ei, _ = graph()
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x, ei), model(x, ei), msg="no edge drop or dropout in eval")


def test_revgat_without_batch_norm_has_none_and_the_same_other_weights():
    torch.manual_seed(0)
    with_bn = RevGAT(IN, 8, T, num_layers=4, heads=2)
    without = RevGAT(IN, 8, T, num_layers=4, heads=2, batch_norm=False)
    bn = [m for m in with_bn.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert len(bn) == 2 * 2 + 1, "a BatchNorm in each group block of the 2 reversible layers and one before the last"
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in without.modules()), "batch_norm=False: none"
    assert {k for k in with_bn.state_dict() if ".norm." not in k and not k.startswith("norm.")} \
        == set(without.state_dict()), "the same weights but the BatchNorms'"


def test_revgat_self_loops_are_one_per_node_as_the_graph_with_them():
    """add_self_loops=True computes what the same model computes on the graph given one self-loop per node (the
    official code's graph); a self-loop already in the graph is not doubled."""
    from torch_geometric.utils import add_self_loops, remove_self_loops

    x, ei, _ = graph()
    looped, _ = add_self_loops(remove_self_loops(ei)[0], num_nodes=N)
    torch.manual_seed(0)
    model = RevGAT(IN, 8, T, num_layers=4, heads=2, add_self_loops=True).double().eval()
    plain = RevGAT(IN, 8, T, num_layers=4, heads=2).double().eval()
    plain.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(model(x, ei), plain(x, looped), msg="the model adds one self-loop per node")
        torch.testing.assert_close(model(x, looped), plain(x, looped), msg="existing self-loops are not doubled")
        assert not torch.allclose(plain(x, ei), plain(x, looped)), "self-loops change what a node attends to"


def dense_gat(conv: BoTGATConv, x, ei):
    """The official rule written out node by node (one head)."""
    h = conv.lin(x)
    out_norm, in_norm = degree_norms(ei, x.size(0), x.dtype)
    s = h * out_norm[:, None]
    out = torch.zeros_like(h)
    for i in range(x.size(0)):
        src = ei[0, ei[1] == i]
        if src.numel() == 0:
            continue
        a = torch.softmax(F.leaky_relu(s[src] @ conv.att_src[0, 0], 0.2), 0)
        out[i] = in_norm[i] * (a[:, None] * s[src]).sum(0)
    return out + conv.res(x)


def test_gat_attention_follows_the_official_rule():
    x, ei, _ = graph()
    torch.manual_seed(0)
    conv = BoTGATConv(IN, 6, heads=1).double()
    torch.testing.assert_close(conv(x, ei), dense_gat(conv, x, ei), msg="source-only attention, symmetric norm, "
                                                                         "linear residual")


def test_gat_attention_dropout_drops_coefficients_in_training_only():
    x, ei, _ = graph()
    torch.manual_seed(0)
    conv = BoTGATConv(IN, 6, heads=1, residual=False, symmetric_norm=False, attention_dropout=0.5).double()
    plain = BoTGATConv(IN, 6, heads=1, residual=False, symmetric_norm=False).double()
    plain.load_state_dict(conv.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(conv.eval()(x, ei), plain.eval()(x, ei), msg="no attention dropout in eval")
        conv.train()
        torch.manual_seed(1)
        dropped = conv(x, ei)
    torch.manual_seed(1)
    alpha = F.dropout(torch.ones(E, 1, dtype=torch.float64), 0.5)          # the same draw: one per edge and head
    h = plain.lin(x)
    src, dst = ei
    a = softmax(F.leaky_relu((h * plain.att_src[0]).sum(-1, keepdim=True)[src], 0.2), dst, num_nodes=N) * alpha
    by_hand = torch.zeros(N, 6, dtype=torch.float64).index_add_(0, dst, a * h[src])
    torch.testing.assert_close(dropped, by_hand, msg="training drops attention coefficients (E, H) after the softmax, "
                                                    "rescaled by 1 / (1 - p), as GAT")


def test_gat_edge_drop_keeps_the_given_edges_and_the_full_degrees():
    x, ei, _ = graph()
    torch.manual_seed(0)
    conv = BoTGATConv(IN, 6, heads=1, edge_drop=0.5).double().train()
    keep = torch.arange(0, E, 2)
    norms = degree_norms(ei, N, x.dtype)
    kept = ei[:, keep]
    by_hand = BoTGATConv(IN, 6, heads=1).double()
    by_hand.load_state_dict(conv.state_dict())
    torch.testing.assert_close(conv(x, ei, keep, norms), by_hand(x, kept, None, norms),
                               msg="edge drop is the conv on the kept edges, normalised by the whole graph's degrees")


def test_fused_sage_equals_pyg_gather_scatter():
    x, ei, y = graph()
    torch.manual_seed(0)
    fused = RevSAGE(IN, 16, T, num_layers=3, dropout=0.3).double()
    ref = RevSAGE(IN, 16, T, num_layers=3, dropout=0.3, fused=False).double()
    ref.load_state_dict(fused.state_dict())
    out_f, g_f = step(fused, x, ei, y)
    out_r, g_r = step(ref, x, ei, y)
    torch.testing.assert_close(out_f, out_r, msg="the CSR product equals PyG's mean aggregation")
    for a, b in zip(g_f, g_r):
        torch.testing.assert_close(a, b, msg="and so do the gradients")


def test_csr_adjacency_sorts_an_unsorted_graph():
    x, ei, _ = graph(sort=False)
    perm = torch.randperm(E)
    a = csr_adjacency(ei, N, x.dtype).to_dense()
    b = csr_adjacency(ei[:, perm], N, x.dtype).to_dense()
    dense = torch.zeros(N, N, dtype=x.dtype).index_put_((ei[1], ei[0]), torch.ones(E, dtype=x.dtype), accumulate=True)
    assert torch.equal(a, dense) and torch.equal(b, dense), "row i counts the edges j -> i, in any edge order"


def test_fused_revsage_saves_no_edge_sized_tensor_and_nothing_per_layer():
    g = torch.Generator().manual_seed(0)
    n, e, D = 100, 20_000, 32
    ei = torch.randint(0, n, (2, e), generator=g)
    ei = ei[:, ei[1].argsort()]
    x = torch.randn(n, IN, generator=g)
    saved = {}
    for L in (2, 6):
        model = RevSAGE(IN, D, T, num_layers=L, dropout=0.2)
        with SavedTensorMeter(model.parameters()) as meter:
            model(x, ei).sum()
        saved[L] = meter.bytes
    assert saved[6] == saved[2], "the reversible stack keeps nothing per layer"
    assert saved[2] < e * (D // 2) * 4, "no (E, D/C) message tensor is kept: the CSR product aggregates"
    res = {}
    for L in (2, 6):
        model = ResSAGE(IN, D, T, num_layers=L)
        with SavedTensorMeter(model.parameters()) as meter:
            model(x, ei).sum()
        res[L] = meter.bytes
    assert res[6] - res[2] >= 4 * n * D * 4, "the residual baseline keeps at least one (N, D) tensor per layer"


def test_node_feature_models_refuse_edge_features():
    x, ei, _ = graph()
    with pytest.raises(ValueError, match="no edge features"):
        RevSAGE(IN, 16, T, num_layers=2)(x.float(), ei, torch.ones(E, 3))
    with pytest.raises(ValueError, match="num_layers >= 3"):
        RevGAT(IN, 8, T, num_layers=2)


def test_fused_attention_sum_equals_gather_scatter_and_keeps_no_message_tensor():
    x, ei, y = graph()
    torch.manual_seed(0)
    fused = RevGAT(IN, 8, T, num_layers=4, heads=2, edge_drop=0.3).double()
    ref = RevGAT(IN, 8, T, num_layers=4, heads=2, edge_drop=0.3, fused=False).double()
    ref.load_state_dict(fused.state_dict())
    out_f, g_f = step(fused, x, ei, y)
    out_r, g_r = step(ref, x, ei, y)
    torch.testing.assert_close(out_f, out_r, msg="the chunked sum equals PyG's gather and scatter")
    for a, b in zip(g_f, g_r):
        torch.testing.assert_close(a, b, msg="and so do the gradients")
    alpha = torch.rand(E, 3, dtype=torch.float64, requires_grad=True)
    s = torch.randn(N, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: attention_sum(a, b, ei[0], ei[1], N, chunk_size=37), (alpha, s)), \
        "exact gradients across chunk boundaries"
    with SavedTensorMeter() as meter:
        attention_sum(alpha, s, ei[0], ei[1], N, chunk_size=50).sum()
    assert meter.bytes < E * 3 * 4 * 8, "no (E, H, F) message tensor is kept for backward"
