"""Memory measurement (Li et al., 2021, Fig. 2-4): the record, the CLI, and the paper's claim on a tiny graph."""
import json
import math

import pytest
import torch

from revgnn import ModelConfig
from revgnn.cli import main as cli_main
from revgnn.measure.memory import StepMemory, measure_config, measure_in_subprocess, measure_step, synthetic_graph
from revgnn.nn.deq import ConvergenceWarning

TINY = dict(num_nodes=120, num_edges=1_200)


@pytest.fixture(scope="module")
def tiny_graph():
    return synthetic_graph(TINY["num_nodes"], TINY["num_edges"], seed=0)


def _measure(model, layers, graph, **kw):
    cfg = ModelConfig(model=model, num_layers=layers, hidden_channels=8, dropout=0.1, **kw)
    return measure_config(cfg, 0, 0, data=graph, repeats=1, warmup=1)


def test_record_fields(tiny_graph):
    rec = _measure("rev", 3, tiny_graph)
    assert isinstance(rec, StepMemory)
    assert rec.device == "cpu" and rec.device_name and "profiler" in rec.method and rec.mode == "train"
    assert rec.peak_bytes > rec.baseline_bytes > 0, "the step allocates above what lives before it"
    assert rec.peak_bytes > rec.state_bytes > 0, "the peak includes the model state"
    assert rec.saved_bytes > 0 and rec.step_seconds > 0 and len(rec.step_seconds_all) == 1
    assert rec.num_nodes == 120 and rec.num_edges == 1_200 and rec.num_parameters > 0
    assert rec.model["num_layers"] == 3
    d = rec.to_dict()
    assert d["peak_above_state_bytes"] == rec.peak_bytes - rec.state_bytes
    json.dumps(d)


def test_state_bytes_counts_parameters_gradients_and_adam(tiny_graph):
    rec = _measure("res", 2, tiny_graph)
    # float32 parameters, their gradients, Adam's two moments (+ one scalar step per parameter tensor)
    assert 4 * 4 * rec.num_parameters <= rec.state_bytes <= 4 * 4 * rec.num_parameters + 64 * 1024


def test_inference_saves_nothing(tiny_graph):
    cfg = ModelConfig(model="res", num_layers=4, hidden_channels=8)
    rec = measure_config(cfg, 0, 0, data=tiny_graph, train=False, repeats=1)
    assert rec.mode == "inference" and rec.saved_bytes == 0 and rec.peak_bytes >= rec.baseline_bytes


def test_revgnn_peak_is_flat_in_depth_while_resgnn_grows(tiny_graph):
    rev = [_measure("rev", L, tiny_graph).peak_above_state_bytes for L in (2, 24)]
    # PyG's GENConv path: its (E, D) per-layer activations make the O(LND) growth stand out on a tiny graph
    res = [_measure("res", L, tiny_graph, fused=False).peak_above_state_bytes for L in (2, 24)]
    assert abs(rev[1] - rev[0]) <= 0.05 * rev[0], f"RevGNN activation memory is O(ND), flat in L: {rev}"
    assert res[1] > 5 * res[0], f"ResGNN activation memory is O(LND), growing with L: {res}"
    assert rev[1] < res[1] / 5, "at 24 layers RevGNN needs far less memory than ResGNN"


@pytest.mark.parametrize("model", ["rev", "wt-rev"])
def test_peak_above_state_is_flat_in_depth_with_gradients_handed_over_per_layer(model):
    """Issue 26: the reversible engine hands each layer's parameter gradients to autograd as its backward makes them,
    so at most one layer's gradients are in flight: the peak above the model state (activations + that transient) is
    flat in L like the activation peak (issue 17, item 8), where it used to hold one copy of the whole stack's
    parameters (O(L D^2))."""
    graph = synthetic_graph(200, 2_000, seed=0)
    recs = {L: measure_config(ModelConfig(model=model, num_layers=L, hidden_channels=32, num_groups=2, dropout=0.1),
                              0, 0, data=graph, repeats=1, warmup=1) for L in (1, 32)}
    lo, hi = recs[1], recs[32]
    assert hi.activation_peak_bytes <= 1.02 * lo.activation_peak_bytes, \
        f"{model}'s activation peak is flat in L: {lo.activation_peak_bytes} -> {hi.activation_peak_bytes}"
    assert hi.peak_above_state_bytes <= 1.05 * lo.peak_above_state_bytes, \
        f"{model}'s peak above the model state is flat in L: {lo.peak_above_state_bytes} -> {hi.peak_above_state_bytes}"
    layer = 4 * (recs[32].num_parameters - recs[1].num_parameters) / 31 if model == "rev" else None
    if layer:
        assert hi.gradient_transient_bytes < 2 * layer + lo.gradient_transient_bytes, \
            f"the gradient transient is not O(L D^2): {hi.gradient_transient_bytes} B at L = 32, a layer {layer:.0f} B"
    for rec in (lo, hi):
        assert rec.activation_peak_bytes > 0 and rec.optimizer_transient_bytes > 0 and rec.split_method
        increment = rec.peak_bytes - rec.baseline_bytes
        assert max(rec.activation_peak_bytes, rec.optimizer_transient_bytes) <= increment <= \
            rec.activation_peak_bytes + rec.gradient_transient_bytes + rec.optimizer_transient_bytes, \
            "the parts are peaks of pieces of the same allocator trace as the total"
        assert rec.optimizer_transient_bytes < 4 * rec.num_parameters, \
            "Adam's per-parameter loop needs less than one copy of the parameters"


