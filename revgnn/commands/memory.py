"""``revgnn memory``: peak memory, model state, saved activations and time of one training step (Li et al., 2021,
Fig. 2-4) of a model on a ``synthetic-proteins`` graph of a given size."""
from __future__ import annotations

import argparse
import json

from revgnn.nn.presets import MODEL_KINDS, ModelConfig
from revgnn.training.budget import count


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("memory", help="measure one training step's peak memory, state, saved bytes and time")
    p.add_argument("--model", required=True, choices=MODEL_KINDS, help="model kind")
    p.add_argument("--layers", type=int, default=10, help="L (DEQ-GNN: the solver's iteration cap)")
    p.add_argument("--channels", type=int, default=64, help="D, hidden channels")
    p.add_argument("--groups", type=int, default=2, help="C, groups of a reversible model")
    p.add_argument("--nodes", type=count, default=1000, help="nodes of the synthetic-proteins graph (1e6 is fine)")
    p.add_argument("--edges", type=count, default=20000, help="directed edges of the synthetic-proteins graph")
    p.add_argument("--dropout", type=float, default=0.1, help="dropout (0.1 as RevGNN-Deep)")
    p.add_argument("--aggr", default=None, help="GENConv aggregation (default: the paper's for the model kind)")
    p.add_argument("--checkpoint", action="store_true", help="ResGNN with gradient checkpointing per layer")
    p.add_argument("--inference", action="store_true", help="measure a no-grad forward instead of a training step")
    p.add_argument("--fused", action=argparse.BooleanOptionalAction, default=True,
                   help="fused edge-chunked GENConv (default); --no-fused runs PyG's GENConv on an (E, D) embedding")
    p.add_argument("--kernel", default="auto", choices=("auto", "native", "torch"),
                   help="fused path: the native C++ kernel where it builds (auto), or pure torch")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--repeats", type=int, default=3, help="timed steps; step_seconds is their median")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first (they create the optimizer state)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the record as one JSON object on the last line")
    p.add_argument("--force", action="store_true",
                   help="measure even when the size estimate says the step cannot fit in memory")
    p.set_defaults(func=run)


def _config(args) -> ModelConfig:
    for name in ("layers", "channels", "groups", "nodes", "edges", "repeats"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be >= 1 (got {getattr(args, name)})")
    if args.warmup < 0:
        raise ValueError(f"--warmup must be >= 0 (got {args.warmup})")
    if args.checkpoint and args.model not in ("res", "wt-res"):
        raise ValueError("--checkpoint applies to ResGNN only (--model res or wt-res)")
    cfg = ModelConfig(model=args.model, num_layers=args.layers, hidden_channels=args.channels,
                      num_groups=args.groups, dropout=args.dropout, aggr=args.aggr, checkpoint_grads=args.checkpoint,
                      fused=args.fused, kernel=args.kernel)
    if args.model == "deq":
        cfg = cfg.replace(num_layers=1, max_iter=args.layers, tol=0.0)
    return cfg


def run(args) -> int:
    import warnings

    from revgnn.measure.memory import measure_config  # here, not at the top: the parser must not import torch
    from revgnn.training.budget import check_depth, check_fits, estimate_step

    cfg = _config(args)
    check_depth(cfg, args.force)
    check_fits(estimate_step(cfg, args.nodes, args.edges, train=not args.inference, device=args.device),
               f"one {'forward' if args.inference else 'training step'} of {args.model} L={args.layers} "
               f"D={args.channels} on N={args.nodes:,} E={args.edges:,}", args.device, args.force)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="DEQ .* did not converge")  # tol=0: exactly --layers iterations
        rec = measure_config(cfg, args.nodes, args.edges, device=args.device, train=not args.inference,
                             repeats=args.repeats, warmup=args.warmup, seed=args.seed)
    from revgnn.nn.fused import resolve_kernel

    rec.model["kernel_ran"] = resolve_kernel(cfg.kernel, device=args.device) if cfg.fused else "pyg"
    if args.json:
        print(json.dumps(rec.to_dict()))
    else:
        mib = 2**20
        print(f"{args.model} L={args.layers} D={args.channels} C={args.groups} "
              f"({'fused' if args.fused else 'PyG GENConv'}) on N={rec.num_nodes:,} "
              f"E={rec.num_edges:,} ({rec.device}: {rec.device_name}), {rec.mode}\n"
              f"  peak tensor memory   {rec.peak_bytes / mib:10.2f} MiB  ({rec.method})\n"
              f"  model state          {rec.state_bytes / mib:10.2f} MiB  (parameters + gradients + Adam)\n"
              f"  peak above state     {rec.peak_above_state_bytes / mib:10.2f} MiB\n"
              + (f"    activation peak    {rec.activation_peak_bytes / mib:10.2f} MiB  (forward + backward, above "
                 f"state and graph)\n"
                 f"    gradient transient {(rec.gradient_transient_bytes or 0) / mib:10.2f} MiB  (parameter "
                 f"gradients on their way to .grad)\n"
                 f"    optimizer step     {rec.optimizer_transient_bytes / mib:10.2f} MiB\n"
                 if rec.activation_peak_bytes is not None else "") +
              f"  saved for backward   {rec.saved_bytes / mib:10.2f} MiB\n"
              f"  step time            {rec.step_seconds:10.4f} s  (median of {len(rec.step_seconds_all)})\n"
              f"  parameters           {rec.num_parameters:10,d}")
    return 0

