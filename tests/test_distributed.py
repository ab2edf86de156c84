"""Data-parallel training and gradient accumulation (revgnn.training.distributed): K ranks and --accumulate K in one
process follow one trajectory; the reversible engine and DEQ's implicit backward average exactly; faults stop every
rank."""
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
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from revgnn.data.partition import partition_subgraphs
from revgnn.measure.memory import synthetic_graph
from revgnn.nn.presets import ModelConfig, build_model
from revgnn.training import distributed

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
MODELS = {  # the engines with custom autograd: reversible (shared mask, RNG replay, tied weights), DEQ
    "rev": ModelConfig("rev", num_layers=2, hidden_channels=16, dropout=0.1),
    "rev-replay": ModelConfig("rev", num_layers=2, hidden_channels=16, dropout=0.1, dropout_mode="replay"),
    "wt-rev": ModelConfig("wt-rev", num_layers=3, hidden_channels=16, dropout=0.1),
    "deq": ModelConfig("deq", num_layers=1, hidden_channels=16, dropout=0.1, max_iter=15),
}
SEED, EPOCH = 3, 7


class _RecordingOptimizer:
    """Stands in for Adam: records the gradients each step() sees."""

    def __init__(self, params):
        self.params, self.steps = list(params), []

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        self.steps.append([None if p.grad is None else p.grad.clone() for p in self.params])


def _setup(name):
    torch.manual_seed(0)
    model = build_model(MODELS[name]).train()
    data = synthetic_graph(240, 2400, seed=1)
    parts = [(k, b, torch.ones(b.num_nodes, dtype=torch.bool))
             for k, b in enumerate(partition_subgraphs(data, 2, torch.Generator().manual_seed(0)))]
    return model, parts


def _loss(model, batch, mask):
    out = model(batch.x, batch.edge_index, batch.edge_attr, batch.species)
    return F.binary_cross_entropy_with_logits(out[mask], batch.y[mask].float())


def _grouped_step(name, accumulate):
    model, parts = _setup(name)
    opt = _RecordingOptimizer(model.parameters())
    distributed.train_epoch(model, opt, parts, lambda b, m: _loss(model, b, m), accumulate, None, SEED, EPOCH)
    return opt.steps


def _per_part_grads(name):
    model, parts = _setup(name)
    grads = []
    for k, batch, mask in parts:
        model.zero_grad(set_to_none=True)
        torch.manual_seed(distributed.part_seed(SEED, EPOCH, k))
        _loss(model, batch, mask).backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    return grads


def _rank_main(rank, world, init_file, out):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.save({name: _grouped_step(name, accumulate=1) for name in MODELS}, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _peer_main(rank, init_file, out, fault):
    import datetime

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2,
                            timeout=datetime.timedelta(seconds=5))
    distributed.all_sum(torch.ones(3))
    if rank == 1:
        if fault == "dies":
            os._exit(9)
        time.sleep(60)                       # "hangs": alive but silent
        os._exit(0)
    t0 = time.time()
    try:
        distributed.all_sum(torch.ones(3))
        Path(out).write_text("no error")
    except distributed.PeerLostError as err:
        Path(out).write_text(json.dumps({"seconds": time.time() - t0, "message": str(err)}))


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["dies", "hangs"])
def test_a_rank_that_dies_or_hangs_stops_the_other_with_a_clear_message(tmp_path, fault):
    ctx = mp.get_context("spawn")
    out = tmp_path / "rank0.json"
    procs = [ctx.Process(target=_peer_main, args=(r, str(tmp_path / "init"), str(out), fault)) for r in range(2)]
    for p in procs:
        p.start()
    procs[0].join(timeout=120)
    alive = procs[0].is_alive()
    for p in procs:
        p.kill()
        p.join()
    assert not alive, "rank 0 stopped instead of hanging"
    rec = json.loads(out.read_text())
    assert rec["seconds"] < 30, f"it stopped within the collective timeout (5 s here): {rec}"
    assert "lost contact with another rank" in rec["message"] and "--resume" in rec["message"], rec["message"]


def _assert_average(steps, grads, how):
    assert len(steps) == 1, f"{how}: one optimizer step for the two parts"
    for got, g0, g1 in zip(steps[0], *grads):
        assert torch.allclose(got, (g0 + g1) / 2, rtol=1e-5, atol=1e-7), f"{how}: the gradient is the parts' mean"


def test_accumulate_2_takes_one_step_with_the_mean_gradient():
    for name in MODELS:
        grads = _per_part_grads(name)
        assert any(not torch.allclose(a, b) for a, b in zip(*grads)), "setting check: the parts' gradients differ"
        _assert_average(_grouped_step(name, accumulate=2), grads, f"{name}, accumulate 2")
        assert len(_grouped_step(name, accumulate=1)) == 2, "accumulate 1: a step per part"


