"""``revgnn train``: train a model with the paper's protocol (Li et al., ICML 2021) and report test at best valid.

Examples::

    revgnn train --preset revgnn-64 --dataset synthetic-proteins --epochs 20
    revgnn train --model rev --layers 8 --channels 64 --groups 2 --dataset cora --runs 3 --out runs/cora --json
    revgnn train --dataset cora --model rev --layers 2 --train-parts 2 --nproc 2     # 2 ranks (torchrun, gloo)
    torchrun --nproc-per-node 8 -m revgnn train --preset revgnn-deep --device cuda    # 8 GPUs (NCCL)

Each dataset brings its documented recipe as defaults (cora and planetoid:NAME: dropout 0.6, lr 0.005, weight decay
5e-4, 200 epochs, as PyG's GAT example, and mean aggregation; ppi: label reuse 0.5); a flag given explicitly always
wins, and each run record lists what came from the recipe ("recipe"). Ctrl-C or SIGTERM stops after the current epoch
with a checkpoint in --out (exit 130 / 143); the same command with --resume continues it. One run at a time may use an
--out folder, and only with the configuration its runs were made with. A seed's interrupted checkpoint or finished
record in --out is never overwritten silently: --resume continues (or keeps) it, --restart discards it, and without
either the command stops and says so. The final checkpoint is kept (--no-keep-checkpoint deletes it). Before the data is
loaded, the step's memory is estimated (revgnn.training.budget) and a step that cannot fit in this machine's memory is
refused with the estimate (--force tries anyway).

RevGAT and RevSAGE (the paper's ogbn-arxiv and ogbn-products models) start from their presets (revgat-arxiv,
revgnn-112-products) and bring their datasets' recipes: ogbn-arxiv the official RevGAT's (RMSprop, lr 0.002 with a
50-epoch warm-up, 2,000 full-batch epochs, log-CE loss, label reuse 0.5 without a flag channel and one label
iteration, the epoch of lowest validation loss; --save-logits makes a teacher, --teacher DIR --kd-alpha 0.95
--kd-temperature 0.7 its self-distilled student), ogbn-products PyG's examples/rev_gnn.py (Adam, lr 0.003, no clip,
1,000 epochs of 10 random parts, full-graph evaluation). On Planetoid graphs (cora, planetoid:NAME) they take a small-
graph recipe (shown by --help under each flag): the model scaled down to the graph, GAT's optimiser settings.

    revgnn train --model revgat --dataset cora --runs 3
    revgnn train --model revgat --dataset ogbn-arxiv --runs 10 --device cuda --save-logits --out runs/teacher
    revgnn train --model revgat --dataset ogbn-arxiv --runs 10 --device cuda --teacher runs/teacher \\
        --kd-alpha 0.95 --kd-temperature 0.7 --out runs/student
    revgnn train --preset revgnn-112-products --dataset ogbn-products --runs 10 --device cuda
"""
from __future__ import annotations

import argparse
import json
import sys

from revgnn.nn.presets import MODEL_KINDS, ModelConfig, get_preset, list_presets
from revgnn.training.budget import count

# Defaults of the flags a dataset recipe may set (None: the preset's value). The model's dropout defaults to the
# preset's (0.1 without one).
GLOBAL_DEFAULTS: dict[str, object] = {"epochs": 50, "lr": 1e-3, "weight_decay": 0.0, "clip": 1.0, "label_reuse": 0.0,
                                      "node_embeddings": False, "dropout": None, "aggr": None, "optimizer": "adam",
                                      "lr_warmup_epochs": 0, "loss": "ce", "label_iters": 0, "label_flag": True,
                                      "select": "valid", "layers": None, "channels": None, "heads": None,
                                      "input_dropout": None, "edge_drop": None, "input_residual": None,
                                      "self_loops": None, "attention_dropout": None, "batch_norm": None,
                                      "attention_dst": None, "symmetric_norm": None, "train_parts": None,
                                      "eval_parts": None}
