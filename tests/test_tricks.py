"""The ogbn-arxiv and ogbn-products protocols (revgnn.training.tricks): the log-CE loss, self-distillation, warm-up,
label iterations, the epoch of lowest validation loss, and `revgnn train --model revgat / revsage` end to end on
fabricated ogbn-arxiv and ogbn-products copies (offline), teacher to student."""
import json
import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from revgnn.cli import main
from revgnn.training.tricks import kd_loss, label_iterations, log_ce, warmup_lr


def test_log_ce_is_the_official_formula():
    torch.manual_seed(0)
    logits, y = torch.randn(7, 5, dtype=torch.float64), torch.randint(0, 5, (7,))
    eps = 1 - math.log(2)
    ce = F.cross_entropy(logits, y, reduction="none")
    assert torch.allclose(log_ce(logits, y), (torch.log(eps + ce) - math.log(eps)).mean()), "log(eps + CE) - log eps"


def test_kd_loss_equals_torch_kldivloss_mean_times_t_squared():
    torch.manual_seed(0)
    z, zt, t = torch.randn(6, 4, dtype=torch.float64), torch.randn(6, 4, dtype=torch.float64), 0.7
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns that 'mean' averages over every element: the official choice
        ref = torch.nn.KLDivLoss()(F.log_softmax(z / t, 1), F.softmax(zt / t, 1)) * t * t
    assert torch.allclose(kd_loss(z, zt, t), ref), "the official loss_kd_only"


def test_warmup_is_linear_over_the_first_epochs():
    assert [warmup_lr(0.002, e, 50) for e in (1, 25, 50, 51, 2000)] == [0.002 / 50, 0.001, 0.002, 0.002, 0.002]
    assert warmup_lr(0.01, 1, 0) == 0.01, "no warm-up"


def test_label_iterations_feed_the_softmax_back_and_keep_one_graph():
    calls = []
    w = torch.randn(4, 3, requires_grad=True)

    def forward(x):
        calls.append(x.clone())
        return x @ w

    x = torch.zeros(5, 4)
    x[:, 0] = 1.0
    rows = torch.tensor([True, False, True, False, False])
    out = label_iterations(forward, x, rows, slice(1, 4), iters=1, grad=True)
    assert len(calls) == 2, "one pass without gradient, then the pass that trains"
    first = calls[0] @ w.detach()
    torch.testing.assert_close(calls[1][rows, 1:], F.softmax(first[rows], -1),
                               msg="predictions fill the label channels")
    assert torch.equal(calls[1][~rows], x[~rows]), "the other nodes keep their input"
    assert out.requires_grad and torch.equal(x, calls[0]), "the caller's input is not changed"


def train(*argv, capsys=None):
    rc = main(["train", "--no-progress", "--json", *argv])
    out = capsys.readouterr() if capsys else None
    return rc, out


def test_revgat_on_arxiv_takes_the_official_recipe(tiny_arxiv_root, tmp_path, capsys):
    out = tmp_path / "teacher"
    rc, io = train("--model", "revgat", "--dataset", "ogbn-arxiv", "--root", str(tiny_arxiv_root), "--layers", "3",
                   "--channels", "4", "--heads", "2", "--epochs", "3", "--save-logits", "--out", str(out),
                   capsys=capsys)
    assert rc == 0, io.err
    record = json.loads((out / "run-seed0" / "record.json").read_text())
    train_cfg, model_cfg = record["config"]["train"], record["config"]["model"]
    assert {k: train_cfg[k] for k in ("optimizer", "loss", "label_iters", "label_flag", "select", "lr_warmup_epochs")} \
        == {"optimizer": "rmsprop", "loss": "log-ce", "label_iters": 1, "label_flag": False,
            "select": "valid_loss", "lr_warmup_epochs": 50}, "the official RevGAT protocol"
    assert train_cfg["label_reuse"] == 0.5 and train_cfg["clip_grad_norm"] is None and train_cfg["lr"] == 0.002
    assert model_cfg["in_channels"] == 128 + 40, "128 features and 40 label channels, no flag channel"
    assert model_cfg["heads"] == 2 and model_cfg["edge_drop"] == 0.3 and model_cfg["input_dropout"] == 0.25
    assert all("valid_loss" in h for h in record["history"]), "validation loss recorded every epoch"
    best = min(record["history"], key=lambda h: h["valid_loss"])
    assert record["best"]["epoch"] == best["epoch"], "the reported epoch has the lowest validation loss"
    logits = torch.load(out / "run-seed0" / "best_logits.pt", weights_only=True)
    assert logits.shape == (60, 40) and bool(logits.isfinite().all()), "the teacher's logits are saved"

    rc, io = train("--model", "revgat", "--dataset", "ogbn-arxiv", "--root", str(tiny_arxiv_root), "--layers", "3",
                   "--channels", "4", "--heads", "2", "--epochs", "3", "--teacher", str(out), "--kd-alpha", "0.95",
                   "--kd-temperature", "0.7", capsys=capsys)
    assert rc == 0, io.err
    summary = json.loads(io.out.strip().splitlines()[-1])
    assert 0.0 <= summary["test"] <= 1.0, "the self-distilled student trains"

    rc, io = train("--model", "revgat", "--dataset", "ogbn-arxiv", "--root", str(tiny_arxiv_root), "--layers", "3",
                   "--channels", "4", "--epochs", "2", "--teacher", str(tmp_path), "--kd-alpha", "0.9",
                   capsys=capsys)
    assert rc == 2 and "best_logits.pt does not exist" in io.err and "--save-logits" in io.err, io.err
    assert len(io.err.strip().splitlines()) == 1, "one line"


