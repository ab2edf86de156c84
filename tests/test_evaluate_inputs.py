"""Issue 30, ``revgnn evaluate``'s inputs: every bad checkpoint, flag or data file is one line and exit status 2 that
names the file, tensor or flag and says what to do; nothing of the user's is changed and no file runs code.

The checkpoints are edits of the official fixture (tests/data/official, see test_official.py) and of a tiny
``revgnn train`` run; refusals come before the data is read, so most cases need no data root.
"""
import json
import shutil
from pathlib import Path

import pytest
import torch
from test_official import CKPT, DATA, _run

from revgnn.cli import main


def one_line(err: str) -> str:
    err = err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, f"one line, no traceback: {err!r}"
    return err


def official_state() -> dict:
    return dict(torch.load(CKPT, weights_only=True)["model_state_dict"])


def save_official(path: Path, state: dict) -> Path:
    torch.save({**torch.load(CKPT, weights_only=True), "model_state_dict": state}, path)
    return path


def refused(argv, capsys) -> str:
    """Run ``revgnn evaluate``; assert exit 2 and one line; return the line."""
    code, out, err = _run(["evaluate", "--no-progress", *map(str, argv)], capsys)
    assert code == 2 and not out, f"refused with exit 2 ({code}): {err!r}"
    return one_line(err)


def refused_official(tmp_path, capsys, state: dict, *argv) -> str:
    path = save_official(tmp_path / "edited.pth", state)
    before = path.read_bytes()
    line = refused(["--official-checkpoint", path, "--root", tmp_path, *argv], capsys)
    assert path.read_bytes() == before, "the user's checkpoint is unchanged"
    assert str(path) in line, f"the line names the file: {line}"
    return line


# --- missing, extra and partial tensors ---------------------------------------------------------------------------


@pytest.mark.parametrize("drop, named", [
    ("node_one_hot_encoder.weight", "'node_one_hot_encoder.weight'"),      # its bias kept: the KeyError
    ("node_one_hot_encoder.bias", "'node_one_hot_encoder.bias'"),
    ("gcns.1._fn.Fms.0.gcn.mlp.3.weight", "'gcns.1._fn.Fms.0.gcn.mlp.3.weight'"),
    ("last_norm.bias", "'last_norm.bias'"),
])
def test_a_missing_half_of_a_layer_is_named(tmp_path, capsys, drop, named):
    state = official_state()
    del state[drop]
    line = refused_official(tmp_path, capsys, state)
    assert named in line and "missing" in line, f"the missing tensor is named: {line}"


def test_a_whole_missing_layer_and_an_extra_tensor_are_named(tmp_path, capsys):
    state = official_state()
    for leaf in ("weight", "bias"):
        del state[f"gcns.2._fn.Fms.1.gcn.mlp.0.{leaf}"]
    line = refused_official(tmp_path, capsys, state)
    assert "'gcns.2._fn.Fms.1.gcn.mlp.0.bias' (revgnn's stack.layers.2.1.conv.mlp.0.bias) is missing" in line, line
    state = {**official_state(), "gcns.0._fn.Fms.0.gcn.extra.weight": torch.zeros(2)}
    line = refused_official(tmp_path, capsys, state)
    assert "'gcns.0._fn.Fms.0.gcn.extra.weight'" in line and "no place" in line, line


@pytest.mark.parametrize("key, value", [
    ("node_features_encoder.weight", torch.zeros(16)),     # 1-D where the loader reads two sizes
    ("node_pred_linear.weight", torch.tensor(0.0)),
    ("node_one_hot_encoder.weight", torch.zeros(8)),
])
def test_a_tensor_of_the_wrong_rank_is_named(tmp_path, capsys, key, value):
    line = refused_official(tmp_path, capsys, {**official_state(), key: value})
    assert repr(key) in line and "shape" in line, f"the tensor and its shape are named: {line}"


def test_a_state_dict_with_non_text_keys_is_refused(tmp_path, capsys):
    line = refused_official(tmp_path, capsys, {**official_state(), 3: torch.zeros(1)})
    assert "3" in line and "name" in line, line


# --- what a tensor holds: layout, device, dtype, finite values ----------------------------------------------------


def _complex(w):
    return torch.complex(w, torch.ones_like(w))