# Per-dataset recipes: the dataset's documented settings, used unless a flag is given (flag > recipe > preset >
# GLOBAL_DEFAULTS), and recorded in each run's "recipe". Planetoid (cora, planetoid:NAME): PyG's examples/gat.py
# and the GAT paper (Velickovic et al., 2018): dropout 0.6, Adam lr 0.005, weight decay 5e-4; mean aggregation
# (RevGNN 4 x 64, 3 seeds: 79.2 +- 1.1 % test accuracy on Cora, against 77.6 +- 0.8 % with the paper's max).
# ppi: log-degree + label reuse (0.5) measured best; learnable embeddings scored at chance on held-out nodes, so
# they stay off. ogbn-arxiv: the official RevGAT command (lightaime/deep_gcns_torch, examples/ogb_eff/
# ogbn_arxiv_dgl/README.md). ogbn-products: PyG's examples/rev_gnn.py. planetoid-revgat / planetoid-revsage: the
# small-graph recipes of RevGAT and RevSAGE (results/accuracy_cora-revgat.json, results/accuracy_cora-revsage.json).
# planetoid-revgat is GAT's Cora setup (Velickovic et al., 2018) on RevGAT's 3 layers, chosen by mean validation
# accuracy over seeds 0-2 (valid / test %, 200 epochs unless said; PyG's 2-layer GATConv on our loader: 82.3 / 83.0).
# With the official BatchNorms: 75.2 / 75.2 (600 epochs: 75.8 / 74.4, 2 seeds; BatchNorm's batch statistics in eval:
# 74.8 / 75.1, 1 seed), + attention dropout 0.6: 73.7 / 73.7, + GAT's attention (destination term, no degree
# normalisation): 75.7 / 76.7, both: 71.1 / 71.7. Without BatchNorm (300 epochs): 79.9 / 79.7, + attention dropout:
# 79.7 / 81.1, + GAT's attention: 80.5 / 79.9, both (the recipe): 80.7 / 81.3.
RECIPES: dict[str, dict[str, object]] = {
    "planetoid": {"dropout": 0.6, "lr": 0.005, "weight_decay": 5e-4, "epochs": 200, "aggr": "mean"},
    "ppi": {"label_reuse": 0.5},
    "ogbn-arxiv": {"epochs": 2000, "lr": 0.002, "optimizer": "rmsprop", "lr_warmup_epochs": 50, "clip": 0.0,
                   "loss": "log-ce", "label_reuse": 0.5, "label_iters": 1, "label_flag": False,
                   "select": "valid_loss"},
    "ogbn-products": {"epochs": 1000, "lr": 0.003, "clip": 0.0},
    "planetoid-revgat": {"layers": 3, "channels": 8, "heads": 8, "dropout": 0.6, "input_dropout": 0.6,
                         "edge_drop": 0.0, "input_residual": False, "self_loops": True, "batch_norm": False,
                         "attention_dropout": 0.6, "attention_dst": True, "symmetric_norm": False, "lr": 0.005,
                         "weight_decay": 5e-4, "epochs": 200, "clip": 0.0},
    "planetoid-revsage": {"layers": 4, "channels": 64, "dropout": 0.6, "lr": 0.005, "weight_decay": 5e-4,
                          "epochs": 200, "clip": 0.0},
}
# The preset a node-feature model starts from without --preset (its paper shape; a recipe may scale it down).
MODEL_PRESETS = {"revgat": "revgat-arxiv", "revsage": "revgnn-112-products", "ressage": "revgnn-112-products"}


# DEQ-GNN's flags, each an argparse dest and ModelConfig field, with the conversion of its value ("none" and 0 mean
# None); given with another model they are refused.
DEQ_FLAGS = {**dict.fromkeys(("solver", "max_iter", "backward_max_iter", "tol", "stop_mode", "anderson_m", "damping",
                              "broyden_memory", "warmup_epochs", "warmup_iters", "deq_backward", "phantom_steps",
                              "jac_reg", "spectral_iters"), lambda v: v),
             "deq_norm": lambda v: None if v == "none" else v, "node_factor": lambda v: v or None}


def recipe_name(dataset: str, model: str | None = None) -> str | None:
    """The recipe of a dataset (and model kind): ``planetoid`` for cora and every ``planetoid:NAME``
    (``planetoid-revgat``, ``planetoid-revsage`` for those models), ``ppi``, ``ogbn-arxiv``, ``ogbn-products``, else
    None."""
    key = dataset.lower()
    if key == "cora" or key.startswith("planetoid:"):
        key = "planetoid"
        if model in ("revgat", "revsage"):
            key = f"planetoid-{model}"
    return key if key in RECIPES else None


