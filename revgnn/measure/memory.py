"""Memory measurement (Li et al., 2021, Fig. 2-4): what one training step keeps for backward, its peak, its time.

The paper's claim is that RevGNN's training memory stays flat as depth L grows while ResGNN's grows linearly
(activation memory O(ND) against O(LND), complexity table of Sec. 3). :func:`measure_step` makes it measurable: it
runs one training step (forward, BCE loss, backward, optimizer step) of a model on a graph and returns a
:class:`StepMemory` record:

- ``peak_bytes``: peak tensor memory during the step. CUDA: ``torch.cuda.max_memory_allocated``. CPU: the
  allocator's own allocation and free events, recorded by ``torch.profiler`` (``profile_memory=True``) and summed in
  time order; their running maximum is added to the bytes of the tensors alive before the step (parameters,
  optimizer state, the graph). :func:`measure_in_subprocess` cross-checks it against the operating system: in a
  fresh process it resets the peak resident set size (``/proc/self/clear_refs``) and reads its growth over one
  step, with glibc's ``malloc`` forced to return large blocks to the system.
- ``state_bytes``: parameters + gradients + optimizer state (each storage once), what any trainer holds whatever
  the activations; ``peak_bytes - state_bytes`` is activation memory plus the graph.
- ``saved_bytes``: bytes autograd saved for backward (:class:`SavedTensorMeter`), the table's activation memory.
- ``activation_peak_bytes``: the peak of forward and backward above everything alive before the step (parameters,
  their gradients, optimizer state, the graph), parameter gradients on their way to ``.grad`` left out: the
  activations and the transients of the layers, the quantity the complexity table is about.
- ``gradient_transient_bytes``: the most parameter-gradient bytes in flight at once during backward, i.e. returned
  by autograd but not yet added into ``.grad``. The reversible engine hands each layer's gradients over as it makes
  them (:mod:`revgnn.nn.reversible`), so this is about one layer's parameters (or the output head's), whatever L.
- ``optimizer_transient_bytes``: the peak of ``optimizer.step()`` above what was alive when it began.
- ``step_seconds``: median wall time of ``repeats`` un-instrumented steps.

``peak_bytes`` is the total, as the paper plots it; ``peak_bytes - state_bytes`` (``peak_above_state_bytes``)
contains the graph, the activations and the gradient transient; for RevGNN both it and ``activation_peak_bytes``
are flat in L. On CPU the split comes from the same allocator events as the peak: the step
is cut at a ``record_function`` mark before ``optimizer.step()``, and a hook on each parameter marks the storage of
the gradient it receives, whose allocation and free are then counted as gradient, not activation. On CUDA the two
phases are read with ``torch.cuda.max_memory_allocated`` (reset between them), so ``activation_peak_bytes``
includes the gradient transient there (``split_method`` says which).

The optimizer is Adam with its per-parameter loop (``foreach=False``): the multi-tensor variant allocates
temporaries the size of all parameters at once, which would add O(L D^2) to every model's peak and hide the
activation memory the paper is about. Gradient clipping is left out for the same reason.
"""
from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from revgnn.nn.deq import solver_fields
from revgnn.nn.presets import count_parameters
from revgnn.training.records import device_name

from .allocations import OPT_STEP_MARK, QuietProfile, cpu_peak_increment, cpu_split, mark_gradient

__all__ = ["SavedTensorMeter", "StepMemory", "synthetic_graph", "measure_step", "measure_config",
           "measure_in_subprocess", "tensor_bytes", "PEAK_METHODS", "SPLIT_METHODS"]

PEAK_METHODS = {
    "cuda": "torch.cuda.max_memory_allocated",
    "cpu": "torch.profiler allocator events (running sum of allocations and frees) + live bytes before the step",
}
SPLIT_METHODS = {
    "cuda": "torch.cuda.max_memory_allocated per phase (reset before optimizer.step); activation_peak_bytes "
            "includes the parameter gradients in flight",
    "cpu": "torch.profiler allocator events cut at optimizer.step; the storages of parameter gradients in flight "
           "(marked by a hook on each parameter) left out of activation_peak_bytes",
}
_STEP_SOLVER_FIELDS = ("deq_solver", "deq_tol", "deq_forward_iters", "deq_forward_residual", "deq_forward_converged",
                       "deq_backward_iters", "deq_backward_residual", "deq_backward_converged")