@pytest.mark.parametrize("kind, edit, phrase", [
    ("sparse", lambda w: w.to_sparse(), "sparse"),
    ("sparse csr", lambda w: w.to_sparse_csr(), "sparse"),
    ("meta", lambda w: torch.empty_like(w, device="meta"), "meta"),
    ("complex", _complex, "complex64"),
    ("integer", lambda w: w.round().long(), "int64"),
    ("bool", lambda w: w > 0, "bool"),
])
def test_a_tensor_that_is_not_dense_real_floats_is_refused_by_name(tmp_path, capsys, kind, edit, phrase):
    state = official_state()
    state["edge_encoder.weight"] = edit(state["edge_encoder.weight"])
    line = refused_official(tmp_path, capsys, state)
    assert "'edge_encoder.weight'" in line and phrase in line, f"{kind}: the tensor and what it is are named: {line}"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_official_weight_is_refused_at_load_time(tmp_path, capsys, monkeypatch, value):
    import revgnn.data.datasets

    monkeypatch.setattr(revgnn.data.datasets, "load_dataset", lambda *a, **k: pytest.fail("data was loaded"))
    state = official_state()
    state["gcns.1._fn.Fms.1.norm.weight"][3] = value
    line = refused_official(tmp_path, capsys, state)
    assert "'gcns.1._fn.Fms.1.norm.weight'" in line and "NaN or infinite" in line, line


def test_float64_weights_beyond_float32s_range_are_refused(tmp_path, capsys):
    state = official_state()
    w = state["node_pred_linear.weight"].double()
    w[0, 0] = 1e300  # finite in float64, inf in the float32 model
    line = refused_official(tmp_path, capsys, {**state, "node_pred_linear.weight": w})
    assert "'node_pred_linear.weight'" in line and "float32" in line, line


# --- a revgnn train checkpoint (--checkpoint DIR) -----------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """A finished tiny ``revgnn train`` run's checkpoint.pt, as read (train once per module, edit copies)."""
    out = tmp_path_factory.mktemp("trained") / "out"
    assert main(["train", "--model", "rev", "--layers", "2", "--channels", "16", "--epochs", "2", "--dataset",
                 "synthetic-proteins", "--num-nodes", "200", "--num-edges", "1000", "--train-parts", "1",
                 "--eval-parts", "1", "--no-progress", "--out", str(out)]) == 0
    return torch.load(out / "run-seed0" / "checkpoint.pt", weights_only=True)


def save_run(tmp_path: Path, ckpt: dict, config: dict | None = None) -> Path:
    run = tmp_path / "run-seed0"
    run.mkdir(parents=True)
    torch.save({**ckpt, "config": ckpt["config"] if config is None else json.dumps(config)}, run / "checkpoint.pt")
    return run


def refused_run(tmp_path, capsys, ckpt, *argv, config=None) -> str:
    run = save_run(tmp_path, ckpt, config)
    before = (run / "checkpoint.pt").read_bytes()
    line = refused(["--checkpoint", run, *argv], capsys)
    assert (run / "checkpoint.pt").read_bytes() == before and sorted(p.name for p in run.iterdir()) == \
        ["checkpoint.pt"], "the run folder is unchanged"
    assert str(run / "checkpoint.pt") in line, f"the line names the file: {line}"
    return line


def _edit(ckpt: dict, **state) -> dict:
    return {**ckpt, "state": {**ckpt["state"], **state}}


def _first(weights: dict) -> str:
    return next(k for k, v in weights.items() if v.dim() == 2)


@pytest.mark.parametrize("how", ["not a dict", "None", "values not tensors", "wrong shape", "missing tensor", "nan",
                                 "sparse", "complex"])
def test_unusable_best_weights_are_refused_not_replaced_by_the_last(tmp_path, capsys, trained, how):
    best = dict(trained["state"]["best_model"])
    key = _first(best)
    edits = {"not a dict": [1, 2], "None": None, "values not tensors": {k: 1.0 for k in best},
             "wrong shape": {**best, key: torch.zeros(3, 3)}, "missing tensor": {k: best[k] for k in list(best)[1:]},
             "nan": {**best, key: torch.full_like(best[key], float("nan"))},
             "sparse": {**best, key: best[key].to_sparse()}, "complex": {**best, key: best[key].to(torch.complex64)}}
    line = refused_run(tmp_path, capsys, _edit(trained, best_model=edits[how]))
    assert "--weights last" in line, f"{how}: refused, suggesting the last weights: {line}"
    if how in ("wrong shape", "nan", "sparse", "complex", "values not tensors"):
        assert f"'{key if how != 'values not tensors' else next(iter(best))}'" in line, f"{how}: tensor named: {line}"
    if how == "missing tensor":
        assert f"'{next(iter(best))}' is missing" in line, line


