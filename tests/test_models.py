"""Every model builds, runs forward/backward on an ogbn-proteins-shaped toy graph, and rejects bad input."""
import warnings

import pytest
import torch

from revgnn import ConvergenceWarning, ModelConfig, ResGNN, build_model, count_parameters


def toy(N=40, E=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, N, (2, E), generator=g)
    ea = torch.rand(E, 8, generator=g)
    sp = torch.randint(0, 8, (N,), generator=g)
    x = torch.zeros(N, 8).index_add_(0, ei[0], ea)  # summed incident edge features, as on ogbn-proteins
    return x, ei, ea, sp


@pytest.mark.parametrize("kind", ["res", "rev", "wt-res", "wt-rev", "deq"])
def test_every_model_trains_one_step(kind):
    x, ei, ea, sp = toy()
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind, num_layers=4, hidden_channels=16, dropout=0.1, max_iter=15, tol=1e-3))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    y = torch.randint(0, 2, (40, 112)).float()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x, ei, ea, sp), y)
        loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"{kind}: every parameter receives a gradient (missing {missing})"
    opt.step()
    assert torch.isfinite(loss)


def test_checkpointed_resgnn_has_the_same_gradients():
    x, ei, ea, sp = toy()
    torch.manual_seed(0)
    model = ResGNN(8, 16, 112, 6, dropout=0.2, edge_dim=8, num_species=8)
    out = []
    for ckpt in (False, True):
        model.checkpoint_grads = ckpt
        torch.manual_seed(3)
        loss = model(x, ei, ea, sp).pow(2).sum()
        out.append(torch.autograd.grad(loss, list(model.parameters())))
    for a, b in zip(*out):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-5), "checkpointing changes memory, not gradients"


def test_weight_tied_resgnn_reuses_one_block():
    model = build_model(ModelConfig("wt-res", num_layers=6, hidden_channels=16))
    assert all(b is model.blocks[1] for b in model.blocks[1:]) and model.blocks[0] is not model.blocks[1]


def test_eval_mode_is_deterministic_and_grad_free_forward_matches():
    x, ei, ea, sp = toy()
    model = build_model(ModelConfig("rev", num_layers=5, hidden_channels=16, dropout=0.3)).eval()
    with torch.no_grad():
        a = model(x, ei, ea, sp)
    b = model(x, ei, ea, sp)
    assert torch.allclose(a, b, atol=1e-6), "no_grad and reversible forward agree in eval mode"


def test_graph_without_edge_features_or_species():
    N = 30
    ei = torch.randint(0, N, (2, 90))
    model = build_model(ModelConfig("rev", num_layers=3, hidden_channels=8, in_channels=0, out_channels=4,
                                    edge_dim=None, num_species=None, num_embeddings=N, embedding_dim=8))
    out = model(None, ei, n_id=torch.arange(N))
    assert out.shape == (N, 4)
    assert count_parameters(model) > N * 8


@pytest.mark.parametrize("call,match", [
    (lambda m, x, ei, ea, sp: m(x, ei, ea, None), "species"),
    (lambda m, x, ei, ea, sp: m(x, ei, None, sp), "edge_attr"),
])
def test_missing_inputs_are_named(call, match):
    x, ei, ea, sp = toy()
    model = build_model(ModelConfig("rev", num_layers=2, hidden_channels=8))
    with pytest.raises(ValueError, match=match):
        call(model, x, ei, ea, sp)


@pytest.mark.parametrize("cfg,match", [
    (dict(model="transformer"), "unknown model 'transformer'"),
    (dict(model="rev", hidden_channels=9, num_groups=2), "not divisible"),
    (dict(model="res", aggr="median"), "aggr must be one of"),
    (dict(model="deq", solver="newton"), "unknown solver"),
    (dict(model="rev", in_channels=0, num_species=None), "no node input"),
])
def test_bad_config_errors(cfg, match):
    with pytest.raises(ValueError, match=match):
        build_model(ModelConfig(**({"num_layers": 2, "hidden_channels": 8} | cfg)))


@pytest.mark.parametrize("kind", ["res", "rev", "deq"])
@pytest.mark.parametrize("shape", [(1, 8), (8,), (199, 8)])
def test_edge_attr_without_one_row_per_edge_is_rejected(kind, shape):
    """An edge_attr of shape (1, F), (F,) or (E-1, F) would broadcast or misalign silently; it is refused."""
    x, ei, ea, sp = toy()
    model = build_model(ModelConfig(kind, num_layers=2, hidden_channels=8))
    with pytest.raises(ValueError, match=r"one row per edge, E=200"):
        model(x, ei, ea[: shape[0]] if len(shape) == 2 else ea[0], sp)
