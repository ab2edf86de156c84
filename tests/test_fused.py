"""Fused, edge-chunked GENConv (revgnn.nn.fused): equal to PyG's GENConv, no edge-sized tensor, same parameters."""
import json

import genconv_reference as ref
import pytest
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile
from torch_geometric.nn import GENConv

from revgnn import ModelConfig, build_model, count_parameters, get_preset
from revgnn.measure.memory import synthetic_graph
from revgnn.nn import native
from revgnn.nn.fused import default_chunk_size, gen_aggregate, sort_graph
from revgnn.nn.layers import GENBlock

AGGRS = ["max", "softmax", "mean", "add"]
KERNELS = ["torch", pytest.param("native", marks=pytest.mark.skipif(not native.available(),
                                                                      reason="native kernel not built"))]


def rel(a, b):
    return float((a - b).detach().norm() / b.detach().norm().clamp_min(1e-300))


def edge_case_graph(dtype, N=14, E=80, k=3, c=4, seed=0):
    """Random graph plus: nodes N-2, N-1 without in-edges, self-loops, a duplicated edge, and exact ties (two
    sources with equal states sending equal edge features to the same target). The tie edges' features are
    TIE_SCALE e_0, so their messages are equal in any arithmetic (tests/genconv_reference.py)."""
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, N - 2, (2, E), generator=g)
    u = torch.randn(E, k, generator=g, dtype=dtype)
    x = torch.randn(N, c, generator=g, dtype=dtype)
    x[1] = x[0].abs() + 0.5                               # sources 0 and 1: equal, positive states
    x[0] = x[1]
    ties = torch.tensor([[0, 1, 3, 3, 5], [2, 2, 3, 3, 5]])   # 0->2 and 1->2 tie; 3->3 twice; self-loop 5->5
    ei = torch.cat([ei, ties], 1)
    u_tie = torch.zeros(5, k, dtype=dtype)
    u_tie[:, 0] = ref.TIE_SCALE
    u = torch.cat([u, u_tie], 0)
    return x, ei, u


def pyg_conv(aggr, c, k, dtype, t=1.3):
    torch.manual_seed(1)
    conv = GENConv(c, c, aggr=aggr, t=t, learn_t=aggr == "softmax", norm="layer", bias=True, edge_dim=k).to(dtype)
    return conv


def grads_of(out, wrt, w):
    return torch.autograd.grad((out * w).sum(), wrt, retain_graph=True)


def conv_case(aggr, dtype, seed=0):
    """The edge-case graph (x requiring grad), PyG's reference GENConv and its temperature (1.0 unless softmax)."""
    x, ei, u = edge_case_graph(dtype, seed=seed)
    conv = pyg_conv(aggr, x.size(1), u.size(1), dtype)
    x.requires_grad_()
    return x, ei, u, conv, conv.aggr_module.t if aggr == "softmax" else 1.0


def stable_weights(x, ei, u, conv, aggr, dtype, seed=0):
    """Random loss weights, 0 on the entries whose gradient a rounding could move by a subgradient jump (near ties
    of max other than the built exact ties, ReLU's kink): see tests/genconv_reference.py."""
    stable = ref.stable_entries(x, ei, u, conv.lin_edge.weight, conv.lin_edge.bias, aggr, conv.eps, dtype)
    return torch.randn(x.shape, dtype=dtype, generator=torch.Generator().manual_seed(seed)) * stable


@pytest.mark.parametrize("aggr", AGGRS)
@pytest.mark.parametrize("chunk", [1, 7, 10_000])
@pytest.mark.parametrize("kernel", KERNELS)
def test_float64_equals_pyg_genconv(kernel, aggr, chunk):
    x, ei, u, conv, t = conv_case(aggr, torch.float64)
    u.requires_grad_()
    ref_out = conv.propagate(ei, x=(x, x), edge_attr=u)   # PyG: AGG(ReLU(x_j + lin_edge(u)) + eps)
    out = gen_aggregate(x, ei, u, conv.lin_edge.weight, conv.lin_edge.bias, aggr, t, conv.eps, chunk,
                        kernel=kernel)
    assert rel(out, ref_out) < 1e-10, "fused aggregation equals PyG's GENConv"
    assert torch.all(out[-2:] == 0), "nodes without in-edges aggregate to 0"
    wrt = [x, u, conv.lin_edge.weight, conv.lin_edge.bias] + ([t] if aggr == "softmax" else [])
    w = stable_weights(x, ei, u, conv, aggr, torch.float64)
    for name, a, b in zip(["x", "u", "W", "b", "t"], grads_of(out, wrt, w), grads_of(ref_out, wrt, w)):
        assert rel(a, b) < 1e-10, f"gradient to {name} equals PyG's ({aggr}, chunk {chunk})"