@pytest.mark.parametrize("how", ["best not a dict", "best without epoch", "state not a dict", "nothing evaluated"])
def test_a_damaged_best_record_is_refused_suggesting_the_last_weights(tmp_path, capsys, trained, how):
    ckpt = {"best not a dict": _edit(trained, best=[1]), "best without epoch": _edit(trained, best={"valid": 0.5}),
            "state not a dict": {**trained, "state": "x"},
            "nothing evaluated": _edit(trained, best=None, best_model=None)}[how]
    line = refused_run(tmp_path, capsys, ckpt)
    assert "best" in line and "--weights last" in line, f"{how}: {line}"


def test_non_finite_or_foreign_last_weights_are_named(tmp_path, capsys, trained):
    weights = dict(trained["model"])
    key = _first(weights)
    weights[key] = weights[key].clone()
    weights[key][0, 0] = float("inf")
    line = refused_run(tmp_path, capsys, {**trained, "model": weights}, "--weights", "last")
    assert f"'{key}'" in line and "NaN or infinite" in line, line
    line = refused_run(tmp_path / "b", capsys, {**trained, "model": [1, 2]}, "--weights", "last")
    assert "list" in line and "dict of tensors" in line, line


@pytest.mark.parametrize("edit, phrase", [
    (lambda c: c["train"].update(dataset_kwargs={"bogus": 1}), "bogus"),
    (lambda c: c["train"].update(dataset_kwargs=[1, 2]), "dataset_kwargs"),
    (lambda c: c["train"].update(dataset_kwargs={"num_nodes": "many"}), "num_nodes"),
    (lambda c: c["train"].update(dataset=7), "dataset"),
    (lambda c: c.update(model=[1, 2]), "configuration"),
])
def test_a_configuration_that_does_not_fit_is_one_line(tmp_path, capsys, monkeypatch, trained, edit, phrase):
    import revgnn.data.datasets

    monkeypatch.setattr(revgnn.data.datasets, "load_dataset", lambda *a, **k: pytest.fail("data was loaded"))
    config = json.loads(trained["config"])
    edit(config)
    line = refused_run(tmp_path / "t", capsys, trained, config=config)
    assert phrase in line, line


# --- flags: partitions, views, device, seed -----------------------------------------------------------------------


@pytest.fixture
def proteins_root(tmp_path):
    """A copy of the 64-node fabricated ogbn-proteins (R in the issue)."""
    shutil.copytree(DATA / "ogbn_proteins", tmp_path / "R" / "ogbn_proteins")
    return tmp_path / "R"


@pytest.fixture
def no_inference(monkeypatch):
    """Fail the test if the model is run: these flags must be refused first."""
    import revgnn.training.protocol

    monkeypatch.setattr(revgnn.training.protocol, "predict", lambda *a, **k: pytest.fail("the model was run"))


@pytest.mark.parametrize("parts", [65, 10**9])
def test_more_partition_parts_than_nodes_are_refused_once_the_graph_is_known(proteins_root, capsys, no_inference,
                                                                              parts):
    line = refused(["--official-checkpoint", CKPT, "--root", proteins_root, "--eval-parts", parts], capsys)
    assert f"--eval-parts {parts}" in line and "64 nodes" in line, f"the flag and the node count are named: {line}"


@pytest.mark.parametrize("views", [1001, 10**9])
def test_views_are_capped_before_anything_is_read(tmp_path, capsys, monkeypatch, views):
    import revgnn.official

    monkeypatch.setattr(revgnn.official, "read_official_state", lambda *a, **k: pytest.fail("the checkpoint was read"))
    line = refused(["--official-checkpoint", CKPT, "--eval-parts", 3, "--views", views], capsys)
    assert f"--views {views}" in line and "at most 1000" in line, line


