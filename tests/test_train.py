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

from revgnn.data.datasets import load_dataset
from revgnn.nn.presets import ModelConfig, build_model
from revgnn.training.config import TrainConfig, adapt_model_config
from revgnn.training.loop import fit
from revgnn.training.protocol import _label_features, predict

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
    import revgnn.training.protocol as protocol

    shown = []
    real = protocol._label_features
    monkeypatch.setattr(protocol, "_label_features",
                        lambda d, known, *flag: shown.append(known) or real(d, known, *flag))
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
    final = torch.load(ckpt, weights_only=True)
    assert final["state"]["epoch"] == 12, "the final checkpoint is kept (--keep-checkpoint is on by default)"



# --- issue 10: resume, disk, shared output folders, interrupts -------------------------------------------------


def _ckpt_fit(out, **train):
    return tiny_fit(epochs=6, checkpoint_every=2, out_dir=str(out), **train)


@pytest.mark.parametrize("content", [b"", b"garbage, not a checkpoint", "truncate"])
def test_resume_from_an_unreadable_checkpoint_says_what_to_do(tmp_path, capsys, content):
    import revgnn.training.checkpoints as checkpoints

    out = tmp_path / "o"
    with pytest.MonkeyPatch.context() as mp:  # stop after the epoch-2 checkpoint, as a kill would
        real = checkpoints.atomic_torch_save
        mp.setattr(checkpoints, "atomic_torch_save", lambda obj, path: (real(obj, path), 1 / 0))
        with pytest.raises(ZeroDivisionError):
            _ckpt_fit(out)
    ckpt = out / "run-seed0" / "checkpoint.pt"
    good = ckpt.read_bytes()
    ckpt.write_bytes(good[: len(good) // 2] if content == "truncate" else content)
    with pytest.raises(ValueError, match=r"checkpoint .*checkpoint.pt is unreadable .*delete it to restart that run "
                                         r"from scratch \(or pass --restart\), or drop --resume"):
        _ckpt_fit(out, resume=True)
    rc = cli("train", "--model", "rev", "--layers", "2", "--channels", "16", "--num-nodes", "300", "--num-edges",
             "3000", "--epochs", "6", "--lr", "0.01", "--checkpoint-every", "2", "--no-progress", "--out", str(out),
             "--resume")
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "unreadable" in err and "Traceback" not in err, err
    assert ckpt.read_bytes() != good, "the damaged file is left for the user to inspect"


@pytest.mark.parametrize("content", ["", "{\"config\": ", "[1, 2]", "\xff\xfe"])
def test_resume_over_an_unreadable_record_says_what_to_do(tmp_path, content):
    out = tmp_path / "o"
    tiny_fit(out_dir=str(out))
    (out / "run-seed0" / "record.json").write_text(content, encoding="latin-1")
    with pytest.raises(ValueError, match=r"run record .*record.json is (unreadable|not a revgnn run record).*delete "
                                         r"it to rerun that seed, or drop --resume"):
        tiny_fit(out_dir=str(out), resume=True)


def test_a_full_disk_is_one_clear_error_and_leaves_no_partial_file(tmp_path, monkeypatch, capsys):
    import errno

    import revgnn.training.records as records

    def full(obj, f):
        f.write(b"x" * 100)  # part of the file is written, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(records.torch, "save", full)
    out = tmp_path / "o"
    with pytest.raises(OSError, match=r"cannot write .*checkpoint.pt \(No space left on device\); free disk space"):
        _ckpt_fit(out)
    assert not list(out.rglob("*.tmp*")), "the partial temporary file is removed"
    rc = cli("train", "--layers", "2", "--channels", "16", "--num-nodes", "300", "--num-edges", "3000",
             "--epochs", "3", "--checkpoint-every", "1", "--no-progress", "--out", str(tmp_path / "p"))
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "No space left on device" in err, err
    assert not list((tmp_path / "p").rglob("*.tmp*"))


def test_temporary_files_of_killed_runs_are_removed_at_the_next_start(tmp_path):
    out = tmp_path / "o"
    run = out / "run-seed0"
    run.mkdir(parents=True)
    dead = 2**22 + 12345  # above Linux's largest pid_max: no such process
    stale = [run / f".checkpoint.pt.revgnn-{dead}.tmp", run / f".record.json.revgnn-{dead}.tmp",
             out / f".summary.json.revgnn-{dead}.tmp"]
    live = run / f".checkpoint.pt.revgnn-{os.getppid()}.tmp"  # a live process's file is not ours to delete
    others = [run / "notes.txt", run / ".checkpoint.pt.revgnn-X.tmp", out / f".data.csv.revgnn-{dead}.tmp",
              # the temporary-file pattern of other programs (and of revgnn before issue 19), without its run token
              run / f".checkpoint.pt.tmp{dead}", out / f".summary.json.tmp{dead}"]
    for p in [*stale, live, *others]:
        p.write_text("x")
    tiny_fit(out_dir=str(out), resume=True)
    assert not any(p.exists() for p in stale), "stale temporary files are removed"
    assert live.exists() and all(p.read_text() == "x" for p in others), "nothing else is touched"


def test_a_second_configuration_in_the_same_folder_is_refused(tmp_path):
    out = tmp_path / "o"
    first = tiny_fit(out_dir=str(out))
    with pytest.raises(ValueError, match=r"holds runs of another configuration .*train.lr"):
        tiny_fit(out_dir=str(out), lr=0.02)
    rec = json.loads((out / "run-seed0" / "record.json").read_text())
    assert rec["best"] == first["runs"][0]["best"], "the first run's record is intact"
    tiny_fit(out_dir=str(out), seed=1)  # another seed of the same configuration shares the folder
    assert (out / "run-seed1" / "record.json").is_file()
    (out / "config.json").unlink()  # a folder written before config.json existed: its records are compared
    with pytest.raises(ValueError, match="another configuration"):
        tiny_fit(out_dir=str(out), epochs=4)


HOLD_LOCK = ("import sys, time\nfrom pathlib import Path\nfrom revgnn.training.runtime import output_lock\n"
             "with output_lock(Path(sys.argv[1])):\n    print('held', flush=True)\n    time.sleep(60)\n")


def test_a_live_lock_is_refused_and_a_stale_one_taken_over(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    lock = out / ".revgnn.lock"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(out)], stdout=subprocess.PIPE, text=True,
                              env=env)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ValueError, match=rf"in use by process {holder.pid} \(.*python.*\), which holds"):
            tiny_fit(out_dir=str(out))
        assert lock.read_text().split()[0] == str(holder.pid), "another run's lock is left alone"
    finally:
        holder.kill()
        holder.wait()
    assert lock.read_text().split()[0] == str(holder.pid), "setting check: a killed run leaves its lock file"
    tiny_fit(out_dir=str(out))  # its owner is gone: taken over
    assert not lock.exists(), "the lock is released at the end"
    assert (out / "summary.json").is_file()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_saves_a_checkpoint_and_resume_matches_an_uninterrupted_run(tmp_path, monkeypatch, signum):
    import revgnn.training.loop as train_module
    from revgnn.training.runtime import TrainingInterrupted

    ref = tiny_fit(epochs=6, checkpoint_every=0, out_dir=str(tmp_path / "ref"))
    real = train_module._train_epoch
    before = signal.getsignal(signum)  # SIG_IGN for SIGINT when the tests run as a background job

    def signalled(model, opt, ds, tcfg, parts, seed, epoch, device):
        loss = real(model, opt, ds, tcfg, parts, seed, epoch, device)
        if epoch == 3:
            os.kill(os.getpid(), signum)  # arrives mid-epoch, before evaluation
        return loss

    monkeypatch.setattr(train_module, "_train_epoch", signalled)
    out = tmp_path / "o"
    with pytest.raises(TrainingInterrupted, match=r"stopped seed 0 after epoch 3, checkpoint saved in .*run the "
                                                  r"same command with --resume") as info:
        tiny_fit(epochs=6, checkpoint_every=0, out_dir=str(out))
    assert info.value.exit_code == 128 + signum
    assert (out / "run-seed0" / "checkpoint.pt").is_file(), "saved though periodic checkpoints are off"
    assert not (out / ".revgnn.lock").exists(), "the lock is released"
    assert signal.getsignal(signum) == before, "the handler in place before the run is restored"
    monkeypatch.setattr(train_module, "_train_epoch", real)
    again = tiny_fit(epochs=6, checkpoint_every=0, out_dir=str(out), resume=True)
    assert again["runs"][0]["history"] == ref["runs"][0]["history"], "the resumed run equals the uninterrupted one"


