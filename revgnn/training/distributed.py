"""Data-parallel training and gradient accumulation for the protocol of Li et al. (ICML 2021): one optimizer step
per K random-partition parts, their gradients averaged, on K ranks of ``torch.distributed`` or in one process.

Work split (same on every rank, since each epoch's partition comes from a generator seeded by (seed, epoch)): the
epoch's parts that hold loss nodes are numbered j = 0, 1, ...; consecutive groups of G = world size x accumulate parts
make one optimizer step each, and rank r trains the parts of a group at positions p with p mod W = r. The last group of
an epoch may be shorter; its gradients are averaged over the parts it has. The dropout RNG is re-seeded per (seed,
epoch, part) before each part's forward, so a part's gradient does not depend on which rank (or which position in a
single process) trained it: K ranks and ``accumulate=K`` in one process follow the same trajectory. With one process and
``accumulate=1`` none of this runs and the trajectory is that of :mod:`revgnn.training.loop` as before.

Gradients are all-reduced by hand after backward (one flat buffer per step, summed, divided by the group's number
of parts), not through ``DistributedDataParallel``: (1) a rank with no part in a short last group still takes part in
the step with zero gradients, which DDP cannot express without a dummy forward; (2) the average is over parts, not
ranks, so ``accumulate`` and world size compose and the result equals the single-process average; (3) the
reversible engine (:mod:`revgnn.nn.reversible`) and DEQ's implicit backward (:mod:`revgnn.nn.deq`) return parameter
gradients from custom autograd Functions, nothing here hooks into autograd, so they need no special care (DDP's
per-parameter reducer hooks would also see them, but a parameter without a gradient on one rank would need
``find_unused_parameters``). The price is no overlap of communication with backward.

Evaluation is sharded: the parts of all views are dealt out round-robin over the ranks and the logits summed
(:class:`Share`). Rank 0 alone writes records and checkpoints; every rank reads a checkpoint from the shared ``--out``
folder on resume, and :func:`check_same` stops the run if they disagree. A collective that fails because a peer died
raises :class:`PeerLostError`; torchrun also stops the other ranks when one exits.

Consistency: at start every rank compares the hash of its whole configuration with rank 0's
(:func:`check_same_config`); ranks started with different flags (another ``--lr`` or ``--seed`` on one node) stop
together with one line naming the fields. Bad input found on any rank (rank 0's output-folder checks included) is
raised on every rank by :func:`agree`, so no rank waits for a peer that has stopped; under ``--nproc`` it comes back
as rank 0's one line and exit status 2, without torchrun's report.
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["world_size", "rank", "is_main", "launched", "backend_for", "process_group", "part_seed",
           "train_epoch", "Share", "check_same", "check_same_config", "agree", "AgreedError", "PeerLostError",
           "launch_local", "argv_from_namespace"]

log = logging.getLogger(__name__)

TIMEOUT_S = float(os.environ.get("REVGNN_DIST_TIMEOUT", 600))  # a collective waits this long for a silent peer


class PeerLostError(RuntimeError):
    """A collective failed or timed out: another rank died or stopped answering."""


class AgreedError(ValueError):
    """A bad-input error every rank raises together (:func:`agree`, :func:`check_same_config`); rank 0 reports it."""


def world_size() -> int:
    """Ranks in the default process group (1 without one)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    """True on rank 0, the only rank that writes records, checkpoints and standard output."""
    return rank() == 0


def launched() -> bool:
    """True when a launcher (torchrun) asked for more than one process (``WORLD_SIZE`` > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def backend_for(device: str) -> str:
    """``nccl`` for CUDA devices, ``gloo`` for CPUs."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


