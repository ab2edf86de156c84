"""The native GENConv kernel (revgnn.nn.native) equals the pure-torch kernel and PyG's GENConv, outputs and gradients,
on destination-sorted edges; the sort is done once and is invisible to the caller."""
import logging

import genconv_reference as ref
import pytest
import torch
from torch_geometric.nn import GENConv

from revgnn.nn import native
from revgnn.nn.fused import gen_aggregate, resolve_kernel, sort_by_destination

AGGRS = ["max", "softmax", "mean", "add"]

needs_native = pytest.mark.skipif(not native.available(), reason=f"native kernel not built: {native.error()}")


def rel(a, b):
    return float((a - b).detach().norm() / b.detach().norm().clamp_min(1e-300))


@pytest.fixture(params=[1, 2], ids=["1-thread", "2-threads"])
def threads(request):
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


def pyg(aggr, c, k, dtype, t=1.3):
    torch.manual_seed(1)
    return GENConv(c, c, aggr=aggr, t=t, learn_t=aggr == "softmax", norm="layer", bias=True,
                   edge_dim=k).to(dtype)


def results(kernel, x, ei, u, conv, aggr, w):
    """[output, d/dx, d/du, d/dA, d/da(, d/dt)] of sum(w * out) for ``kernel`` ("native", "torch" or "pyg")."""
    A, a = conv.lin_edge.weight, conv.lin_edge.bias
    t = conv.aggr_module.t if aggr == "softmax" else 1.0
    wrt = [x, u, A, a] + ([t] if aggr == "softmax" else [])
    if kernel == "pyg":
        out = conv.propagate(ei, x=(x, x), edge_attr=u)
    else:
        out = gen_aggregate(x, ei, u, A, a, aggr, t, conv.eps, 50, kernel=kernel)
    return [out.detach(), *torch.autograd.grad((out * w).sum(), wrt)]


