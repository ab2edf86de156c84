"""``revgnn evaluate``: score trained weights on a whole graph, by default with no partition (Li et al., ICML 2021).

Examples::

    revgnn evaluate --official-checkpoint revgnn_deep.pth --dataset ogbn-proteins --root DIR --json
    revgnn evaluate --official-checkpoint revgnn_wide.pth --dataset ogbn-proteins --root DIR --device cuda
    revgnn evaluate --official-checkpoint revgnn_wide.pth --dataset ogbn-proteins --eval-parts 3 --views 10
    revgnn evaluate --checkpoint runs/x/run-seed0 --json       # a revgnn training checkpoint (config + weights)

``--official-checkpoint`` reads the authors' released ``revgnn_deep.pth`` / ``revgnn_wide.pth``
(:func:`revgnn.official.load_checkpoint`). By default the model runs once over the whole graph (fused GENConv, no
grad: memory independent of the depth); ``--eval-parts 5`` is the official single view and ``--eval-parts 3
--views 10`` its multi-view test (random node partitions, logits averaged). It prints train/valid/test ROC-AUC
(OGB's rules) and, with ``--json``, one JSON object with the keys ``train``, ``valid`` and ``test``, as ``revgnn
train`` uses them. A progress bar on stderr advances once per layer.

Bad input is one line on stderr and exit status 2, before any work where it can be: a damaged or foreign
checkpoint (naming the tensor), best weights that cannot be scored (never replaced by the last ones: pass
``--weights last``), a bad species table (naming it), more ``--eval-parts`` than the graph has nodes,
``--views`` beyond their cap (see its help), a device other than cpu or a visible cuda, a seed outside
0..2**32 - 1.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

MAX_VIEWS = 1000  # 100x the official multi-view test's 10 views; each view is a pass over the whole graph


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("evaluate", help="score a checkpoint (the authors' or a run's) on the whole graph",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    w = p.add_mutually_exclusive_group(required=True)
    w.add_argument("--official-checkpoint", metavar="PATH",
                   help="the authors' revgnn_deep.pth or revgnn_wide.pth (lightaime/deep_gcns_torch)")
    w.add_argument("--checkpoint", metavar="DIR",
                   help="a revgnn train run folder holding checkpoint.pt (or the file itself)")
    p.add_argument("--dataset", help="ogbn-proteins, synthetic-proteins[-full], ... (default: ogbn-proteins with "
                                     "--official-checkpoint, the run's dataset with --checkpoint)")
    p.add_argument("--root", help="data root (default $REVGNN_DATA or ~/.cache/revgnn)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N)")
    p.add_argument("--eval-parts", type=int, default=1,
                   help="random node partition parts; 1 = the whole graph (default). Official: 5, or 3 with "
                        "--views 10")
    p.add_argument("--views", type=int, default=1,
                   help=f"random partitions whose logits are averaged (default 1; at most {MAX_VIEWS}: the official "
                        "test averages 10, and each view is one more pass over the whole graph, so the cap stops a "
                        "mistyped value from running for days)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the random partitions (0 to 2**32 - 1, as revgnn train's)")
    p.add_argument("--weights", default="best", choices=("best", "last"),
                   help="with --checkpoint: the weights at the best validation epoch (default; the test score revgnn "
                        "train reports) or the latest epoch's")
    p.add_argument("--kernel", default="auto", choices=("auto", "native", "torch"),
                   help="fused GENConv kernel: native C++ where it builds (auto), or pure torch")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: $OMP_NUM_THREADS, else 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)
    return p


def check_args(args) -> None:
    """Raise a ValueError on bad arguments before any checkpoint or data is read."""
    from revgnn.data.datasets import DATASETS, PLANETOID
    from revgnn.training.config import MAX_SEED, check_device
    from revgnn.training.runtime import check_threads

    if args.eval_parts < 1:
        raise ValueError(f"--eval-parts must be >= 1 (got {args.eval_parts}); 1 is the whole graph")
    if args.views < 1:
        raise ValueError(f"--views must be >= 1 (got {args.views})")
    if args.views > MAX_VIEWS:
        raise ValueError(f"--views {args.views} is more than revgnn runs: use at most {MAX_VIEWS} (each view is a pass "
                         "over the whole graph; the official multi-view test averages 10)")
    if args.views > 1 and args.eval_parts == 1:
        raise ValueError("--views > 1 needs --eval-parts > 1 (the whole graph is one view); e.g. --eval-parts 3 "
                         "--views 10")
    if not 0 <= args.seed <= MAX_SEED:  # revgnn train's seed range; torch.Generator overflows beyond 2**64
        raise ValueError(f"--seed {args.seed} is out of range; use an integer from 0 to {MAX_SEED}")
    check_threads(args.threads, "--threads")
    name = (args.dataset or "").lower()
    if name and name not in DATASETS and not (name.startswith("planetoid:") and name[10:] in PLANETOID):
        raise ValueError(f"unknown dataset {args.dataset!r}; choose one of {', '.join(DATASETS)}")
    if args.official_checkpoint is not None and not Path(args.official_checkpoint).is_file():
        raise FileNotFoundError(f"no checkpoint at {args.official_checkpoint}; download revgnn_deep.pth or "
                                "revgnn_wide.pth (links: lightaime/deep_gcns_torch, examples/ogb_eff/ogbn_proteins/"
                                "README.md)")
    if args.checkpoint is not None and not Path(args.checkpoint).exists():
        raise FileNotFoundError(f"no run folder or checkpoint at {args.checkpoint}")
    check_device(args.device, "--device")  # revgnn train's check: cpu or a visible cuda[:N]


def run_checkpoint_file(path: Path) -> Path:
    """The ``checkpoint.pt`` of a run folder (``run-seedN``), of an --out folder with one such run, or the file."""
    if path.is_file():
        return path
    if (path / "checkpoint.pt").is_file():
        return path / "checkpoint.pt"
    found = sorted(path.glob("run-seed*/checkpoint.pt"))
    if len(found) == 1:
        return found[0]
    if found:
        raise ValueError(f"{path} holds {len(found)} runs with checkpoints; name one, e.g. --checkpoint "
                         f"{found[0].parent}")
    finished = sorted(path.glob("record.json")) + sorted(path.glob("run-seed*/record.json"))
    if finished:
        raise ValueError(f"{path} holds finished runs without checkpoint.pt (trained with --no-keep-checkpoint, or by "
                         "an older revgnn): there are no weights to evaluate; their record.json has the scores")
    raise ValueError(f"{path} holds no checkpoint.pt; give a revgnn train --out folder or one of its run-seedN "
                     "folders")


def read_run_checkpoint(path: Path) -> dict:
    """A revgnn training checkpoint (``revgnn.training.checkpoints``'s layout) with its ``config`` parsed, read with
    ``weights_only=True``: tensors and plain containers only, nothing in the file runs."""
    from revgnn.official import _is_plain_pickle, _load_quietly, _not_torch_save
    from revgnn.training.checkpoints import CHECKPOINT_FORMAT

    try:
        ckpt = _load_quietly(path)
    except Exception as err:  # refused globals, a truncated zip: torch raises many types
        if _is_plain_pickle(path):
            raise _not_torch_save(path, "give the checkpoint.pt that revgnn train wrote") from None
        raise ValueError(f"checkpoint {path} is unreadable or holds objects besides tensors ({type(err).__name__}); "
                         "nothing in it was executed") from None
    if not isinstance(ckpt, dict) or not {"config", "model"} <= set(ckpt):
        raise ValueError(f"{path} is not a revgnn training checkpoint (no config and model); for the authors' "
                         "revgnn_*.pth use --official-checkpoint")
    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is a revgnn checkpoint of format {ckpt.get('format')!r}, this revgnn reads "
                         f"{CHECKPOINT_FORMAT!r}; evaluate it with the revgnn that wrote it (its record.json has the "
                         "scores)")
    try:
        config = json.loads(ckpt["config"])
        if not isinstance(config.get("model"), dict) or not isinstance(config.get("train"), dict):
            raise ValueError
    except (TypeError, ValueError, AttributeError):
        raise ValueError(f"{path}: its configuration is not the JSON text revgnn train writes") from None
    return {**ckpt, "config": config}


def run_weights(ckpt: dict, which: str, path: Path) -> tuple[dict, int | None, str]:
    """The state dict to score, its epoch and which it is: ``which='best'``, the weights at the best validation epoch
    (those ``revgnn train`` reports its test score at); ``'last'``, the latest epoch's. Best weights that are absent or
    damaged are refused (ValueError suggesting ``--weights last``), never replaced by the last ones; so are weights
    that are not a dict. :func:`revgnn.official.check_weights` checks the tensors themselves."""
    state = ckpt.get("state")
    epoch = state.get("epoch") if isinstance(state, dict) else None
    if which == "last":
        weights, where = ckpt["model"], "its last weights (model)"
    else:
        instead = "pass --weights last to score the last epoch's weights"
        if not isinstance(state, dict):
            raise ValueError(f"{path}: its training state is a {type(state).__name__}, not the dict revgnn train "
                             f"writes, so its best weights cannot be found; {instead}")
        best, weights = state.get("best"), state.get("best_model")
        if best is None and weights is None:
            raise ValueError(f"{path}: no epoch of this run was evaluated before the checkpoint was written, so it "
                             f"has no best weights; {instead}")
        epoch = best.get("epoch") if isinstance(best, dict) else None
        if not isinstance(epoch, int) or isinstance(epoch, bool):
            raise ValueError(f"{path}: its record of the best epoch (state.best) is damaged; {instead}")
        if weights is None:
            raise ValueError(f"{path}: the run kept no best weights (trained with --no-keep-checkpoint and no "
                             f"--test-views); {instead}")
        where = "its best weights (state.best_model)"
    if not isinstance(weights, dict):
        advice = "" if which == "last" else "; pass --weights last to score the last epoch's weights"
        raise ValueError(f"{path}: {where} are a {type(weights).__name__}, not a dict of tensors{advice}")
    return weights, epoch, which


def _dataset_kwargs(kwargs, name: str, path: Path) -> dict:
    """A run's ``dataset_kwargs``, checked against the dataset they are for (ValueError naming the checkpoint), so
    that a damaged or edited configuration is one line before any data is built."""
    from dataclasses import fields

    from revgnn.data.synthetic import FULL_SIZE, SyntheticProteinsConfig

    if not kwargs:
        return {}
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise ValueError(f"{path}: its dataset_kwargs {str(kwargs)[:80]} are not the parameters revgnn train writes "
                         "(a dict of names); the checkpoint is damaged or was edited")
    if not name.lower().startswith("synthetic-proteins"):
        raise ValueError(f"{path}: its dataset_kwargs {sorted(kwargs)} are for synthetic-proteins, but its dataset "
                         f"is {name!r}, which takes none; the checkpoint is damaged or was edited")
    known = {f.name for f in fields(SyntheticProteinsConfig)}
    if set(kwargs) - known:
        raise ValueError(f"{path}: its dataset_kwargs name {sorted(set(kwargs) - known)}, which {name} does not take "
                         f"(it takes {sorted(known)}); the checkpoint is damaged or from another revgnn")
    try:
        SyntheticProteinsConfig(**{**(FULL_SIZE if name.lower().endswith("-full") else {}), **kwargs})
    except (TypeError, ValueError) as err:  # a value of the wrong type or out of range
        raise ValueError(f"{path}: its dataset_kwargs {kwargs} do not make a {name} graph ({err})") from None
    return dict(kwargs)


def _dataset_taxa(root):
    """The taxon ids of an ogbn-proteins folder (its raw species table), sorted; None if it has none. The table is
    checked as revgnn's ogbn-proteins reader checks it, so that a damaged one is blamed on itself (DatasetError
    naming it), not on the checkpoint whose species columns it orders."""
    import numpy as np

    from revgnn.data.datafiles import first_line_problem
    from revgnn.data.datasets import default_root
    from revgnn.data.proteins_raw import PROTEINS_TABLES, bad_proteins_file, read_table, species_file
    from revgnn.official import OGBN_PROTEINS_TAXA

    folder = Path(root or default_root()) / "ogbn_proteins"
    path = folder / species_file(folder)    # node_species.csv.gz, or ogb's older species.csv.gz
    if not path.is_file():
        return None
    columns, what = PROTEINS_TABLES["raw/node_species.csv.gz"]
    if problem := first_line_problem(path, columns, what):
        raise bad_proteins_file(path, problem)
    taxa = sorted(int(t) for t in np.unique(read_table(path, columns, what, integer=True)))
    if taxa and taxa[0] < 1:
        raise bad_proteins_file(path, f"has the taxon id {taxa[0]}; NCBI taxon ids are positive")
    if len(taxa) != len(OGBN_PROTEINS_TAXA):
        raise bad_proteins_file(path, f"lists {len(taxa)} species ({', '.join(map(str, taxa[:9]))}); ogbn-proteins "
                                      f"has {len(OGBN_PROTEINS_TAXA)} ({', '.join(map(str, OGBN_PROTEINS_TAXA))})")
    return taxa


def _check_fits(model, ds) -> None:
    heads = model.heads
    want = {"tasks": (heads.out_lin.out_features, ds.num_tasks),
            "edge features": (None if heads.edge_encoder is None else heads.edge_encoder.in_features, ds.edge_dim),
            "species": (heads.num_species, ds.num_species)}
    for what, (model_has, data_has) in want.items():
        if model_has != data_has:
            raise ValueError(f"the checkpoint's model expects {model_has} {what}, dataset {ds.name} has {data_has}; "
                             "evaluate it on the dataset it was trained on")


def run(args) -> int:
    check_args(args)
    import torch
    from tqdm.auto import tqdm

    from revgnn.data.datasets import evaluate, load_dataset
    from revgnn.nn.fused import resolve_kernel, sort_graph_
    from revgnn.nn.presets import ModelConfig, _with_kernel, build_model
    from revgnn.official import (
        OGBN_PROTEINS_TAXA,
        check_weights,
        model_from_state,
        on_each_layer,
        read_official_state,
    )
    from revgnn.training.protocol import predict
    from revgnn.training.runtime import apply_thread_policy, fix_mmap_threshold

    apply_thread_policy(args.threads)
    fix_mmap_threshold()                   # the peak stays flat over a whole graph's layers (see its docstring)
    kwargs, source = {}, {}
    if args.official_checkpoint is not None:
        state = read_official_state(args.official_checkpoint)         # a bad file answers before any data is read
        name = args.dataset or "ogbn-proteins"
        taxa = (_dataset_taxa(args.root) if name.lower() == "ogbn-proteins" else None) or OGBN_PROTEINS_TAXA
        model = model_from_state(state, taxa, path=str(args.official_checkpoint))
        source = {"official_checkpoint": str(args.official_checkpoint), "taxa": list(taxa)}
    else:
        path = run_checkpoint_file(Path(args.checkpoint))
        ckpt = read_run_checkpoint(path)
        train_cfg = ckpt["config"].get("train", {})
        if train_cfg.get("label_reuse", 0):
            raise ValueError(f"{path}: a run with label reuse needs the training labels as input; evaluate does "
                             "not support it (its record.json has the scores)")
        name = args.dataset or train_cfg.get("dataset", "synthetic-proteins")
        if not isinstance(name, str):
            raise ValueError(f"{path}: its configuration names the dataset {name!r}, not a dataset name; pass "
                             "--dataset")
        if name == train_cfg.get("dataset"):
            kwargs = _dataset_kwargs(train_cfg.get("dataset_kwargs"), name, path)
        try:
            model = build_model(ModelConfig(**ckpt["config"]["model"]))
        except TypeError as err:  # a field this revgnn does not know
            raise ValueError(f"{path}: its model configuration does not fit this revgnn ({err})") from None
        weights, epoch, which = run_weights(ckpt, args.weights, path)
        advice = ("the checkpoint is damaged or was edited" if which == "last" else
                  "they are damaged: pass --weights last to score the last epoch's weights")
        where = f"{path} ({'model' if which == 'last' else 'state.best_model'})"
        check_weights(weights, where, like=model.state_dict(), advice=advice)  # names, shapes, dtypes, finite
        try:
            model.load_state_dict(weights)
        except RuntimeError as err:  # what check_weights does not foresee
            raise ValueError(f"{where}: the weights do not fit the model its config describes "
                             f"({str(err).splitlines()[0][:160]})") from None
        source = {"checkpoint": str(path), "epoch": epoch, "weights": which}
    _with_kernel(model, args.kernel)
    ds = load_dataset(name, args.root, **kwargs)
    if args.eval_parts > ds.num_nodes:  # each part needs a node: more parts would be empty passes, possibly for days
        raise ValueError(f"--eval-parts {args.eval_parts} exceeds the {ds.num_nodes:,} nodes of {ds.name}; use at "
                         f"most {ds.num_nodes} (1 = the whole graph)")
    sort_graph_(ds.data)                   # in place: no permutation or sorted copies of the whole graph in the kernels
    _check_fits(model, ds)
    model = model.to(args.device).eval()
    layers = getattr(model, "num_layers", 1)
    views = args.views if args.eval_parts > 1 else 1
    bar = tqdm(total=layers * args.eval_parts * views, unit="layer", disable=args.no_progress, file=sys.stderr,
               desc=f"{name} L={layers}")
    hooks = on_each_layer(model, lambda: bar.update(1))
    try:
        logits = predict(model, ds, args.eval_parts, views, torch.Generator().manual_seed(args.seed),
                         device=args.device)
    finally:
        for h in hooks:
            h.remove()
        bar.close()
    y = ds.data.y
    scores = {s: evaluate(ds.metric, y[ds.split[s]], logits[ds.split[s]], reference=True)  # OGB's Evaluator
              for s in ("train", "valid", "test")}
    if args.json:
        print(json.dumps({**scores, "metric": ds.metric, "dataset": ds.name, "eval_parts": args.eval_parts,
                          "views": views, "seed": args.seed, "device": args.device, "num_layers": layers,
                          "kernel": resolve_kernel(args.kernel, device=args.device.split(":")[0]), **source}))
    else:
        how = "whole graph" if args.eval_parts == 1 else f"{args.eval_parts} parts x {views} views"
        which = f", {source['weights']} weights, epoch {source['epoch']}" if "weights" in source else ""
        print(f"{ds.name} ({ds.metric}, {how}{which}): train {scores['train']:.4f}  valid {scores['valid']:.4f}  "
              f"test {scores['test']:.4f}")
    return 0