class SavedTensorMeter:
    """Context manager that sums the bytes of the distinct storages autograd saves for backward.

    Args:
        exclude (Iterable[Tensor]): tensors whose storages are not counted (e.g. ``model.parameters()``).

    Example::

        with SavedTensorMeter(model.parameters()) as meter:
            loss = model(x, edge_index).sum()
        meter.bytes
    """

    def __init__(self, exclude: Iterable[Tensor] = ()):
        self._exclude = {st.data_ptr() for t in exclude for st in _storages(t)}
        self._seen: set[int] = set()
        self.bytes = 0
        self.count = 0
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)

    def _pack(self, t: Tensor) -> Tensor:
        for storage in _storages(t):
            ptr = storage.data_ptr()
            if ptr not in self._exclude and ptr not in self._seen:
                self._seen.add(ptr)
                self.bytes += storage.nbytes()
                self.count += 1
        return t

    @staticmethod
    def _unpack(t: Tensor) -> Tensor:
        return t

    def __enter__(self) -> SavedTensorMeter:
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)


@dataclass
class StepMemory:
    """Memory and time of one training (or inference) step of one model on one graph.

    Attributes:
        device: ``"cpu"`` or ``"cuda"``; device_name: the processor or GPU model.
        method: how ``peak_bytes`` was measured (one of :data:`PEAK_METHODS`).
        mode: ``"train"`` (forward, loss, backward, optimizer step) or ``"inference"`` (forward under no_grad).
        peak_bytes: peak tensor bytes during the step, including everything alive before it.
        baseline_bytes: tensor bytes alive when the step starts (parameters, optimizer state, graph).
        state_bytes: parameters + gradients + optimizer state, each storage once (parameters only for inference).
        saved_bytes: bytes autograd saved for backward, parameters excluded (0 for inference).
        step_seconds: median wall time over ``step_seconds_all``.
        rss_step_bytes: growth of the process's peak resident set size over one step (fresh subprocess only).
        solver_iterations: DEQ-GNN's forward iterations (None for layered models).
        activation_peak_bytes: peak of forward + backward above everything alive before the step, parameter
            gradients in flight left out (training only; see the module docstring).
        gradient_transient_bytes: most parameter-gradient bytes in flight at once during backward (CPU only).
        optimizer_transient_bytes: peak of ``optimizer.step()`` above what was alive when it began.
        split_method: how the three were measured (one of :data:`SPLIT_METHODS`).
        deq_solver, deq_tol, deq_forward_iters, deq_forward_residual, deq_forward_converged, deq_backward_iters,
            deq_backward_residual, deq_backward_converged: a DEQ-GNN's forward and adjoint solves in the measured
            step (:func:`revgnn.nn.deq.solver_fields`; None for layered models, backward None for inference).
        graph: ``num_nodes``, ``num_edges``; model: its configuration as a dict, ``num_parameters``.
    """

    device: str
    device_name: str
    method: str
    mode: str
    peak_bytes: int
    baseline_bytes: int
    state_bytes: int
    saved_bytes: int
    step_seconds: float
    step_seconds_all: list[float] = field(default_factory=list)
    num_parameters: int = 0
    num_nodes: int = 0
    num_edges: int = 0
    model: dict = field(default_factory=dict)
    rss_step_bytes: int | None = None
    rss_method: str | None = None
    solver_iterations: int | None = None
    activation_peak_bytes: int | None = None
    gradient_transient_bytes: int | None = None
    optimizer_transient_bytes: int | None = None
    split_method: str | None = None
    deq_solver: str | None = None
    deq_tol: float | None = None
    deq_forward_iters: int | None = None
    deq_forward_residual: float | None = None
    deq_forward_converged: bool | None = None
    deq_backward_iters: int | None = None
    deq_backward_residual: float | None = None
    deq_backward_converged: bool | None = None

    @property
    def peak_above_state_bytes(self) -> int:
        """Peak minus model state: activations, transients and the graph."""
        return self.peak_bytes - self.state_bytes

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["peak_above_state_bytes"] = self.peak_above_state_bytes
        return d


