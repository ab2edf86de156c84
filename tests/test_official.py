"""The authors' released checkpoints as RevGNN (revgnn.official) and ``revgnn evaluate``.

The fixtures in tests/data/official were written by the official code itself (lightaime/deep_gcns_torch at 4f6681e,
``RevGCN`` with its ``OGBNDataset`` pipeline, see that folder's README): a checkpoint saved as its ``save_ckpt`` saves
one, the inputs, its logits on the whole fabricated graph and OGB's ROC-AUC of them.
"""
import io
import json
import shutil
from pathlib import Path

import pytest
import torch

from revgnn.cli import main
from revgnn.official import (
    OGBN_PROTEINS_TAXA,
    CheckpointError,
    convert_state_dict,
    load_checkpoint,
    official_species_order,
    on_each_layer,
    read_official_state,
)

DATA = Path(__file__).parent / "data" / "official"
CKPT = DATA / "revgcn_L3_D16_C2.pth"


@pytest.fixture(scope="module")
def expected():
    return torch.load(DATA / "expected.pth", weights_only=True)


@pytest.fixture
def proteins_root(tmp_path):
    shutil.copytree(DATA / "ogbn_proteins", tmp_path / "ogbn_proteins")  # ogb writes processed/ beside raw/
    return tmp_path


def _species(taxa):
    return torch.unique(taxa, return_inverse=True)[1]  # revgnn's numbering: sorted taxon ids


def _run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_loader_reproduces_the_official_logits_in_float32(expected):
    model = load_checkpoint(CKPT)
    assert (model.num_layers, model.stack.num_groups, model.heads.out_lin.in_features) == (3, 2, 16), "L, C, D read"
    with torch.no_grad():
        out = model(expected["node_features"], expected["edge_index"], expected["edge_attr"],
                    species=_species(expected["taxa"]))
    ref = expected["logits"]
    rel = float((out - ref).abs().max() / ref.abs().max())
    assert rel <= 1e-5, f"logits equal the official RevGCN's on the whole graph (relative error {rel:.2e})"


@pytest.mark.parametrize("fused", [True, False])
def test_loader_reproduces_the_official_logits_in_float64(expected, fused):
    model = load_checkpoint(CKPT, fused=fused).double()
    with torch.no_grad():
        out = model(expected["node_features"].double(), expected["edge_index"], expected["edge_attr"].double(),
                    species=_species(expected["taxa"]))
    err = float((out - expected["logits64"]).abs().max())
    assert err <= 1e-12, f"float64 logits equal the official ones to rounding ({err:.1e}), fused={fused}"


def test_node_features_are_the_official_sum_of_incident_edge_features(expected, proteins_root):
    from revgnn.data.datasets import load_dataset

    ds = load_dataset("ogbn-proteins", proteins_root)
    assert torch.equal(ds.data.edge_index, expected["edge_index"]), "the same graph as the official pipeline"
    torch.testing.assert_close(ds.data.x, expected["node_features"], rtol=0, atol=1e-5,
                               msg="x is the official extract_node_features('add')")
    official_col = expected["x_one_hot"].argmax(1)
    order = official_species_order(expected["taxa"].tolist())
    assert torch.equal(torch.tensor(order)[official_col], expected["taxa"]), "official column j is order[j]"
    assert torch.equal(torch.tensor(sorted(order))[ds.data.species], expected["taxa"]), "revgnn species s: sorted"


def test_species_columns_follow_taxon_ids_not_positions(expected):
    order = official_species_order(OGBN_PROTEINS_TAXA)
    assert order[0] == 511145 and order[1:] == sorted(OGBN_PROTEINS_TAXA)[:7], "E. coli is official column 0"
    state = read_official_state(CKPT)
    mapped, _ = convert_state_dict(state, OGBN_PROTEINS_TAXA)
    w_off, w_rev = state["node_one_hot_encoder.weight"], mapped["heads.species_encoder.weight"]
    assert torch.equal(w_rev[:, 7], w_off[:, 0]), "E. coli: revgnn species 7 takes official column 0"
    assert torch.equal(w_rev[:, 0], w_off[:, 1]), "A. thaliana (3702): revgnn species 0 takes official column 1"
    shuffled, _ = convert_state_dict(state, list(reversed(OGBN_PROTEINS_TAXA)))
    assert torch.equal(shuffled["heads.species_encoder.weight"], w_rev), "the order taxa are given in is irrelevant"
    by_position = load_checkpoint(CKPT)
    by_position.heads.species_encoder.weight.data.copy_(w_off)
    with torch.no_grad():
        out = by_position(expected["node_features"], expected["edge_index"], expected["edge_attr"],
                          species=_species(expected["taxa"]))
    assert (out - expected["logits"]).abs().max() > 1e-3, "mapping species by position would change the logits"