@pytest.mark.parametrize("aggr", AGGRS)
@pytest.mark.parametrize("kernel", KERNELS)
def test_float32_equals_the_reference(kernel, aggr):
    """float32 outputs and gradients equal the float64 reference on the same inputs within the bound set by the
    computation's conditioning (tests/genconv_reference.py), with chunks of 9 edges."""
    x, ei, u, conv, t = conv_case(aggr, torch.float32, seed=3)
    A, a = conv.lin_edge.weight, conv.lin_edge.bias
    w = stable_weights(x, ei, u, conv, aggr, torch.float32)
    out = gen_aggregate(x, ei, u, A, a, aggr, t, conv.eps, 9, kernel)
    wrt = [x, A, a] + ([t] if aggr == "softmax" else [])
    got = [out.detach(), *grads_of(out, wrt, w)]
    want = ref.reference(x, ei, u, A, a, aggr, t, conv.eps, w)
    tol = ref.tolerance(x, ei, u, A, a, aggr, t, conv.eps, w, torch.float32)
    want, tol = [want[0], *want[1:2], *want[3:]], [tol[0], *tol[1:2], *tol[3:]]      # no gradient to u here
    for name, v, r, bound in zip(["output", "x", "W", "b", "t"], got, want, tol):
        assert float((v.double() - r).norm()) <= bound, f"float32 {name} equals the float64 reference ({aggr})"


@pytest.mark.parametrize("kernel", KERNELS)
def test_max_splits_tied_gradients_like_pyg(kernel):
    """A positive exact tie (duplicate edge 3->3, equal sources 0, 1 -> 2): PyG's scatter-max backward splits the
    gradient evenly among the tied edges; so does the fused path (a single-winner rule would give 1 and 0)."""
    x, ei, u = edge_case_graph(torch.float64)
    x.requires_grad_()
    conv = pyg_conv("max", x.size(1), u.size(1), torch.float64)
    with torch.no_grad():                                  # make every tie edge the maximum of its target
        conv.lin_edge.weight.abs_()
        conv.lin_edge.weight[:, 0] += 1.0
        conv.lin_edge.bias.fill_(100.0)
    out = gen_aggregate(x, ei, u, conv.lin_edge.weight, conv.lin_edge.bias, "max", 1.0, conv.eps, 3, kernel)
    g = torch.zeros_like(out)
    g[2] = 1.0                                             # gradient of node 2's maximum only
    gx = torch.autograd.grad(out, x, g)[0]
    gx_ref = torch.autograd.grad(conv.propagate(ei, x=(x, x), edge_attr=u), x, g)[0]
    assert torch.allclose(gx, gx_ref, rtol=0, atol=1e-12), "tie gradients equal PyG's"
    assert torch.allclose(gx[0], torch.full_like(gx[0], 0.5)) and torch.allclose(gx[1], gx[0]), \
        "the tied maximum's gradient is split evenly between the two winning edges"


@pytest.mark.parametrize("aggr", AGGRS)
def test_result_does_not_depend_on_chunk_size(aggr):
    """Chunks of other sizes change how the matrix product of the edge term is blocked, not the result (near ties,
    whose winner that rounding may pick, have weight 0 in the loss)."""
    x, ei, u, conv, t = conv_case(aggr, torch.float64, seed=5)
    w = stable_weights(x, ei, u, conv, aggr, torch.float64)
    res = []
    for chunk in (1, 2, 13, ei.size(1), 10 * ei.size(1)):
        out = gen_aggregate(x, ei, u, conv.lin_edge.weight, conv.lin_edge.bias, aggr, t, conv.eps, chunk,
                            kernel="torch")
        res.append([out, *torch.autograd.grad((out * w).sum(), [x, conv.lin_edge.weight])])
    for r in res[1:]:
        for a, b in zip(r, res[0]):
            assert rel(a, b) < 1e-12, "output and gradients do not depend on the chunk size"


