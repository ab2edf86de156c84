"""The allocator's event trace of one step (Li et al., 2021, Fig. 2-4), as :mod:`revgnn.measure.memory` reads it on CPU.

``torch.profiler`` with ``profile_memory=True`` records every allocation and free of the CPU allocator with its
address and size. :func:`cpu_peak_increment` sums them in time order (the step's peak above what lived before it);
:func:`cpu_split` cuts the same trace at the optimizer step's mark and sets apart the storages of parameter
gradients in flight, which :func:`mark_gradient` (a hook on each parameter) names by address. :class:`QuietProfile`
keeps libkineto's log lines off stderr, so notebooks that measure stay quiet.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager

import torch
from torch import Tensor

__all__ = ["OPT_STEP_MARK", "GRAD_MARK", "cpu_peak_increment", "cpu_split", "mark_gradient", "quiet_profiler",
           "QuietProfile"]

OPT_STEP_MARK = "revgnn::optimizer_step"   # record_function name around optimizer.step()
GRAD_MARK = "revgnn::grad@"                # + the data_ptr of a gradient's storage, as autograd hands it over


def cpu_peak_increment(prof) -> int:
    """Running maximum of the allocator's allocation (+) and free (-) events, in time order."""
    events = [e for e in prof.profiler.kineto_results.events()
              if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU]
    events.sort(key=lambda e: e.start_ns())
    run = peak = 0
    for e in events:
        run += e.nbytes()
        peak = max(peak, run)
    return peak


def mark_gradient(grad: Tensor) -> None:
    """Parameter hook (``p.register_hook``): a profiler mark naming the storage of the gradient handed over."""
    with torch.profiler.record_function(f"{GRAD_MARK}{grad.untyped_storage().data_ptr()}"):
        pass


def _event_tree(prof):
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        ev = stack.pop()
        yield ev
        stack.extend(ev.children)


def cpu_split(prof) -> dict[str, int]:
    """The step's allocator events split at the ``optimizer.step()`` mark, gradients in flight set apart.

    Returns ``increment`` (the running maximum of all events, as :func:`cpu_peak_increment`), ``activation``
    (that of forward + backward without the gradient storages marked by :func:`mark_gradient`), ``gradient``
    (the most gradient bytes alive at once before the step) and ``optimizer`` (the running maximum during the
    step above the level at its start).
    """
    from torch._C._profiler import _EventType

    allocs, marks, step_start = [], [], None
    for ev in _event_tree(prof):
        kind, fields = ev.typed
        if kind == _EventType.Allocation:
            if fields.device.type == "cpu":
                allocs.append((ev.start_time_ns, fields.ptr, fields.alloc_size))
        elif ev.name == OPT_STEP_MARK:
            step_start = ev.start_time_ns if step_start is None else min(step_start, ev.start_time_ns)
        elif ev.name.startswith(GRAD_MARK):
            marks.append((ev.start_time_ns, int(ev.name[len(GRAD_MARK):])))
    allocs.sort(key=lambda a: a[0])
    marks.sort()
    # pass 1: which allocation (and its free) holds a gradient handed to a parameter
    grad_events, open_at, pending, m = set(), {}, set(), 0
    for i, (t, ptr, size) in enumerate(allocs):
        while m < len(marks) and marks[m][0] <= t:
            if marks[m][1] in open_at:
                grad_events.add(open_at[marks[m][1]])
                pending.add(marks[m][1])
            m += 1
        if size > 0:
            open_at[ptr] = i
        else:
            open_at.pop(ptr, None)
            if ptr in pending:
                pending.discard(ptr)
                grad_events.add(i)
    # pass 2: the running sums
    run = act = grad = 0
    out = dict(increment=0, activation=0, gradient=0, optimizer=0)
    level = None
    for i, (t, _, size) in enumerate(allocs):
        run += size
        out["increment"] = max(out["increment"], run)
        if step_start is not None and t >= step_start:
            level = run - size if level is None else level
            out["optimizer"] = max(out["optimizer"], run - level)
            continue
        if i in grad_events:
            grad += size
            out["gradient"] = max(out["gradient"], grad)
        else:
            act += size
            out["activation"] = max(out["activation"], act)
    return out


@contextmanager
def quiet_profiler():
    """Keep libkineto's log lines (``USDT: ... profiler_start``, ``STAGE: ...``) off the process's stderr.

    ``KINETO_LOG_LEVEL=6`` (above its highest level) silences them when set before the first profile in a
    process; a profile started earlier has read the level already, so stderr's file descriptor is also pointed
    at ``/dev/null`` while the profiler starts and stops (where libkineto logs).
    """
    os.environ.setdefault("KINETO_LOG_LEVEL", "6")
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        sys.stderr.flush()
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class QuietProfile:
    """``torch.profiler.profile`` whose start and stop write nothing to stderr."""

    def __init__(self, **kwargs):
        from torch.profiler import profile

        self.prof = profile(**kwargs)

    def __enter__(self):
        with quiet_profiler():
            self.prof.__enter__()
        return self.prof

    def __exit__(self, *exc):
        with quiet_profiler():
            return self.prof.__exit__(*exc)
