"""DEQ-GNN that reaches its equilibrium (issue 29): solver statistics that cannot hide a region, no silent NaN, solver
options that reach the solver, the spectral radius, the weight-tied warm-up and the stabilisers."""
import math
import warnings

import pytest
import torch
from torch import nn

from revgnn import DEQGNN, ConvergenceWarning, DEQLayer, ModelConfig, build_model, fixed_point
from revgnn.nn import deq as deq_module
from revgnn.nn.solvers import SOLVERS, spectral_radius


class Contraction(nn.Module):
    """f(z, x) = tanh(z W + x) with ||W||_2 = norm (a contraction below 1)."""

    def __init__(self, d=6, seed=0, norm=0.6):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        w = torch.randn(d, d, generator=g, dtype=torch.float64)
        self.w = nn.Parameter(norm * w / torch.linalg.matrix_norm(w, 2))
        self.b = nn.Parameter(torch.randn(d, generator=g, dtype=torch.float64) * 0.1)

    def forward(self, z, x):
        return torch.tanh(z @ self.w + x + self.b)


def _slow_rows(rows=100, slow=(3,), rate=0.97, d=4):
    """z -> a * z + c row by row: every row contracts at 0.1 but the ``slow`` rows at ``rate``."""
    a = torch.full((rows, 1), 0.1, dtype=torch.float64)
    a[list(slow)] = rate
    c = torch.linspace(1, 2, rows * d, dtype=torch.float64).view(rows, d)
    return (lambda z: a * z + c), torch.zeros(rows, d, dtype=torch.float64)


# --- statistics that cannot hide a region ------------------------------------------------------------------------

@pytest.mark.parametrize("solver", SOLVERS)
def test_worst_node_residual_is_measured_and_bounds_the_whole_graph(solver):
    f, z0 = _slow_rows()
    with torch.no_grad():
        z, stats = fixed_point(f, z0, solver, max_iter=3, tol=0.0)
    r = (f(z) - z)                                              # residual at the returned point, by hand: one more f
    assert all(n >= w - 1e-12 for n, w in zip(stats.node_residuals, stats.residuals)), \
        "the worst node's residual is never below the whole graph's (max >= root mean square)"
    assert len(stats.node_residuals) == stats.iterations
    rms = f(z).norm() / math.sqrt(z.shape[0])
    assert r.norm(dim=1).max() / rms > 2 * r.norm() / f(z).norm(), "one slow row of 100 dominates the worst node"


def test_a_slow_region_cannot_pass_as_converged():
    """One row of 100 contracts at 0.97, the rest at 0.1: the whole-graph residual reaches the tolerance while that row
    is 10 x further out. With the worst-node check the solve goes on until it is within node_tol too."""
    f, z0 = _slow_rows()
    with torch.no_grad():
        _, loose = fixed_point(f, z0, "picard", max_iter=400, tol=1e-3, node_tol=None)
        _, strict = fixed_point(f, z0, "picard", max_iter=400, tol=1e-3, node_tol=5e-3)
    assert loose.converged and loose.node_residual > 5e-3, \
        f"the whole graph alone passes with a node far out ({loose.residual:.1e}, worst {loose.node_residual:.1e})"
    assert strict.converged and strict.node_residual <= 5e-3 and strict.iterations > loose.iterations, \
        "with node_tol the solve converges only when the worst node is within it"
    with torch.no_grad():
        _, capped = fixed_point(f, z0, "picard", max_iter=loose.iterations, tol=1e-3, node_tol=5e-3)
    assert not capped.converged, "stopping where the whole graph passes but a node does not is no convergence"


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("bad", ["nan_later", "overflow"])
def test_a_non_finite_residual_is_a_failure_never_converged(solver, bad):
    """A NaN in the third call, or values whose norm overflows float32 (the old ratio read 0/inf = 0.0 as converged),
    stop the solve and fail it."""
    calls = {"n": 0}

    def f(z):
        calls["n"] += 1
        if bad == "overflow":
            return torch.full_like(z, 3e38)
        out = torch.tanh(z * 0.5 + 1.0)
        return out if calls["n"] < 3 else out * float("nan")

    with torch.no_grad():
        z, stats = fixed_point(f, torch.zeros(8, 4), solver, max_iter=30, tol=1e-6)
    assert stats.nonfinite and not stats.converged, f"{solver}: a non-finite residual is a failure ({stats})"
    assert stats.iterations == calls["n"] <= 3, "the solve stops at the first non-finite value"
    if bad == "nan_later":
        assert torch.isfinite(z).all(), "the returned point is the best finite iterate"