@pytest.mark.parametrize("kernel", KERNELS)
def test_int32_edge_index_and_no_edge_features(kernel):
    x, ei, _ = edge_case_graph(torch.float64)
    x.requires_grad_()
    conv = GENConv(4, 4, aggr="max", norm="layer", bias=True).double()
    ref = conv.propagate(ei, x=(x, x), edge_attr=None)
    out = gen_aggregate(x, ei.to(torch.int32), None, aggr="max", eps=conv.eps, chunk_size=11, kernel=kernel)
    assert rel(out, ref) < 1e-10
    assert rel(torch.autograd.grad(out.sum(), x)[0], torch.autograd.grad(ref.sum(), x)[0]) < 1e-10


def test_default_chunk_size_follows_the_budget():
    small, big = default_chunk_size(40, 8, budget_bytes=2**20), default_chunk_size(40, 8, budget_bytes=2**26)
    assert 1 <= small < big and big * 8 * 40 * 4 <= 2**26, "the chunk's temporaries fit the budget"


@pytest.mark.parametrize("learn_t,aggr,edge_dim", [(False, "max", 8), (True, "softmax", 4), (False, "mean", 8)])
def test_block_fused_equals_reference_block(learn_t, aggr, edge_dim):
    """GENBlock with the model-level edge encoder folded (u, W_0, b_0) equals PyG's path on W_0 u + b_0."""
    x, ei, _ = edge_case_graph(torch.float64, c=4)
    u = torch.randn(ei.size(1), 8, dtype=torch.float64)
    torch.manual_seed(0)
    block = GENBlock(4, edge_dim, aggr, learn_t).double()
    enc = torch.nn.Linear(8, edge_dim).double()
    res = []
    for fused in (True, False):
        block.fused = fused
        out = block(x, ei, u, enc.weight, enc.bias)
        res.append([out, *torch.autograd.grad(out.pow(2).sum(), [*block.parameters(), *enc.parameters()])])
    for a, b in zip(*res):
        assert rel(a, b) < 1e-10, "fused block (folded encoders) equals the reference block"


MODELS = [("rev", {}), ("wt-rev", {}), ("res", {}), ("wt-res", {}), ("res", {"checkpoint_grads": True}),
          ("rev", {"aggr": "softmax"}), ("deq", {"unrolled_iters": 2}), ("deq", {"max_iter": 4, "tol": 0.0})]


@pytest.mark.filterwarnings("ignore:DEQ .* did not converge")
@pytest.mark.parametrize("kind,kw", MODELS)
def test_models_fused_equal_reference_and_share_state_dict(kind, kw):
    data = synthetic_graph(90, 700, seed=1)
    cfg = ModelConfig(model=kind, num_layers=3, hidden_channels=8, dropout=0.1, **kw)
    torch.manual_seed(0)
    fused = build_model(cfg).double()
    ref = build_model(cfg.replace(fused=False)).double()
    assert fused.fused and not ref.fused
    ref.load_state_dict(fused.state_dict())                # same names and shapes: strict load
    assert count_parameters(fused) == count_parameters(ref)
    res = []
    for m in (fused, ref):
        torch.manual_seed(7)                               # same shared dropout mask
        out = m(data.x.double(), data.edge_index, data.edge_attr.double(), data.species)
        loss = F.binary_cross_entropy_with_logits(out, data.y.double())
        res.append([out, *torch.autograd.grad(loss, list(m.parameters()))])
    tol = 1e-8 if kind == "deq" and "max_iter" in kw else 1e-10
    for a, b in zip(*res):
        assert rel(a, b) < tol, f"fused {kind} equals the PyG reference (outputs and every parameter gradient)"


def test_parameter_counts_unchanged():
    for name, count in (("revgnn-64", 1_457_080), ("resgnn-64", 2_374_568)):
        cfg = get_preset(name)
        assert cfg.fused, "presets run fused by default"
        assert count_parameters(build_model(cfg)) == count_parameters(build_model(cfg.replace(fused=False))) == count


def _largest_allocation(model, data, chunk):
    for m in model.modules():
        if isinstance(m, GENBlock):
            m.chunk_size = chunk
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = model(data.x, data.edge_index, data.edge_attr, data.species)
        F.binary_cross_entropy_with_logits(out, data.y.float()).backward()
    return max(e.nbytes() for e in prof.profiler.kineto_results.events() if e.name() == "[memory]")