def test_resgnn_activation_peak_grows_with_depth(tiny_graph):
    acts = [_measure("res", L, tiny_graph).activation_peak_bytes for L in (2, 24)]
    assert acts[1] > 3 * acts[0], f"ResGNN's activation peak is O(LND): {acts}"


def test_inference_has_no_split(tiny_graph):
    rec = measure_config(ModelConfig(model="rev", num_layers=2, hidden_channels=8), 0, 0, data=tiny_graph,
                         train=False, repeats=1)
    assert rec.activation_peak_bytes is None and rec.optimizer_transient_bytes is None


def test_measurement_is_quiet_on_stdout_and_stderr(tiny_graph, capfd):
    """Notebooks that measure show no profiler log lines (libkineto's USDT/STAGE lines went to stderr)."""
    _measure("rev", 2, tiny_graph)
    out, err = capfd.readouterr()
    assert out == "" and err == "", (out, err)


def test_deq_peak_is_flat_in_solver_iterations(tiny_graph):
    peaks = []
    for it in (2, 12):
        cfg = ModelConfig(model="deq", num_layers=1, hidden_channels=8, max_iter=it, tol=0.0, fused=False)
        with pytest.warns(ConvergenceWarning, match="did not converge"):  # tol=0: exactly max_iter iterations
            rec = measure_config(cfg, 0, 0, data=tiny_graph, repeats=1)
        assert rec.solver_iterations == it, "the solver ran the iterations asked for"
        peaks.append(rec.peak_above_state_bytes)
    assert abs(peaks[1] - peaks[0]) <= 0.05 * peaks[0], f"DEQ-GNN memory does not grow with iterations: {peaks}"


def test_cli_json_last_line(capsys):
    rc = cli_main(["memory", "--model", "rev", "--layers", "2", "--channels", "8", "--nodes", "100",
                   "--edges", "800", "--repeats", "1", "--json"])
    assert rc == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    rec = json.loads(last)
    for key in ("peak_bytes", "state_bytes", "saved_bytes", "step_seconds", "device", "method",
                "activation_peak_bytes", "gradient_transient_bytes", "optimizer_transient_bytes"):
        assert key in rec, key
    assert rec["peak_bytes"] > rec["state_bytes"] > 0 and math.isfinite(rec["step_seconds"])
    assert 0 < rec["activation_peak_bytes"] < rec["peak_bytes"] - rec["state_bytes"]


@pytest.mark.parametrize("argv, message", [
    (["--model", "rev", "--channels", "7"], "divisible"),
    (["--model", "rev", "--layers", "0"], "--layers"),
    (["--model", "res", "--nodes", "10"], "--nodes"),
    (["--model", "rev", "--checkpoint"], "--checkpoint"),
])
def test_cli_bad_inputs_give_one_line_errors(capsys, argv, message):
    rc = cli_main(["memory", *argv, "--nodes" if "--nodes" not in argv else "--edges", "100" if
                   "--nodes" not in argv else "800", "--repeats", "1"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and message in err, err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised when CUDA is absent")
def test_cuda_request_without_cuda_is_a_clear_error(tiny_graph):
    with pytest.raises(ValueError, match="no CUDA device"):
        measure_step(torch.nn.Linear(2, 2), tiny_graph, "cuda")


def test_profiler_peak_agrees_with_the_operating_system():
    """Cross-check in a fresh process: growth of peak RSS over one step vs the allocator events' increment."""
    cfg = ModelConfig(model="res", num_layers=30, hidden_channels=16, dropout=0.1, fused=False)  # tens of MiB
    rec = measure_in_subprocess(cfg, 500, 5_000)
    increment = rec.peak_bytes - rec.baseline_bytes
    assert rec.rss_step_bytes is not None, "this Linux lets a process reset its peak RSS"
    assert increment > 40 * 2**20, "the step allocates tens of MiB, well above RSS noise"
    assert abs(rec.rss_step_bytes - increment) <= 0.25 * increment, (rec.rss_step_bytes, increment)