def _model_kind(args) -> str:
    return args.model or (get_preset(args.preset).model if args.preset else "rev")


def resolve(args) -> tuple[dict[str, object], dict[str, object]]:
    """The one place where flags, the dataset's recipe and the global defaults meet.

    Returns:
        (values, taken): every recipe-able setting's value, and those of them that came from the recipe.
    """
    recipe = RECIPES.get(recipe_name(args.dataset, _model_kind(args)) or "", {})
    values, taken = {}, {}
    for key, default in GLOBAL_DEFAULTS.items():
        flag = getattr(args, key)
        if flag is not None:
            values[key] = flag
        elif key in recipe:
            values[key] = taken[key] = recipe[key]
        else:
            values[key] = default
    return values, taken


def _default_help(key: str, what: str = "") -> str:
    recipes = "; ".join(f"{name} recipe: {r[key]}" for name, r in RECIPES.items() if key in r)
    default = GLOBAL_DEFAULTS[key]
    return (f"{what}(default {'the preset' if default is None else default}{'; ' + recipes if recipes else ''})"
            .replace("%", "%%"))


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("train", help="train a model (random partitions, Adam, test at best validation)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    m = p.add_argument_group("model (a preset, optionally overridden, or flags)")
    m.add_argument("--preset", help=f"named configuration: {', '.join(list_presets())}")
    m.add_argument("--model", choices=MODEL_KINDS, help="architecture (default rev)")
    m.add_argument("--layers", type=int, help=_default_help("layers", "L ") + ", 8 without a preset")
    m.add_argument("--channels", type=int, help=_default_help("channels", "D (RevGAT: per head) ")
                   + ", 64 without a preset")
    m.add_argument("--heads", type=int, help=_default_help("heads", "RevGAT attention heads "))
    m.add_argument("--input-dropout", type=float, help=_default_help("input_dropout", "RevGAT input dropout "))
    m.add_argument("--edge-drop", type=float, help=_default_help("edge_drop", "RevGAT edge drop "))
    m.add_argument("--input-residual", action=argparse.BooleanOptionalAction, default=None,
                   help=_default_help("input_residual", "RevGAT's linear residual from the input features "))
    m.add_argument("--self-loops", action=argparse.BooleanOptionalAction, default=None,
                   help=_default_help("self_loops", "RevGAT adds one self-loop per node, as GAT ")
                   + "; the ogbn-arxiv graph has them from its loader")
    m.add_argument("--attention-dropout", type=float,
                   help=_default_help("attention_dropout", "RevGAT dropout of the attention coefficients, as GAT "))
    m.add_argument("--batch-norm", action=argparse.BooleanOptionalAction, default=None,
                   help=_default_help("batch_norm", "RevGAT's BatchNorm before every layer but the first ")
                   + "; the official code has them")
    m.add_argument("--attention-dst", action=argparse.BooleanOptionalAction, default=None,
                   help=_default_help("attention_dst", "RevGAT's destination attention term, as GAT ")
                   + "; the official code has none")
    m.add_argument("--symmetric-norm", action=argparse.BooleanOptionalAction, default=None,
                   help=_default_help("symmetric_norm", "RevGAT's symmetric degree normalisation ")
                   + "; the official code has it, GAT has none")
    m.add_argument("--groups", type=int, help="C, RevGNN groups (default 2)")
    m.add_argument("--dropout", type=float, help=_default_help("dropout", "dropout ") + ", 0.1 without a preset")
    m.add_argument("--aggr", help="GENConv aggregation (default: the paper's for the model)")
    m.add_argument("--kernel", default="auto", choices=("auto", "native", "torch"),
                   help="fused GENConv kernel: native C++ where it builds (auto), or pure torch")
    m.add_argument("--fused", action=argparse.BooleanOptionalAction, default=None,
                   help="fused edge-chunked GENConv (default); --no-fused runs PyG's GENConv (the same weights)")
    q = p.add_argument_group("DEQ-GNN (--model deq; the defaults are ModelConfig's)")
    q.add_argument("--solver", choices=("anderson", "broyden", "picard"), help="fixed-point solver (anderson)")
    q.add_argument("--max-iter", type=int, help="forward solver iteration cap (30)")
    q.add_argument("--backward-max-iter", type=int, help="adjoint solver iteration cap (default --max-iter)")
    q.add_argument("--tol", type=float, help="whole-graph residual to stop at (1e-4)")
    q.add_argument("--stop-mode", choices=("rel", "abs"), help="residual ||f(z)-z|| / ||f(z)|| (rel) or ||f(z)-z||")
    q.add_argument("--node-factor", type=float,
                   help="the worst node's residual must be within this times --tol as well (10; 0: not checked)")
    q.add_argument("--anderson-m", type=int, help="Anderson window m (5)")
    q.add_argument("--damping", type=float, help="Anderson / Picard mixing in (0, 1], 1 undamped (1)")
    q.add_argument("--broyden-memory", type=int, help="Broyden rank-one updates kept (20)")
    q.add_argument("--warmup-epochs", type=int,
                   help="epochs trained as the weight-tied unrolled network before the solver (1; 0: none)")
    q.add_argument("--warmup-iters", type=int, help="k, cell applications of that unrolled network (4)")
    q.add_argument("--deq-norm", choices=("none", "weight", "spectral"),
                   help="normalisation of the cell's Linear layers (none)")
    q.add_argument("--deq-backward", choices=("implicit", "phantom"),
                   help="implicit (adjoint solve) or phantom (one-step) gradient (implicit)")
    q.add_argument("--phantom-steps", type=int, help="f applications the phantom gradient differentiates (1)")
    q.add_argument("--jac-reg", type=float, help="Jacobian regularisation weight, needs --no-fused (0: off)")
    q.add_argument("--spectral-iters", type=int,
                   help="power iterations estimating df/dz's spectral radius per step, recorded (0: none)")
    d = p.add_argument_group("data")
    d.add_argument("--dataset", default="synthetic-proteins",
                   help="ogbn-proteins, ogbn-arxiv, ogbn-products, synthetic-proteins[-full], ppi, cora, "
                        "planetoid:NAME")
    d.add_argument("--root", help="data root (default $REVGNN_DATA or ~/.cache/revgnn)")
    d.add_argument("--num-nodes", type=count, help="synthetic-proteins: nodes")
    d.add_argument("--num-edges", type=count, help="synthetic-proteins: directed edges")
    d.add_argument("--data-seed", type=int, help="synthetic-proteins: generator seed")
    d.add_argument("--max-hops", type=int, help="synthetic-proteins: largest task radius (default 8)")
    d.add_argument("--pathway-length", type=int,
                   help="synthetic-proteins: proteins per pathway, > 2 x max hops (default 32)")
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=int, help=_default_help("epochs"))
    t.add_argument("--lr", type=float, help=_default_help("lr", "learning rate "))
    t.add_argument("--weight-decay", type=float, help=_default_help("weight_decay", "weight decay "))
    t.add_argument("--optimizer", choices=("adam", "rmsprop"), help=_default_help("optimizer"))
    t.add_argument("--lr-warmup-epochs", type=int,
                   help=_default_help("lr_warmup_epochs", "linear learning-rate warm-up "))
    t.add_argument("--loss", choices=("ce", "log-ce"), help=_default_help("loss", "training loss "))
    t.add_argument("--select", choices=("valid", "valid_loss"),
                   help=_default_help("select", "the reported epoch: best validation score or lowest loss "))
    t.add_argument("--clip", type=float, help=_default_help("clip", "gradient-norm clip, 0 disables "))
    t.add_argument("--train-parts", type=int, help="random partition parts per epoch (paper: 10; default: the "
                                                   "dataset's)")
    t.add_argument("--eval-parts", type=int, help="parts at evaluation (paper: 5; 1 = full graph; default: the "
                                                  "dataset's)")
    t.add_argument("--eval-views", type=int, default=1, help="random partitions averaged at evaluation")
    t.add_argument("--eval-every", type=int, default=1)
    t.add_argument("--test-views", type=int, default=0,
                   help="after training, average this many random partitions on the best weights (paper: 10; 0 skips)")
    t.add_argument("--test-parts", type=int, help="parts per final test view (paper: 3; default --eval-parts)")
    t.add_argument("--label-reuse", type=float,
                   help=_default_help("label_reuse", "fraction of training labels shown as input "))
    t.add_argument("--label-iters", type=int, help=_default_help("label_iters", "label iterations "))
    t.add_argument("--label-flag", action=argparse.BooleanOptionalAction, default=None,
                   help=_default_help("label_flag", "label reuse adds a 'label known' channel "))
    t.add_argument("--node-embeddings", action=argparse.BooleanOptionalAction, default=None,
                   help="learnable per-node embedding (default off)")
    t.add_argument("--teacher", help="self-distillation from this teacher run's folder (saved with --save-logits)")
    t.add_argument("--kd-alpha", type=float, default=0.0, help="weight of the distillation term (official: 0.95)")
    t.add_argument("--kd-temperature", type=float, default=1.0, help="distillation temperature (official: 0.7)")
    t.add_argument("--runs", type=int, default=1)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N)")
    t.add_argument("--threads", type=int, help="torch CPU threads (default: $OMP_NUM_THREADS, else 1; see "
                                               "revgnn.training.runtime for why)")
    t.add_argument("--accumulate", type=int, default=1,
                   help="parts per optimizer step, gradients averaged (= the trajectory of that many ranks)")
    t.add_argument("--nproc", type=int, help="launch this many data-parallel ranks here (torchrun --standalone)")
    o = p.add_argument_group("output")
    o.add_argument("--out", help="folder for records and checkpoints")
    o.add_argument("--checkpoint-every", type=int, default=5)
    o.add_argument("--resume", action="store_true", help="continue from checkpoints in --out (and keep its finished "
                                                          "runs)")
    o.add_argument("--restart", action="store_true",
                   help="discard the checkpoints and records of these seeds in --out and train them again")
    o.add_argument("--keep-checkpoint", action=argparse.BooleanOptionalAction, default=True,
                   help="keep checkpoint.pt (the last epoch's training state) after a run finishes (default on)")
    o.add_argument("--force", action="store_true",
                   help="train even when the size estimate says a step cannot fit in this machine's memory")
    o.add_argument("--save-logits", action="store_true",
                   help="save each run's logits at its reported epoch (run-seed<S>/best_logits.pt): a teacher")
    o.add_argument("--json", action="store_true", help="print one JSON summary object as the last line")
    o.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run, parser=p)
    return p


