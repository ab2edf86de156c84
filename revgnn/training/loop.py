"""The training loop of "Training Graph Neural Networks with 1000 Layers" (Li et al., ICML 2021).

:func:`fit` checks a run before it loads anything (the model builds, the step fits in memory, the output folder is
free), locks the output folder, installs the signal handlers and trains ``runs`` seeded runs (:func:`train_run`), each
an epoch loop of the protocol (:mod:`revgnn.training.protocol`) with checkpoints (:mod:`revgnn.training.checkpoints`),
and summarises them (test at best validation, mean ± std).

Reproducibility: every random partition (and label-reuse mask) comes from a generator seeded by (seed, epoch), the
dropout RNG, optimizer and best-so-far are checkpointed, so a run killed at any point (``kill -9``) and restarted
with ``resume=True`` ends with the same metrics as an uninterrupted run (on the same machine, CPU).
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from revgnn.data.datasets import GraphDataset, load_dataset
from revgnn.nn.deq import set_unrolled, solver_fields
from revgnn.nn.presets import ModelConfig, build_model, count_parameters

from . import budget, distributed
from .checkpoints import (
    _check_output_folder,
    _check_runs,
    _discard_runs,
    _load_checkpoint,
    _read_record,
    _restore,
    _save_checkpoint,
)
from .config import TrainConfig, _config_block, adapt_model_config
from .protocol import _epoch_parts, _eval_inputs, _generator, _part_loss, _score, predict
from .records import atomic_torch_save, environment, peak_memory_bytes, write_json
from .runtime import (
    LOCK_NAME,
    STOP,
    TrainingInterrupted,
    apply_thread_policy,
    lock_holder,
    output_lock,
    remove_stale_temps,
    thread_info,
)
from .tricks import TEACHER_FILE, load_teacher, make_optimizer, warmup_lr

__all__ = ["fit", "train_run", "mean_std"]

log = logging.getLogger(__name__)


def _train_epoch(model, opt, ds, tcfg, train_parts, seed, epoch, device) -> float:
    model.train()
    teacher = load_teacher(tcfg.teacher, seed, ds.num_nodes, ds.num_tasks) if tcfg.teacher else None  # read once
    for group in opt.param_groups:
        group["lr"] = warmup_lr(tcfg.lr, epoch, tcfg.lr_warmup_epochs)
    parts = _epoch_parts(ds, tcfg, train_parts, seed, epoch)

    def part_loss(batch, mask):
        return _part_loss(model, ds, batch, mask, device, tcfg, teacher)

    if tcfg.accumulate > 1 or distributed.world_size() > 1:  # grouped steps (revgnn.training.distributed)
        return distributed.train_epoch(model, opt, parts, part_loss, tcfg.accumulate, tcfg.clip_grad_norm, seed,
                                       epoch)
    total, steps = 0.0, 0
    for _, batch, mask in parts:
        opt.zero_grad()
        loss = part_loss(batch, mask)
        loss.backward()
        if tcfg.clip_grad_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.clip_grad_norm)
        opt.step()
        total += float(loss.detach())
        steps += 1
    return total / max(steps, 1)


def _deq_phase(model, mcfg: ModelConfig, epoch: int) -> dict[str, Any]:
    """DEQ-GNN's warm-up switch: during its first ``warmup_epochs`` epochs (training and evaluation) the model runs as
    the weight-tied network of ``warmup_iters`` unrolled cells, then by its fixed-point solver (Li et al., 2021, whose
    official arguments name such pre-training). ``{"deq_phase": "warmup" | "solver"}`` for the history; {} for other
    models."""
    if mcfg.model != "deq":
        return {}
    warm = epoch <= mcfg.warmup_epochs
    set_unrolled(model, mcfg.warmup_iters if warm else mcfg.unrolled_iters)
    return {"deq_phase": "warmup" if warm else "solver"}


def _deq_warmup(mcfg: ModelConfig, epochs: int) -> dict[str, Any]:
    """The run record's account of DEQ-GNN's warm-up: its epochs, k, and the first epoch trained by the solver (None
    when the run ended before it); {} for other models."""
    if mcfg.model != "deq":
        return {}
    switch = mcfg.warmup_epochs + 1
    return {"deq_warmup": {"epochs": mcfg.warmup_epochs, "iters": mcfg.warmup_iters,
                           "switch_epoch": switch if switch <= epochs else None}}


def _better(entry: dict, best: dict | None, history: list[dict], select: str) -> bool:
    """Whether ``entry`` is the new reported epoch: the best validation score, or the lowest validation loss."""
    if best is None:
        return True
    if select == "valid_loss":
        best_loss = next(h["valid_loss"] for h in history if h["epoch"] == best["epoch"])
        return entry["valid_loss"] < best_loss
    return entry["valid"] > best["valid"]


def _kernel_ran(mcfg: ModelConfig, device: torch.device) -> str:
    """The GENConv kernel a run used: 'native' or 'torch' (the fused operator), or 'pyg' (PyG's GENConv)."""
    from revgnn.nn.fused import resolve_kernel

    return resolve_kernel(mcfg.kernel, device=device.type) if mcfg.fused else "pyg"


def train_run(mcfg: ModelConfig, tcfg: TrainConfig, ds: GraphDataset, seed: int,
              run_dir: Path | None = None) -> dict[str, Any]:
    """One seeded run; returns its record (also written to ``run_dir/record.json`` when given)."""
    device = torch.device(tcfg.device)
    train_parts = tcfg.train_parts or ds.train_parts
    eval_parts = tcfg.eval_parts or ds.eval_parts
    config = _config_block(mcfg, tcfg)
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
    model = build_model(mcfg).to(device)
    opt = make_optimizer(tcfg.optimizer, model.parameters(), tcfg.lr, tcfg.weight_decay)
    if tcfg.teacher:  # checked before the first epoch
        load_teacher(tcfg.teacher, seed, ds.num_nodes, ds.num_tasks)
    state = {"epoch": 0, "history": [], "best": None, "best_model": None, "elapsed_s": 0.0}
    ckpt_path = run_dir / "checkpoint.pt" if run_dir else None
    if tcfg.resume and ckpt_path is not None and ckpt_path.is_file():
        state = _restore(_load_checkpoint(ckpt_path, device), ckpt_path, config, model, opt, tcfg)
        log.info("resumed %s at epoch %d", run_dir, state["epoch"])
    distributed.check_same(state["epoch"], f"the epoch {run_dir} resumes at")
    eval_x = _eval_inputs(ds, tcfg)  # all train labels (label reuse)
    start = time.perf_counter() - state["elapsed_s"]
    bar = tqdm(range(state["epoch"] + 1, tcfg.epochs + 1), initial=state["epoch"], total=tcfg.epochs,
               desc=f"{tcfg.dataset} seed {seed}", disable=not tcfg.progress, leave=False)
    for epoch in bar:
        phase = _deq_phase(model, mcfg, epoch)                                           # DEQ-GNN's warm-up
        loss = _train_epoch(model, opt, ds, tcfg, train_parts, seed, epoch, device)
        entry: dict[str, Any] = {"epoch": epoch, "loss": loss, **phase, **solver_fields(model, reset=True)}
        if epoch % tcfg.eval_every == 0 or epoch == tcfg.epochs:
            logits = predict(model, ds, eval_parts, tcfg.eval_views, _generator(seed, epoch, 1), eval_x, device,
                             shard=True, label_iters=tcfg.label_iters)
            entry.update(_score(ds, logits, tcfg.loss if tcfg.select == "valid_loss" else None))
            if _better(entry, state["best"], state["history"], tcfg.select):
                state["best"] = {k: entry[k] for k in ("epoch", "train", "valid", "test")}
                if tcfg.test_views or tcfg.keep_checkpoint or tcfg.save_logits:  # final test, `revgnn evaluate`
                    state["best_model"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
            bar.set_postfix(loss=f"{loss:.4f}", valid=f"{entry['valid']:.4f}")
        state["history"].append(entry)
        state["epoch"] = epoch
        if not math.isfinite(loss):
            raise FloatingPointError(f"the training loss became {loss} at epoch {epoch} (seed {seed}); lower --lr "
                                     f"(now {tcfg.lr:g}) or check the data")
        if ckpt_path is not None and ((tcfg.checkpoint_every and epoch % tcfg.checkpoint_every == 0) or STOP
                                      or (epoch == tcfg.epochs and tcfg.keep_checkpoint)) and distributed.is_main():
            state["elapsed_s"] = time.perf_counter() - start
            _save_checkpoint(config, model, opt, state, ckpt_path)
        if STOP and epoch < tcfg.epochs:
            bar.close()
            raise _interrupted(seed, epoch, run_dir)
    bar.close()
    final = next(h for h in reversed(state["history"]) if "valid" in h)
    multiview = None
    if tcfg.test_views:
        model.load_state_dict(state["best_model"])
        test_parts = tcfg.test_parts or eval_parts
        logits = predict(model, ds, test_parts, tcfg.test_views, _generator(seed, 0, 2), eval_x, device,
                         shard=True, label_iters=tcfg.label_iters)
        multiview = {"epoch": state["best"]["epoch"], "views": tcfg.test_views if test_parts > 1 else 1,
                     "parts": test_parts, **_score(ds, logits)}
    record = {
        "dataset": ds.name, "metric": ds.metric, "num_tasks": ds.num_tasks, "seed": seed, "config": config,
        "params": count_parameters(model), "best": state["best"],
        "final": {k: final[k] for k in ("epoch", "train", "valid", "test")}, "multiview": multiview,
        "history": state["history"],
        "train_parts": train_parts, "eval_parts": eval_parts,
        "wall_time_s": time.perf_counter() - start, **peak_memory_bytes(device), **environment(device),
        **thread_info(), "recipe": tcfg.recipe, "kernel": _kernel_ran(mcfg, device), **_deq_warmup(mcfg, tcfg.epochs),
    }
    if tcfg.save_logits and run_dir is not None and distributed.is_main():  # a teacher for self-distillation
        model.load_state_dict(state["best_model"])
        logits = predict(model, ds, eval_parts, 1, _generator(seed, 0, 3), eval_x, device,
                         label_iters=tcfg.label_iters)
        atomic_torch_save(logits, run_dir / TEACHER_FILE)
        record["logits"] = TEACHER_FILE
    if run_dir is not None and distributed.is_main():
        write_json(run_dir / "record.json", record)
        if not tcfg.keep_checkpoint:
            ckpt_path.unlink(missing_ok=True)
    return record


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    t = torch.tensor(values, dtype=torch.float64)
    return float(t.mean()), float(t.std()) if len(values) > 1 else 0.0


def _load_sorted(tcfg: TrainConfig) -> GraphDataset:
    """``tcfg``'s dataset with its edges sorted by destination in place (:func:`revgnn.nn.fused.sort_graph_`): the fused
    kernels then need no permutation and no sorted copies of the whole graph. A dataset passed to :func:`fit` is used
    as it is."""
    from revgnn.nn.fused import sort_graph_

    ds = load_dataset(tcfg.dataset, root=tcfg.root, **tcfg.dataset_kwargs)
    sort_graph_(ds.data)
    return ds


def _fit(model_config: ModelConfig, train_config: TrainConfig, dataset: GraphDataset | None = None) -> dict[str, Any]:
    """The runs and summary of :func:`fit`, after its checks, folder lock and signal handlers."""
    tcfg = train_config
    ds = dataset or _load_sorted(tcfg)
    mcfg = adapt_model_config(model_config, ds, tcfg)
    out = Path(tcfg.out_dir) if tcfg.out_dir else None
    records = []
    for i in range(tcfg.runs):
        seed = tcfg.seed + i
        run_dir = None
        if out is not None:
            run_dir = out / f"run-seed{seed}"
            done = run_dir / "record.json"
            if tcfg.resume and done.is_file():
                rec = _read_record(done)
                if rec["config"] == _config_block(mcfg, tcfg):
                    records.append(rec)
                    continue
            run_dir.mkdir(parents=True, exist_ok=True)
        records.append(train_run(mcfg, tcfg, ds, seed, run_dir))
    valid, valid_std = mean_std([r["best"]["valid"] for r in records])
    test, test_std = mean_std([r["best"]["test"] for r in records])
    summary = {"dataset": ds.name, "metric": ds.metric, "valid": valid, "valid_std": valid_std, "test": test,
               "test_std": test_std, "params": records[0]["params"], "seeds": [r["seed"] for r in records],
               "runs": records}
    if all(r.get("multiview") for r in records):
        for split in ("valid", "test"):
            mean, std = mean_std([r["multiview"][split] for r in records])
            summary[f"{split}_multiview"], summary[f"{split}_multiview_std"] = mean, std
    if out is not None and distributed.is_main():
        write_json(out / "summary.json", summary)
    return summary


def _interrupted(seed: int, epoch: int, run_dir: Path | None) -> TrainingInterrupted:
    STOP.handled = True
    name = signal.Signals(STOP.signum).name
    if run_dir is None:
        return TrainingInterrupted(STOP.signum, f"{name}: stopped seed {seed} after epoch {epoch}; nothing was saved "
                                                f"(no --out), so a rerun starts from scratch")
    return TrainingInterrupted(STOP.signum, f"{name}: stopped seed {seed} after epoch {epoch}, checkpoint saved in "
                                            f"{run_dir}; run the same command with --resume to continue")


def _preflight(model_config: ModelConfig, tcfg: TrainConfig, out: Path | None, main: bool) -> None:
    """Checks that need no data (before loading it, which may take a minute): the model can be built, the step's
    size estimate fits this machine, and (rank 0, reading only) the output folder is free and consistent."""
    mcfg = dataclasses.replace(model_config, embedding_dim=tcfg.embedding_dim)
    budget.check_depth(mcfg, tcfg.force)
    shape = budget.dataset_shape(tcfg.dataset, tcfg.dataset_kwargs)
    if shape is not None:
        n, e = shape
        parts = tcfg.train_parts or (10 if n > 20_000 else 1)
        budget.check_fits(budget.estimate_step(mcfg, n, e, min(parts, n), device=tcfg.device),
                          f"a training step of {mcfg.model} L={mcfg.num_layers} D={mcfg.hidden_channels} on "
                          f"{tcfg.dataset} (N={n:,}, E={e:,}, {parts} parts)", tcfg.device, tcfg.force,
                          _ranks_here())
    else:
        budget.parameter_count(mcfg)  # builds on the meta device: bad settings fail here, in a moment
    if out is not None and main and out.is_dir():
        holder = lock_holder(out)
        if holder is not None:
            raise ValueError(f"{out} is in use by {holder}, which holds {out / LOCK_NAME}; wait for it to finish or "
                             f"choose another --out")
        _check_output_folder(out, mcfg, tcfg, write=False)
        _check_runs(out, tcfg)


def _ranks_here() -> int:
    """Ranks on this machine (torchrun's ``LOCAL_WORLD_SIZE``): each holds its own graph and model."""
    try:
        return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        return 1


def _rank_fields(model_config: ModelConfig, tcfg: TrainConfig) -> dict[str, Any]:
    fields = {f"train.{k}": v for k, v in dataclasses.asdict(tcfg).items() if k != "progress"}
    fields.update({f"model.{k}": v for k, v in dataclasses.asdict(model_config).items()})
    return fields


def fit(model_config: ModelConfig, train_config: TrainConfig, dataset: GraphDataset | None = None) -> dict[str, Any]:
    """Train ``train_config.runs`` seeded runs and summarise them (test at best validation, mean ± std).

    Before anything is written: the thread policy is applied (:func:`revgnn.training.runtime.apply_thread_policy`);
    under torch.distributed every rank must hold the same configuration
    (:func:`revgnn.training.distributed.check_same_config`); before the dataset is loaded the model's size is estimated
    against this machine's memory (:mod:`revgnn.training.budget`) and the output folder checked (reading only); then the
    dataset is loaded and every setting checked. With ``out_dir``, the folder is locked against a second run
    (``.revgnn.lock``), must hold no runs of another configuration (``config.json``) and no ``summary.json`` revgnn did
    not write; a seed's finished record or interrupted checkpoint is kept unless ``resume`` (continue) or ``restart``
    (discard) says otherwise; temporary files of killed revgnn runs are removed. SIGINT/SIGTERM stop training after the
    current epoch with a checkpoint and raise :class:`revgnn.training.runtime.TrainingInterrupted`. Under
    torch.distributed a bad-input error of any rank stops every rank with the same
    :class:`revgnn.training.distributed.AgreedError`.

    Args:
        model_config: The model; dataset-dependent widths are filled in by :func:`adapt_model_config`.
        train_config: Optimisation, evaluation, output.
        dataset: A loaded dataset (default: ``load_dataset(train_config.dataset, ...)``).

    Returns:
        Summary with ``dataset``, ``metric``, ``valid``/``test`` (means at best validation) and their ``*_std``,
        ``params``, ``runs`` (each run's record); with ``test_views`` also ``valid_multiview``/``test_multiview``
        and their ``*_std`` (the final multi-view scores of the best weights). Written to ``out_dir/summary.json``
        when ``out_dir`` is set.
    """
    tcfg = train_config
    apply_thread_policy(tcfg.threads)
    distributed.check_same_config(_rank_fields(model_config, tcfg))
    out = Path(tcfg.out_dir) if tcfg.out_dir else None
    main = os.environ.get("RANK", "0") == "0"  # one lock per job (torchrun: its rank 0)
    distributed.agree(lambda: _preflight(model_config, tcfg, out, main))
    ds = dataset or distributed.agree(lambda: _load_sorted(tcfg))
    mcfg = adapt_model_config(model_config, ds, tcfg)

    def checks():
        for name in ("train_parts", "eval_parts", "test_parts"):
            parts = getattr(tcfg, name)
            if parts is not None and parts > ds.num_nodes:
                raise ValueError(f"{name} {parts} exceeds the {ds.num_nodes:,} nodes of {ds.name}; use at most "
                                 f"{ds.num_nodes} (1 = the full graph)")
        n, e = ds.num_nodes, int(ds.data.edge_index.size(1))
        parts = tcfg.train_parts or ds.train_parts
        budget.check_fits(budget.estimate_step(mcfg, n, e, parts, device=tcfg.device),
                          f"a training step of {mcfg.model} L={mcfg.num_layers} D={mcfg.hidden_channels} on "
                          f"{ds.name} (N={n:,}, E={e:,}, {parts} parts)", tcfg.device, tcfg.force, _ranks_here())

    distributed.agree(checks)
    STOP.reset()
    with contextlib.ExitStack() as stack:
        if out is not None and main:
            distributed.agree(lambda: _enter_output_folder(stack, out, mcfg, tcfg))
        elif out is not None:
            distributed.agree(lambda: None)  # rank 0's folder checks
        stack.enter_context(STOP.installed())
        return _fit(model_config, tcfg, ds)


def _enter_output_folder(stack: contextlib.ExitStack, out: Path, mcfg: ModelConfig, tcfg: TrainConfig) -> None:
    """Lock ``out`` for the rest of ``stack`` and check it (rank 0): configuration, summary, runs; ``--restart``
    discards this configuration's seeds; stale temporary files of killed revgnn runs are removed."""
    try:
        stack.enter_context(output_lock(out))
    except OSError as err:
        raise ValueError(f"cannot create the output folder {out} ({err.strerror or err}); choose another --out") \
            from None
    _check_output_folder(out, mcfg, tcfg)
    _check_runs(out, tcfg)
    if tcfg.restart:
        _discard_runs(out, tcfg)
    remove_stale_temps(out)
