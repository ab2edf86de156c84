"""Issue 19, runs and command line: no code from files, the user's files are sacred, an atomic --out lock, ranks
that agree, one line for every bad input, and size estimates before allocating (Li et al., ICML 2021 protocol)."""
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--model", "rev", "--layers", "2", "--channels", "16", "--num-nodes", "300", "--num-edges", "3000",
        "--lr", "0.01", "--checkpoint-every", "2", "--no-progress"]


def cli(*argv):
    from revgnn.cli import main
    return main([str(a) for a in argv])


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, f"one line, no traceback: {err!r}"
    return err


class Payload:
    """Unpickling it creates ``marker`` (a stand-in for any code a file could run)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def interrupted_run(out: Path, epochs: int = 6) -> Path:
    """A run stopped after its epoch-2 checkpoint (as a kill would); returns the checkpoint's path."""
    import revgnn.training.checkpoints as checkpoints

    with pytest.MonkeyPatch.context() as mp:
        real = checkpoints.atomic_torch_save
        mp.setattr(checkpoints, "atomic_torch_save", lambda obj, path: (real(obj, path), 1 / 0))
        with pytest.raises(ZeroDivisionError):
            assert cli("train", *TINY, "--epochs", epochs, "--out", out) is None
    return out / "run-seed0" / "checkpoint.pt"


# --- 1. no code from files --------------------------------------------------------------------------------------


def test_a_payload_in_any_file_of_out_never_runs(tmp_path, capsys):
    out = tmp_path / "o"
    ckpt = interrupted_run(out)
    marker = tmp_path / "PWNED"
    good = torch.load(ckpt, weights_only=True)
    clean = ckpt.read_bytes()
    torch.save({**good, "state": {**good["state"], "extra": Payload(marker)}}, ckpt)  # right keys, hidden code
    for resume in (["--resume"], []):  # resuming reads it; so does the check for an interrupted run
        assert cli("train", *TINY, "--epochs", 6, "--out", out, *resume) == 2
        err = one_line(capsys)
        assert "unreadable" in err or "cannot be read" in err, err
        assert not marker.exists(), "no code ran from checkpoint.pt"
    capsys.readouterr()
    ckpt.write_bytes(clean)
    blob = __import__("pickle").dumps(Payload(marker))
    for name in ("config.json", "summary.json", "run-seed0/record.json", ".revgnn.lock"):
        path = out / name
        before = path.read_bytes() if path.exists() else None
        path.write_bytes(blob)
        rc = cli("train", *TINY, "--epochs", 6, "--out", out, "--resume")
        err = capsys.readouterr().err.strip()
        assert not marker.exists(), f"no code ran from {name}"
        assert "Traceback" not in err and len(err.splitlines()) <= 1, err
        assert rc == 2 or name == ".revgnn.lock", f"{name}: refused ({err})"
        if before is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(before)
    assert not marker.exists()


def test_no_weights_only_false_in_the_package():
    hits = [str(p) for p in (ROOT / "revgnn").rglob("*.py") if "weights_only=False" in p.read_text()]
    assert not hits, f"torch.load(weights_only=False) runs code from files: {hits}"


def _crafted(ckpt: Path, how: str) -> None:
    c = torch.load(ckpt, weights_only=True)
    if how == "missing weight":
        c["model"].pop(next(iter(c["model"])))
    elif how == "wrong shape":
        key = next(k for k, v in c["model"].items() if v.dim() == 2)
        c["model"][key] = torch.zeros(3, 3)
    elif how == "optimizer shape":
        c["optimizer"]["state"][0]["exp_avg"] = torch.zeros(1)
    elif how == "no history":
        del c["state"]["history"]
    elif how == "epoch beyond":
        c["state"]["epoch"] = 99
    elif how == "rng":
        c["torch_rng"] = torch.zeros(3)
    torch.save(c, ckpt)


@pytest.mark.parametrize("how", ["missing weight", "wrong shape", "optimizer shape", "no history", "epoch beyond",
                                 "rng"])