class Diverging(nn.Module):
    def forward(self, z, x):
        return z * float("nan") + x


def test_layer_warns_on_a_non_finite_solve():
    layer = DEQLayer(Diverging(), "anderson", max_iter=10)
    with pytest.warns(ConvergenceWarning, match="non-finite"):
        layer(torch.randn(4, 3))
    assert layer.last_stats.nonfinite and not layer.last_stats.converged


def test_absolute_stop_mode_measures_the_plain_norm():
    f, z0 = _slow_rows()
    with torch.no_grad():
        _, stats = fixed_point(f, z0, "picard", max_iter=1, tol=0.0, stop_mode="abs")
    r = f(z0) - z0
    assert stats.residual == pytest.approx(float(r.norm())) and stats.node_residual == pytest.approx(
        float(r.norm(dim=1).max())), "abs: ||f(z) - z|| and the largest node row"
    with pytest.raises(ValueError, match="stop_mode"):
        fixed_point(f, z0, "picard", stop_mode="max")


# --- options reach the solver ------------------------------------------------------------------------------------

@pytest.mark.parametrize("solver, options", [("anderson", {"m": 3, "damping": 0.7}), ("broyden", {"memory": 4}),
                                             ("picard", {"damping": 0.5})])
def test_solver_options_reach_the_solver_from_the_model_config(monkeypatch, solver, options):
    seen = []
    real = deq_module.fixed_point

    def spy(*args, **kwargs):
        seen.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(deq_module, "fixed_point", spy)
    names = {"m": "anderson_m", "memory": "broyden_memory", "damping": "damping"}
    cfg = ModelConfig("deq", 1, 8, dropout=0.0, solver=solver, max_iter=7, backward_max_iter=5, tol=1e-3,
                      stop_mode="abs", node_factor=3.0, warmup_epochs=0, **{names[k]: v for k, v in options.items()})
    model = build_model(cfg)
    N, E = 30, 90
    torch.manual_seed(0)
    ei = torch.randint(0, N, (2, E))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model(torch.rand(N, 8), ei, torch.rand(E, 8), torch.randint(0, 8, (N,))).sum().backward()
    assert len(seen) == 2, "one forward and one adjoint solve"
    for (args, kwargs), cap in zip(seen, (7, 5)):
        assert args[2:] == (solver, cap, 1e-3, 3e-3, "abs"), "solver, cap, tol, node tol and stop mode arrive"
        assert kwargs == options, f"the {solver} options arrive: {kwargs}"


def test_an_option_the_solver_does_not_take_is_refused():
    with pytest.raises(ValueError, match="takes no option memory"):
        fixed_point(lambda z: z, torch.zeros(2, 2), "anderson", memory=3)


