"""DEQ claims: the solver finds fixed points, the implicit gradient is exact, memory ignores the iteration count."""
import json
import warnings

import pytest
import torch
from torch import nn

from revgnn import DEQGNN, ConvergenceWarning, DEQLayer, fixed_point
from revgnn.measure.memory import SavedTensorMeter


class Contraction(nn.Module):
    """f(z, x) = tanh(z W + x) with ||W||_2 = 0.6: a contraction, so z* exists and is unique."""

    def __init__(self, d=6, seed=0, norm=0.6):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        w = torch.randn(d, d, generator=g, dtype=torch.float64)
        self.w = nn.Parameter(norm * w / torch.linalg.matrix_norm(w, 2))
        self.b = nn.Parameter(torch.randn(d, generator=g, dtype=torch.float64) * 0.1)

    def forward(self, z, x):
        return torch.tanh(z @ self.w + x + self.b)


@pytest.mark.parametrize("solver", ["anderson", "broyden", "picard"])
def test_solver_converges_on_a_contraction(solver):
    f = Contraction()
    x = torch.randn(10, 6, dtype=torch.float64)
    with torch.no_grad():
        z, stats = fixed_point(lambda z: f(z, x), torch.zeros_like(x), solver, max_iter=200, tol=1e-10)
        assert stats.converged and stats.iterations < 200, "the solver converges on a contraction"
        assert torch.allclose(f(z, x), z, atol=1e-8), "the returned point is a fixed point"
        assert len(stats.residuals) == stats.iterations


def test_anderson_needs_fewer_iterations_than_picard():
    f = Contraction(norm=0.95)
    x = torch.randn(10, 6, dtype=torch.float64)
    with torch.no_grad():
        _, a = fixed_point(lambda z: f(z, x), torch.zeros_like(x), "anderson", max_iter=200, tol=1e-10)
        _, p = fixed_point(lambda z: f(z, x), torch.zeros_like(x), "picard", max_iter=200, tol=1e-10)
    assert a.iterations < p.iterations, f"Anderson accelerates ({a.iterations} vs {p.iterations} iterations)"