@pytest.mark.parametrize("device", ["CPU", "foo", "mps", "cuda:x", "meta"])
def test_a_device_revgnn_cannot_use_is_one_line_naming_the_flag(capsys, monkeypatch, device):
    import revgnn.official
    import revgnn.training.config

    checked = []
    real = revgnn.training.config.check_device
    monkeypatch.setattr(revgnn.training.config, "check_device", lambda *a, **k: checked.append(a) or real(*a, **k))
    monkeypatch.setattr(revgnn.official, "read_official_state", lambda *a, **k: pytest.fail("the checkpoint was read"))
    line = refused(["--official-checkpoint", CKPT, "--device", device], capsys)
    assert f"--device {device!r}" in line and "use cpu or cuda" in line, line
    assert checked, "evaluate validates --device with revgnn train's check"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal where torch sees no CUDA GPU")
def test_cuda_without_a_gpu_is_one_line(capsys):
    line = refused(["--official-checkpoint", CKPT, "--device", "cuda"], capsys)
    assert "--device 'cuda'" in line and "use --device cpu" in line, line


@pytest.mark.parametrize("seed", [10**20, 2**32, -1])
def test_a_seed_out_of_range_is_refused_up_front(capsys, monkeypatch, seed):
    import revgnn.official

    monkeypatch.setattr(revgnn.official, "read_official_state", lambda *a, **k: pytest.fail("the checkpoint was read"))
    line = refused(["--official-checkpoint", CKPT, "--eval-parts", 2, "--seed", seed], capsys)
    assert f"--seed {seed}" in line and "4294967295" in line and "Overflow" not in line, line


# --- weak messages: a plain pickle, a bad species table -----------------------------------------------------------


def _pickled(path: Path, obj, protocol: int = 4) -> Path:
    import pickle

    path.write_bytes(pickle.dumps(obj, protocol=protocol))  # not torch.save: torch warns about protocol 4, refuses
    return path


@pytest.mark.slow  # a fresh interpreter imports torch (seconds); the in-process test below checks the same quickly
def test_a_plain_pickle_is_our_one_line_without_torchs_warning(tmp_path):
    import os
    import subprocess
    import sys

    path = _pickled(tmp_path / "plain.pth", {"model_state_dict": official_state()})
    root = Path(__file__).resolve().parents[1]
    res = subprocess.run([sys.executable, "-m", "revgnn", "evaluate", "--official-checkpoint", str(path), "--root",
                          str(tmp_path), "--no-progress"], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"})
    assert res.returncode == 2, res.stderr
    line = one_line(res.stderr)
    assert "plain Python pickle" in line and str(path) in line and "Warning" not in line, line


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("source", ["--official-checkpoint", "--checkpoint"])
def test_a_plain_pickle_raises_no_warning_in_process(tmp_path, capsys, source, protocol):
    import warnings

    path = _pickled(tmp_path / "checkpoint.pt", {"config": "{}", "model": {"w": [1.0]}}, protocol)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = refused([source, path, "--root", tmp_path], capsys)
    about_the_file = [str(w.message)[:80] for w in caught if "pickle" in str(w.message)]  # not import-time notes
    assert not about_the_file, f"torch's warnings about the file are not shown: {about_the_file}"
    assert "plain Python pickle" in line and str(path) in line, line


def _species_table(root: Path, text: str | bytes) -> Path:
    import gzip

    path = root / "ogbn_proteins" / "raw" / "node_species.csv.gz"
    path.write_bytes(text if isinstance(text, bytes) else gzip.compress(text.encode()))
    return path


@pytest.mark.parametrize("what, content, phrase", [
    ("one species", "3702\n" * 64, "1 species"),
    ("text", "x\n" * 64, "header or text"),
    ("not gzip", b"garbage\n", "gzip"),
    ("fractional", "3702.5\n" + "4932\n" * 63, "non-integer"),
    ("zero", "".join(f"{t}\n" for t in (0, 4932, 6239, 7227, 7955, 9606, 10090, 511145) * 8), "taxon id 0"),
])
def test_a_bad_species_table_is_blamed_on_the_data_file(proteins_root, capsys, no_inference, what, content, phrase):
    path = _species_table(proteins_root, content)
    before = path.read_bytes()
    line = refused(["--official-checkpoint", CKPT, "--root", proteins_root], capsys)
    assert str(path) in line and phrase in line, f"{what}: the data file is named: {line}"
    assert str(CKPT) not in line, f"{what}: the checkpoint is not blamed: {line}"
    assert path.read_bytes() == before, "the user's data file is unchanged"
