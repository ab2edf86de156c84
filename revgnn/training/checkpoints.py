"""Checkpoints and the output folder of a training run (Li et al., ICML 2021, reproduced).

A checkpoint holds the full training state (weights, Adam, every RNG, history, best epoch) as tensors and plain
containers, read back with ``weights_only=True``, so a run killed at any point resumes where it stopped. An output
folder (``--out``) holds ``config.json`` (its configuration), ``run-seed<S>/checkpoint.pt`` and
``run-seed<S>/record.json`` per seed and ``summary.json``; the checks here refuse a folder of another configuration
and never overwrite a seed's record or checkpoint unless ``resume`` or ``restart`` says what to do with it.
"""
from __future__ import annotations

import contextlib
import json
import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from revgnn.nn.presets import ModelConfig

from .config import _DATASET_FIELDS, _RUNTIME_KEYS, TrainConfig, _config_block
from .protocol import SPLITS
from .records import atomic_torch_save, read_json, write_json

__all__ = ["CHECKPOINT_FORMAT"]

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "revgnn-checkpoint-2"  # tensors and plain containers only: read with weights_only=True
_CHECKPOINT_KEYS = ("format", "config", "model", "optimizer", "torch_rng", "numpy_rng", "python_rng", "state")


def _config_text(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, default=str)