def tensor_bytes(tensors: Iterable) -> int:
    """Bytes of the distinct storages among ``tensors`` (None and non-tensors skipped)."""
    seen, total = set(), 0
    for t in tensors:
        if isinstance(t, Tensor):
            for s in _storages(t):
                if s.data_ptr() not in seen:
                    seen.add(s.data_ptr())
                    total += s.nbytes()
    return total


def _storages(t: Tensor) -> list:
    """The storages holding ``t``: its own, or those of a sparse tensor's index and value tensors (a CSR adjacency
    saved for backward by RevSAGE's fused aggregation)."""
    if t.layout == torch.sparse_csr:
        parts = (t.crow_indices(), t.col_indices(), t.values())
    elif t.layout == torch.sparse_coo:
        parts = (t._indices(), t._values())
    else:
        parts = (t,)
    return [p.untyped_storage() for p in parts]


def _optimizer_tensors(opt: torch.optim.Optimizer | None) -> list:
    if opt is None:
        return []
    return [v for st in opt.state.values() for v in st.values() if isinstance(v, Tensor)]


def synthetic_graph(num_nodes: int, num_edges: int, seed: int = 0):
    """A ``synthetic-proteins`` graph (ogbn-proteins schema) with ``num_nodes`` nodes and ``num_edges`` directed
    edges (rounded up to even): ``x`` (N, 8) summed edge features, ``edge_attr`` (E, 8), ``species`` (N,),
    ``y`` (N, 112)."""
    from torch_geometric.data import Data

    from revgnn.data.synthetic import SyntheticProteinsConfig, generate_synthetic_proteins

    if num_nodes < 80:
        raise ValueError(f"--nodes must be >= 80 for a synthetic-proteins graph (8 species), got {num_nodes}")
    if num_edges < 2:
        raise ValueError(f"--edges must be >= 2, got {num_edges}")
    num_edges += num_edges % 2
    data, _ = generate_synthetic_proteins(SyntheticProteinsConfig(num_nodes, num_edges, seed=seed))
    keep = ("x", "edge_index", "edge_attr", "species", "y")  # ogbn-proteins' tensors only, no ground-truth extras
    return Data(**{k: data[k] for k in keep}, num_nodes=num_nodes)


_cpu_peak_increment = cpu_peak_increment  # the name benchmarks/fused.py and drift.py import


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Step:
    """One training or inference step of ``model`` on ``data``; the forward is optionally metered."""

    def __init__(self, model: nn.Module, data, train: bool, lr: float = 1e-3):
        self.model, self.data, self.train = model, data, train
        self.opt = torch.optim.Adam(model.parameters(), lr=lr, foreach=False) if train else None
        # multi-label tasks (ogbn-proteins) take BCE on float targets; (N,) class ids (ogbn-products) cross-entropy
        self.classes = data.y.dim() == 1 and not data.y.is_floating_point()
        self.target = (data.y if self.classes else data.y.float()) if train else None
        self.meter: SavedTensorMeter | None = None

    def _forward(self):
        d = self.data
        return self.model(d.x, d.edge_index, getattr(d, "edge_attr", None), getattr(d, "species", None))

    def prepare(self) -> None:
        # gradients stay allocated (zeroed), so the model state is alive during the whole step and
        # peak - state_bytes is activations, transients and the graph even when the peak comes before backward
        if self.opt is not None:
            self.opt.zero_grad(set_to_none=False)

    def __call__(self, meter: bool = False, phase: Callable[[str], object] | None = None,
                 mark_gradients: bool = False) -> None:
        """``phase(name)`` (a context manager) wraps ``optimizer.step()``; ``mark_gradients`` emits a profiler mark
        with the storage of each parameter gradient as autograd hands it over."""
        if not self.train:
            self.model.eval()
            with torch.no_grad():
                self._forward()
            return
        self.model.train()
        hooks = [p.register_hook(mark_gradient) for p in self.model.parameters()
                 if p.requires_grad] if mark_gradients else []
        try:
            if meter:
                self.meter = SavedTensorMeter(self.model.parameters())
                with self.meter:
                    out = self._forward()
            else:
                out = self._forward()
            loss = (F.cross_entropy(out, self.target) if self.classes
                    else F.binary_cross_entropy_with_logits(out, self.target))
            del out
            loss.backward()
            del loss
        finally:
            for h in hooks:
                h.remove()
        with phase(OPT_STEP_MARK) if phase is not None else nullcontext():
            self.opt.step()

    def _state_tensors(self) -> list:
        params = list(self.model.parameters())
        return [*params, *(p.grad for p in params), *self.model.buffers(), *_optimizer_tensors(self.opt)]

    def live_tensors(self) -> list:
        d = self.data
        return [*self._state_tensors(), *(d[k] for k in d.keys() if isinstance(d[k], Tensor)), self.target]

    def state_bytes(self) -> int:
        return tensor_bytes(self._state_tensors())