def test_sigterm_to_the_command_saves_and_exits_143_with_a_resume_line(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = _train_cmd(tmp_path / "o")
    cmd[cmd.index("--epochs") + 1] = "400"
    cmd[cmd.index("--checkpoint-every") + 1] = "0"
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    lock = tmp_path / "o" / ".revgnn.lock"
    deadline = time.time() + 300
    while not lock.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.5)  # training has started
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, f"exit 128 + SIGTERM (the run must still be training when signalled): {err}"
    last = err.strip().splitlines()[-1]
    assert re.fullmatch(r"revgnn train: SIGTERM: stopped seed 0 after epoch \d+, checkpoint saved in .*; run the "
                        r"same command with --resume to continue", last), last
    assert "Traceback" not in err
    assert (tmp_path / "o" / "run-seed0" / "checkpoint.pt").is_file() and not lock.exists()


def test_a_signal_in_the_last_epoch_is_not_swallowed(monkeypatch):
    import revgnn.training.loop as train_module

    real = train_module._train_epoch

    def signalled(model, opt, ds, tcfg, parts, seed, epoch, device):
        loss = real(model, opt, ds, tcfg, parts, seed, epoch, device)
        if epoch == tcfg.epochs:
            os.kill(os.getpid(), signal.SIGINT)  # the run finishes; the caller must still see the Ctrl-C
        return loss

    monkeypatch.setattr(train_module, "_train_epoch", signalled)
    # the caller's own SIGINT handler gets the signal: Python's default here (a background job starts with SIGINT
    # ignored, and then an ignored signal rightly stays ignored)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            tiny_fit(epochs=2)
    finally:
        signal.signal(signal.SIGINT, previous)
    monkeypatch.setattr(train_module, "_train_epoch", real)
    assert tiny_fit(epochs=1)["runs"][0]["history"], "the next fit starts clean"