@pytest.mark.slow
def test_two_gloo_ranks_average_the_gradients_of_reversible_and_deq_models(tmp_path):
    torch.set_num_threads(1)
    mp.spawn(_rank_main, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for name in MODELS:
        for a, b in zip(ranks[0][name][0], ranks[1][name][0]):
            assert torch.equal(a, b), f"{name}: both ranks step with the same gradient"
        _assert_average(ranks[0][name], _per_part_grads(name), f"{name}, 2 gloo ranks")


def test_share_deals_parts_round_robin_and_is_the_identity_alone():
    share = distributed.Share()
    assert list(share(range(3))) + list(share(range(2))) == [0, 1, 2, 0, 1], "one rank keeps every item"
    t = torch.randn(3)
    assert share.sum(t) is t


def test_argv_round_trips_through_the_parser():
    from revgnn.cli import build_parser

    argv = ["train", "--model", "rev", "--layers", "2", "--dataset", "cora", "--accumulate", "2", "--no-progress",
            "--no-node-embeddings", "--clip", "0.5", "--nproc", "2"]
    args = build_parser().parse_args(argv)
    back = build_parser().parse_args(["train", *distributed.argv_from_namespace(args.parser, args, ("nproc",))])
    same = {k: v for k, v in vars(args).items() if k not in ("parser", "nproc")}
    assert {k: v for k, v in vars(back).items() if k not in ("parser", "nproc")} == same, "same flags"
    assert back.nproc is None, "--nproc is not passed on to the ranks"


@pytest.mark.parametrize("flag, message", [(["--accumulate", "0"], "accumulate must be >= 1"),
                                           (["--nproc", "0"], "--nproc must be >= 1")])
def test_bad_flags_are_one_line_and_exit_2(tmp_path, capsys, flag, message):
    from revgnn.cli import main

    rc = main(["train", "--dataset", "cora", "--epochs", "1", "--no-progress", "--out", str(tmp_path / "o"), *flag])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "o").exists(), "nothing is written for bad input"


TARGET = ["train", "--dataset", "cora", "--model", "rev", "--layers", "2", "--channels", "32", "--epochs", "10",
          "--train-parts", "2", "--runs", "1", "--seed", "0", "--json", "--no-progress"]


def _revgnn(*argv, **kw):
    return subprocess.run([sys.executable, "-m", "revgnn", *argv], capture_output=True, text=True, env=ENV,
                          cwd=ROOT, **kw)


def _last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.slow
def test_two_ranks_and_accumulate_2_print_the_same_test_metric(tmp_path):
    """The issue's target: torchrun 2 ranks (here via --nproc 2) and one process with --accumulate 2, on Cora."""
    ddp = _revgnn(*TARGET, "--nproc", "2", "--out", str(tmp_path / "ddp"), timeout=300)
    one = _revgnn(*TARGET, "--accumulate", "2", "--out", str(tmp_path / "one"), timeout=300)
    assert ddp.returncode == 0 and one.returncode == 0, ddp.stderr[-2000:] + one.stderr[-2000:]
    a, b = _last_json(ddp.stdout), _last_json(one.stdout)
    assert abs(a["test"] - b["test"]) <= 1e-6 and a["valid"] == b["valid"], "same metrics"
    ra, rb = (json.loads((tmp_path / d / "run-seed0" / "record.json").read_text()) for d in ("ddp", "one"))
    assert ra["history"] == rb["history"], "every epoch's loss and scores match"
    assert ra["config"] == rb["config"] and ra["config"]["train"]["accumulate"] == 2, "one configuration"
    assert len(ddp.stdout.strip().splitlines()) == 1, "only rank 0 prints"


def _fault_cmd(out, *extra):
    return ["train", "--model", "rev", "--layers", "3", "--channels", "32", "--dataset", "synthetic-proteins",
            "--num-nodes", "1500", "--num-edges", "30000", "--train-parts", "2", "--epochs", "12", "--lr", "0.01",
            "--checkpoint-every", "2", "--test-views", "2", "--test-parts", "2", "--out", str(out), "--resume",
            "--json", "--no-progress", *extra]


def _torchrun(argv):
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "revgnn",
            *argv]


def _rank_pid(parent: int, rank: int) -> int | None:
    try:
        children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    except OSError:
        return None
    for pid in children:
        try:
            if f"RANK={rank}".encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                return int(pid)
        except OSError:
            continue
    return None


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds the rank's process through /proc (Linux)")
def test_kill_9_of_a_rank_stops_the_others_and_a_restart_ends_with_the_same_metrics(tmp_path):
    ref = _revgnn(*_fault_cmd(tmp_path / "ref", "--accumulate", "2"), timeout=300)
    assert ref.returncode == 0, ref.stderr[-2000:]
    out = tmp_path / "killed"
    proc = subprocess.Popen(_torchrun(_fault_cmd(out)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ENV, cwd=ROOT)
    ckpt = out / "run-seed0" / "checkpoint.pt"
    deadline = time.time() + 240
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    victim = _rank_pid(proc.pid, 1)
    assert ckpt.exists() and victim is not None, "a checkpoint was written and rank 1 is running"
    os.kill(victim, signal.SIGKILL)
    t0 = time.time()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0, "the run was stopped before it finished (else the test measures nothing)"
    assert time.time() - t0 < 90, "the surviving rank stops instead of hanging"
    assert re.search(r"SIGKILL|Signal 9|exitcode\s*:\s*-9|lost contact", err), f"a clear message: {err[-1500:]}"
    assert not (out / "run-seed0" / "record.json").exists()
    again = subprocess.run(_torchrun(_fault_cmd(out)), capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert re.search(r"resumed .* at epoch [1-9]", again.stderr), "the restart continued from the checkpoint"
    a, b = _last_json(ref.stdout), _last_json(again.stdout)
    assert (a["valid"], a["test"], a["test_multiview"]) == (b["valid"], b["test"], b["test_multiview"]), \
        "the restarted 2-rank run ends with the metrics of an uninterrupted run (one process, --accumulate 2)"
    ra, rb = (json.loads((d / "run-seed0" / "record.json").read_text()) for d in (tmp_path / "ref", out))
    assert ra["history"] == rb["history"], "every epoch matches"
    assert torch.load(ckpt, weights_only=True)["state"]["epoch"] == 12, "the final checkpoint is kept"
    assert not list(out.rglob("*.tmp*")), "no temporary file left behind"