@contextmanager
def process_group(device: str) -> Iterator[str]:
    """Join torchrun's process group when launched by it (env ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``...).

    Args:
        device: ``cpu`` or ``cuda``; picks the backend (gloo / NCCL) and, for CUDA, this rank's GPU
            (``cuda:LOCAL_RANK``).

    Yields:
        ``device`` unchanged: with CUDA, ``cuda`` means this rank's GPU (``torch.cuda.set_device``), so records and
        checkpoints name the same device on every rank and in one process.
    """
    if not launched() or dist.is_initialized():
        yield device
        return
    dev = torch.device(device)
    if dev.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise ValueError(f"local rank {local} has no GPU (torch sees {torch.cuda.device_count()}); use at most "
                             f"that many --nproc-per-node")
        torch.cuda.set_device(local)
    dist.init_process_group(backend_for(device), timeout=datetime.timedelta(seconds=TIMEOUT_S))
    log.debug("rank %d of %d on %s (%s)", rank(), world_size(), device, backend_for(device))
    try:
        yield device
    finally:
        dist.destroy_process_group()


def _collective(fn: Callable, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except RuntimeError as err:  # DistBackendError, gloo's "Connection closed by peer", timeouts
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise PeerLostError(f"rank {rank()} lost contact with another rank ({first[:200]}); every rank stops. "
                            "Restart the same command with --resume to continue from the last checkpoint") from err


def _comm_device(t: Tensor) -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else t.device


def all_sum(t: Tensor) -> Tensor:
    """The elementwise sum of ``t`` over the ranks (``t`` itself with one rank)."""
    if world_size() == 1:
        return t
    buf = t.to(_comm_device(t))
    _collective(dist.all_reduce, buf, op=dist.ReduceOp.SUM)
    return buf.to(t.device)


def check_same(value, what: str) -> None:
    """Raise ValueError unless every rank holds the same ``value`` (e.g. the epoch a run resumes at)."""
    if world_size() == 1:
        return
    values: list = [None] * world_size()
    _collective(dist.all_gather_object, values, value)
    if any(v != values[0] for v in values):
        raise ValueError(f"ranks disagree on {what}: {values}; every rank must see the same --out folder "
                         f"(a file system shared by all nodes)")


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=repr).encode()).hexdigest()


def _short(value) -> str:
    text = json.dumps(value, default=repr)
    return text if len(text) <= 40 else text[:37] + "..."


def check_same_config(fields: dict, what: str = "configuration") -> None:
    """Stop every rank (:class:`AgreedError`) unless all ranks hold the same ``fields`` (name -> JSON-able value).

    Every rank contributes the SHA-256 of its whole configuration and of each field; when a hash differs from rank
    0's, each rank raises the same one-line error naming the fields that differ and their values on rank 0 and on
    the first rank that disagrees. Without a process group it checks nothing. Call it before anything that could
    fail differently on different ranks (building the model, loading data): every rank then reaches it.
    """
    if world_size() == 1:
        return
    mine = {"all": _digest(fields), "fields": {k: _digest(v) for k, v in fields.items()},
            "values": {k: _short(v) for k, v in fields.items()}}
    gathered: list = [None] * world_size()
    _collective(dist.all_gather_object, gathered, mine)
    ref = gathered[0]
    for r, other in enumerate(gathered[1:], start=1):
        if other["all"] == ref["all"]:
            continue
        names = sorted(set(ref["fields"]) | set(other["fields"]))
        diff = [k for k in names if ref["fields"].get(k) != other["fields"].get(k)]
        shown = ", ".join(f"{k} (rank 0: {ref['values'].get(k, 'absent')}, rank {r}: "
                          f"{other['values'].get(k, 'absent')})" for k in diff)
        raise AgreedError(f"ranks were started with different {what}s: {shown}; start every rank with the same "
                          f"command and flags")


def agree(fn: Callable):
    """Run ``fn`` on every rank and raise its ValueError (or OSError) on all of them (:class:`AgreedError`) if any
    rank had one.

    For checks that some ranks make alone (rank 0's output folder) or that could fail on one rank only: without
    it the other ranks would wait in their next collective. Returns ``fn()``'s value.
    """
    err: str | None = None
    result = None
    try:
        result = fn()
    except (ValueError, OSError) as exc:  # OSError: a file that is missing or cannot be written
        if world_size() == 1:
            raise
        err = str(exc)
    if world_size() > 1:
        errors: list = [None] * world_size()
        _collective(dist.all_gather_object, errors, err)
        first = next((e for e in errors if e), None)
        if first is not None:
            raise AgreedError(first)
    return result