def test_a_crafted_checkpoint_with_the_right_keys_is_one_line(tmp_path, capsys, how):
    out = tmp_path / "o"
    ckpt = interrupted_run(out)
    _crafted(ckpt, how)
    assert cli("train", *TINY, "--epochs", 6, "--out", out, "--resume") == 2
    assert "does not fit this run" in one_line(capsys)


# --- 2. the user's files are sacred -----------------------------------------------------------------------------


def test_an_interrupted_run_is_not_overwritten_without_resume_or_restart(tmp_path, capsys):
    out = tmp_path / "o"
    ckpt = interrupted_run(out)
    before = ckpt.read_bytes()
    assert cli("train", *TINY, "--epochs", 6, "--out", out) == 2
    assert one_line(capsys).endswith("an interrupted run is here (epoch 2): pass --resume to continue or --restart "
                                     "to discard it")
    assert ckpt.read_bytes() == before, "the interrupted run's checkpoint is untouched"
    assert cli("train", *TINY, "--epochs", 6, "--out", out, "--restart") == 0, "--restart discards it"
    rec = json.loads((out / "run-seed0" / "record.json").read_text())
    assert [h["epoch"] for h in rec["history"]] == list(range(1, 7))
    kept = torch.load(ckpt, weights_only=True)
    assert kept["state"]["epoch"] == 6, "the final checkpoint is kept by default"
    capsys.readouterr()
    assert cli("train", *TINY, "--epochs", 6, "--out", out) == 2
    assert "a finished run is here: pass --resume to keep it or --restart" in one_line(capsys)
    assert json.loads((out / "run-seed0" / "record.json").read_text()) == rec, "the finished record is untouched"
    assert cli("train", *TINY, "--epochs", 6, "--out", out, "--resume") == 0, "--resume keeps it"
    assert cli("train", *TINY, "--epochs", 6, "--out", tmp_path / "p", "--no-keep-checkpoint") == 0
    assert not (tmp_path / "p" / "run-seed0" / "checkpoint.pt").exists(), "--no-keep-checkpoint deletes it"


def test_a_kept_final_checkpoint_resumes_to_the_same_record(tmp_path):
    out = tmp_path / "o"
    assert cli("train", *TINY, "--epochs", 3, "--out", out) == 0
    done = out / "run-seed0" / "record.json"
    first = json.loads(done.read_text())
    assert (out / "run-seed0" / "checkpoint.pt").is_file(), "the final checkpoint is kept"
    done.unlink()  # killed after the final checkpoint, before the record
    assert cli("train", *TINY, "--epochs", 3, "--out", out, "--resume") == 0
    assert json.loads(done.read_text())["history"] == first["history"]


@pytest.mark.parametrize("name, content, message", [
    ("summary.json", '{"my": "notes"}', "is not a revgnn summary"),
    ("summary.json", "not json", "is not a revgnn summary"),
    ("config.json", "[1, 2]", "is not a revgnn folder configuration"),
    ("config.json", '{"model": 1}', "is not a revgnn folder configuration"),
])
def test_outputs_that_revgnn_did_not_write_are_refused_and_kept(tmp_path, capsys, name, content, message):
    out = tmp_path / "o"
    out.mkdir()
    (out / name).write_text(content)
    assert cli("train", *TINY, "--epochs", 1, "--out", out) == 2
    assert message in one_line(capsys)
    assert (out / name).read_text() == content, f"the user's {name} is unchanged"
    assert not (out / "run-seed0").exists(), "nothing was trained"


# --- 3. an atomic lock ------------------------------------------------------------------------------------------


def _contend(folders, start, held, results):
    from revgnn.training.runtime import output_lock

    got = []
    for folder in folders:
        start.wait()
        try:
            with output_lock(Path(folder)):
                got.append(True)
                held.wait()  # keep holding until the other process has tried
        except ValueError:
            got.append(False)
            held.wait()
    results.put(got)