def test_revsage_on_products_trains_on_random_parts_and_evaluates_the_whole_graph(tiny_products_root, capsys):
    rc, io = train("--preset", "revgnn-7-products", "--dataset", "ogbn-products", "--root", str(tiny_products_root),
                   "--layers", "2", "--channels", "16", "--epochs", "2", capsys=capsys)
    assert rc == 0, io.err
    from revgnn.commands.train import RECIPES
    assert RECIPES["ogbn-products"] == {"epochs": 1000, "lr": 0.003, "clip": 0.0}, "PyG's examples/rev_gnn.py"
    from revgnn.nn.presets import get_preset
    from revgnn.training.config import TrainConfig
    from revgnn.training.loop import fit
    summary = fit(get_preset("revgnn-7-products").replace(num_layers=2, hidden_channels=16),
                  TrainConfig(dataset="ogbn-products", root=str(tiny_products_root), epochs=1, progress=False))
    run = summary["runs"][0]
    assert (run["train_parts"], run["eval_parts"]) == (10, 1), "10 random parts, full-graph evaluation"


def test_revgat_and_revsage_train_on_cora_with_their_small_graph_recipes(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("REVGNN_DATA", str(tmp_path))
    for model in ("revgat", "revsage"):
        rc, io = train("--model", model, "--dataset", "cora", "--epochs", "3", capsys=capsys)
        assert rc == 0, io.err
        assert json.loads(io.out.strip().splitlines()[-1])["params"] > 0


@pytest.mark.parametrize("argv,message", [
    (["--label-iters", "1"], "label iterations fill the label channels"),
    (["--kd-alpha", "0.5"], "pass --teacher DIR"),
    (["--teacher", "/nonexistent-folder"], "is not a folder"),
    (["--model", "revgat", "--layers", "2"], "num_layers >= 3"),
])
def test_bad_trick_settings_are_one_line(argv, message, capsys):
    rc, io = train("--dataset", "synthetic-proteins", "--num-nodes", "200", "--num-edges", "1000", "--epochs", "1",
                   *argv, capsys=capsys)
    assert rc == 2 and message in io.err and len(io.err.strip().splitlines()) == 1, io.err


def test_revgat_refuses_edge_features_with_the_fix(capsys):
    rc, io = train("--model", "revgat", "--dataset", "synthetic-proteins", "--num-nodes", "200", "--num-edges",
                   "1000", "--epochs", "1", capsys=capsys)
    assert rc == 2 and "reads node features only" in io.err, io.err


def test_recorded_configurations_of_other_runs_are_unchanged():
    from revgnn.nn.presets import EXTRA_DEFAULTS, ModelConfig
    from revgnn.training.config import TRICK_DEFAULTS, TrainConfig, _config_block

    block = _config_block(ModelConfig(), TrainConfig())
    assert not set(EXTRA_DEFAULTS) & set(block["model"]), "RevGAT's fields are left out at their defaults"
    assert not set(TRICK_DEFAULTS) & set(block["train"]), "the tricks' settings are left out at their defaults"
    tricked = _config_block(ModelConfig(heads=3), TrainConfig(optimizer="rmsprop", label_reuse=0.5, label_iters=1))
    assert tricked["model"]["heads"] == 3 and tricked["train"]["optimizer"] == "rmsprop"
    assert tricked["train"]["label_iters"] == 1, "a setting that changes the numbers is recorded"


def test_revgat_small_graph_recipe_reaches_the_model_and_flags_override_it():
    from revgnn.cli import build_parser
    from revgnn.commands.train import model_config
    from revgnn.nn.presets import build_model

    def built(*flags):
        cfg = model_config(build_parser().parse_args(["train", "--model", "revgat", "--dataset", "cora", *flags]))
        return build_model(cfg.replace(in_channels=1433, out_channels=7))  # Cora's widths

    model = built()
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules()), "the recipe drops BatchNorm"
    convs = [model.first, model.last, *(c.conv for layer in model.stack.layers for c in layer.convs)]
    assert all(c.attention_dropout == 0.6 and c.att_dst is not None and not c.symmetric_norm for c in convs), \
        "every layer has GAT's attention: dropout 0.6, the destination term, no degree normalisation"
    assert model.stack.layers[0].rng == "replay", "attention dropout inside the reversible blocks is replayed"
    model = built("--batch-norm", "--attention-dropout", "0", "--no-attention-dst", "--symmetric-norm")
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules()), "--batch-norm brings them back"
    assert model.first.attention_dropout == 0 and model.first.att_dst is None and model.first.symmetric_norm
    assert model.stack.layers[0].rng == "none", "nothing random inside the blocks: no replay"
