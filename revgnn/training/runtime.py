"""Run control for :func:`revgnn.training.loop.fit`: CPU thread policy, Ctrl-C/SIGTERM handling, an output-folder lock
and removal of temporary files left by killed runs.

Thread policy. torch starts with one intra-op thread per physical core. On a shared or busy machine that collapses:
on the project's busy 2-core box (load ~20), one epoch of a 4 x 64 RevGNN on Cora once took a median 175 s with
torch's default two threads against 9.8 s with one; ``results/threads.json`` (``benchmarks/threads.py``) has today's
ratio and the load it was measured under; issue 10 saw
74 s against 1.9 s for 10 epochs. Small-graph training gains little from intra-op threads, so revgnn uses **one CPU
thread** unless the user chose otherwise, in this order: an explicit ``threads``
argument (``revgnn train --threads N``), the ``OMP_NUM_THREADS`` (or ``MKL_NUM_THREADS``) environment variable, a
call to ``torch.set_num_threads`` made after revgnn was imported. The count and its source go into every run record.

Output-folder lock. ``.revgnn.lock`` holds the PID of the run using the folder and an :func:`fcntl.flock` on it; the
kernel drops the flock when the process dies, so a lock left by ``kill -9`` (or naming a PID since reused by an
unrelated process) is taken over, atomically, and a live one names its process. Temporary files carry revgnn's run
token (``.NAME.revgnn-PID.tmp``); only such files of dead processes are ever removed.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import signal
import threading
import time
from pathlib import Path

import torch

log = logging.getLogger(__name__)

DEFAULT_CPU_THREADS = 1
_STARTUP_THREADS = torch.get_num_threads()  # torch's own choice, unless the user set it before importing revgnn
_set_by_policy: int | None = None
_last_choice: dict[str, int | str] = {}


MAX_THREADS = 1024    # more than any CPU here has; torch.set_num_threads overflows far beyond it


def check_threads(threads, name: str = "threads") -> None:
    """Raise a ValueError naming ``name`` unless ``threads`` is None or an integer from 1 to MAX_THREADS."""
    if threads is not None and not (isinstance(threads, int) and 1 <= threads <= MAX_THREADS):
        raise ValueError(f"{name} must be an integer from 1 to {MAX_THREADS}, got {threads}")


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
        check_threads(threads)
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


MMAP_THRESHOLD_BYTES = 1 << 20


def fix_mmap_threshold(nbytes: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Fix glibc malloc's mmap threshold at ``nbytes`` for this process (``mallopt(M_MMAP_THRESHOLD)``), so that
    every allocation of at least ``nbytes`` is its own mapping, returned to the system when freed.

    By default glibc raises the threshold to the size of the largest mapping freed so far (up to 32 MiB), after which
    a whole-graph layer's (N, D) temporaries (21-42 MB on ogbn-proteins) come from the heap and fragment it: measured
    on the full-shape graph with D = 80 (``benchmarks/official_inference.py one --layers 80``, 8M edges), the peak
    resident set crept up by 128 MB over 80 no-grad layers in steps, and stayed flat (+1 MB) with the threshold fixed.
    ``revgnn evaluate`` calls this. Returns whether it took effect (False where the C library is not glibc).
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(-3, int(nbytes)))  # M_MMAP_THRESHOLD


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


STOP = StopRequest()  # the one installed by revgnn.training.loop.fit


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except (OverflowError, ValueError):  # not a PID at all
        return False
    return True


def describe_process(pid: int) -> str:
    """``process N (its command line)`` from ``/proc`` where readable, else ``process N``."""
    try:
        cmd = " ".join(Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").replace("\0", " ").split())
    except OSError:
        cmd = ""
    return f"process {pid} ({cmd[:120]})" if cmd else f"process {pid}"


LOCK_NAME = ".revgnn.lock"
TEMP_TAG = "revgnn"  # the run token in the names of revgnn's temporary files: .NAME.revgnn-PID.tmp


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        return None


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    me = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (me.st_dev, me.st_ino)


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as err:  # ENOLCK, EOPNOTSUPP: a file system without locks
        raise ValueError(f"cannot lock a file in this folder ({err.strerror}); choose an --out on a local disk") \
            from None
    return True


def lock_holder(folder: Path) -> str | None:
    """Who holds ``folder/.revgnn.lock`` now (``process N (command)``), or None when nobody does. Reads only.

    A lock file left by a killed run, or holding the PID of an unrelated process, is held by nobody: the kernel
    drops a :func:`fcntl.flock` lock when its process dies.
    """
    lock = Path(folder) / LOCK_NAME
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return None
    try:
        if _try_flock(fd):
            return None
        pid = _read_pid(lock)
        return describe_process(pid) if pid is not None else "another process"
    finally:
        os.close(fd)  # closing drops a lock this probe took


def _in_use(folder: Path, lock: Path, who: str) -> ValueError:
    return ValueError(f"{folder} is in use by {who}, which holds {lock}; wait for it to finish or choose another "
                      f"--out")


def _acquire(folder: Path) -> int:
    """Take ``folder/.revgnn.lock``; returns the descriptor holding its :func:`fcntl.flock`.

    The lock file is born holding this PID and already flocked (a temporary file linked into place, which fails
    atomically when a lock file exists). An existing lock file is taken over only when its flock is free (its
    process died) and it is still the file at that name; it is then replaced atomically by this process's file.
    Only the holder of the flock of the file at ``LOCK_NAME`` ever replaces or removes that name.
    """
    lock = folder / LOCK_NAME
    tmp = folder / f"{LOCK_NAME}.{TEMP_TAG}-{os.getpid()}.tmp"
    for attempt in range(50):
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
        try:
            os.write(fd, f"{os.getpid()}\n".encode())
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: nobody else can hold it
            try:
                os.link(tmp, lock)  # atomic: fails when a lock file exists
                tmp.unlink()
                return fd
            except FileExistsError:
                pass
            try:
                old = os.open(lock, os.O_RDWR)
            except FileNotFoundError:  # released meanwhile: try again
                tmp.unlink(missing_ok=True)
                os.close(fd)
                continue
            try:
                if _try_flock(old) and _same_file(old, lock):  # its holder is gone: take it over
                    log.info("taking over the stale lock %s (written by process %s, which holds it no longer)",
                             lock, _read_pid(lock))
                    os.replace(tmp, lock)
                    return fd
            finally:
                os.close(old)
            pid = _read_pid(lock)
            if pid is None or not _pid_alive(pid):  # a holder between taking over and writing: look again
                tmp.unlink(missing_ok=True)
                os.close(fd)
                time.sleep(0.001 * (attempt + 1))
                continue
            tmp.unlink(missing_ok=True)
            os.close(fd)
            raise _in_use(folder, lock, describe_process(pid))
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
    raise ValueError(f"cannot take the lock {lock}; other runs keep starting in {folder}; choose another --out")


@contextlib.contextmanager
def output_lock(folder: Path):
    """Hold ``folder/.revgnn.lock`` while the block runs (the file holds this process's PID).

    The lock is an :func:`fcntl.flock` on that file, so the kernel releases it when the process dies (``kill -9``);
    a lock file nobody holds (a killed run, or a PID since reused by an unrelated process) is taken over, one held
    by a live process raises ValueError naming that process.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK_NAME
    fd = _acquire(folder)
    try:
        yield lock
    finally:
        with contextlib.suppress(OSError):
            if _same_file(fd, lock):
                lock.unlink()  # while holding the flock: nobody else can have replaced it
        os.close(fd)


_TEMP = re.compile(rf"^\.(checkpoint\.pt|record\.json|summary\.json|config\.json|revgnn\.lock)\.{TEMP_TAG}-(\d+)\.tmp$")


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete the temporary files of :mod:`revgnn.training.records` under ``folder`` whose process is dead.

    Only names carrying revgnn's run token (``.NAME.revgnn-PID.tmp``, NAME one of checkpoint.pt, record.json,
    summary.json, config.json, revgnn.lock) in ``folder`` and its ``run-seed*`` folders are touched: a file of
    another program, even one named like a temporary file, is left alone. Returns the removed paths.
    """
    removed = []
    for d in [folder, *sorted(folder.glob("run-seed*"))]:
        if not d.is_dir():
            continue
        for p in d.iterdir():
            m = _TEMP.match(p.name)
            if m and p.is_file() and not p.is_symlink() and int(m.group(2)) != os.getpid() \
                    and not _pid_alive(int(m.group(2))):
                p.unlink(missing_ok=True)
                removed.append(p)
    if removed:
        log.info("removed %d temporary file(s) left by killed runs in %s", len(removed), folder)
    return removed
