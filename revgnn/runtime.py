"""Run control for :func:`revgnn.train.fit`: CPU thread policy, Ctrl-C/SIGTERM handling, an output-folder lock and
removal of temporary files left by killed runs.

Thread policy. torch starts with one intra-op thread per physical core. On a shared or busy machine that collapses:
on the project's busy 2-core box (load ~20), one epoch of a 4 x 64 RevGNN on Cora took a median 175 s with torch's
default two threads against 9.8 s with one (``benchmarks/threads.py``, ``results/threads.json``); issue 10 saw
74 s against 1.9 s for 10 epochs. Small-graph training gains little from intra-op threads, so revgnn uses **one CPU
thread** unless the user chose otherwise, in this order: an explicit ``threads``
argument (``revgnn train --threads N``), the ``OMP_NUM_THREADS`` (or ``MKL_NUM_THREADS``) environment variable, a
call to ``torch.set_num_threads`` made after revgnn was imported. The count and its source go into every run record.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import threading
from pathlib import Path

import torch

log = logging.getLogger(__name__)

DEFAULT_CPU_THREADS = 1
_STARTUP_THREADS = torch.get_num_threads()  # torch's own choice, unless the user set it before importing revgnn
_set_by_policy: int | None = None
_last_choice: dict[str, int | str] = {}


def apply_thread_policy(threads: int | None = None) -> dict[str, int | str]:
    """Set torch's intra-op CPU threads by revgnn's policy (see the module docstring) and say what was chosen.

    Args:
        threads: An explicit count (>= 1); None applies the policy.

    Returns:
        ``{"torch_threads": n, "threads_source": why}``; ``why`` is ``"argument"``, ``"OMP_NUM_THREADS"``,
        ``"MKL_NUM_THREADS"``, ``"torch.set_num_threads"`` (set by the caller) or ``"revgnn default"``.
    """
    global _set_by_policy
    current = torch.get_num_threads()
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
        source = "argument"
    elif any(os.environ.get(v) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")):
        source = next(v for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if os.environ.get(v))
    elif current not in (_STARTUP_THREADS, _set_by_policy):
        source = "torch.set_num_threads"
    else:
        torch.set_num_threads(DEFAULT_CPU_THREADS)
        _set_by_policy = DEFAULT_CPU_THREADS
        source = "revgnn default"
    _last_choice.update(torch_threads=torch.get_num_threads(), threads_source=source)
    return dict(_last_choice)


def thread_info() -> dict[str, int | str]:
    """``{"torch_threads": n, "threads_source": why}`` for a run record (why: see :func:`apply_thread_policy`)."""
    n = torch.get_num_threads()
    source = _last_choice.get("threads_source", "torch default") if _last_choice.get("torch_threads") == n \
        else "torch.set_num_threads"
    return {"torch_threads": n, "threads_source": source}


class TrainingInterrupted(Exception):
    """Training stopped on SIGINT or SIGTERM after saving a checkpoint (when there is an output folder).

    Args:
        signum: The signal received.
        message: One line saying what was saved and how to continue.
    """

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """The shell convention: 128 + signal number (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + self.signum


class StopRequest:
    """Records SIGINT/SIGTERM so the training loop can stop at the end of the current epoch with consistent state.

    A second SIGINT raises :class:`KeyboardInterrupt` at once (the last periodic checkpoint remains). A signal that
    training did not act on (it came during a run's last epoch, which then finished and saved its record) is raised
    again when the handlers are removed, so it is never swallowed.
    """

    def __init__(self):
        self.signum: int | None = None
        self.handled = False  # set when training stopped on it (TrainingInterrupted)

    def reset(self) -> None:
        self.signum, self.handled = None, False

    def __bool__(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        log.warning("%s received: stopping after the current epoch with a checkpoint (Ctrl-C again stops now)",
                    signal.Signals(signum).name)

    @contextlib.contextmanager
    def installed(self):
        """Catch SIGINT and SIGTERM while the block runs (main thread only; elsewhere a no-op)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            if self.signum is not None and not self.handled:
                signal.raise_signal(self.signum)  # the caller's handler (or the default) acts on it now


STOP = StopRequest()  # the one installed by revgnn.train.fit


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


LOCK_NAME = ".revgnn.lock"


@contextlib.contextmanager
def output_lock(folder: Path):
    """Hold ``folder/.revgnn.lock`` (holding this process's PID) while the block runs.

    A lock whose PID is no longer alive (a killed run) is taken over; a live one raises ValueError.
    """
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK_NAME
    mine = str(os.getpid())
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                owner = int(lock.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                owner = None
            if owner is not None and owner != os.getpid() and _pid_alive(owner):
                raise ValueError(f"{folder} is in use by revgnn process {owner} ({lock}); wait for it to finish or "
                                 f"choose another --out") from None
            log.info("taking over the stale lock %s (process %s is gone)", lock, owner)
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(mine + "\n")
        break
    else:
        raise ValueError(f"cannot take the lock {lock}; another run is starting in {folder}; choose another --out")
    try:
        yield lock
    finally:
        with contextlib.suppress(OSError):
            if lock.read_text().split()[0] == mine:
                lock.unlink()


_TEMP = re.compile(r"^\.(checkpoint\.pt|record\.json|summary\.json|config\.json)\.tmp(\d+)$")


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete the temporary files of :mod:`revgnn.records` (``.NAME.tmpPID``) under ``folder`` whose PID is dead.

    Only revgnn's own names (checkpoint, record, summary, config) in ``folder`` and its ``run-seed*`` folders are
    touched. Returns the removed paths.
    """
    removed = []
    for d in [folder, *sorted(folder.glob("run-seed*"))]:
        if not d.is_dir():
            continue
        for p in d.iterdir():
            m = _TEMP.match(p.name)
            if m and p.is_file() and int(m.group(2)) != os.getpid() and not _pid_alive(int(m.group(2))):
                p.unlink(missing_ok=True)
                removed.append(p)
    if removed:
        log.info("removed %d temporary file(s) left by killed runs in %s", len(removed), folder)
    return removed