def part_seed(seed: int, epoch: int, part: int) -> int:
    """Seed of the dropout RNG for one part of one epoch (same on every rank and in one process)."""
    return int(np.random.SeedSequence([seed, epoch, part]).generate_state(1)[0])


def _stash(params: list[Tensor], summed: list[Tensor | None]) -> None:
    """Move each parameter's gradient into ``summed`` (sum over this rank's parts, in part order)."""
    for i, p in enumerate(params):
        if p.grad is not None:
            summed[i] = p.grad if summed[i] is None else summed[i].add_(p.grad)
            p.grad = None


def _all_reduce_grads(params: list[Tensor], summed: list[Tensor | None]) -> list[Tensor | None]:
    """Sum ``summed`` over the ranks in one flat buffer; a parameter no rank has a gradient for stays None."""
    ref = params[0]
    flat = torch.cat([(s if s is not None else torch.zeros_like(p)).reshape(-1).to(ref.dtype)
                      for p, s in zip(params, summed)]
                     + [torch.tensor([float(s is not None) for s in summed], dtype=ref.dtype, device=ref.device)])
    flat = all_sum(flat)                        # (sum of numels + number of parameters,)
    has = (flat[-len(params):] > 0).tolist()  # one device sync, not one per parameter
    out, offset = [], 0
    for i, p in enumerate(params):
        n = p.numel()
        out.append(flat[offset:offset + n].view_as(p).to(p.dtype) if has[i] else None)
        offset += n
    return out


def _step(model, opt, params, summed, count: int, clip: float | None) -> None:
    if world_size() > 1:
        summed = _all_reduce_grads(params, summed)
    for p, s in zip(params, summed):
        p.grad = None if s is None else s.div_(count)  # the mean over the group's parts
    if clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    opt.zero_grad()


def train_epoch(model: torch.nn.Module, opt: torch.optim.Optimizer, parts: Iterable[tuple[int, object, Tensor]],
                part_loss: Callable[[object, Tensor], Tensor], accumulate: int, clip: float | None, seed: int,
                epoch: int) -> float:
    """One epoch of grouped steps: one optimizer step per ``world_size() * accumulate`` parts, gradients averaged.

    Args:
        model: The model (in train mode), a full replica on every rank.
        opt: Its optimizer.
        parts: ``(part id, subgraph, loss mask)`` of the epoch's parts that hold loss nodes, in the same order on
            every rank.
        part_loss: ``(subgraph, mask) -> loss`` (a scalar; mean over the part's loss nodes).
        accumulate: Parts per rank per optimizer step.
        clip: Gradient-norm clip applied to the averaged gradient (None: off).
        seed, epoch: Seed the dropout RNG per part (:func:`part_seed`).

    Returns:
        The mean loss over the epoch's parts (the same on every rank).
    """
    W, r = world_size(), rank()
    G = W * accumulate
    params = [p for p in model.parameters() if p.requires_grad]
    summed: list[Tensor | None] = [None] * len(params)
    losses: dict[int, float] = {}
    n = 0
    opt.zero_grad()
    for j, (k, batch, mask) in enumerate(parts):
        n = j + 1
        if (j % G) % W == r:
            torch.manual_seed(part_seed(seed, epoch, k))
            loss = part_loss(batch, mask)
            loss.backward()
            losses[j] = float(loss.detach())
            _stash(params, summed)
        if n % G == 0:
            _step(model, opt, params, summed, G, clip)
            summed = [None] * len(params)
    if n % G:
        _step(model, opt, params, summed, n % G, clip)
    vec = torch.zeros(n, dtype=torch.float64)   # (parts,) each slot filled by exactly one rank
    for j, v in losses.items():
        vec[j] = v
    return sum(all_sum(vec).tolist()) / max(n, 1)


class Share:
    """Deals the items of one or more iterables out round-robin over the ranks (evaluation parts and views).

    Args:
        enabled: False keeps every item on every rank (and :meth:`sum` is the identity).

    Example::

        share = Share()
        for batch in share(partition_subgraphs(data, 5, g)):   # this rank's parts only
            out[batch.n_id] += model(...)
        out = share.sum(out)                                   # every node's logits on every rank
    """

    def __init__(self, enabled: bool = True):
        self.enabled = enabled and world_size() > 1
        self.index = 0

    def __call__(self, items: Iterable) -> Iterator:
        W, r = world_size(), rank()
        for item in items:                       # every item is drawn (same random partitions on every rank)
            mine = not self.enabled or self.index % W == r
            self.index += 1
            if mine:
                yield item

    def sum(self, t: Tensor) -> Tensor:
        return all_sum(t) if self.enabled else t