def test_every_official_tensor_is_used_exactly_once():
    state = read_official_state(CKPT)
    mapped, shape = convert_state_dict(state)
    model = load_checkpoint(CKPT)
    assert len(mapped) == len(state) == len(model.state_dict()), "one revgnn tensor per official tensor"
    assert set(mapped) == set(model.state_dict()), "every RevGNN tensor comes from the checkpoint"
    assert shape["in_channels"] == 8 and shape["num_species"] == 8 and shape["edge_dim"] == 8
    extra = {**state, "gcns.0._fn.Fms.0.gcn.msg_norm.msg_scale": torch.ones(1)}
    with pytest.raises(CheckpointError, match="msg_norm.msg_scale"):
        convert_state_dict(extra)


def test_a_bare_state_dict_loads_like_the_official_dict(tmp_path, expected):
    bare = tmp_path / "bare.pth"
    torch.save(torch.load(CKPT, weights_only=True)["model_state_dict"], bare)
    a, b = load_checkpoint(CKPT), load_checkpoint(bare)
    assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items()), "same weights"


def test_layer_hook_fires_once_per_layer(expected):
    model = load_checkpoint(CKPT)
    calls = []
    on_each_layer(model, lambda: calls.append(1))
    with torch.no_grad():
        model(expected["node_features"], expected["edge_index"], expected["edge_attr"],
              species=_species(expected["taxa"]))
    assert len(calls) == 3, "the progress bar advances once per reversible layer"