def test_two_processes_started_together_never_both_hold_the_lock(tmp_path):
    folders = []
    for i in range(200):
        folder = tmp_path / f"t{i}"
        if i % 2:  # half of the trials start from a stale lock (a killed run's), half from a fresh folder
            folder.mkdir()
            (folder / ".revgnn.lock").write_text(f"{2**22 + 5}\n")
        folders.append(str(folder))
    ctx = multiprocessing.get_context("fork")
    start, held, results = ctx.Barrier(2), ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_contend, args=(folders, start, held, results)) for _ in range(2)]
    for p in procs:
        p.start()
    a, b = results.get(timeout=120), results.get(timeout=120)
    for p in procs:
        p.join(timeout=30)
    both = sum(x and y for x, y in zip(a, b))
    neither = sum(not x and not y for x, y in zip(a, b))
    assert (both, neither) == (0, 0), f"of 200 trials, {both} had two holders and {neither} none"
    assert not any(Path(f, ".revgnn.lock").exists() for f in folders), "every lock is released"


def test_a_lock_file_naming_an_unrelated_live_process_is_taken_over(tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / ".revgnn.lock").write_text(f"{sleeper.pid}\n")  # a PID reused by a process that is not revgnn
        assert cli("train", *TINY, "--epochs", 1, "--out", out) == 0
        assert "in use by revgnn process" not in capsys.readouterr().err
    finally:
        sleeper.kill()
        sleeper.wait()
    assert (out / "summary.json").is_file() and not (out / ".revgnn.lock").exists()


# --- 5. one line for every bad input ----------------------------------------------------------------------------


def test_a_nan_loss_is_one_line_naming_the_epoch_and_lr(tmp_path, capsys, monkeypatch):
    import revgnn.training.loop as train_module

    real = train_module._train_epoch
    monkeypatch.setattr(train_module, "_train_epoch",
                        lambda *a: float("nan") if a[6] == 2 else real(*a))  # a[6]: the epoch
    assert cli("train", *TINY, "--epochs", 4, "--out", tmp_path / "o") == 2
    err = one_line(capsys)
    assert "loss became nan at epoch 2" in err and "lower --lr" in err, err


def test_a_full_disk_inside_torch_save_is_one_line(tmp_path, capsys, monkeypatch):
    import revgnn.training.records as records

    real = records.torch.save
    monkeypatch.setattr(records.torch, "save", lambda obj, f: real(obj, "/dev/full"))  # torch's own RuntimeError
    out = tmp_path / "o"
    assert cli("train", *TINY, "--epochs", 4, "--out", out) == 2
    err = one_line(capsys)
    assert "cannot write" in err and "checkpoint.pt" in err and "free disk space" in err, err
    assert not list(out.rglob("*.tmp")), "no temporary file is left"


@pytest.fixture
def no_loading(monkeypatch):
    """Fail the test if the dataset is loaded: these errors must come first, in a moment."""
    import revgnn.training.loop as train_module

    def refuse(*args, **kwargs):
        raise AssertionError("the dataset was loaded before the bad value was refused")

    monkeypatch.setattr(train_module, "load_dataset", refuse)


@pytest.mark.parametrize("argv, message", [
    (["--channels", str(10**18)], "--channels 1000000000000000000 is beyond what can be built"),
    (["--nproc", str(10**18)], "exceeds the"),
    (["--layers", "100000"], "--layers 100000 is more than revgnn builds"),
    (["--num-nodes", "1e12", "--num-edges", "1e14"], "needs at least"),
    (["--resume", "--restart"], "pass one of them"),
])
def test_absurd_values_are_refused_before_loading_anything(tmp_path, capsys, no_loading, argv, message):
    out = tmp_path / "o"
    t0 = time.perf_counter()
    assert cli("train", *TINY, "--epochs", 1, "--out", out, *argv) == 2
    assert message in one_line(capsys)
    assert not out.exists()
    assert time.perf_counter() - t0 < 120, "answered without allocating"


