"""The settings of a deep equilibrium solve (:mod:`revgnn.nn.solvers`, :class:`revgnn.nn.deq.DEQLayer`) and their
check, free of torch: ``ModelConfig`` (and so the command line) refuses a bad value before anything is built.
"""
from __future__ import annotations

__all__ = ["SOLVERS", "SOLVER_OPTIONS", "STOP_MODES", "BACKWARDS", "check_solver_options"]

SOLVERS = ("anderson", "broyden", "picard")
SOLVER_OPTIONS = {"anderson": ("m", "lam", "damping"), "broyden": ("memory",), "picard": ("damping",)}
STOP_MODES = ("rel", "abs")
BACKWARDS = ("implicit", "phantom")


def check_solver_options(**opts) -> None:
    """ValueError naming a setting no :class:`~revgnn.nn.deq.DEQLayer` can use, and its fix (``ModelConfig`` checks the
    same, without importing torch)."""
    if opts["solver"] not in SOLVERS:
        raise ValueError(f"unknown solver {opts['solver']!r}; choose one of {SOLVERS}")
    if opts["stop_mode"] not in STOP_MODES:
        raise ValueError(f"stop_mode must be one of {STOP_MODES} (got {opts['stop_mode']!r})")
    if opts["backward"] not in BACKWARDS:
        raise ValueError(f"backward must be one of {BACKWARDS} (got {opts['backward']!r})")
    for name in ("max_iter", "m", "memory", "phantom_steps"):
        if not isinstance(opts[name], int) or isinstance(opts[name], bool) or opts[name] < 1:
            raise ValueError(f"{name} must be an integer >= 1 (got {opts[name]!r})")
    if opts["backward_max_iter"] is not None and opts["backward_max_iter"] < 1:
        raise ValueError(f"backward_max_iter must be >= 1, or None for max_iter (got {opts['backward_max_iter']})")
    if not 0.0 < opts["damping"] <= 1.0:
        raise ValueError(f"damping must be in (0, 1], 1 undamped (got {opts['damping']})")
    if not opts["tol"] >= 0.0:
        raise ValueError(f"tol must be >= 0 (got {opts['tol']})")
    if opts["node_factor"] is not None and not opts["node_factor"] >= 1.0:
        raise ValueError(f"node_factor must be >= 1 (the worst node is never below the whole graph), or None "
                         f"(got {opts['node_factor']})")
    if not opts["jac_reg"] >= 0.0:
        raise ValueError(f"jac_reg must be >= 0, 0 disables it (got {opts['jac_reg']})")
    if opts["jac_reg"] and opts["backward"] != "implicit":
        raise ValueError("jac_reg adds its gradient in the implicit backward: use backward='implicit' with it")
    if not isinstance(opts["spectral_iters"], int) or opts["spectral_iters"] < 0:
        raise ValueError(f"spectral_iters must be an integer >= 0, 0 disables it (got {opts['spectral_iters']!r})")