def _save_checkpoint(config, model, opt, state, path: Path) -> None:
    """Write the full training state (weights, Adam, every RNG, history, best) as tensors and plain containers, so
    that :func:`_load_checkpoint` can read it with ``weights_only=True``; a write failure is one OSError line."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    ckpt = {"format": CHECKPOINT_FORMAT, "config": _config_text(config), "model": model.state_dict(),
            "optimizer": opt.state_dict(), "torch_rng": torch.get_rng_state(),
            "numpy_rng": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                          "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
            "python_rng": {"version": version, "internal": list(internal), "gauss": gauss}, "state": state}
    try:
        atomic_torch_save(ckpt, path)
    except RuntimeError as err:  # torch's zip writer reports a full disk as "PytorchStreamWriter failed writing"
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise OSError(f"cannot write {path} ({first}); free disk space or choose another --out; nothing partial "
                      f"was left") from None


def _load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """A checkpoint of :func:`train_run`, read with ``weights_only=True`` (no code runs from the file), or
    ValueError with advice when it is unreadable (truncated, foreign, from an older revgnn, or not safe to load)."""
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # torch/pickle/zip raise many types for a damaged or unsafe file
        raise ValueError(f"checkpoint {path} is unreadable (truncated, damaged, from an older revgnn, or holding "
                         f"objects other than tensors: {type(err).__name__}); delete it to restart that run from "
                         f"scratch (or pass --restart), or drop --resume") from None
    if not isinstance(ckpt, dict) or not all(k in ckpt for k in _CHECKPOINT_KEYS) \
            or ckpt["format"] != CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint {path} is not a revgnn training checkpoint; delete it to restart that run from "
                         f"scratch (or pass --restart), or drop --resume")
    return ckpt


def _checked_state(state: Any, tcfg: TrainConfig) -> dict[str, Any]:
    """The ``state`` of a checkpoint, or TypeError/ValueError naming what does not hold."""
    if not isinstance(state, dict) or not {"epoch", "history", "best", "best_model", "elapsed_s"} <= set(state):
        raise ValueError("its state lacks epoch, history, best, best_model or elapsed_s")
    epoch, history = state["epoch"], state["history"]
    if not isinstance(epoch, int) or isinstance(epoch, bool) or not 0 <= epoch <= tcfg.epochs:
        raise ValueError(f"its epoch {epoch!r} is not in [0, {tcfg.epochs}]")
    if not isinstance(history, list) or len(history) != epoch or any(
            not isinstance(h, dict) or h.get("epoch") != i + 1 or not isinstance(h.get("loss"), float)
            for i, h in enumerate(history)):
        raise ValueError("its history does not list one entry per epoch")
    evaluated = [h for h in history if "valid" in h]
    if any(not all(isinstance(h.get(k), float) for k in SPLITS) for h in evaluated):
        raise ValueError("its history holds scores that are not numbers")
    best = state["best"]
    if (best is None) != (not evaluated) or (best is not None and (
            not isinstance(best, dict) or best not in [{k: h[k] for k in ("epoch", *SPLITS)} for h in evaluated])):
        raise ValueError("its best epoch is not one of its history")
    if tcfg.test_views and best is not None and not isinstance(state["best_model"], dict):
        raise ValueError("it lacks the best weights")
    if not isinstance(state["elapsed_s"], float):
        raise ValueError("its elapsed time is not a number")
    return state


def _restore(ckpt: dict[str, Any], path: Path, config: dict[str, Any], model, opt, tcfg: TrainConfig) -> dict:
    """Load a checkpoint's weights, optimizer and RNG states into place and return its training state; one
    ValueError line when its contents do not fit (wrong keys, shapes or types)."""
    if ckpt["config"] != _config_text(config):
        raise ValueError(f"{path} was written with a different configuration; use another --out, or pass "
                         f"--restart to discard it")
    try:
        state = _checked_state(ckpt["state"], tcfg)
        if state["best_model"] is not None:
            model.load_state_dict(state["best_model"])  # the best weights must fit this model too
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        for group in opt.param_groups:  # Adam checks no shapes on loading; a wrong one would fail mid-training
            for param in group["params"]:
                for key, value in opt.state.get(param, {}).items():
                    if key != "step" and (not torch.is_tensor(value) or value.shape != param.shape):
                        raise ValueError(f"its optimizer state {key} has the shape {tuple(getattr(value, 'shape', ()))}"
                                         f" for a parameter of shape {tuple(param.shape)}")
        torch.set_rng_state(ckpt["torch_rng"])
        r = ckpt["numpy_rng"]
        np.random.set_state((r["name"], r["keys"].numpy().astype(np.uint32), r["pos"], r["has_gauss"],
                             r["cached_gaussian"]))
        p = ckpt["python_rng"]
        random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as err:
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise ValueError(f"checkpoint {path} does not fit this run ({type(err).__name__}: {first}); delete it to "
                         f"restart that run from scratch (or pass --restart), or drop --resume") from None
    return state


def _read_record(path: Path) -> dict[str, Any]:
    """A finished run's ``record.json``, or ValueError with advice when it is unreadable."""
    try:
        rec = read_json(path)
    except (OSError, ValueError) as err:  # ValueError: JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"run record {path} is unreadable (truncated or damaged? {type(err).__name__}); delete it to "
                         f"rerun that seed, or drop --resume") from None
    if not isinstance(rec, dict) or not {"config", "best", "seed"} <= set(rec):
        raise ValueError(f"run record {path} is not a revgnn run record; delete it to rerun that seed, or drop "
                         f"--resume")
    return rec


def _folder_config(mcfg: ModelConfig, tcfg: TrainConfig) -> dict[str, Any]:
    """The configuration shared by every run in an output folder (the per-run block without the seed)."""
    block = _config_block(mcfg, tcfg)
    return {"model": block["model"], "train": {k: v for k, v in block["train"].items() if k != "seed"}}