@pytest.mark.parametrize("changes, message", [
    (dict(stop_mode="max"), "stop_mode must be one of"), (dict(damping=0.0), "damping must be in"),
    (dict(anderson_m=0), "m must be an integer"), (dict(warmup_epochs=-1), "warmup_epochs must be"),
    (dict(warmup_iters=0), "warmup_iters must be"), (dict(deq_norm="batch"), "deq_norm must be"),
    (dict(deq_backward="unrolled"), "backward must be one of"), (dict(node_factor=0.5), "node_factor must be"),
    (dict(jac_reg=0.1), "jac_reg differentiates the DEQ cell twice"), (dict(spectral_iters=-1), "spectral_iters"),
])
def test_bad_deq_settings_are_refused_with_the_fix(changes, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig("deq", 1, 8, **changes)
    assert ModelConfig("rev", 2, 8, **changes).model == "rev", "other models ignore DEQ-GNN's settings"


# --- spectral radius ---------------------------------------------------------------------------------------------

def test_spectral_radius_of_a_known_linear_map():
    """J = Q diag(0.8, 0.5, ...) Q^-1 (non-symmetric): power iteration on v^T J finds 0.8."""
    g = torch.Generator().manual_seed(1)
    q = torch.randn(12, 12, generator=g, dtype=torch.float64)
    eig = torch.tensor([0.8] + [0.5 * (-1) ** k for k in range(11)], dtype=torch.float64)
    J = q @ torch.diag(eig) @ torch.linalg.inv(q)
    like = torch.zeros(12, dtype=torch.float64)
    state = torch.random.get_rng_state()
    estimate = spectral_radius(lambda v: v @ J, like, iters=60)
    assert abs(estimate - 0.8) < 0.01, f"the estimate finds the dominant eigenvalue ({estimate:.4f})"
    assert torch.equal(state, torch.random.get_rng_state()), "the estimate leaves the global RNG alone"


def test_layer_records_the_spectral_radius_of_a_contraction():
    f = Contraction(norm=0.6)
    layer = DEQLayer(f, "anderson", max_iter=100, tol=1e-10, spectral_iters=30)
    x = torch.randn(10, 6, dtype=torch.float64, requires_grad=True)
    layer(x).sum().backward()
    rho = layer.last_stats.spectral_radius
    assert 0 < rho <= 0.6 + 1e-6, f"tanh' <= 1 and ||W|| = 0.6 bound the radius ({rho})"
    assert layer.last_backward_stats.spectral_radius == rho, "forward and adjoint share the Jacobian"
    assert deq_module.solver_fields(layer)["deq_spectral_radius"] == rho


# --- stabilisers -------------------------------------------------------------------------------------------------

def test_phantom_gradient_differentiates_k_steps_from_the_fixed_point_and_solves_no_adjoint():
    f = Contraction(norm=0.3)
    x = torch.randn(10, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(10, 6, dtype=torch.float64)
    implicit = torch.autograd.grad((DEQLayer(f, tol=1e-12, max_iter=100)(x) * w).sum(), [x, *f.parameters()])
    layer = DEQLayer(f, tol=1e-12, max_iter=100, backward="phantom", phantom_steps=1)
    phantom = torch.autograd.grad((layer(x) * w).sum(), [x, *f.parameters()])
    assert layer.last_backward_stats is None, "the phantom gradient solves no adjoint"
    z = layer.solve(x.detach(), (), None)[0]
    by_hand = torch.autograd.grad((f(z, x) * w).sum(), [x, *f.parameters()])
    for a, b, c in zip(phantom, by_hand, implicit):
        assert torch.allclose(a, b), "the phantom gradient is the gradient of one f step from z*"
        cos = float((a * c).sum() / (a.norm() * c.norm()))
        assert cos > 0.9, f"on a contraction (0.3) it points where the implicit gradient does (cos {cos:.3f})"


def test_jacobian_regularisation_adds_the_gradient_of_its_penalty():
    """gamma ||eps^T df/dz||^2 / numel at z*: the implicit backward adds exactly its gradient (same eps)."""
    f = Contraction(norm=0.6)
    x = torch.randn(10, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(10, 6, dtype=torch.float64)
    params = [x, *f.parameters()]
    plain = torch.autograd.grad((DEQLayer(f, tol=1e-12, max_iter=100)(x) * w).sum(), params)
    layer = DEQLayer(f, tol=1e-12, max_iter=100, jac_reg=0.5)
    torch.manual_seed(3)
    regularised = torch.autograd.grad((layer(x) * w).sum(), params)
    z = layer.solve(x.detach(), (), None)[0].requires_grad_()
    torch.manual_seed(3)
    eps = torch.randn_like(z)
    vjp = torch.autograd.grad(f(z, x), z, eps, create_graph=True)[0]
    penalty = vjp.pow(2).sum() / eps.numel()
    extra = torch.autograd.grad(0.5 * penalty, params)
    for r, p, e in zip(regularised, plain, extra):
        assert torch.allclose(r, p + e, atol=1e-10), "the regularised gradient is the plain one plus the penalty's"
    assert layer.last_jac_loss == pytest.approx(float(penalty.detach())), "the penalty's value is recorded"


def test_jacobian_regularisation_runs_on_the_unfused_deq_gnn():
    torch.manual_seed(0)
    N, E = 30, 120
    ei = torch.randint(0, N, (2, E))
    model = DEQGNN(8, 8, 3, edge_dim=8, num_species=8, fused=False, jac_reg=0.1, max_iter=40, tol=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model(torch.rand(N, 8), ei, torch.rand(E, 8), torch.randint(0, 8, (N,))).sum().backward()
    assert model.deq.last_jac_loss > 0 and all(p.grad is not None for p in model.parameters())
    with pytest.raises(ValueError, match="fused=False"):
        DEQGNN(8, 8, 3, edge_dim=8, jac_reg=0.1)


@pytest.mark.parametrize("norm", ["weight", "spectral"])
def test_normalised_cell_is_one_function_through_a_solve(norm):
    """The normalised weights do not move during a forward (the solve and the implicit backward see one f); spectral
    normalisation's u moves once per training step; weight normalisation starts at the plain weights."""
    from revgnn.nn.layers import DEQCell

    torch.manual_seed(0)
    plain = DEQCell(8, 8, fused=False)
    torch.manual_seed(0)
    cell = DEQCell(8, 8, fused=False, norm=norm)
    N, E = 20, 60
    ei, ea = torch.randint(0, N, (2, E)), torch.rand(E, 8)
    z, x = torch.randn(N, 8), torch.randn(N, 8)
    with torch.no_grad():
        first, second = cell(z, x, ei, ea), cell(z, x, ei, ea)
        assert torch.equal(first, second), "the same f at every call"
        if norm == "weight":
            assert torch.allclose(first, plain(z, x, ei, ea), atol=1e-6), "weight norm reparametrises, same f at init"
        else:
            u = [b.clone() for b in cell.buffers()]
            cell.power_step()
            assert any(not torch.equal(a, b) for a, b in zip(u, cell.buffers())), "power_step moves u"
            for _ in range(200):
                cell.power_step()
            for lin in cell._linears():
                assert torch.linalg.matrix_norm(lin.weight, 2) == pytest.approx(1.0, abs=1e-3), "sigma(W / sigma) = 1"


# --- the weight-tied warm-up -------------------------------------------------------------------------------------

def _first_solver_step(warm_up: bool, seed=8):
    from revgnn.data.datasets import load_dataset
    from revgnn.training.config import TrainConfig
    from revgnn.training.loop import fit

    ds = load_dataset("synthetic-proteins", num_nodes=200, num_edges=2000, seed=0)
    cfg = ModelConfig("deq", 1, 16, dropout=0.1)                      # the shipped warm-up
    cfg = cfg if warm_up else cfg.replace(warmup_epochs=0)
    tcfg = TrainConfig(dataset="synthetic-proteins", epochs=cfg.warmup_epochs + 1, eval_every=10, lr=0.01, seed=seed,
                       progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fit(cfg, tcfg, ds)["runs"][0]


def test_warm_up_makes_the_first_solves_converge_where_the_bare_solver_does_not():
    """200-node synthetic-proteins, D = 16, seed 8: from the initial weights the first step's forward and adjoint
    solves stall far above 1e-4 at the 30-iteration cap; after the shipped warm-up (2 epochs of the weight-tied
    network of 8 cells) the first solver step converges both, well inside the cap."""
    from revgnn.nn.presets import WARMUP_EPOCHS, WARMUP_ITERS

    bare = _first_solver_step(False)["history"][0]
    assert bare["deq_phase"] == "solver"
    assert not bare["deq_forward_converged"] and bare["deq_forward_residual"] > 1e-3, "bare: the forward stalls"
    assert not bare["deq_backward_converged"] and bare["deq_backward_residual"] > 1e-3, "bare: the adjoint stalls"
    run = _first_solver_step(True)
    *warm, first = run["history"]
    assert [w["deq_phase"] for w in warm] == ["warmup"] * WARMUP_EPOCHS and warm[0]["deq_forward_solves"] == 0, \
        "the warm-up epochs solve nothing"
    assert first["deq_phase"] == "solver" and run["deq_warmup"] == {
        "epochs": WARMUP_EPOCHS, "iters": WARMUP_ITERS, "switch_epoch": WARMUP_EPOCHS + 1}
    for kind in ("forward", "backward"):
        assert first[f"deq_{kind}_converged"] and first[f"deq_{kind}_iters"] <= 20, \
            f"after the warm-up the {kind} solve converges ({first[f'deq_{kind}_iters']} iterations)"
        assert first[f"deq_{kind}_node_residual"] <= 1e-3, "and its worst node within 10 x tol"


def test_other_models_record_no_deq_settings():
    """A RevGNN run's configuration (which its checkpoints must match) holds none of DEQ-GNN's new settings."""
    from revgnn.nn.presets import DEQ_ONLY_FIELDS
    from revgnn.training.config import TrainConfig, _config_block

    rev = _config_block(ModelConfig("rev", 2, 8), TrainConfig())["model"]
    deq = _config_block(ModelConfig("deq", 1, 8), TrainConfig())["model"]
    assert not set(DEQ_ONLY_FIELDS) & set(rev) and set(DEQ_ONLY_FIELDS) <= set(deq)


def test_cli_flags_reach_the_model_config():
    from revgnn.cli import build_parser
    from revgnn.commands.train import model_config

    args = build_parser().parse_args(
        "train --model deq --channels 16 --solver broyden --broyden-memory 7 --max-iter 40 --backward-max-iter 20 "
        "--tol 1e-5 --stop-mode abs --node-factor 0 --anderson-m 3 --damping 0.8 --warmup-epochs 2 --warmup-iters 3 "
        "--deq-norm spectral --deq-backward phantom --phantom-steps 2 --spectral-iters 5".split())
    cfg = model_config(args)
    assert (cfg.solver, cfg.broyden_memory, cfg.max_iter, cfg.backward_max_iter, cfg.tol, cfg.stop_mode,
            cfg.node_factor, cfg.anderson_m, cfg.damping, cfg.warmup_epochs, cfg.warmup_iters, cfg.deq_norm,
            cfg.deq_backward, cfg.phantom_steps, cfg.spectral_iters) == (
        "broyden", 7, 40, 20, 1e-5, "abs", None, 3, 0.8, 2, 3, "spectral", "phantom", 2, 5)
    with pytest.raises(ValueError, match="--warmup-epochs applies to --model deq only"):
        model_config(build_parser().parse_args("train --model rev --warmup-epochs 2".split()))


@pytest.mark.parametrize("name", ["fig1_auc_vs_memory", "table_112_layers"])
def test_notebooks_default_to_the_package_deq_settings(name):
    """The notebooks' DEQ-GNN parameters start at ModelConfig's defaults (the adjoint cap: max_iter)."""
    import ast
    import json
    from pathlib import Path

    nb = json.loads((Path(__file__).resolve().parents[1] / "notebooks" / f"{name}.ipynb").read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    values = {node.target.id: ast.literal_eval(node.value) for node in ast.parse("".join(cell["source"])).body}
    cfg = ModelConfig("deq", 1, 8)
    expected = {"solver": cfg.solver, "max_iter": cfg.max_iter, "backward_max_iter": cfg.backward_max_iter or
                cfg.max_iter, "tol": cfg.tol, "stop_mode": cfg.stop_mode, "anderson_m": cfg.anderson_m,
                "damping": cfg.damping, "broyden_memory": cfg.broyden_memory, "warmup_epochs": cfg.warmup_epochs,
                "warmup_iters": cfg.warmup_iters}
    assert {k: values[f"deq_{k}"] for k in expected} == expected
