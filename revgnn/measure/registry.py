"""The registry of committed records (issue 26): every ``results/*.json`` that a book page, ``README.md`` or
``results/README.md`` shows is declared here once, with the command that makes it, what it costs, what it measures and
how to tell that today's code still gives it.

Three kinds of record, checked three ways (``revgnn records check``; ``tests/test_records.py`` runs the same check):

- ``memory``: allocator bytes, deterministic on a CPU. A *sample* of the record's own points is measured again by
  its own command (``sample``: the extra arguments that select it) and must give the same bytes; where no point fits
  in a minute, a *probe* (the same command at a small size, ``probe``) is measured at regeneration time, kept in the
  record's ``fingerprint`` block, and must give the same bytes again.
- ``training``: test scores of seeded runs. The record keeps :func:`~revgnn.measure.fingerprint.training_numerics`
  of every row's ``revgnn train`` command (or of ``commands``), which must agree with today's.
- ``timing``: seconds, which move ~1.6x with the load of a shared machine and differ between CPUs. Such a record is
  fresh while the *numbers* of its computation are (:func:`~revgnn.measure.fingerprint.model_numerics` of
  ``models``, or the training numerics of ``commands``), whatever the speed; the page says which CPU, kernel build
  and revision each time came from.

A record may combine them (``speed.json`` times steps and also records their peaks: both are checked). ``cost_s`` is
the time to regenerate a record on one core of the project's 2-core machine, from the record's own duration or a run
of its command (``cost_how`` says which). ``revgnn records regenerate NAME`` runs ``command`` and writes the
fingerprint; ``memory_command``, where given, re-measures only the memory part of a training record.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from revgnn.nn.presets import ModelConfig

__all__ = ["Record", "REGISTRY", "KINDS", "get", "memory_rows"]

KINDS = ("memory", "training", "timing")

# The byte fields of a memory row that must come out the same (a measurement's time never has to).
MEMORY_FIELDS = ("peak_bytes", "baseline_bytes", "state_bytes", "saved_bytes", "activation_peak_bytes",
                 "gradient_transient_bytes", "optimizer_transient_bytes")


@dataclass(frozen=True)
class Record:
    """One committed record.

    Args:
        name: the key (``revgnn records regenerate NAME``).
        file: the record, relative to the repository root.
        command: the command that writes it, run from the repository root with ``OMP_NUM_THREADS=1``.
        kinds: what it holds, among :data:`KINDS`.
        what: one sentence: what it measures, at which size.
        cost_s: seconds to regenerate on one core of the 2-core machine; ``cost_how``: where that figure comes from.
        shown_on: the pages (``book/*.md``, notebooks), ``README.md`` or ``results/README.md`` that show it.
        sample: memory: argument lists that re-measure some of its points with ``command`` (written to a temporary
            file by ``--out``), compared field by field with the record's rows (:func:`memory_rows`).
        probe: memory, no point within a minute: arguments of ``command`` at a small size; their bytes are kept in the
            record's fingerprint and measured again.
        models: timing: ``(name, ModelConfig, train)`` whose float64 numbers fingerprint its computation.
        commands: training or timing without a command per row: ``revgnn train`` commands whose training numbers
            fingerprint it. Training records with rows of commands use those.
        memory_command: a command that re-measures only the memory part of a training record.
        cpu: timing: the CPU it was timed on, which a regeneration must use again (another CPU makes another record).
    """

    name: str
    file: str
    command: str
    kinds: tuple[str, ...]
    what: str
    cost_s: int
    cost_how: str
    shown_on: tuple[str, ...]
    sample: tuple[tuple[str, ...], ...] = ()
    probe: tuple[str, ...] = ()
    models: tuple[tuple[str, ModelConfig, bool], ...] = ()
    commands: tuple[str, ...] = ()
    memory_command: str = ""
    cpu: str = ""
    rows_have_commands: bool = field(default=False)

    @property
    def stem(self) -> str:
        return self.file.rsplit("/", 1)[-1]


def _depth_rows(record: dict) -> dict:
    return {(r["label"], r["x"], r["mode"]): r for r in record.get("rows", [])}


def _rss_rows(record: dict) -> dict:
    return {(r["model"], r["num_layers"], r["num_nodes"]): {"peak_bytes": r["record"]["peak_bytes"],
                                                           "baseline_bytes": r["record"]["baseline_bytes"],
                                                           "profiler_increment_bytes": r["profiler_increment_bytes"]}
            for r in record.get("rows", [])}


def _sweep_rows(record: dict) -> dict:
    return {(r["num_edges"], r["fused"]): r for r in record.get("rows", [])}


def _cli_rows(record: dict) -> dict:
    return {"revgnn memory": record["record"]}


def _fig1_rows(record: dict) -> dict:
    return {r["name"]: r["memory"] for r in record.get("rows", []) if r.get("memory")}


def _speed_rows(record: dict) -> dict:
    return dict(record.get("peaks", {}))


def _partition_rows(record: dict) -> dict:
    return {name: {k: v for k, v in m.items() if k.endswith("bytes")} for name, m in record.get("models", {}).items()}


def _drift_rows(record: dict) -> dict:
    return {r["label"]: r for r in record.get("rows", [])}


def _fig5_rows(record: dict) -> dict:
    return {(r["model"], r["batching"], r["depth"]): r for r in record.get("rows", []) if r.get("peak_bytes")}


ROWS: dict[str, Callable[[dict], dict]] = {
    "memory_depth": _depth_rows, "rss_crosscheck": _rss_rows, "fused_sweep": _sweep_rows, "fused_memory_cli": _cli_rows,
    "accuracy_fig1": _fig1_rows, "speed": _speed_rows, "fused_partition": _partition_rows, "drift": _drift_rows,
    "fig5_memory": _fig5_rows}


def memory_rows(record_name: str, content: dict) -> dict:
    """The byte fields of a memory record's points, keyed by what names a point (``(label, x, mode)`` for the
    depth sweeps), for the comparison of a sample with the committed record."""
    rows = ROWS[_family(record_name)](content)
    fields = MEMORY_FIELDS + ("profiler_increment_bytes",)
    return {key: {f: row[f] for f in fields if row.get(f) is not None} for key, row in rows.items()}


def _family(name: str) -> str:
    return next(f for f in sorted(ROWS, key=len, reverse=True) if get(name).stem.startswith(f))


# The configurations of the fingerprints of timing records (float64, a tiny graph; revgnn.measure.fingerprint).
_REV80 = ModelConfig("rev", 2, 80, dropout=0.1)
_DEEP2 = _REV80                                           # RevGNN-Deep's width (D = 80), two layers
_WIDE2 = _REV80.replace(hidden_channels=224, dropout=0.2)  # RevGNN-Wide's
_SYNTH = ("revgnn train --model rev --channels 32 --dropout 0.1 --lr 0.01 --dataset synthetic-proteins --epochs 400 "
          "--eval-every 10 --layers {L} --runs 1")
_PPI_DDP = ("revgnn train --dataset ppi --model rev --layers {L} --channels 64 --dropout 0.1 --train-parts 4 "
            "--accumulate 2 --label-reuse 0.5")
_FIG2 = ("notebooks/fig2_memory_res_vs_rev.ipynb", "notebooks/fig3_memory_wt.ipynb",
         "notebooks/fig4_memory_deq.ipynb")
_WHOLE = ("notebooks/whole_graph.ipynb", "book/results.md", "README.md", "results/README.md")
_ACC = ("book/results.md", "README.md", "results/README.md")
_AVX512 = "Intel Xeon (AVX-512), 2 cores"
_EPYC = "AMD EPYC (AVX2), 2 cores"
# DEQ-GNN at Fig. 1's setting with the shipped warm-up; a fingerprint's 2 epochs are the warm-up's, so the second
# command (1 warm-up epoch) also fingerprints a solver step (forward and adjoint solves).
_DEQ_FIG1 = ("revgnn train --model deq --channels 32 --dropout 0.1 --lr 0.01 --dataset synthetic-proteins "
             "--num-nodes 2000 --num-edges 32000 --epochs 12 --eval-every 12 --runs 1")

REGISTRY: tuple[Record, ...] = (
    # ---- memory: the paper's figures 2-4 and the memory claims
    Record("fig2-memory", "results/memory_depth_small.json", "python benchmarks/memory_depth.py --graph small",
           ("memory",), "Figs. 2-4: peak training memory of ResGNN, ResGNN + checkpointing, RevGNN, WT-ResGNN and "
           "WT-RevGNN against depth (L = 1 ... 1001) and of DEQ-GNN against solver iterations (1 ... 100), "
           "synthetic-proteins N = 500, E = 5,000, D = 16, C = 2, PyG's GENConv; inference rows for ResGNN and RevGNN",
           420, "the run of this record (load average 4-6, nice 19)", _FIG2 + _ACC,
           sample=(("--no-inference", "--depths", "1001", "--models", "res", "res-ckpt", "rev", "wt-res", "wt-rev"),
                   ("--no-inference", "--depths", "100", "--models", "deq"))),
    Record("fig2-partition", "results/memory_depth_partition.json",
           "python benchmarks/memory_depth.py --graph partition", ("memory",),
           "the same on one ogbn-proteins-shaped training partition (13,253 nodes, 791,224 edges, D = 32; L = 1 ... 8, "
           "the weight-tied models and DEQ-GNN at 2 and 8), plotted as the Fig. 2 page's second row",
           600, "the run of this record", ("notebooks/fig2_memory_res_vs_rev.ipynb", "results/README.md"),
           sample=(("--no-inference", "--depths", "1", "--models", "rev"),)),
    Record("memory-mid", "results/memory_depth_mid.json",
           "python benchmarks/memory_depth.py --graph mid --fused --models rev res --no-inference", ("memory",),
           "RevGNN (L = 4 ... 128) and ResGNN (L = 4 ... 32) with the fused message passing, N = 2,000, E = 40,000, "
           "D = 32: the activation peak, the optimizer's transient and the total apart", 300,
           "the run of this record", ("results/README.md",),
           sample=(("--depths", "4", "--models", "rev"),)),
    Record("rss-crosscheck", "results/rss_crosscheck.json", "python benchmarks/rss_crosscheck.py", ("memory",),
           "the allocator-event peak of revgnn.measure.memory against the operating system's peak resident set, "
           "fresh processes, ResGNN and RevGNN on the small graph and on the partition", 120,
           "its last run, 579 s at load average 11.7-13.7 (nice 19); about 2 minutes idle", ("results/README.md",),
           sample=(("--quick",),)),
    Record("fused-sweep", "results/fused_sweep.json",
           "python benchmarks/fused.py sweep --edge-list 250000 1000000 4000000 16000000 --pyg-max-edges 4000000 "
           "--layers 2", ("memory",),
           "peak (allocator) of one RevGNN training step (D = 80, L = 2) at N = 132,534 against the number of edges, "
           "the fused message passing and PyG's, with the floor", 540,
           "the record's run, 527 s at load average 4.1-4.9 (nice 19; 244 s of CPU, 11 GB resident)", _WHOLE,
           sample=(("--edge-list", "250000", "--pyg-max-edges", "250000"),)),
    Record("fused-memory-cli", "results/fused_memory_cli.json",
           "python benchmarks/fused.py memory-cli --layers 2 --repeats 1", ("memory",),
           "`revgnn memory --model rev --layers 2 --channels 80 --groups 2` on ogbn-proteins' full shape (132,534 "
           "nodes, 79,122,504 edges): the allocator's peak of one training step against the floor", 1700,
           "the record's run, 1,690 s at load average 2.7-4.8 (nice 19; 340 s of CPU, 7 GB resident)", _WHOLE,
           probe=("--nodes", "2000", "--edges", "20000")),
    # ---- training: test scores of seeded runs
    Record("accuracy-depth", "results/accuracy_synthetic-depth.json",
           "python benchmarks/accuracy.py synthetic-depth --jobs 3", ("training",),
           "RevGNN test ROC-AUC against depth (L = 1, 2, 4, 8; D = 32; 400 epochs; seeds 0-2) on the default "
           "synthetic-proteins graph (4,000 nodes), with the hidden-truth ceiling per depth", 3200,
           "the record's wall time, 1,611 s with 3 jobs on 2 cores", ("notebooks/depth_sweep.ipynb",
                                                                     "notebooks/reproduce_revgnn.ipynb") + _ACC,
           rows_have_commands=True),
    Record("accuracy-depth-2000", "results/accuracy_synthetic-depth-2000.json",
           "python benchmarks/accuracy.py synthetic-depth-2000 --jobs 3", ("training",),
           "the same sweep on the 2,000-node, 32,000-edge graph of Fig. 1", 1800,
           "the record's wall time, 917 s with 3 jobs", ("notebooks/depth_sweep.ipynb", "book/results.md",
                                                         "results/README.md"), rows_have_commands=True),
    Record("accuracy-depth-16hops", "results/accuracy_synthetic-depth-16hops.json",
           "python benchmarks/accuracy.py synthetic-depth-16hops --seeds 3 --jobs 1", ("training",),
           "the same sweep on a 4,000-node graph whose task radii run to 16 (--max-hops 16 --pathway-length 40)",
           1250, "the record's wall time, 1,224 s with 1 job", ("notebooks/depth_sweep.ipynb",) + _ACC,
           rows_have_commands=True),
    Record("accuracy-fig1", "results/accuracy_fig1.json", "python benchmarks/accuracy.py fig1 --jobs 2",
           ("training", "memory"),
           "Fig. 1 at CPU scale: ResGNN, RevGNN, WT-ResGNN, WT-RevGNN (L = 8) and DEQ-GNN (30-iteration cap), D = 32, "
           "400 epochs, seeds 0-2, 2,000-node graph; parameters and peak training-step memory per family; the "
           "paper's claims checked on the numbers", 3950, "the record's wall time, 1,976 s with 2 jobs",
           ("notebooks/fig1_auc_vs_memory.ipynb", "notebooks/table_112_layers.ipynb", "book/claims.md") + _ACC,
           rows_have_commands=True, sample=(("--remeasure-memory",),),
           memory_command="python benchmarks/accuracy.py fig1 --remeasure-memory"),
    Record("accuracy-ppi", "results/accuracy_ppi.json", "python benchmarks/accuracy.py ppi", ("training",),
           "RevGNN 4 x 64 on the shipped node2vec PPI graph, label reuse 0.5, seeds 0-2", 240,
           "about 2 minutes (results/README.md before issue 26)", _ACC, rows_have_commands=True),
    Record("accuracy-cora", "results/accuracy_cora.json", "python benchmarks/accuracy.py cora", ("training",),
           "RevGNN 4 x 64 on Cora's standard split with the Planetoid recipe alone, seeds 0-2", 350,
           "the record's wall time, 342 s", _ACC, rows_have_commands=True),
    Record("depth-claim", "results/depth_claim.json", "python benchmarks/depth_claim.py --jobs 1", ("training",),
           "the CI depth test's assertion (1- vs 4-layer RevGNN, 400 epochs, gap > 0.03) for seeds 0-4 at 1 and 2 "
           "threads (the committed file leaves out the pairs that are the depth sweep's own runs)", 5800,
           "the rows' wall times, about 577 s a pair, 10 pairs", ("results/README.md",),
           commands=(_SYNTH.format(L=1), _SYNTH.format(L=4))),
    Record("drift", "results/drift.json", "python benchmarks/drift.py", ("training", "memory"),
           "float32 gradient drift of the reversible engine at L = 1001 against the float64 truth, per anchor "
           "interval, with each setting's peak and saved-for-backward bytes (N = 200, E = 1,000, D = 16)", 1360,
           "the record's run, 1,359 s at load average 2.7-4.1 (nice 19; 232 s of CPU)",
           ("book/api.md", "README.md", "results/README.md"),
           models=(("rev-16x16", ModelConfig("rev", 16, 16, dropout=0.0), True),),
           probe=("--layers", "11")),
    # ---- timing: fresh while the numbers of the timed computation are; the CPU is part of the record
    Record("speed", "results/speed.json", "python benchmarks/speed.py", ("timing", "memory"),
           "training-step time of RevGNN against ResGNN, its own non-reversible path and PyG's GroupAddRev over the "
           "same blocks and weights (N = 2,000, E = 100,000, D = 64, L = 8, 7 alternating repeats), and each "
           "model's peak", 110, "its last run, 90 s at load average 0.7-1.0 (282 s at load average 13.7-15.5)",
           ("README.md", "results/README.md"),
           models=(("rev", ModelConfig("rev", 8, 64, fused=False), True),
                   ("res-max", ModelConfig("res", 8, 64, fused=False, aggr="max"), True),
                   ("res-softmax", ModelConfig("res", 8, 64, fused=False), True)),
           probe=("--quick", "--repeats", "1", "--layers", "2"), cpu=_EPYC),
    Record("threads", "results/threads.json", "env -u OMP_NUM_THREADS python benchmarks/threads.py --repeats 5",
           ("timing",), "revgnn's one-thread policy against torch's default thread count: one epoch of RevGNN 4 x 64 "
           "on Cora and on the default synthetic-proteins graph, medians of 5 interleaved rounds", 110,
           "the record's run, 109 s at load average 3.7-6.2 (a busy machine, as the record wants)", ("README.md",
                                                                                      "results/README.md"),
           commands=("revgnn train --dataset cora --layers 4 --channels 64 --epochs 1",
                     "revgnn train --dataset synthetic-proteins --layers 4 --channels 64 --epochs 1"), cpu=_EPYC),
    Record("ddp-speed", "results/ddp_speed.json", "python benchmarks/ddp_speed.py", ("timing",),
           "epoch time of 2 gloo ranks against one process with --accumulate 2 (the same trajectory) on PPI, "
           "RevGNN 16 x 64, 4 parts, 5 interleaved rounds", 170, "the record's run, 163 s on an idle machine",
           ("book/distributed.md", "results/README.md"), commands=(_PPI_DDP.format(L=16),), cpu=_AVX512),
    Record("ddp-speed-L8", "results/ddp_speed_L8.json", "python benchmarks/ddp_speed.py --layers 8 --epochs 5 "
           "--out ddp_speed_L8.json", ("timing",), "the same at 8 layers, 5 timed epochs", 110,
           "the record's run, 107 s on an idle machine", ("book/distributed.md", "results/README.md"),
           commands=(_PPI_DDP.format(L=8),), cpu=_AVX512),
    Record("fused-partition-L16", "results/fused_partition_L16.json",
           "python benchmarks/fused.py partition --layers 16 --models rev-fused rev-pyg res-fused "
           "--out fused_partition_L16.json", ("timing", "memory"),
           "one training step on an ogbn-proteins-shaped partition (13,253 nodes, 791,224 edges, D = 80, L = 16): "
           "the fused RevGNN against PyG's GENConv path and against the fused ResGNN, medians of 5 alternating "
           "rounds in one process, and each model's peak", 720,
           "the record's run, 710 s at load average 1.0-1.9 (native AVX2 kernel)",
           ("book/results.md", "README.md", "results/README.md"),
           models=(("rev-fused", _REV80, True), ("rev-pyg", _REV80.replace(fused=False), True),
                   ("res-fused", ModelConfig("res", 2, 80, dropout=0.1), True)),
           probe=("--layers", "2", "--nodes", "2000", "--edges", "20000", "--repeats", "1"), cpu=_EPYC),
    Record("fused-kernels-L16", "results/fused_kernels_L16.json",
           "python benchmarks/fused.py kernels --layers 16 --repeats 3 --out fused_kernels_L16.json", ("timing",),
           "issue 18's partition targets (13,253 nodes, 791,224 edges, D = 80, L = 16) by GENConv kernel: the first "
           "fused operator, pure torch, the native kernel on 1 and 2 threads, with a lower bound per layer", 360,
           "about 6 minutes on an idle machine", ("book/results.md", "README.md", "results/README.md"),
           models=(("native", _REV80.replace(kernel="native"), True), ("torch", _REV80.replace(kernel="torch"), True)),
           cpu=_AVX512),
    Record("fused-kernels-L16-avx2", "results/fused_kernels_L16_avx2.json",
           "python benchmarks/fused.py kernels --layers 16 --repeats 3 --out fused_kernels_L16_avx2.json", ("timing",),
           "the same on an AMD EPYC (AVX2 only), the native kernel's AVX2 build", 180,
           "about 3 minutes on an idle machine", ("book/results.md", "results/README.md"),
           models=(("native", _REV80.replace(kernel="native"), True), ("torch", _REV80.replace(kernel="torch"), True)),
           cpu=_EPYC),
    Record("fused-full-L2-native", "results/fused_full_L2_native.json",
           "python benchmarks/fused.py full --kernel native --sort-at-load --layers 2 --channels 80 --nodes 132534 "
           "--edges 79122504 --out fused_full_L2_native.json", ("timing",),
           "one fused RevGNN training step (D = 80, L = 2) with the native kernel on ogbn-proteins' full shape, "
           "edges sorted at load: step time and the peak resident set against the floor", 150,
           "the record: graph 33 s, sort 22 s, step 25 s, with start-up", _WHOLE,
           models=(("native", _REV80.replace(kernel="native"), True),), cpu=_AVX512),
    Record("official-inference", "results/official_inference.json",
           "python benchmarks/official_inference.py --settings 80x12x1 224x4x1 80x4x2", ("timing",),
           "what `revgnn evaluate` costs: one whole-graph no-grad fused forward pass (native kernel) at ogbn-proteins' "
           "full shape, a fresh process per row, the peak resident set after each layer and each layer's time", 480,
           "about 8 minutes on an idle machine", ("book/checkpoints.md", "results/README.md"),
           models=(("revgnn-deep", _DEEP2, False), ("revgnn-wide", _WIDE2, False)), cpu=_AVX512),
    Record("official-inference-avx2", "results/official_inference_avx2.json",
           "python benchmarks/official_inference.py --out official_inference_avx2.json", ("timing",),
           "the same on an AMD EPYC (AVX2 only, the native kernel's AVX2 build)", 360,
           "about 6 minutes on an idle machine", ("book/checkpoints.md", "results/README.md"),
           models=(("revgnn-deep", _DEEP2, False), ("revgnn-wide", _WIDE2, False)), cpu=_EPYC),
    # ---- DEQ-GNN (issue 29)
    Record("deq-convergence", "results/deq_convergence.json", "python benchmarks/deq_convergence.py",
           ("training",), "issue 29's check: DEQ-GNN's forward and adjoint solves (iterations, whole-graph and "
           "worst-node relative residual, spectral radius of df/dz) in the first 10 solver steps of seeds 0-9 at Fig. "
           "1's setting (2,000 nodes, D = 32) with the shipped warm-up; the bare solver's first 3 steps; warm-ups "
           "compared on that graph and a 200-node one; the residual after each of Fig. 4's iteration caps", 230,
           "the record's run, 227 s with 3 jobs at load average 6.8-7.4 (979 s at load average 12.7-16.4)",
           ("notebooks/fig4_memory_deq.ipynb", "results/README.md"),
           models=(("deq-fig4", ModelConfig("deq", 1, 16, fused=False, max_iter=10, tol=0.0), True),),
           commands=(_DEQ_FIG1, _DEQ_FIG1 + " --warmup-epochs 1")),
    Record("deq-stabilisers", "results/deq_stabilisers.json",
           "python benchmarks/deq_convergence.py stabilisers --seeds 3 --steps 3 --accuracy-epochs 0", ("training",),
           "DEQ-GNN's optional stabilisers (weight and spectral normalisation of the cell's Linear layers, the "
           "one-step phantom gradient, Jacobian regularisation 0.1 and 1 on PyG's GENConv), each with and without "
           "the warm-up: issue 29's check over the first 3 solver steps of seeds 0-2 at Fig. 1's setting, the "
           "radius, iterations and seconds per epoch", 180,
           "the record's run, 172 s at load average 4.5-6.9 (681 s at load average 12.8-18.8)",
           ("book/method.md", "results/README.md"),
           commands=tuple(_DEQ_FIG1 + " --warmup-epochs 1" + flags for flags in (
               " --deq-norm weight", " --deq-norm spectral", " --deq-backward phantom", " --no-fused --jac-reg 1"))),
    # ---- other datasets (issue 28): Fig. 5 on ogbn-products' shape, RevGAT and RevSAGE on Cora
    Record("fig5-products", "results/fig5_memory_products.json",
           "python benchmarks/fig5_memory.py --full-fraction 0.25 --full-depths 1 2 4 --limit-gb 10 --budget-gb 18 "
           "--lanes 3 --probe 0.0078125 0.015625 --models rev res", ("memory",),
           "Fig. 5 at CPU scale (ours): peak of one training step of RevGNN (RevSAGE, D = 160, C = 2) and ResGNN "
           "(ResSAGE) against depth on ogbn-products-shaped graphs, one of 10 random parts of the full shape (L = 1 "
           "... 32) and full batch at a quarter of the shape (612,257 nodes, 31.5M edges; L = 1, 2, 4: the largest "
           "power-of-two fraction whose RevGNN step fits the limit), a step above 10 GiB out of memory; full-batch "
           "steps at 1/128 and 1/64 of the shape extrapolated to the full one",
           600, "the record's run, 593 s with 3 lanes at load average 0.3-2.4 (713 s of CPU)",
           ("notebooks/fig5_memory_products.ipynb", "results/README.md"),
           sample=(("--models", "rev", "--depths", "1", "--full-depths", "--probe", "--lanes", "1"),)),
    Record("accuracy-cora-revgat", "results/accuracy_cora-revgat.json",
           "python benchmarks/accuracy.py cora-revgat --jobs 2", ("training",),
           "RevGAT (3 layers, 8 heads x 8 channels) on Cora's standard split at its small-graph recipe "
           "(`revgnn train --model revgat --dataset cora`), seeds 0-2, against the target of 79 % test accuracy",
           75, "the record's wall time, 73 s with 2 jobs at load average 1.6-2.1",
           ("notebooks/other_datasets.ipynb", "results/README.md"),
           rows_have_commands=True),
    Record("accuracy-cora-revsage", "results/accuracy_cora-revsage.json",
           "python benchmarks/accuracy.py cora-revsage --jobs 1", ("training",),
           "RevSAGE (4 layers, D = 64) on Cora's standard split at its small-graph recipe "
           "(`revgnn train --model revsage --dataset cora`), seeds 0-2", 50,
           "the record's wall time, 50 s with 1 job at load average 1.7-1.9",
           ("notebooks/other_datasets.ipynb", "results/README.md"), rows_have_commands=True),
)


def get(name: str) -> Record:
    """The record called ``name``; a ValueError naming the registered ones otherwise."""
    for record in REGISTRY:
        if record.name == name:
            return record
    raise ValueError(f"no registered record {name!r}; registered: {', '.join(r.name for r in REGISTRY)}")