def measure_step(model: nn.Module, data, device: str | torch.device = "cpu", train: bool = True,
                 repeats: int = 3, warmup: int = 1) -> StepMemory:
    """Measure one step of ``model`` on ``data`` (a PyG ``Data`` with x, edge_index, edge_attr, species, y).

    Args:
        model (nn.Module): any model with the package's ``forward(x, edge_index, edge_attr, species)``.
        data: the graph; moved to ``device``.
        device: ``"cpu"`` or ``"cuda"``.
        train (bool): a training step (forward, BCE loss, backward, Adam step) or an inference forward (no grad).
        repeats (int): timed, un-instrumented steps; ``step_seconds`` is their median. 0 times the instrumented
            step itself (for steps of minutes, where the profiler's overhead is small).
        warmup (int): steps run first (they also create the optimizer state, which is then part of the baseline).

    Returns:
        StepMemory: the record (``model`` and graph fields filled from what is known here).
    """
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but torch sees no CUDA device; use --device cpu")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be cpu or cuda (got {device})")
    if repeats < 0 or warmup < 0:
        raise ValueError(f"repeats and warmup must be >= 0 (got {repeats}, {warmup})")
    model = model.to(device)
    data = data.to(device)
    step = _Step(model, data, train)
    for _ in range(warmup):
        step.prepare()
        step()
    times = []
    for _ in range(repeats):
        step.prepare()
        _sync(device)
        t0 = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t0)

    step.prepare()
    split = {}
    t0 = time.perf_counter()
    if device.type == "cuda":
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        baseline = torch.cuda.memory_allocated(device)

        @contextmanager
        def phase(name):
            _sync(device)
            split["activation"] = torch.cuda.max_memory_allocated(device) - baseline
            split["fwd_bwd_peak"] = torch.cuda.max_memory_allocated(device)
            level = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
            yield
            _sync(device)
            split["optimizer"] = torch.cuda.max_memory_allocated(device) - level

        step(meter=True, phase=phase if train else None)
        _sync(device)
        elapsed = time.perf_counter() - t0
        peak_bytes = max(torch.cuda.max_memory_allocated(device), split.get("fwd_bwd_peak", 0))
    else:
        from torch.profiler import ProfilerActivity, record_function

        baseline = tensor_bytes(step.live_tensors())
        with QuietProfile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            step(meter=True, phase=record_function, mark_gradients=train)
        elapsed = time.perf_counter() - t0
        split = cpu_split(prof)
        peak_bytes = baseline + split["increment"]
    if not times:  # repeats=0: the instrumented step's own time
        times = [elapsed]
    stats = getattr(model, "last_solver_stats", None)
    solves = {k: v for k, v in solver_fields(model).items() if k in _STEP_SOLVER_FIELDS}
    if solves and not train:  # an inference step solves forward only
        solves.update(deq_backward_iters=None, deq_backward_residual=None, deq_backward_converged=None)
    return StepMemory(
        device=device.type, device_name=device_name(device), method=PEAK_METHODS[device.type],
        mode="train" if train else "inference", peak_bytes=int(peak_bytes), baseline_bytes=int(baseline),
        state_bytes=step.state_bytes(), saved_bytes=step.meter.bytes if step.meter else 0,
        step_seconds=statistics.median(times), step_seconds_all=times,
        num_parameters=count_parameters(model),
        num_nodes=int(data.num_nodes), num_edges=int(data.edge_index.size(1)),
        solver_iterations=getattr(stats, "iterations", None),
        activation_peak_bytes=split.get("activation") if train else None,
        gradient_transient_bytes=split.get("gradient") if train else None,
        optimizer_transient_bytes=split.get("optimizer") if train else None,
        split_method=SPLIT_METHODS[device.type] if train else None, **solves)


