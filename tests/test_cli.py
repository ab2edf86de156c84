"""The command line and its library checks: bad values explained in one line, fast errors, dataset recipes, threads."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from revgnn.nn.presets import ModelConfig
from revgnn.training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--dataset", "synthetic-proteins", "--num-nodes", "200", "--num-edges", "1000", "--layers", "2",
        "--channels", "16", "--epochs", "1", "--no-progress"]


def cli(*argv):
    from revgnn.cli import main
    return main(list(argv))


def parse(*argv):
    from revgnn.cli import build_parser
    return build_parser().parse_args(["train", *argv])


@pytest.mark.parametrize("argv, message", [
    (["--clip", "-1"], "clip_grad_norm must be > 0"),
    (["--groups", "0"], "num_groups must be an integer >= 1"),
    (["--groups", "1"], "num_groups must be >= 2"),
    (["--device", "tpu"], "unknown device 'tpu'"),
    (["--device", "cuda:99"], "cuda"),
    (["--out", "{tmp}/afile"], "is a file, not a folder"),
    (["--out", "{tmp}/afile/sub"], "is a file, not a folder"),
    (["--root", "{tmp}/afile"], "is a file, not a folder"),
    (["--lr", "inf"], "lr must be a finite number"),
    (["--lr", "nan"], "lr must be a finite number"),
    (["--seed", "1e20"], "invalid int value"),
    (["--seed", "-1"], "seed must be an integer"),
    (["--seed", "100000000000000000000"], "seed must be an integer"),
    (["--eval-parts", "201"], "exceeds the 200 nodes"),
    (["--test-views", "2", "--test-parts", "1000"], "exceeds the 200 nodes"),
    (["--checkpoint-every", "-1"], "checkpoint_every must be >= 0"),
    (["--weight-decay", "-1"], "weight_decay must be a finite number >= 0"),
    (["--model", "deq", "--layers", "4"], "--layers does not apply to --model deq"),
    (["--epochs", "0"], "epochs must be >= 1"),
    (["--runs", "0"], "runs must be >= 1"),
    (["--threads", "0"], "threads must be an integer from 1"),
    (["--threads", str(10**20)], "threads must be an integer from 1 to 1024"),
    (["--dropout", "nan"], "dropout must be in [0, 1)"),
    (["--channels", "0"], "hidden_channels must be an integer >= 1"),
    (["--layers", "0"], "num_layers must be an integer >= 1"),
])
def test_bad_value_is_one_line_exit_2_and_creates_nothing(tmp_path, capsys, argv, message):
    (tmp_path / "afile").write_text("not a folder")
    out = tmp_path / "out"
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    try:
        rc = cli("train", *TINY, "--out", str(out), *argv)
    except SystemExit as stop:  # argparse's own errors
        rc = stop.code
    err = capsys.readouterr().err.strip()
    assert rc == 2, f"bad input exits with status 2 ({err})"
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err, f"one clear line: {err}"
    assert not out.exists(), "nothing is created for bad input"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_a_gpu_says_so():
    with pytest.raises(ValueError, match="sees no CUDA GPU; use --device cpu"):
        TrainConfig(device="cuda")


@pytest.mark.parametrize("kwargs, message", [
    (dict(clip_grad_norm=-1.0), "clip_grad_norm"), (dict(clip_grad_norm=float("nan")), "clip_grad_norm"),
    (dict(lr=float("inf")), "lr"), (dict(weight_decay=-1e-4), "weight_decay"), (dict(seed=-3), "seed"),
    (dict(seed=2**32 - 1, runs=2), "seed"), (dict(checkpoint_every=-1), "checkpoint_every"),
    (dict(device="tpu"), "device"), (dict(threads=0), "threads"),
])
def test_train_config_refuses_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_groups=0), "num_groups"), (dict(model="rev", num_groups=1), "num_groups must be >= 2"),
    (dict(hidden_channels=10, num_groups=3), "not divisible"), (dict(dropout=1.0), "dropout"),
    (dict(num_layers=0), "num_layers"), (dict(model="transformer"), "unknown model"),
])
def test_model_config_refuses_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**kwargs)
    assert ModelConfig("res", hidden_channels=10, num_groups=3).num_groups == 3, "groups only matter for RevGNN"
    with pytest.raises(ValueError, match=message):
        ModelConfig().replace(**kwargs)


def test_parser_and_argument_errors_import_no_torch():
    code = ("import sys\nfrom revgnn.cli import build_parser\np = build_parser()\n"
            "try:\n    p.parse_args(['train', '--seed', 'x'])\nexcept SystemExit as e:\n    assert e.code == 2\n"
            "p.parse_args(['train', '--dataset', 'cora'])\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy', 'torch_geometric')))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]", f"building the parser imported {res.stdout.strip()}"
    assert len(res.stderr.strip().splitlines()) == 1, f"an argument error is one line: {res.stderr}"


@pytest.mark.parametrize("dataset", ["cora", "planetoid:CiteSeer", "planetoid:pubmed"])
def test_planetoid_datasets_get_their_recipe_unless_a_flag_says_otherwise(dataset):
    from revgnn.commands.train import model_config, train_config

    args = parse("--dataset", dataset, "--layers", "4", "--channels", "64")
    tcfg, mcfg = train_config(args), model_config(args)
    assert (tcfg.lr, tcfg.weight_decay, mcfg.dropout, tcfg.epochs, mcfg.aggr) == (0.005, 5e-4, 0.6, 200, "mean"), \
        "the GAT recipe, with mean aggregation"
    assert tcfg.recipe == {"name": "planetoid", "dropout": 0.6, "lr": 0.005, "weight_decay": 5e-4, "epochs": 200,
                           "aggr": "mean"}
    args = parse("--dataset", dataset, "--lr", "0.01", "--dropout", "0", "--weight-decay", "0", "--epochs", "7",
                 "--aggr", "max")
    tcfg, mcfg = train_config(args), model_config(args)
    assert (tcfg.lr, tcfg.weight_decay, mcfg.dropout, tcfg.epochs, mcfg.aggr) == (0.01, 0.0, 0.0, 7, "max"), \
        "explicit flags win"
    assert tcfg.recipe == {}, "nothing was taken from the recipe"


def test_other_datasets_keep_the_global_defaults_and_ppi_its_label_reuse():
    from revgnn.commands.train import model_config, train_config

    tcfg, mcfg = train_config(parse()), model_config(parse())
    assert (tcfg.lr, tcfg.weight_decay, tcfg.epochs, tcfg.clip_grad_norm, mcfg.dropout) == (1e-3, 0.0, 50, 1.0, 0.1)
    assert tcfg.recipe == {}
    assert model_config(parse("--preset", "revgnn-wide")).dropout == 0.2, "no recipe: the preset's dropout"
    assert model_config(parse("--preset", "revgnn-wide", "--dataset", "cora")).dropout == 0.6, "recipe > preset"
    ppi = train_config(parse("--dataset", "ppi"))
    assert ppi.label_reuse == 0.5 and ppi.recipe == {"name": "ppi", "label_reuse": 0.5}
    assert train_config(parse("--dataset", "ppi", "--label-reuse", "0")).label_reuse == 0.0
    assert train_config(parse("--clip", "0")).clip_grad_norm is None, "--clip 0 disables clipping"


def test_synthetic_graph_flags_reach_the_generator():
    from revgnn.commands.train import train_config

    tcfg = train_config(parse("--num-nodes", "400", "--num-edges", "4000", "--data-seed", "3", "--max-hops", "12",
                              "--pathway-length", "30"))
    assert tcfg.dataset_kwargs == {"num_nodes": 400, "num_edges": 4000, "seed": 3, "max_hops": 12,
                                   "pathway_length": 30}
    from revgnn.data.datasets import load_dataset

    ds = load_dataset(tcfg.dataset, **tcfg.dataset_kwargs)
    assert sorted(set(ds.data.hop.tolist())) == list(range(1, 13)), "task radii 1..max_hops"


def test_recipe_and_threads_are_in_the_run_record(tmp_path):
    out = tmp_path / "o"
    assert cli("train", "--dataset", "cora", "--layers", "1", "--channels", "8", "--epochs", "1", "--no-progress",
               "--root", str(tmp_path / "data"), "--out", str(out), "--threads", "1") == 0
    rec = json.loads((out / "run-seed0" / "record.json").read_text())
    assert rec["recipe"]["name"] == "planetoid" and rec["recipe"]["lr"] == 0.005
    assert rec["config"]["train"]["lr"] == 0.005 and rec["config"]["model"]["dropout"] == 0.6
    assert rec["config"]["train"]["epochs"] == 1, "--epochs beat the recipe's 200"
    assert (rec["torch_threads"], rec["threads_source"]) == (1, "argument")


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_thread_policy_defaults_to_one_and_respects_the_user(monkeypatch, restore_threads):
    from revgnn.training import runtime

    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(runtime, "_STARTUP_THREADS", 2)  # as torch starts on a 2-core machine
    monkeypatch.setattr(runtime, "_set_by_policy", None)
    torch.set_num_threads(2)
    assert runtime.apply_thread_policy() == {"torch_threads": 1, "threads_source": "revgnn default"}
    assert torch.get_num_threads() == 1
    assert runtime.apply_thread_policy()["threads_source"] == "revgnn default", "idempotent"
    torch.set_num_threads(3)  # the user's own choice after importing revgnn
    assert runtime.apply_thread_policy() == {"torch_threads": 3, "threads_source": "torch.set_num_threads"}
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    torch.set_num_threads(2)
    assert runtime.apply_thread_policy() == {"torch_threads": 2, "threads_source": "OMP_NUM_THREADS"}
    assert runtime.apply_thread_policy(3) == {"torch_threads": 3, "threads_source": "argument"}
    assert runtime.thread_info() == {"torch_threads": 3, "threads_source": "argument"}