@pytest.mark.parametrize("kind", ["rev", "res"])
def test_no_edge_sized_hidden_tensor_in_a_fused_step(kind):
    """On a graph sorted by destination at load time, with chunks of 64 edges no allocation of a training step
    reaches one (E, c) float tensor; the reference path allocates (E, D) edge embeddings. (An unsorted graph adds
    one sorted copy of its edge features, once per graph.)"""
    data = sort_graph(synthetic_graph(80, 6_000, seed=2))
    cfg = ModelConfig(model=kind, num_layers=2, hidden_channels=8, dropout=0.1)
    E, c = data.edge_index.size(1), 4
    torch.manual_seed(0)
    fused = build_model(cfg)
    assert _largest_allocation(fused, data, 64) < E * c * 4, "no (E, c) tensor in the fused step"
    ref = build_model(cfg.replace(fused=False))
    assert _largest_allocation(ref, data, 64) >= E * 8 * 4, "the reference path does build (E, D) tensors"


@pytest.mark.parametrize("kernel", KERNELS)
def test_max_tie_at_eps_with_tiny_positive_messages(kernel):
    """z > 0 so small that ReLU(z) + eps == eps: PyG's gradient splits among all edges at eps and ReLU keeps the
    positive ones; the fused path sees the hidden tie and takes its exact edge pass."""
    x = torch.tensor([[1e-300], [-1.0], [2e-300], [0.0]], dtype=torch.float64, requires_grad=True)
    ei = torch.tensor([[0, 1, 2, 3], [3, 3, 3, 0]])
    conv = GENConv(1, 1, aggr="max", norm="layer", bias=True).double()
    ref = conv.propagate(ei, x=(x, x), edge_attr=None)
    out = gen_aggregate(x, ei, None, aggr="max", eps=conv.eps, chunk_size=2, kernel=kernel)
    assert torch.equal(out, ref) and out[3, 0] == conv.eps
    g_ref, g = (torch.autograd.grad(o.sum(), x)[0] for o in (ref, out))
    assert torch.equal(g, g_ref) and g[0, 0] == g[2, 0] == 1 / 3, "each positive tied edge gets g / 3"


@pytest.mark.parametrize("dataset,kwargs", [("synthetic-proteins", {"num_nodes": 300, "num_edges": 3000}),
                                            ("ppi", {})])
def test_whole_graph_training_and_evaluation_on_any_dataset(dataset, kwargs, monkeypatch):
    """--train-parts 1 --eval-parts 1: every optimizer step and every evaluation sees the whole graph."""
    import revgnn.training.protocol as train
    from revgnn import TrainConfig, fit, load_dataset

    ds = load_dataset(dataset, **kwargs)
    seen = []
    original = train.partition_subgraphs

    def spy(data, num_parts, generator=None):
        for batch in original(data, num_parts, generator):
            seen.append((num_parts, batch.num_nodes, batch.edge_index.size(1)))
            yield batch

    monkeypatch.setattr(train, "partition_subgraphs", spy)
    cfg = TrainConfig(dataset=dataset, dataset_kwargs=kwargs, epochs=1, lr=0.01, train_parts=1, eval_parts=1,
                      progress=False)
    run = fit(ModelConfig("rev", num_layers=2, hidden_channels=16, dropout=0.1), cfg, dataset=ds)["runs"][0]
    assert run["train_parts"] == run["eval_parts"] == 1
    whole = (1, ds.data.num_nodes, ds.data.edge_index.size(1))
    assert seen and all(s == whole for s in seen), "full-batch training and full-graph evaluation"
    assert all(v == v for v in (run["best"]["valid"], run["best"]["test"])), "finite metrics"


def test_memory_cli_fused_switch(capsys):
    from revgnn.cli import main as cli_main

    peaks = {}
    for flag in ("--fused", "--no-fused"):
        rc = cli_main(["memory", "--model", "rev", "--layers", "2", "--channels", "16", "--nodes", "100",
                       "--edges", "8000", "--repeats", "1", "--warmup", "0", "--json", flag])
        assert rc == 0
        rec = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert rec["model"]["fused"] == (flag == "--fused")
        peaks[flag] = rec["peak_bytes"]
    assert peaks["--fused"] < 0.7 * peaks["--no-fused"], f"the fused step needs less memory: {peaks}"


def test_shape_floor_equals_the_floor_of_a_generated_graph():
    from revgnn import ModelConfig, build_model, count_parameters
    from revgnn.measure.memory import synthetic_graph
    from revgnn.training.budget import floor_bytes, shape_floor_bytes

    data = synthetic_graph(300, 3_000, seed=0)
    model = build_model(ModelConfig("rev", 2, 16))
    assert shape_floor_bytes(300, 3_000, 16, count_parameters(model)) == floor_bytes(data, model, 16)