def measure_config(config, num_nodes: int, num_edges: int, device: str = "cpu", train: bool = True,
                   repeats: int = 3, warmup: int = 1, seed: int = 0, data=None) -> StepMemory:
    """Build ``config`` (a :class:`~revgnn.nn.presets.ModelConfig`) and measure it on a ``synthetic-proteins`` graph
    of the given size (or on ``data``)."""
    from revgnn.nn.presets import build_model
    from revgnn.training.runtime import apply_thread_policy

    apply_thread_policy()  # one thread unless the caller chose: torch's default collapses on a busy small box
    torch.manual_seed(seed)
    if data is None:
        data = synthetic_graph(num_nodes, num_edges, seed)
    model = build_model(config)
    rec = measure_step(model, data, device, train=train, repeats=repeats, warmup=warmup)
    rec.model = dataclasses.asdict(config)
    return rec


_CHILD = r"""
import json, sys, torch
from revgnn.measure.memory import _child_main
print(json.dumps(_child_main(json.loads(sys.argv[1]))))
"""


def _proc_status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def _child_main(spec: dict) -> dict:
    """Subprocess body of :func:`measure_in_subprocess`."""
    from revgnn.nn.presets import ModelConfig, build_model
    from revgnn.training.runtime import apply_thread_policy

    apply_thread_policy()
    cfg = ModelConfig(**spec["config"])
    torch.manual_seed(spec["seed"])
    data = synthetic_graph(spec["num_nodes"], spec["num_edges"], spec["seed"])
    model = build_model(cfg)
    step = _Step(model, data, spec["train"])
    step.prepare()
    step()                                             # warm-up: optimizer state, allocator, lazy inits
    step.prepare()
    rss_method = None
    try:
        with open("/proc/self/clear_refs", "w") as f:  # resets VmHWM to the current RSS (Linux >= 4.0)
            f.write("5")
        before = _proc_status_kb("VmRSS")
        step()
        rss_step = (_proc_status_kb("VmHWM") - before) * 1024
        rss_method = "VmHWM after the step - VmRSS before it (/proc/self/clear_refs reset), MALLOC_MMAP_THRESHOLD_"
    except OSError:
        rss_step = None
    rec = measure_step(model, data, "cpu", train=spec["train"], repeats=1, warmup=0)
    rec.model = dataclasses.asdict(cfg)
    rec.rss_step_bytes, rec.rss_method = rss_step, rss_method
    return rec.to_dict()


def measure_in_subprocess(config, num_nodes: int, num_edges: int, train: bool = True, seed: int = 0,
                          timeout: float = 600) -> StepMemory:
    """:func:`measure_config` on CPU in a fresh Python process, with the operating system's view as a cross-check.

    The child runs a warm-up step, resets its peak resident set size, runs one step and reports the growth of the
    peak RSS over the RSS before the step as ``rss_step_bytes``; then it measures the step as
    :func:`measure_step` does. ``rss_step_bytes`` should match ``peak_bytes - baseline_bytes`` up to allocator
    slack (glibc is told to return every block above 64 KiB to the system at once, so freed tensors leave RSS).
    """
    spec = {"config": dataclasses.asdict(config), "num_nodes": num_nodes, "num_edges": num_edges, "train": train,
            "seed": seed}
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="65536")
    env.setdefault("OMP_NUM_THREADS", "1")
    out = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(spec)], capture_output=True, text=True,
                         env=env, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"memory subprocess failed ({out.returncode}): {out.stderr.strip()[-2000:]}")
    d = json.loads(out.stdout.strip().splitlines()[-1])
    d.pop("peak_above_state_bytes", None)
    return StepMemory(**d)