@needs_native
@pytest.mark.parametrize("aggr", AGGRS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("c", [5, 16, 56], ids=["c5", "c16", "c56"])
def test_native_and_torch_equal_the_reference_and_pyg(aggr, dtype, c, threads):
    """Outputs and every gradient of the native kernel, the torch kernel and PyG's GENConv equal a float64
    reference formed in two summation orders (tests/genconv_reference.py): float64 to 1e-10 relative, float32
    within a bound set by the computation's conditioning. Entries whose gradient a rounding could move by a
    subgradient jump (near ties of max, ReLU's kink) get weight 0 in the loss; exact ties built into the graph stay
    and are split by every path alike. c = 16 and 56 in float32 take the kernel's 8-lane path (one pass of 2
    vectors; two passes of 4 and 3), c = 5 and float64 its generic one."""
    names = ["output", "x", "u", "A", "a", "t"]
    for seed in (0, 1):
        x, ei, u = ref.tie_graph(dtype, seed=seed, c=c)
        x.requires_grad_()
        u.requires_grad_()
        conv = pyg(aggr, x.size(1), u.size(1), dtype)
        A, a = conv.lin_edge.weight, conv.lin_edge.bias
        t = conv.aggr_module.t if aggr == "softmax" else 1.0
        stable = ref.stable_entries(x, ei, u, A, a, aggr, conv.eps, dtype)
        assert stable.float().mean() > 0.9, "few entries are near a tie or a kink"
        w = torch.randn(x.size(0), x.size(1), dtype=dtype, generator=torch.Generator().manual_seed(seed)) * stable
        tol = ref.tolerance(x, ei, u, A, a, aggr, t, conv.eps, w, dtype)
        want = [ref.reference(x, ei, u, A, a, aggr, t, conv.eps, w, order) for order in ("forward", "reversed")]
        got = {k: results(k, x, ei, u, conv, aggr, w) for k in ("native", "torch", "pyg")}
        assert torch.all(got["native"][0][-3:] == 0), "nodes without in-edges aggregate to 0"
        for kernel, values in got.items():
            for name, v, r0, r1, bound in zip(names, values, *want, tol):
                for r in (r0, r1):
                    err = float((v.double() - r).norm())
                    assert err <= bound, (f"{kernel} {name} equals the reference ({aggr}, {dtype}, {threads} "
                                          f"threads): error {err:.3g} > bound {bound:.3g}")


def tie_case(dtype, c, k=3, seed=0, bias=True):
    """The tie graph with a GENConv whose edge encoder makes every built tie edge the maximum of its target: A >= 0
    with A[:, 0] >= 1 (the tie edges carry TIE_SCALE e_0), and a = 100 (or none)."""
    x, ei, u = ref.tie_graph(dtype, c=c, k=k, seed=seed)
    x.requires_grad_()
    conv = pyg("max", c, k, dtype)
    with torch.no_grad():
        conv.lin_edge.weight.abs_()
        conv.lin_edge.weight[:, 0] += 1.0
        conv.lin_edge.bias.fill_(100.0 if bias else 0.0)
    return x, ei, u, conv


@needs_native
@pytest.mark.parametrize("dtype,c", [(torch.float64, 5), (torch.float32, 5), (torch.float32, 16)],
                         ids=["float64-c5", "float32-c5", "float32-c16-lanes"])
def test_native_max_tie_split_equals_pyg(dtype, c, threads):
    """Positive exact ties (equal sources into node 3, a duplicated self-loop on 4), built so that they are ties in
    any arithmetic: the gradient of the maximum is split evenly among the tied edges, by the native kernel, the
    torch kernel, PyG's scatter-max backward and the reference alike; the backward's recomputed messages equal the
    forward's bit for bit, on the generic and the 8-lane path."""
    x, ei, u, conv = tie_case(dtype, c)
    g = torch.zeros(x.size(0), x.size(1), dtype=dtype)
    g[3] = 1.0
    g[4] = 1.0
    A, a = conv.lin_edge.weight, conv.lin_edge.bias
    gx_ref = ref.reference(x, ei, u, A, a, "max", 1.0, conv.eps, g)[1].to(dtype)
    gx_pyg = torch.autograd.grad(conv.propagate(ei, x=(x, x), edge_attr=u), x, g)[0]
    atol = 1e-12 if dtype == torch.float64 else 1e-6
    for kernel in ("native", "torch"):
        out = gen_aggregate(x, ei, u, A, a, "max", 1.0, conv.eps, kernel=kernel)
        gx = torch.autograd.grad(out, x, g)[0]
        for other, name in ((gx_ref, "the reference's"), (gx_pyg, "PyG's")):
            assert torch.allclose(gx, other, rtol=0, atol=atol), f"{kernel} tie gradients equal {name}"
        assert torch.allclose(gx[0], torch.full_like(gx[0], 0.5)), f"{kernel}: the tie is split evenly"
        assert torch.allclose(gx[1], gx[0]), f"{kernel}: both tied sources get half"
        assert torch.allclose(gx[4], torch.ones_like(gx[4])), f"{kernel}: the duplicated loop's halves add up"


@needs_native
@pytest.mark.parametrize("dtype,c,k", [(torch.float64, 5, 3), (torch.float32, 5, 3), (torch.float32, 16, 3),
                                       (torch.float32, 40, 8), (torch.float32, 112, 8)],
                         ids=["float64-generic", "float32-generic", "float32-lanes", "float32-k8-c40",
                              "float32-k8-c112"])
@pytest.mark.parametrize("order", ["unsorted", "sorted"])
def test_native_backward_recomputes_the_forwards_messages_bit_for_bit(dtype, c, k, order, threads):
    """A duplicated edge whose features have k nonzero entries (so its message's rounding depends on the order of
    the sum) ties with itself in the native kernel, whose backward recomputes the tied messages and finds them equal
    to the forward's maximum only if it forms them in the same order, bit for bit: each copy gets half the gradient
    that the edge alone gets. (The torch kernel's matrix product may round the two copies apart, so this is checked
    on the native kernel, on every path: scalar, 8-lane, the k = 8 encoder pass.)"""
    x, ei, u, conv = tie_case(dtype, c, k=k)
    A, a = conv.lin_edge.weight, conv.lin_edge.bias
    g = torch.Generator().manual_seed(5)
    dup = torch.tensor([[9], [11]])                                     # 9 -> 11, twice, with general features
    feat = torch.rand(1, k, generator=g, dtype=dtype) * 3 + 20          # the largest message of node 11
    grads = []
    for copies in (1, 2):
        e = torch.cat([ei, dup.expand(2, copies)], 1)
        uu = torch.cat([u, feat.expand(copies, k)], 0)
        if order == "sorted":
            p = torch.sort(e[1], stable=True).indices
            e, uu = e[:, p], uu[p]
            where = (p >= ei.size(1)).nonzero().squeeze(1)
        else:
            where = torch.arange(ei.size(1), e.size(1))
        uu = uu.clone().requires_grad_()
        gout = torch.zeros(x.shape, dtype=dtype)
        gout[11] = 1.0
        out = gen_aggregate(x, e, uu, A, a, "max", 1.0, conv.eps, kernel="native")
        want = ref.reference(x, e, uu, A, a, "max", 1.0, conv.eps, gout)[0][11]
        assert torch.allclose(out[11].double(), want, rtol=1e-12 if dtype == torch.float64 else 1e-6, atol=0), \
            "the maximum equals the reference's"
        gu, gx = torch.autograd.grad(out, [uu, x], gout)
        grads.append((gu[where], gx[9]))
    (one, gx1), (two, gx2) = grads
    assert torch.equal(two[0], two[1]), "the two copies of the edge get equal gradients"
    assert torch.allclose(two[0] * 2, one[0], rtol=1e-6, atol=0), "each copy gets half of the edge's gradient"
    assert torch.allclose(gx2, gx1, rtol=1e-6, atol=0), "the source's gradient is the same with one or two copies"


@needs_native
@pytest.mark.parametrize("c", [16, 24, 40, 56, 112], ids=lambda c: f"c{c}")
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("order", ["unsorted", "sorted"])
def test_native_max_encoder_path_k8(c, bias, order, threads):
    """Max in float32 with k = 8 raw edge features (ogbn-proteins' k) takes the kernel's encoder-in-registers path
    (16-lane passes in the AVX-512 build, 8-lane ones in the others): outputs and every gradient equal the float64
    reference within the conditioning bound, with exact positive ties whose gradient is split (the backward's
    recomputed messages must equal the forward's bit for bit), with and without the encoder's bias, on unsorted
    (permuted edge features) and sorted edges."""
    for seed in (0, 1):
        x, ei, u, conv = tie_case(torch.float32, c, k=8, seed=seed, bias=bias)
        if order == "sorted":
            perm = torch.sort(ei[1], stable=True).indices
            ei, u = ei[:, perm], u[perm]
        u.requires_grad_()
        A = conv.lin_edge.weight
        a = conv.lin_edge.bias if bias else None
        stable = ref.stable_entries(x, ei, u, A, a, "max", conv.eps, torch.float32)
        w = torch.randn(x.size(0), c, generator=torch.Generator().manual_seed(seed)) * stable
        wrt = [x, u, A] + ([a] if bias else [])
        tol = ref.tolerance(x, ei, u, A, a, "max", 1.0, conv.eps, w, torch.float32)
        want = ref.reference(x, ei, u, A, a, "max", 1.0, conv.eps, w)
        for kernel in ("native", "torch"):
            out = gen_aggregate(x, ei, u, A, a, "max", 1.0, conv.eps, kernel=kernel)
            got = [out.detach(), *torch.autograd.grad((out * w).sum(), wrt)]
            for name, v, r, bound in zip(["output", "x", "u", "A", "a"], got, want, tol):
                assert float((v.double() - r).norm()) <= bound, \
                    f"{kernel} {name} equals the reference (c = {c}, bias {bias}, {order})"
        g = torch.zeros(x.size(0), c)
        g[3] = 1.0
        out = gen_aggregate(x, ei, u, A, a, "max", 1.0, conv.eps, kernel="native")
        gx = torch.autograd.grad(out, x, g)[0]
        assert torch.allclose(gx[0], torch.full_like(gx[0], 0.5)), "the tie into node 3 is split evenly"


@needs_native
@pytest.mark.parametrize("dtype,c,k", [(torch.float64, 5, 3), (torch.float32, 5, 3), (torch.float32, 16, 3),
                                       (torch.float32, 16, 0), (torch.float32, 40, 8), (torch.float32, 112, 8)])
@pytest.mark.parametrize("order", ["unsorted", "sorted"])
def test_no_grad_max_equals_the_max_with_statistics(dtype, c, k, order, threads):
    """Without a gradient to ask for (torch.no_grad: inference, the reversible engine's first pass), max keeps the
    running maximum of z alone and adds ReLU and eps once: bit for bit the output of the pass that records the tie
    statistics, on every path, with channels whose messages are all at eps, NaN sources and nodes without
    in-edges."""
    x, ei, u = ref.tie_graph(dtype, c=c, k=max(k, 1))
    x[5] = float("nan")
    x[:, 0] = -50.0                                                    # channel 0: every message at eps
    u = u if k else None
    if order == "sorted":
        p = torch.sort(ei[1], stable=True).indices
        ei, u = ei[:, p], (u[p] if u is not None else None)
    conv = pyg("max", c, max(k, 1), dtype)
    A, a = (conv.lin_edge.weight, conv.lin_edge.bias) if k else (None, None)
    with torch.no_grad():
        fast = gen_aggregate(x, ei, u, A, a, "max", 1.0, conv.eps, kernel="native")
    full = gen_aggregate(x.requires_grad_(), ei, u, A, a, "max", 1.0, conv.eps, kernel="native")
    assert full.requires_grad and not fast.requires_grad
    assert torch.equal(fast, full.detach()), "the maximum alone equals the maximum with tie statistics"
    assert torch.all(fast[:, 0][:-3] == conv.eps) and torch.all(fast[-3:] == 0), "eps where all z <= 0; 0 without edges"


@needs_native
@pytest.mark.parametrize("aggr", AGGRS)
def test_native_without_edges(aggr, threads):
    x = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    u = torch.randn(0, 3, dtype=torch.float64, requires_grad=True)
    A = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    a = torch.randn(4, dtype=torch.float64, requires_grad=True)
    out = gen_aggregate(x, torch.zeros(2, 0, dtype=torch.long), u, A, a, aggr, kernel="native")
    assert torch.equal(out, torch.zeros_like(x)), "E = 0: every node aggregates to 0"
    for g in torch.autograd.grad(out.sum(), [x, u, A, a], allow_unused=True):
        assert g is None or not g.any(), "E = 0: zero gradients"


@needs_native
@pytest.mark.parametrize("aggr", AGGRS)
@pytest.mark.parametrize("edge_term", ["folded", "direct", "none"])
def test_native_gradcheck_float64(aggr, edge_term):
    """torch.autograd.gradcheck of the native kernel on a tiny graph (no exact ties, so max is differentiable)."""
    g = torch.Generator().manual_seed(3)
    N, c, k = 6, 3, 2
    ei = torch.tensor([[0, 1, 2, 3, 4, 5, 1, 2, 0], [1, 0, 0, 2, 2, 2, 3, 5, 5]])
    x = torch.randn(N, c, generator=g, dtype=torch.float64).requires_grad_()
    t = torch.tensor([1.5], dtype=torch.float64, requires_grad=aggr == "softmax")
    if edge_term == "folded":
        u = torch.randn(ei.size(1), k, generator=g, dtype=torch.float64).requires_grad_()
        A = torch.randn(c, k, generator=g, dtype=torch.float64).requires_grad_()
        a = torch.randn(c, generator=g, dtype=torch.float64).requires_grad_()
    elif edge_term == "direct":
        u, A, a = torch.randn(ei.size(1), c, generator=g, dtype=torch.float64).requires_grad_(), None, None
    else:
        u, A, a = None, None, None

    def f(x, u, A, a, t):
        return gen_aggregate(x, ei, u, A, a, aggr, t, 1e-7, kernel="native")

    assert torch.autograd.gradcheck(f, (x, u, A, a, t), eps=1e-6, atol=1e-6), "native gradients are the derivative"


@needs_native
@pytest.mark.parametrize("kernel", ["native", "torch"])
def test_unsorted_input_equals_sorted_input(kernel):
    """A user's unsorted graph gives the same results as the same graph sorted by destination, and gradients to its
    edge features come back in the user's order."""
    x, ei, u = ref.tie_graph(torch.float64, seed=4)
    perm = torch.randperm(ei.size(1), generator=torch.Generator().manual_seed(0))
    order = torch.sort(ei[1], stable=True).indices
    A = torch.randn(x.size(1), u.size(1), dtype=torch.float64, requires_grad=True)
    res = []
    for p in (perm, order):
        up = u[p].clone().requires_grad_()
        out = gen_aggregate(x, ei[:, p].contiguous(), up, A, None, "softmax", 2.0, kernel=kernel)
        gu = torch.autograd.grad(out.pow(2).sum(), up)[0]
        gu_user = torch.empty_like(gu)
        gu_user[p] = gu
        res.append((out, gu_user))
    assert rel(res[0][0], res[1][0]) < 1e-12, "the output does not depend on the edge order"
    assert rel(res[0][1], res[1][1]) < 1e-12, "edge-feature gradients follow the user's edge order"


def test_sort_is_cached_per_edge_index_and_redone_after_an_inplace_change():
    x, ei, _ = ref.tie_graph(torch.float64)
    a = sort_by_destination(ei, x.size(0))
    assert sort_by_destination(ei, x.size(0)) is a, "the L layers of a model share one sort"
    assert a.perm is not None and torch.all(a.dst[1:] >= a.dst[:-1]), "sorted by destination"
    assert torch.equal(a.rowptr[1:] - a.rowptr[:-1], torch.bincount(ei[1], minlength=x.size(0))), "CSR row pointer"
    ei[0, 0] = (ei[0, 0] + 1) % x.size(0)                               # in place: a new version
    b = sort_by_destination(ei, x.size(0))
    assert b is not a and torch.equal(b.src, ei[0][b.perm]), "an in-place change re-sorts"
    srt = ei[:, b.perm].contiguous()
    assert sort_by_destination(srt, x.size(0)).perm is None, "a sorted graph keeps its order (no permutation)"


@needs_native
def test_int32_indices_and_no_edge_features(threads):
    x, ei, _ = ref.tie_graph(torch.float64, seed=2)
    x.requires_grad_()
    outs = [gen_aggregate(x, ei.to(dt), None, aggr="max", kernel=k) for dt in (torch.int32, torch.long)
            for k in ("native", "torch")]
    grads = [torch.autograd.grad(o.sum(), x)[0] for o in outs]
    for o, g in zip(outs[1:], grads[1:]):
        assert rel(o, outs[0]) < 1e-12 and rel(g, grads[0]) < 1e-12, "int32 and int64 indices, both kernels agree"


def test_kernel_choice(monkeypatch, caplog):
    assert resolve_kernel("torch") == "torch"
    assert resolve_kernel("auto", torch.float16) == "torch", "float16 runs the torch kernel"
    with pytest.raises(ValueError, match="kernel must be one of"):
        resolve_kernel("cuda")
    with pytest.raises(ValueError, match="float32/float64 on CPU"):
        resolve_kernel("native", torch.float16)
    monkeypatch.setattr(native, "_state", {})
    monkeypatch.setattr("torch.utils.cpp_extension.load", lambda **kw: (_ for _ in ()).throw(OSError("no g++")))
    with caplog.at_level(logging.WARNING, logger="revgnn.nn.native"):
        assert resolve_kernel("auto") == "torch", "without a compiler, auto falls back to the torch kernel"
    assert sum("unavailable" in r.message for r in caplog.records) == 1, "one line says so"
    with pytest.raises(ValueError, match="could not be built.*kernel='torch'"):
        resolve_kernel("native")


def test_sort_graph_sorts_edge_tensors_alike():
    from revgnn.measure.memory import synthetic_graph
    from revgnn.nn.fused import sort_graph

    data = synthetic_graph(80, 600, seed=0)
    s = sort_graph(data)
    assert torch.all(s.edge_index[1][1:] >= s.edge_index[1][:-1]), "edges sorted by destination"
    key = lambda ei, ea: sorted(zip(ei[0].tolist(), ei[1].tolist(), map(tuple, ea.tolist())))  # noqa: E731
    assert key(s.edge_index, s.edge_attr) == key(data.edge_index, data.edge_attr), "same edges, same features"
    assert torch.equal(s.x, data.x) and torch.equal(s.y, data.y), "node tensors unchanged"


@pytest.mark.parametrize("E,N,chunk", [(0, 5, 4), (1, 5, 4), (3000, 37, 64), (5000, 3, 100), (777, 1000, 7),
                                       (20000, 500, 1 << 22)])
def test_destination_order_is_the_stable_sort(E, N, chunk):
    from revgnn.nn.fused import destination_order

    dst = torch.randint(0, N, (E,), generator=torch.Generator().manual_seed(E))
    perm = destination_order(dst, N, chunk=chunk)
    assert perm.dtype == torch.int32 and torch.equal(perm.long(), torch.sort(dst, stable=True).indices)


def test_sort_graph_in_place_equals_sort_graph_and_the_loaders_use_it():
    from revgnn.measure.memory import synthetic_graph
    from revgnn.nn.fused import sort_by_destination, sort_graph, sort_graph_

    data = synthetic_graph(80, 600, seed=0)
    want = sort_graph(data)
    ei, ea = data.edge_index, data.edge_attr
    got = sort_graph_(data)
    assert got is data and got.edge_index is ei and got.edge_attr is ea, "the same tensors, sorted in place"
    for key in ("edge_index", "edge_attr", "x", "y"):
        assert torch.equal(got[key], want[key]), key
    assert sort_by_destination(got.edge_index, got.num_nodes).perm is None, "a sorted graph needs no permutation"
    assert sort_graph_(data) is data and torch.equal(data.edge_index, want.edge_index), "sorting twice: no change"
    from revgnn.training.config import TrainConfig
    from revgnn.training.loop import _load_sorted

    ds = _load_sorted(TrainConfig(dataset="synthetic-proteins", dataset_kwargs={"num_nodes": 300, "num_edges": 3000}))
    assert bool((ds.data.edge_index[1, 1:] >= ds.data.edge_index[1, :-1]).all()), "fit's dataset comes sorted"


def test_sort_cache_is_freed_with_the_graph():
    import gc

    from revgnn.nn import fused

    ei = torch.randint(0, 20, (2, 300))
    se = sort_by_destination(ei, 20)
    key = fused._key(ei, 20)
    assert fused._sort_cache[key][-1] is se
    saved = ei.detach()                                                 # another tensor object, same data
    assert sort_by_destination(saved, 20) is se, "a copy of the same data (as autograd hands back) hits the cache"
    del saved
    del ei
    gc.collect()
    assert key not in fused._sort_cache or fused._sort_cache[key][-1] is not se, \
        "the cached sort does not outlive its edge_index"


@needs_native
def test_model_kernel_choice_reaches_every_block_with_equal_results():
    import torch.nn.functional as F

    from revgnn import ModelConfig, build_model
    from revgnn.measure.memory import synthetic_graph
    from revgnn.nn.layers import GENBlock

    with pytest.raises(ValueError, match="kernel must be one of"):
        ModelConfig(kernel="cuda")
    data = synthetic_graph(90, 700, seed=1)
    res = []
    for kernel in ("native", "torch"):
        torch.manual_seed(0)
        model = build_model(ModelConfig("rev", 3, 8, kernel=kernel)).double()
        assert {b.kernel for b in model.modules() if isinstance(b, GENBlock)} == {kernel}
        torch.manual_seed(7)
        out = model(data.x.double(), data.edge_index, data.edge_attr.double(), data.species)
        loss = F.binary_cross_entropy_with_logits(out, data.y.double())
        res.append([out, *torch.autograd.grad(loss, list(model.parameters()))])
    for a, b in zip(*res):
        assert rel(a, b) < 1e-10, "RevGNN with the native kernel equals the torch kernel (outputs, every gradient)"


_EXACTNESS = "reference or tie or encoder or gradcheck or without_edges or int32 or unsorted"


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["generic", "avx2", "avx512"])
def test_other_builds_pass_the_exactness_tests(variant, tmp_path):
    """The builds this machine does not load by default (the generic one, which CPUs without AVX2 load; the AVX2 one
    where the CPU has AVX-512) compile, load under REVGNN_NATIVE_ISA, and pass this file's exactness tests (the
    reference in two summation orders, exact ties, the encoder path, gradcheck), each built in a fresh extension
    folder (about a minute each)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    if variant == native.isa():
        pytest.skip(f"{variant} is this machine's default build: the rest of this file tests it")
    have = torch.backends.cpu.get_cpu_capability()
    if variant == "avx2" and have not in ("AVX2", "AVX512") or variant == "avx512" and have != "AVX512":
        pytest.skip(f"this CPU has no {variant} ({have})")
    env = {**os.environ, "REVGNN_NATIVE_ISA": variant, "TORCH_EXTENSIONS_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    check = ("from revgnn.nn import native; assert native.load() is not None, native.error(); "
             "print(native._state['isa'])")
    run = subprocess.run([sys.executable, "-c", check], env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0 and run.stdout.split() == [variant], f"the {variant} build loads: {run.stderr[-2000:]}"
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", str(Path(__file__)),
                          "-k", _EXACTNESS], env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, f"the {variant} build passes the exactness tests: {run.stdout[-3000:]}"