def _bad_files(tmp_path):
    from revgnn.nn.models import RevGNN

    other = tmp_path / "other_model.pth"
    torch.save({"model_state_dict": RevGNN(8, 8, 112, 2, edge_dim=8, num_species=8).state_dict()}, other)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(CKPT.read_bytes()[: CKPT.stat().st_size // 2])
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint\n")
    return {"another model": (other, "not an official RevGNN"), "truncated": (truncated, "not a readable"),
            "text": (text, "not a readable")}


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_foreign_truncated_and_payload_files_get_one_clear_line(tmp_path, capsys):
    marker = tmp_path / "PAYLOAD_RAN"
    payload = tmp_path / "payload.pth"
    torch.save({"model_state_dict": {"w": torch.zeros(1)}, "x": _Payload(marker)}, payload)
    cases = {**_bad_files(tmp_path), "payload": (payload, "besides tensors")}
    for what, (path, phrase) in cases.items():
        with pytest.raises(CheckpointError, match=phrase):
            load_checkpoint(path)
        code, out, err = _run(["evaluate", "--official-checkpoint", str(path), "--root", str(tmp_path)], capsys)
        assert code == 2 and phrase in err and "Traceback" not in err, f"{what}: one line, exit 2 ({err!r})"
        assert len(err.strip().splitlines()) == 1, f"{what}: exactly one line"
    assert not marker.exists(), "the pickle payload never ran"


def test_evaluate_gives_the_official_full_graph_rocauc(proteins_root, expected, capsys):
    code, out, _ = _run(["evaluate", "--official-checkpoint", str(CKPT), "--dataset", "ogbn-proteins", "--root",
                         str(proteins_root), "--json", "--no-progress"], capsys)
    assert code == 0
    rec = json.loads(out)
    for split in ("train", "valid", "test"):
        want = float(expected[f"rocauc_{split}"])
        assert abs(rec[split] - want) <= 1e-4, f"{split} ROC-AUC equals the official model's ({rec[split]} {want})"


def test_evaluate_runs_the_official_partition_protocols(proteins_root, capsys):
    code, out, _ = _run(["evaluate", "--official-checkpoint", str(CKPT), "--root", str(proteins_root), "--json",
                         "--eval-parts", "3", "--views", "2", "--no-progress"], capsys)
    rec = json.loads(out)
    assert code == 0 and rec["eval_parts"] == 3 and rec["views"] == 2
    assert all(0.0 <= rec[s] <= 1.0 for s in ("train", "valid", "test")), "ROC-AUC of partitioned inference"


def test_evaluate_works_offline_on_synthetic_proteins(capsys):
    code, out, _ = _run(["evaluate", "--official-checkpoint", str(CKPT), "--dataset", "synthetic-proteins",
                         "--json", "--no-progress"], capsys)
    assert code == 0 and 0.0 <= json.loads(out)["test"] <= 1.0, "the released shape runs on synthetic-proteins"


@pytest.mark.parametrize("argv, phrase", [
    (["--eval-parts", "0"], "--eval-parts must be >= 1"),
    (["--views", "3"], "--views > 1 needs --eval-parts > 1"),
    (["--dataset", "nope"], "unknown dataset"),
    (["--threads", "0"], "--threads must be an integer from 1"),
    (["--threads", str(10**20)], "--threads must be an integer from 1 to 1024"),
])
def test_argument_errors_answer_before_any_data_is_read(argv, phrase, capsys, monkeypatch):
    import revgnn.data.datasets

    monkeypatch.setattr(revgnn.data.datasets, "load_dataset", lambda *a, **k: pytest.fail("data was loaded"))
    code, _, err = _run(["evaluate", "--official-checkpoint", str(CKPT), *argv], capsys)
    assert code == 2 and phrase in err and "Traceback" not in err, f"one line, exit 2: {err!r}"


def test_evaluate_refuses_a_missing_checkpoint_and_two_sources(tmp_path, capsys):
    code, _, err = _run(["evaluate", "--official-checkpoint", str(tmp_path / "absent.pth")], capsys)
    assert code == 2 and "no checkpoint at" in err
    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", "--official-checkpoint", str(CKPT), "--checkpoint", str(tmp_path)])
    assert exit_.value.code == 2, "one source of weights at a time"


def _trained_run(tmp_path: Path, capsys, *extra: str) -> dict:
    """A real ``revgnn train`` run (small RevGNN, synthetic proteins, whole-graph evaluation); its record."""
    out = tmp_path / "out"
    code = main(["train", "--model", "rev", "--layers", "2", "--channels", "16", "--epochs", "3", "--eval-every", "1",
                 "--dataset", "synthetic-proteins", "--num-nodes", "400", "--num-edges", "4000", "--train-parts", "1",
                 "--eval-parts", "1", "--no-progress", "--out", str(out), *extra])
    capsys.readouterr()
    assert code == 0
    return json.loads((out / "run-seed0" / "record.json").read_text())


def test_evaluate_reproduces_a_finished_runs_scores(tmp_path, capsys):
    rec = _trained_run(tmp_path, capsys)
    code, out, _ = _run(["evaluate", "--checkpoint", str(tmp_path / "out"), "--json", "--no-progress"], capsys)
    got = json.loads(out)
    assert code == 0 and got["weights"] == "best" and got["epoch"] == rec["best"]["epoch"]
    for split in ("train", "valid", "test"):
        assert abs(got[split] - rec["best"][split]) <= 1e-6, f"{split}: the best epoch's weights score as recorded"
    code, out, _ = _run(["evaluate", "--checkpoint", str(tmp_path / "out" / "run-seed0"), "--weights", "last",
                         "--json", "--no-progress"], capsys)
    last = json.loads(out)
    assert code == 0 and last["epoch"] == 3 and last["weights"] == "last"
    assert abs(last["test"] - rec["history"][-1]["test"]) <= 1e-6, "the last epoch's weights score as recorded"


def test_evaluate_says_a_finished_run_keeps_no_weights(tmp_path, capsys):
    run = tmp_path / "run-seed0"
    run.mkdir()
    (run / "record.json").write_text("{}")
    code, _, err = _run(["evaluate", "--checkpoint", str(tmp_path), "--no-progress"], capsys)
    assert code == 2 and "--no-keep-checkpoint" in err and "no weights to evaluate" in err, err


def test_official_checkpoint_is_refused_as_a_run_checkpoint(tmp_path, capsys):
    code, _, err = _run(["evaluate", "--checkpoint", str(CKPT), "--no-progress"], capsys)
    assert code == 2 and "--official-checkpoint" in err, err


def test_payload_in_a_run_checkpoint_never_runs(tmp_path, capsys):
    marker = tmp_path / "PAYLOAD_RAN"
    path = tmp_path / "checkpoint.pt"
    buf = io.BytesIO()
    torch.save({"config": {"model": {}}, "model": {}, "x": _Payload(marker)}, buf)
    path.write_bytes(buf.getvalue())
    code, _, err = _run(["evaluate", "--checkpoint", str(path), "--no-progress"], capsys)
    assert code == 2 and "nothing in it was executed" in err and not marker.exists(), "refused, payload not run"


def _official_names(state):
    """revgnn RevGNN names -> the official RevGCN's (the inverse of the loader's table), for shapes the fixture
    lacks."""
    heads = {"heads.species_encoder": "node_one_hot_encoder", "heads.node_encoder": "node_features_encoder",
             "heads.edge_encoder": "edge_encoder", "heads.out_norm": "last_norm", "heads.out_lin": "node_pred_linear"}
    block = {"norm": "norm", "conv.lin_edge": "gcn.edge_encoder", "conv.mlp.0": "gcn.mlp.0",
             "conv.mlp.1": "gcn.mlp.1", "conv.mlp.4": "gcn.mlp.3"}
    out = {}
    for key, value in state.items():
        head, _, leaf = key.rpartition(".")
        if head in heads:
            out[f"{heads[head]}.{leaf}"] = value
        else:
            _, _, layer, group, rest = head.split(".", 4)
            out[f"gcns.{layer}._fn.Fms.{group}.{block[rest]}.{leaf}"] = value
    return out


@pytest.mark.parametrize("groups, layers", [(3, 2), (4, 5)])
def test_depth_width_and_groups_are_read_from_the_names(tmp_path, groups, layers):
    from revgnn.nn.models import RevGNN

    ref = RevGNN(8, 12, 112, layers, num_groups=groups, edge_dim=8, num_species=8)
    path = tmp_path / "c.pth"
    torch.save({"model_state_dict": _official_names(ref.state_dict())}, path)
    got = load_checkpoint(path, taxa=range(1, 9))  # taxa 1..8: 8 % 8 = 0 puts the largest first, as E. coli
    assert (got.num_layers, got.stack.num_groups) == (layers, groups), "L and C inferred"
    ws = got.state_dict()["heads.species_encoder.weight"]
    w0 = ref.state_dict()["heads.species_encoder.weight"]
    assert torch.equal(ws[:, 7], w0[:, 0]) and torch.equal(ws[:, :7], w0[:, 1:]), "largest taxon: official column 0"


def test_wrong_shapes_and_missing_tensors_are_named(tmp_path):
    state = read_official_state(CKPT)
    bad = dict(state)
    bad["gcns.1._fn.Fms.0.gcn.mlp.3.weight"] = torch.zeros(8, 32)
    path = tmp_path / "bad.pth"
    torch.save({"model_state_dict": bad}, path)
    with pytest.raises(CheckpointError, match=r"stack.layers.1.0.conv.mlp.4.weight has shape \(8, 32\)"):
        load_checkpoint(path)
    short = {k: v for k, v in state.items() if k != "gcns.2._fn.Fms.1.norm.bias"}
    torch.save({"model_state_dict": short}, path)
    with pytest.raises(CheckpointError, match="stack.layers.2.1.norm.bias"):
        load_checkpoint(path)


@pytest.mark.slow
def test_inference_benchmark_reads_a_peak_and_a_time_per_layer():
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, str(root / "benchmarks" / "official_inference.py"), "one", "--smoke", "--layers", "3"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=root,
                         env={**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-2000:]
    run = json.loads(res.stdout.strip().splitlines()[-1])
    assert len(run["layer_seconds"]) == len(run["rss_peak_after_layer_bytes"]) == 3, "one mark per layer"
    assert run["rss_peak_bytes"] >= run["rss_peak_after_layer_bytes"][-1] >= run["rss_before_bytes"] > 0
    assert all(t > 0 for t in run["layer_seconds"]), "each layer timed"



def test_evaluate_fixes_the_mmap_threshold(monkeypatch, proteins_root, capsys):
    """revgnn evaluate fixes glibc's mmap threshold before the pass (so the whole graph's peak stays flat in L), and
    on glibc the call takes effect."""
    import platform

    from revgnn.training import runtime

    if platform.libc_ver()[0] == "glibc":
        assert runtime.fix_mmap_threshold(), "mallopt(M_MMAP_THRESHOLD) takes effect on glibc"
    calls = []
    real = runtime.fix_mmap_threshold
    monkeypatch.setattr(runtime, "fix_mmap_threshold", lambda *a: calls.append(a) or real(*a))
    code, _, _ = _run(["evaluate", "--official-checkpoint", str(CKPT), "--dataset", "ogbn-proteins", "--root",
                       str(proteins_root), "--json", "--no-progress"], capsys)
    assert code == 0 and calls, "evaluate called fix_mmap_threshold"