def _folder_config_on_disk(out: Path) -> tuple[dict[str, Any] | None, Path]:
    """The configuration an output folder records (``config.json``, else a run record or the summary) and where it
    was read; (None, ...) for a folder without runs. ValueError for a ``config.json`` or ``summary.json`` that is
    not revgnn's."""
    summary = out / "summary.json"
    summary_runs = []
    if summary.exists():
        try:
            content = read_json(summary)
        except (OSError, ValueError):
            content = None
        if not (isinstance(content, dict) and {"dataset", "metric", "runs"} <= set(content)
                and isinstance(content["runs"], list)):
            raise ValueError(f"{summary} is not a revgnn summary (unreadable, or not one written by revgnn train); "
                             f"move it away or choose another --out: revgnn writes its summary there")
        summary_runs = [(r, summary) for r in content["runs"]]
    source = out / "config.json"
    if source.exists():
        try:
            theirs = read_json(source)
        except (OSError, ValueError):
            theirs = None
        if not (isinstance(theirs, dict) and isinstance(theirs.get("model"), dict)
                and isinstance(theirs.get("train"), dict)):
            raise ValueError(f"{source} is not a revgnn folder configuration (unreadable, or not a JSON object with "
                             f"'model' and 'train'); delete it (it only records the folder's configuration) or "
                             f"choose another --out")
        return theirs, source
    done = []
    for path in sorted(out.glob("run-seed*/record.json")):
        with contextlib.suppress(OSError, ValueError):
            done.append((read_json(path), path))
    for rec, path in [*done, *summary_runs]:
        with contextlib.suppress(KeyError, TypeError, AttributeError):
            cfg = rec["config"]
            return {"model": dict(cfg["model"]), "train": {k: v for k, v in cfg["train"].items()
                                                           if k not in ("seed", *_RUNTIME_KEYS)}}, path
    return None, source


def _check_output_folder(out: Path, mcfg: ModelConfig, tcfg: TrainConfig, write: bool = True) -> None:
    """Refuse an output folder that holds runs of another configuration, or a ``config.json``/``summary.json`` that
    revgnn did not write; else (``write``) record this configuration in ``config.json``. With ``write=False`` (a
    read-only check before the dataset is loaded) the model's dataset-dependent widths are not compared."""
    if not out.is_dir():
        return
    mine = json.loads(json.dumps(_folder_config(mcfg, tcfg), default=str))  # as it reads back from JSON
    theirs, source = _folder_config_on_disk(out)
    if theirs is not None:
        skip = set() if write else set(_DATASET_FIELDS)
        diff = sorted(f"{part}.{k}" for part in ("model", "train") for k in set(mine[part]) | set(theirs[part])
                      if k not in (skip if part == "model" else ()) and mine[part].get(k) != theirs[part].get(k))
        if diff:
            raise ValueError(f"{out} holds runs of another configuration ({source}; differs in {', '.join(diff)}); "
                             f"choose another --out, or delete that folder to replace them")
    if write:
        write_json(out / "config.json", mine)


def _seeds(tcfg: TrainConfig) -> range:
    return range(tcfg.seed, tcfg.seed + tcfg.runs)


def _check_runs(out: Path, tcfg: TrainConfig) -> None:
    """Refuse to overwrite a seed's finished record or interrupted checkpoint unless ``--resume`` or ``--restart``
    says what to do with it; refuse record/checkpoint names that are not files."""
    for seed in _seeds(tcfg):
        run_dir = out / f"run-seed{seed}"
        ckpt, done = run_dir / "checkpoint.pt", run_dir / "record.json"
        for path in (ckpt, done):
            if path.exists() and not path.is_file():
                raise ValueError(f"{path} is not a file; move it away or choose another --out")
        if tcfg.resume or tcfg.restart:
            continue
        if done.exists():
            raise ValueError(f"{done}: a finished run is here: pass --resume to keep it or --restart to train it "
                             f"again")
        if ckpt.exists():
            try:
                epoch = _load_checkpoint(ckpt)["state"]["epoch"]
            except (ValueError, TypeError, KeyError):
                raise ValueError(f"{ckpt}: a checkpoint that cannot be read is here: pass --restart to discard it, "
                                 f"or move it away") from None
            raise ValueError(f"{ckpt}: an interrupted run is here (epoch {epoch}): pass --resume to continue or "
                             f"--restart to discard it")


def _discard_runs(out: Path, tcfg: TrainConfig) -> None:
    """``--restart``: remove this configuration's seeds' checkpoints and records (and nothing else)."""
    for seed in _seeds(tcfg):
        for name in ("checkpoint.pt", "record.json"):
            path = out / f"run-seed{seed}" / name
            if path.is_file():
                path.unlink()
                log.info("--restart: removed %s", path)