def model_config(args) -> ModelConfig:
    """The model configuration the flags describe (a preset, then the dataset's recipe, then explicit flags)."""
    kind = _model_kind(args)
    if args.preset:
        cfg = get_preset(args.preset)
    elif kind in MODEL_PRESETS:
        cfg = get_preset(MODEL_PRESETS[kind])
    else:
        cfg = ModelConfig(num_layers=8, hidden_channels=64)
    values = resolve(args)[0]  # flag, else the recipe, else the preset
    changes = {"model": args.model, "num_layers": values["layers"], "hidden_channels": values["channels"],
               "num_groups": args.groups, "dropout": values["dropout"], "aggr": values["aggr"],
               "kernel": getattr(args, "kernel", None), "heads": values["heads"],
               "input_dropout": values["input_dropout"], "edge_drop": values["edge_drop"],
               "input_residual": values["input_residual"], "self_loops": values["self_loops"],
               "attention_dropout": values["attention_dropout"], "batch_norm": values["batch_norm"],
               "attention_dst": values["attention_dst"], "symmetric_norm": values["symmetric_norm"]}
    deq = {flag: getattr(args, flag, None) for flag in DEQ_FLAGS}
    deq = {flag: DEQ_FLAGS[flag](value) for flag, value in deq.items() if value is not None}
    if deq and (args.model or cfg.model) != "deq":
        raise ValueError(f"--{next(iter(deq)).replace('_', '-')} applies to --model deq only; drop it or add "
                         "--model deq")
    changes["fused"] = getattr(args, "fused", None)
    if (args.model or cfg.model) == "deq":
        if args.layers is not None:
            raise ValueError("--layers does not apply to --model deq: a DEQ-GNN has one implicit layer, its depth is "
                             "the fixed-point solver's iterations; drop --layers")
        changes["num_layers"] = 1  # recorded as it is built
    return cfg.replace(**{k: v for k, v in changes.items() if v is not None}, **deq)