def argv_from_namespace(parser: argparse.ArgumentParser, args: argparse.Namespace,
                        drop: tuple[str, ...] = ()) -> list[str]:
    """Command-line flags that parse back to ``args`` (flags left at their default are omitted)."""
    argv: list[str] = []
    for action in parser._actions:
        if not action.option_strings or action.dest in drop or action.dest == "help":
            continue
        value = getattr(args, action.dest, action.default)
        if value == action.default:
            continue
        flag = next((s for s in action.option_strings if s.startswith("--")), action.option_strings[0])
        if isinstance(action, argparse.BooleanOptionalAction):
            argv.append(flag if value else "--no-" + flag[2:])
        elif isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            argv.append(flag)
        else:
            argv += [flag, str(value)]
    return argv


# torchrun in a wrapper: its own logs and its ChildFailedError traceback are dropped when every failed rank exited 2
# (bad input, already reported by rank 0 in one line); any other failure is summarised in one line per rank.
_LAUNCHER = """
import logging, signal, sys
from torch.distributed.run import parse_args, run
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
try:
    run(parse_args(sys.argv[1:]))
except ChildFailedError as err:
    codes = {r: f.exitcode for r, f in sorted(err.failures.items())}
    stopped = (-signal.SIGTERM, 128 + signal.SIGTERM)  # the ranks torchrun stopped after another failed
    if 2 in codes.values() and all(c in (2, *stopped) for c in codes.values()):
        sys.exit(2)
    for r, c in codes.items():
        how = f"was killed by {signal.Signals(-c).name}" if c < 0 else f"exited with status {c}"
        sys.stderr.write(f"revgnn train: rank {r} {how}\\n")
    sys.exit(1)
"""


def launch_local(nproc: int, argv: list[str]) -> int:
    """Run ``torchrun --standalone --nproc-per-node nproc -m revgnn <argv>`` and return its exit status.

    Bad input found by the ranks (exit status 2 on every rank that failed) comes back as rank 0's one line and
    status 2, without torchrun's report; other failures name each failed rank and its exit status or signal.
    """
    cmd = [sys.executable, "-c", _LAUNCHER, "--standalone", "--nproc-per-node", str(nproc), "-m", "revgnn", *argv]
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")  # torchrun's own default for its ranks, without its banner about it
    log.info("launching: torchrun %s", " ".join(cmd[3:]))
    rc = subprocess.run(cmd, env=env).returncode
    if rc not in (0, 2):
        log.error("revgnn train: a rank failed (named above); the others were stopped. Restart the same command "
                  "with --resume to continue from the last checkpoint")
    return rc


def launch_from_args(args: argparse.Namespace, *validators: Callable) -> int:
    """``revgnn train --nproc K``: check the flags here (bad input exits 2 before anything starts), then launch K
    ranks with the same flags minus ``--nproc``."""
    if args.nproc < 1:
        raise ValueError(f"--nproc must be >= 1, got {args.nproc}")
    if launched():
        raise ValueError("--nproc starts torchrun itself; under torchrun leave --nproc out")
    if torch.device(args.device).type == "cuda":
        if args.nproc > torch.cuda.device_count():
            raise ValueError(f"--nproc {args.nproc} needs {args.nproc} GPUs, torch sees {torch.cuda.device_count()}")
    elif args.nproc > (os.cpu_count() or 1):
        raise ValueError(f"--nproc {args.nproc} exceeds the {os.cpu_count() or 1} CPU(s) of this machine; use at "
                         f"most that many ranks (or --accumulate {args.nproc} in one process: the same trajectory)")
    for check in validators:
        check(args)
    return launch_local(args.nproc, [args.command, *argv_from_namespace(args.parser, args, drop=("nproc",))])