@pytest.mark.parametrize("solver", ["anderson", "broyden"])
def test_implicit_gradient_matches_unrolled_solve(solver):
    f = Contraction()
    layer = DEQLayer(f, solver, max_iter=100, tol=1e-12)
    x = torch.randn(10, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(10, 6, dtype=torch.float64)
    implicit = torch.autograd.grad((layer(x) * w).sum(), [x, *f.parameters()])
    assert layer.last_stats.converged and layer.last_backward_stats.converged
    z = torch.zeros_like(x)
    for _ in range(200):  # unrolled to convergence with ordinary autograd
        z = f(z, x)
    unrolled = torch.autograd.grad((z * w).sum(), [x, *f.parameters()])
    for a, b in zip(implicit, unrolled):
        assert (a - b).norm() / b.norm() < 1e-4, "the implicit gradient equals the unrolled gradient"


def test_memory_independent_of_iteration_count():
    f = Contraction()
    x = torch.randn(50, 6, dtype=torch.float64, requires_grad=True)
    sizes = []
    for iters in (5, 80):
        layer = DEQLayer(f, "picard", max_iter=iters, tol=0.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            with SavedTensorMeter(f.parameters()) as m:
                layer(x).sum()
        sizes.append(m.bytes)
        assert layer.last_stats.iterations == iters
    assert sizes[0] == sizes[1] > 0, f"saved bytes do not grow with solver iterations ({sizes})"
    layer = DEQLayer(f, unrolled_iters=20)
    with SavedTensorMeter(f.parameters()) as m:
        layer(x).sum()
    assert m.bytes > 5 * sizes[0], "the unrolled warm-up, by contrast, stores every iteration"


def test_non_convergence_is_reported():
    f = Contraction()
    layer = DEQLayer(f, "picard", max_iter=2, tol=1e-12)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        layer(torch.randn(4, 6, dtype=torch.float64))
    assert layer.last_stats.converged is False and layer.last_stats.iterations == 2


def test_deq_gnn_trains_and_reports_solver_stats():
    torch.manual_seed(0)
    N, E = 40, 160
    ei = torch.randint(0, N, (2, E))
    ea, x, sp = torch.rand(E, 8), torch.rand(N, 8), torch.randint(0, 8, (N,))
    model = DEQGNN(8, 16, 3, dropout=0.1, edge_dim=8, num_species=8, max_iter=40, tol=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        out = model(x, ei, ea, sp)
        out.sum().backward()
    stats = model.last_solver_stats
    assert out.shape == (N, 3) and stats is not None and stats.iterations >= 1
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad), "every parameter gets a gradient"


def test_bad_solver_is_rejected():
    with pytest.raises(ValueError, match="unknown solver"):
        DEQLayer(Contraction(), solver="newton")


def test_double_backward_is_refused_not_silently_wrong():
    """create_graph=True through the implicit backward would drop second-order terms; it raises instead."""
    f = Contraction()
    layer = DEQLayer(f, "anderson", max_iter=100, tol=1e-10)
    x = torch.randn(10, 6, dtype=torch.float64, requires_grad=True)
    out = layer(x).pow(2).sum()
    with pytest.raises(RuntimeError, match="double backward through a DEQ layer's implicit backward"):
        torch.autograd.grad(out, [x, *f.parameters()], create_graph=True)


def test_parameter_changed_in_place_before_backward_raises():
    f = Contraction()
    layer = DEQLayer(f, "anderson", max_iter=100, tol=1e-10)
    x = torch.randn(10, 6, dtype=torch.float64, requires_grad=True)
    out = layer(x).pow(2).sum()
    with torch.no_grad():
        f.w.mul_(0.9)                                     # as optimizer.step() before loss.backward() would
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.backward()


# --- solver statistics (issue 17, item 2): iterations, residual and converged for the forward and adjoint solves ---

def _check_stats_dict(d, tol):
    assert isinstance(d["iterations"], int) and d["iterations"] >= 1
    assert isinstance(d["residual"], float) and d["residual"] >= 0
    assert isinstance(d["converged"], bool) and d["tol"] == tol and d["node_tol"] == 10 * tol
    assert d["converged"] == (d["residual"] <= tol and d["node_residual"] <= d["node_tol"]), \
        "converged means the returned point's residual is within tol, and its worst node's within node_tol"
    assert len(d["residuals"]) == len(d["node_residuals"]) == d["iterations"] and d["residual"] in d["residuals"]


@pytest.mark.parametrize("solver", ["anderson", "broyden", "picard"])
@pytest.mark.parametrize("norm, max_iter, expect", [(0.6, 200, True), (0.6, 3, False), (3.0, 30, False)])
def test_converged_agrees_with_residual_and_tolerance(solver, norm, max_iter, expect):
    """A contraction with enough iterations converges; too few iterations, or an expansive cell (||W|| = 3, no
    reachable fixed point within 30 iterations), do not, and the stats say so."""
    f = Contraction(norm=norm)
    tol = 1e-8
    layer = DEQLayer(f, solver, max_iter=max_iter, tol=tol)
    x = torch.randn(10, 6, dtype=torch.float64, requires_grad=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (layer(x) * torch.linspace(-1, 1, 6, dtype=torch.float64)).sum().backward()
    stats = layer.solver_stats()
    for kind in ("forward", "backward"):
        _check_stats_dict(stats[kind], tol)
    assert stats["forward"]["converged"] is expect, stats["forward"]
    messages = [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]
    unconverged = [k for k in ("forward", "backward") if not stats[k]["converged"]]
    assert len(messages) == len(unconverged), "one ConvergenceWarning per solve that misses its tolerance"
    for kind, msg in zip(unconverged, messages):
        s = stats[kind]
        assert f"after {s['iterations']} iterations" in msg and f"{s['residual']:.2e}" in msg, \
            f"the warning states the iterations and the residual: {msg}"


def test_solver_fields_flat_record_and_counts():
    from revgnn.nn.deq import SOLVER_FIELDS, solver_fields

    torch.manual_seed(0)
    N, E = 40, 160
    ei = torch.randint(0, N, (2, E))
    ea, x, sp = torch.rand(E, 8), torch.rand(N, 8), torch.randint(0, 8, (N,))
    model = DEQGNN(8, 16, 3, dropout=0.1, edge_dim=8, num_species=8, max_iter=40, tol=1e-3)
    assert solver_fields(nn.Linear(2, 2)) == {}, "a layered model has no solver fields"
    before = solver_fields(model)
    assert before["deq_forward_iters"] is None and before["deq_forward_solves"] == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(2):
            model(x, ei, ea, sp).sum().backward()
    fields = solver_fields(model, reset=True)
    assert set(fields) == set(SOLVER_FIELDS)
    for kind in ("forward", "backward"):
        assert isinstance(fields[f"deq_{kind}_iters"], int) and fields[f"deq_{kind}_iters"] >= 1
        assert isinstance(fields[f"deq_{kind}_residual"], float)
        assert fields[f"deq_{kind}_converged"] == (fields[f"deq_{kind}_residual"] <= fields["deq_tol"] and
                                                   fields[f"deq_{kind}_node_residual"] <= fields["deq_node_tol"])
        assert fields[f"deq_{kind}_solves"] == 2 and 0 <= fields[f"deq_{kind}_unconverged"] <= 2
    assert solver_fields(model)["deq_forward_solves"] == 0, "reset=True starts the count again"
    assert model.last_stats["forward"]["iterations"] == fields["deq_forward_iters"]
    assert model.last_stats["backward"]["residual"] == fields["deq_backward_residual"]
    assert model.last_backward_solver_stats is model.deq.last_backward_stats


def test_memory_record_carries_the_solves():
    from revgnn import ModelConfig
    from revgnn.measure.memory import measure_config, synthetic_graph

    graph = synthetic_graph(120, 1_200, seed=0)
    cfg = ModelConfig(model="deq", num_layers=1, hidden_channels=8, max_iter=60, tol=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        rec = measure_config(cfg, 0, 0, data=graph, repeats=1).to_dict()
        inf = measure_config(cfg, 0, 0, data=graph, repeats=1, train=False)
    for kind in ("forward", "backward"):
        assert isinstance(rec[f"deq_{kind}_iters"], int) and isinstance(rec[f"deq_{kind}_converged"], bool)
        assert rec[f"deq_{kind}_converged"] in (False, rec[f"deq_{kind}_residual"] <= rec["deq_tol"] == 1e-3)
    assert rec["deq_forward_iters"] == rec["solver_iterations"]
    assert inf.deq_forward_iters >= 1 and inf.deq_backward_iters is None, "inference solves forward only"


def test_training_history_carries_each_epochs_solves():
    from revgnn import ModelConfig
    from revgnn.nn.deq import SOLVER_FIELDS
    from revgnn.training.config import TrainConfig
    from revgnn.training.loop import fit

    tcfg = TrainConfig(dataset="synthetic-proteins", dataset_kwargs={"num_nodes": 200, "num_edges": 2000},
                       epochs=3, lr=0.01, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        run = fit(ModelConfig("deq", 1, hidden_channels=8, dropout=0.1, max_iter=20, tol=1e-3, warmup_epochs=1),
                  tcfg)["runs"][0]
    assert [e["deq_phase"] for e in run["history"]] == ["warmup", "solver", "solver"], "the warm-up, then the solver"
    assert run["deq_warmup"]["switch_epoch"] == 2, "the record says when the switch happened"
    for entry in run["history"]:
        assert set(SOLVER_FIELDS) <= set(entry), "every epoch names its solves"
        for kind in ("forward", "backward"):
            if entry["deq_phase"] == "warmup":
                assert entry[f"deq_{kind}_solves"] == 0, "the warm-up epoch runs the unrolled network, no solver"
                continue
            assert entry[f"deq_{kind}_solves"] >= 1, "the epoch's training solves are counted"
            assert entry[f"deq_{kind}_converged"] == (entry[f"deq_{kind}_residual"] <= entry["deq_tol"]
                                                      and entry[f"deq_{kind}_node_residual"] <= entry["deq_node_tol"])
            assert entry[f"deq_{kind}_unconverged"] <= entry[f"deq_{kind}_solves"]
    json.dumps(run["history"])
    rev = fit(ModelConfig("rev", 2, hidden_channels=8), tcfg)["runs"][0]
    assert not any(k.startswith("deq_") for k in rev["history"][0]), "layered models carry no solver fields"