def train_config(args, progress: bool = True):
    from revgnn.training.config import TrainConfig

    values, taken = resolve(args)
    kwargs = {k: v for k, v in (("num_nodes", args.num_nodes), ("num_edges", args.num_edges),
                                ("seed", args.data_seed), ("max_hops", args.max_hops),
                                ("pathway_length", args.pathway_length)) if v is not None}
    label_reuse, emb = values["label_reuse"], values["node_embeddings"]
    recipe = {"name": recipe_name(args.dataset, _model_kind(args)), **taken} if taken else {}
    return TrainConfig(
        dataset=args.dataset, root=args.root, dataset_kwargs=kwargs, epochs=values["epochs"], lr=values["lr"],
        weight_decay=values["weight_decay"], clip_grad_norm=values["clip"] or None, train_parts=values["train_parts"],
        eval_parts=values["eval_parts"], eval_views=args.eval_views, eval_every=args.eval_every,
        test_views=args.test_views, test_parts=args.test_parts, runs=args.runs,
        seed=args.seed, checkpoint_every=args.checkpoint_every, out_dir=args.out, resume=args.resume,
        restart=args.restart, keep_checkpoint=args.keep_checkpoint, force=args.force,
        label_reuse=label_reuse, node_embeddings=emb, device=args.device, progress=progress and not args.no_progress,
        threads=args.threads, recipe=recipe, accumulate=args.accumulate, optimizer=values["optimizer"],
        lr_warmup_epochs=values["lr_warmup_epochs"], loss=values["loss"], label_iters=values["label_iters"],
        label_flag=values["label_flag"], select=values["select"], teacher=args.teacher, kd_alpha=args.kd_alpha,
        kd_temperature=args.kd_temperature, save_logits=args.save_logits)