def test_a_step_that_cannot_fit_is_refused_with_its_estimate(tmp_path, capsys, no_loading, monkeypatch):
    from revgnn.training import budget

    monkeypatch.setattr(budget, "available_bytes", lambda device="cpu": 2 * 2**30)  # a small box
    assert cli("train", "--dataset", "synthetic-proteins-full", "--no-progress", "--out", tmp_path / "o") == 2
    err = one_line(capsys)
    assert "needs at least" in err and "this machine has 2.00 GiB available" in err and "--force" in err, err
    floor = budget.estimate_step(budget.ModelConfig("rev", 8, 64), 132_534, 79_122_504, 10).floor
    from revgnn.training.budget import shape_floor_bytes

    assert floor == shape_floor_bytes(132_534, 79_122_504, 64, budget.parameter_count(budget.ModelConfig("rev", 8, 64)))


def test_memory_accepts_counts_in_scientific_notation_and_refuses_what_cannot_fit(capsys):
    assert cli("memory", "--model", "rev", "--nodes", "1e10", "--edges", "1e13") == 2
    err = one_line(capsys)
    assert "N=10,000,000,000 E=10,000,000,000,000 needs at least" in err and "GiB available" in err, err
    with pytest.raises(SystemExit) as stop:
        cli("memory", "--model", "rev", "--nodes", "1.5")
    assert stop.value.code == 2 and "invalid count value" in one_line(capsys)


@pytest.mark.parametrize("kind, fused", [("rev", True), ("res", True), ("res", False), ("wt-rev", True),
                                         ("deq", True)])
def test_the_parameter_estimate_is_exact(kind, fused):
    from revgnn.nn.presets import ModelConfig, build_model, count_parameters
    from revgnn.training import budget

    for layers in (1, 3, 5):
        cfg = ModelConfig(kind, 1 if kind == "deq" else layers, 16, fused=fused)
        assert budget.parameter_count(cfg) == count_parameters(build_model(cfg)), f"{kind} L={layers}"
    small, deep = (budget.estimate_step(ModelConfig(kind, 1 if kind == "deq" else L, 16, fused=fused), 500, 5000)
                   for L in (2, 64))
    grows = deep.activations > small.activations
    assert grows == (kind == "res"), "ResGNN's activations grow with depth, RevGNN's and DEQ-GNN's do not"


# --- 4. distributed ranks agree ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ranks_started_with_different_flags_stop_together_naming_the_fields(tmp_path):
    port = _free_port()
    procs = []
    for rank, lr in ((0, "0.01"), (1, "0.02")):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "RANK": str(rank), "LOCAL_RANK":
               str(rank), "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
               "MASTER_PORT": str(port), "REVGNN_DIST_TIMEOUT": "60"}
        argv = [a if a != "0.01" else lr for a in TINY]
        procs.append(subprocess.Popen([sys.executable, "-m", "revgnn", "train", *argv, "--epochs", "2", "--out",
                                       str(tmp_path / "o")], env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True))
    errs = [p.communicate(timeout=240)[1].strip() for p in procs]
    assert [p.returncode for p in procs] == [2, 2], f"every rank exits 2: {errs}"
    assert len(errs[0].splitlines()) == 1 and "lr (rank 0: 0.01, rank 1: 0.02)" in errs[0], errs[0]
    assert "Traceback" not in errs[1] and not (tmp_path / "o").exists(), errs[1]


@pytest.mark.slow
def test_a_configuration_error_under_nproc_is_one_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("OMP_NUM_THREADS", None)
    res = subprocess.run([sys.executable, "-m", "revgnn", "train", *TINY, "--epochs", "1", "--eval-parts", "301",
                          "--nproc", "2", "--out", str(tmp_path / "o")], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=300)
    assert res.returncode == 2, res.stderr[-3000:]
    lines = [ln for ln in res.stderr.strip().splitlines() if not ln.startswith("launching")]
    assert len(lines) == 1 and "eval_parts 301 exceeds the 300 nodes" in lines[0], res.stderr[-3000:]