@pytest.mark.parametrize("seed", [2, 3])
@pytest.mark.parametrize("t,tol", [(1.0, 1e-5), (10.0, 1e-5), (100.0, 1e-4), (1000.0, 1e-3)])
@pytest.mark.parametrize("kernel", KERNELS)
def test_softmax_temperature_gradient_has_no_cancellation(kernel, t, tol, seed):
    """dL/dt = sum g p (m - out) m loses its digits by cancellation at large t (wrong sign at t = 1e3); the
    fused path sums g p (m - out)^2 (equal, since sum_e p_e (m_e - out) = 0). float32 against float64 on the same
    float32 inputs (the rounding of the inputs alone moves the true t-gradient; PyG's float32 errs by 1e-4 at t = 10
    and by 2-50x at t = 1e3)."""
    x64, ei, u64 = edge_case_graph(torch.float64, N=40, E=600, k=3, c=4, seed=seed)
    x64, u64 = x64.float().double(), u64.float().double()
    conv = pyg_conv("softmax", 4, 3, torch.float64, t=t)
    with torch.no_grad():
        for q in conv.parameters():
            q.copy_(q.float().double())
    w = torch.randn(40, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    t64 = conv.aggr_module.t
    ref = conv.propagate(ei, x=(x64, x64), edge_attr=u64)
    gt_ref = torch.autograd.grad((ref * w).sum(), t64)[0]
    t32 = t64.detach().float().requires_grad_()
    out = gen_aggregate(x64.float(), ei, u64.float(), conv.lin_edge.weight.float(), conv.lin_edge.bias.float(),
                        "softmax", t32, conv.eps, 97, kernel)
    gt = torch.autograd.grad((out * w.float()).sum(), t32)[0]
    assert torch.sign(gt) == torch.sign(gt_ref), f"the t-gradient has the right sign at t = {t}"
    assert rel(gt.double(), gt_ref) < tol, f"float32 t-gradient within {tol} of float64 at t = {t}"


@pytest.mark.parametrize("aggr", AGGRS)
@pytest.mark.parametrize("kernel", KERNELS)
def test_graph_without_edges(kernel, aggr):
    """E = 0: every node aggregates to 0 and every gradient is 0, forward and backward, as PyG."""
    x = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    ei = torch.zeros(2, 0, dtype=torch.long)
    u = torch.randn(0, 3, dtype=torch.float64, requires_grad=True)
    conv = pyg_conv(aggr, 4, 3, torch.float64)
    t = conv.aggr_module.t if aggr == "softmax" else 1.0
    out = gen_aggregate(x, ei, u, conv.lin_edge.weight, conv.lin_edge.bias, aggr, t, conv.eps, kernel=kernel)
    assert torch.equal(out, torch.zeros(6, 4, dtype=torch.float64)), "no edges: every node aggregates to 0"
    wrt = [x, u, conv.lin_edge.weight, conv.lin_edge.bias] + ([t] if aggr == "softmax" else [])
    for name, g in zip(["x", "u", "W", "b", "t"], torch.autograd.grad(out.sum() * 2, wrt, allow_unused=True)):
        assert g is None or not g.any(), f"no edges: the gradient to {name} is 0"
    out = gen_aggregate(x, ei, u.detach(), conv.lin_edge.weight, conv.lin_edge.bias, aggr, t, conv.eps,
                        kernel=kernel)
    gx, gw = torch.autograd.grad(out.sum(), [x, conv.lin_edge.weight])
    assert not gx.any() and not gw.any(), "no edges and no edge-feature gradient: gradients are 0"


def test_float16_softmax_nodes_without_in_edges_are_zero():
    """float16: the softmax guard 1e-16 underflows to 0; nodes without in-edges still aggregate to 0 (PyG), not
    NaN."""
    x, ei, u = edge_case_graph(torch.float32)
    conv = pyg_conv("softmax", x.size(1), u.size(1), torch.float32)
    out = gen_aggregate(x.half(), ei, u.half(), conv.lin_edge.weight.detach().half(),
                        conv.lin_edge.bias.detach().half(), "softmax", float(conv.aggr_module.t), conv.eps,
                        kernel="auto")
    assert not out.isnan().any(), "float16 softmax has no NaN"
    assert torch.all(out[-2:] == 0), "float16: nodes without in-edges aggregate to 0"
    ref = conv.propagate(ei, x=(x, x), edge_attr=u)
    assert rel(out.float(), ref) < 1e-2, "float16 softmax equals PyG's up to half precision"