def _kernel_ran(cfg: ModelConfig, device: str) -> str:
    from revgnn.nn.fused import resolve_kernel

    return resolve_kernel(cfg.kernel, device=device.split(":")[0]) if cfg.fused else "pyg"


def run(args) -> int:
    from revgnn.training import distributed
    from revgnn.training.loop import fit
    from revgnn.training.runtime import TrainingInterrupted

    main = True
    try:
        if args.nproc is not None:
            return distributed.launch_from_args(args, model_config, train_config)
        with distributed.process_group(args.device):
            main = distributed.is_main()
            # first, before anything that could fail differently on different ranks
            distributed.check_same_config({k: v for k, v in vars(args).items() if k not in ("parser", "func")},
                                          "argument")
            summary = fit(model_config(args), train_config(args, progress=main))
    except (ValueError, OSError, FloatingPointError) as err:  # bad input, a full disk, a diverging loss
        if main or not isinstance(err, distributed.AgreedError):  # every rank has it: rank 0 says it
            sys.stderr.write(f"revgnn train: error: {err}\n")
        return 2
    except TrainingInterrupted as stop:  # SIGINT/SIGTERM: checkpoint saved, say how to resume
        sys.stderr.write(f"revgnn train: {stop}\n")
        return stop.exit_code
    except distributed.PeerLostError as err:
        sys.stderr.write(f"revgnn train: error: {err}\n")
        return 1
    if not main:
        return 0
    short = {k: summary[k] for k in ("dataset", "metric", "valid", "valid_std", "test", "test_std", "params",
                                     "seeds")}
    short.update({k: summary[k] for k in ("valid_multiview", "valid_multiview_std", "test_multiview",
                                          "test_multiview_std") if k in summary})
    short["wall_time_s"] = sum(r["wall_time_s"] for r in summary["runs"])
    short["kernel"] = _kernel_ran(model_config(args), args.device)
    short["out"] = args.out
    if args.json:
        sys.stdout.write(json.dumps(short) + "\n")
    else:
        sys.stdout.write(f"{short['dataset']}: test {short['metric']} {short['test']:.4f} ± {short['test_std']:.4f}"
                         f" (valid {short['valid']:.4f} ± {short['valid_std']:.4f}) over {len(short['seeds'])} "
                         f"run(s), {short['params']:,} parameters\n")
        if "test_multiview" in short:
            sys.stdout.write(f"  multi-view test at the best weights: {short['test_multiview']:.4f} ± "
                             f"{short['test_multiview_std']:.4f}\n")
    return 0
