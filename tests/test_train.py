"""Training protocol, records, resume after kill -9 and the command line (Li et al., ICML 2021 protocol)."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from revgnn.data import load_dataset
from revgnn.presets import ModelConfig, build_model
from revgnn.train import TrainConfig, _label_features, adapt_model_config, fit, predict

TINY = {"num_nodes": 300, "num_edges": 3000}
ROOT = Path(__file__).resolve().parents[1]


def tiny_fit(**train):
    train = {"epochs": 3, "lr": 0.01, **train}
    cfg = TrainConfig(dataset="synthetic-proteins", dataset_kwargs=TINY, progress=False, **train)
    return fit(ModelConfig("rev", num_layers=2, hidden_channels=16, dropout=0.1), cfg)


def cli(*argv):
    from revgnn.cli import main
    return main(list(argv))


def test_same_seed_same_numbers():
    a, b = tiny_fit(seed=5, train_parts=2), tiny_fit(seed=5, train_parts=2)
    assert a["runs"][0]["history"] == b["runs"][0]["history"], "same seed, same numbers (CPU)"
    c = tiny_fit(seed=6, train_parts=2)
    assert c["runs"][0]["history"] != a["runs"][0]["history"], "another seed, other numbers"


def test_runs_report_mean_and_std_of_test_at_best_valid(tmp_path):
    s = tiny_fit(runs=2, out_dir=str(tmp_path))
    tests = [r["best"]["test"] for r in s["runs"]]
    assert s["seeds"] == [0, 1] and s["test"] == pytest.approx(sum(tests) / 2), "mean over seeded runs"
    assert s["test_std"] > 0, "std over runs"
    for r in s["runs"]:
        best = max((h for h in r["history"] if "valid" in h), key=lambda h: h["valid"])
        assert r["best"]["test"] == best["test"], "test is read at the best validation epoch"
    rec = json.loads((tmp_path / "run-seed0" / "record.json").read_text())
    for key in ("config", "seed", "history", "best", "final", "params", "peak_rss_bytes", "wall_time_s",
                "git_revision", "versions", "device"):
        assert key in rec, f"the run record holds {key}"
    assert json.loads((tmp_path / "summary.json").read_text())["test"] == s["test"], "summary written"
    assert not list(tmp_path.rglob("*.tmp*")), "no temporary files left behind"


def test_multiview_evaluation_averages_partition_logits():
    ds = load_dataset("synthetic-proteins", **TINY)
    model = build_model(adapt_model_config(ModelConfig("rev", 2, 16), ds, TrainConfig()))
    full = predict(model, ds, num_parts=1)
    again = predict(model, ds, num_parts=1, num_views=5)
    assert torch.allclose(full, again), "full-graph evaluation needs one view"
    g = torch.Generator().manual_seed(0)
    views = [predict(model, ds, 3, 1, g) for _ in range(3)]
    assert not torch.allclose(views[0], views[1]) and not torch.allclose(views[0], full), "views are new partitions"
    mean = predict(model, ds, 3, 3, torch.Generator().manual_seed(0))
    assert torch.allclose(mean, sum(views) / 3, atol=1e-6), "multi-view = mean of single-view logits"


def test_final_multiview_test_scores_the_best_weights():
    s = tiny_fit(epochs=8, lr=0.05, eval_every=1, test_views=3)  # eval_parts = test_parts = 1: full graph
    run = s["runs"][0]
    assert run["best"]["epoch"] < 8, "setting check: the best epoch is not the last, so restoring matters"
    mv = run["multiview"]
    assert mv["epoch"] == run["best"]["epoch"] and (mv["views"], mv["parts"]) == (1, 1), "full graph: one view"
    assert mv["test"] == pytest.approx(run["best"]["test"], abs=1e-6), "the best weights are restored"
    assert mv["valid"] == pytest.approx(run["best"]["valid"], abs=1e-6)
    assert mv["test"] != pytest.approx(run["final"]["test"], abs=1e-6), "not the last epoch's weights"
    assert s["test_multiview"] == mv["test"] and s["test_multiview_std"] == 0.0, "summarised over runs"
    parts = tiny_fit(epochs=4, test_views=3, test_parts=3)["runs"][0]["multiview"]
    whole = tiny_fit(epochs=4, test_views=3)["runs"][0]["multiview"]
    assert (parts["views"], parts["parts"]) == (3, 3), "paper-style views of a random partition"
    assert parts["epoch"] == whole["epoch"] and parts["test"] != whole["test"], \
        "the same weights score differently on 3-part views than on the full graph: the views are used"
    assert "test_multiview" not in tiny_fit(epochs=2), "off by default"
    with pytest.raises(ValueError, match="test_views"):
        TrainConfig(test_views=-1)


def test_label_reuse_never_shows_valid_or_test_labels(monkeypatch):
    ds = load_dataset("ppi")
    import revgnn.train as train_module

    shown = []
    real = train_module._label_features
    monkeypatch.setattr(train_module, "_label_features", lambda d, known: shown.append(known) or real(d, known))
    fit(ModelConfig("rev", 2, 16), TrainConfig(dataset="ppi", epochs=2, label_reuse=0.5, test_views=2,
                                               progress=False), ds)
    train = set(ds.split["train"].tolist())
    assert len(shown) >= 3, "label features were built for training epochs and for evaluation"
    assert all(set(k.tolist()) <= train for k in shown), "only training nodes ever show their labels"
    assert any(len(k) < len(train) for k in shown), "in training, part of the training labels stay hidden"
    feat = _label_features(ds, ds.split["train"])
    hidden = torch.cat([ds.split["valid"], ds.split["test"]])
    assert bool((feat[hidden] == 0).all()), "valid/test rows carry no label information"
    assert torch.equal(feat[ds.split["train"], :50], ds.data.y[ds.split["train"]].float()), "train labels shown"


def test_cli_json_last_line(tmp_path, capsys):
    rc = cli("train", "--model", "rev", "--layers", "2", "--channels", "16", "--dataset", "synthetic-proteins",
             "--num-nodes", "300", "--num-edges", "3000", "--epochs", "2", "--json", "--no-progress",
             "--out", str(tmp_path / "o"))
    assert rc == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    obj = json.loads(last)
    assert {"dataset", "metric", "valid", "test", "params"} <= set(obj), "--json prints the summary last"


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "nowhere"], "unknown dataset"),
    (["--preset", "revgnn-9000"], "unknown preset"),
    (["--channels", "15", "--groups", "2"], "not divisible"),
    (["--dataset", "ogbn-proteins", "--root", "{tmp}/empty"], "ogbn-proteins: missing"),
])
def test_cli_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    rc = cli("train", "--epochs", "1", "--no-progress", "--out", str(out), *argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2, "bad input exits with status 2"
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err, "one clear line"
    assert not out.exists(), "nothing is written for bad input"


def _train_cmd(out):
    return [sys.executable, "-m", "revgnn.cli", "train", "--model", "rev", "--layers", "3", "--channels", "32",
            "--dataset", "synthetic-proteins", "--num-nodes", "1500", "--num-edges", "30000", "--train-parts", "2",
            "--epochs", "12", "--lr", "0.01", "--checkpoint-every", "2", "--test-views", "2", "--test-parts", "2",
            "--out", str(out), "--resume", "--json", "--no-progress"]


@pytest.mark.slow
def test_kill_9_and_restart_ends_with_the_same_metrics(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ref = subprocess.run(_train_cmd(tmp_path / "ref"), capture_output=True, text=True, env=env, cwd=ROOT)
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
    ckpt = out / "run-seed0" / "checkpoint.pt"
    deadline = time.time() + 120
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert ckpt.exists(), "a checkpoint was written before the kill"
    time.sleep(0.3)  # kill mid-epoch, after a checkpoint
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run was killed before it finished (else the test measures nothing)"
    again = subprocess.run(_train_cmd(out), capture_output=True, text=True, env=env, cwd=ROOT)
    assert again.returncode == 0, again.stderr
    assert re.search(r"resumed .* at epoch [1-9]", again.stderr), "the restart continued from the checkpoint"
    a = json.loads(ref.stdout.strip().splitlines()[-1])
    b = json.loads(again.stdout.strip().splitlines()[-1])
    assert (a["valid"], a["test"]) == (b["valid"], b["test"]), "resumed run ends with the same metrics"
    assert a["test_multiview"] == b["test_multiview"], "the best weights survive the kill in the checkpoint"
    ra = json.loads((tmp_path / "ref" / "run-seed0" / "record.json").read_text())
    rb = json.loads((out / "run-seed0" / "record.json").read_text())
    assert ra["history"] == rb["history"], "every epoch's loss and metrics match the uninterrupted run"
    assert not ckpt.exists(), "the checkpoint is removed once the record is written"
