r"""Fixed-point solvers for deep equilibrium layers (Bai et al., 2019), each returning the point and a stats record.

Every solver finds z with z = f(z), starting from z0, and returns ``(z*, SolverStats)``, as TorchDEQ's solvers do
(Geng & Kolter, 2023). The state is read as rows, one per node: z has shape (N, ...) and the residual
r = f(z) - z is measured for the whole graph and for its worst node,

.. math::
    \text{rel} = \frac{\lVert r \rVert}{\lVert f(z) \rVert}, \qquad
    \text{node} = \max_i \frac{\lVert r_i \rVert}{\lVert f(z) \rVert / \sqrt{N}}, \qquad (\text{rel} \le \text{node})

so that a region far from equilibrium cannot hide inside a small whole-graph number: the whole-graph residual is the
root mean square of the node residuals, the worst node their maximum, both in units of the mean node norm. (A ratio
per node, ||r_i|| / ||f(z)_i||, would explode on the adjoint's rows near zero, nodes far from any labelled one.) With
``stop_mode="abs"`` both are absolute: ||r|| and max_i ||r_i||. A solve has converged when the returned point's
whole-graph residual is at most ``tol`` and its worst node at most ``node_tol`` (when given). A non-finite value in
z, f(z) or their norms stops the solve at once and fails it (``nonfinite``): it is never "converged".

Solvers: ``"anderson"`` (Anderson acceleration, window m, Tikhonov-regularised least squares, damping beta),
``"broyden"`` (limited-memory good Broyden) and ``"picard"`` (z <- (1 - beta) z + beta f(z)). Each returns the
iterate it saw closest to convergence (an f(z) it evaluated).

:func:`spectral_radius` estimates the spectral radius of df/dz at a point by power iteration on vector-Jacobian
products: below 1 the cell is a contraction there, and the forward and adjoint iterations converge linearly at about
that rate.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .solver_options import SOLVER_OPTIONS, SOLVERS, STOP_MODES

__all__ = ["SolverStats", "ConvergenceWarning", "fixed_point", "anderson", "broyden", "picard", "spectral_radius",
           "SOLVERS", "SOLVER_OPTIONS", "STOP_MODES"]


class ConvergenceWarning(UserWarning):
    """A fixed-point solve stopped at its iteration cap above tolerance, or met a non-finite value."""


@dataclass
class SolverStats:
    """What a fixed-point solve did.

    Attributes:
        solver: solver name.
        iterations: calls of f made.
        residuals: whole-graph residual after each call (the trace), relative or absolute as ``stop_mode`` says.
        node_residuals: the worst node's residual after each call, in the same units.
        converged: the returned point's residual is within ``tol`` and its worst node within ``node_tol``, and no
            value was non-finite.
        tol: the whole-graph tolerance asked for.
        node_tol: the worst node's tolerance (None: not asked).
        stop_mode: ``"rel"`` or ``"abs"``.
        nonfinite: a NaN or inf appeared (the solve stopped there and failed).
        best: index in the traces of the returned point.
        spectral_radius: estimate of the spectral radius of df/dz at the returned point, when one was asked for.
    """

    solver: str
    iterations: int = 0
    residuals: list[float] = field(default_factory=list)
    node_residuals: list[float] = field(default_factory=list)
    converged: bool = False
    tol: float = 0.0
    node_tol: float | None = None
    stop_mode: str = "rel"
    nonfinite: bool = False
    best: int = 0
    spectral_radius: float | None = None

    @property
    def residual(self) -> float:
        """The whole-graph residual of the returned point."""
        return self.residuals[self.best] if self.residuals else float("nan")

    @property
    def node_residual(self) -> float:
        """The worst node's residual of the returned point."""
        return self.node_residuals[self.best] if self.node_residuals else float("nan")

    def to_dict(self) -> dict:
        """Every attribute, the traces as lists, and ``residual`` and ``node_residual`` of the returned point."""
        return {"solver": self.solver, "iterations": self.iterations, "residual": self.residual,
                "node_residual": self.node_residual, "converged": self.converged, "tol": self.tol,
                "node_tol": self.node_tol, "stop_mode": self.stop_mode, "nonfinite": self.nonfinite,
                "spectral_radius": self.spectral_radius, "residuals": list(self.residuals),
                "node_residuals": list(self.node_residuals)}


class _Tracker:
    """Measures each iterate, keeps the best one and decides when to stop (shared by the three solvers)."""

    def __init__(self, stats: SolverStats, rows: int):
        self.stats, self.rows = stats, max(rows, 1)
        self.point: Tensor | None = None
        self.last: Tensor | None = None
        self.key = (True, math.inf)                                     # (misses tolerance, residual): lower wins

    def meets(self, res: float, node: float) -> bool:
        s = self.stats
        return res <= s.tol and (s.node_tol is None or node <= s.node_tol)

    def add(self, fz: Tensor, z: Tensor) -> bool:
        """Record f(z) for z; True when the solve must stop (converged or non-finite)."""
        s = self.stats
        diff = (fz - z).reshape(self.rows, -1)
        node = diff.norm(dim=1)                                         # (N,) per-node residual norms
        res, worst, scale = torch.stack([node.norm(), node.max(), fz.norm()]).tolist()
        if s.stop_mode == "rel":
            res, worst = res / (scale + 1e-12), worst / (scale / math.sqrt(self.rows) + 1e-12)
        s.iterations += 1
        s.residuals.append(res)
        s.node_residuals.append(worst)
        if not all(map(math.isfinite, (res, worst, scale))):
            s.nonfinite, self.last = True, fz
            return True
        key = (not self.meets(res, worst), res)
        if key < self.key:
            self.key, self.point, s.best = key, fz.clone(), s.iterations - 1
        return not key[0]

    def result(self, shape) -> tuple[Tensor, SolverStats]:
        s = self.stats
        s.converged = not s.nonfinite and self.point is not None and not self.key[0]
        point = self.point if self.point is not None else self.last     # non-finite from the first call on
        return point.view(shape), s


def _stats(name: str, tol: float, node_tol: float | None, stop_mode: str) -> SolverStats:
    if stop_mode not in STOP_MODES:
        raise ValueError(f"stop_mode must be one of {STOP_MODES} (got {stop_mode!r})")
    return SolverStats(name, tol=tol, node_tol=node_tol, stop_mode=stop_mode)


def picard(f: Callable[[Tensor], Tensor], z0: Tensor, max_iter: int = 50, tol: float = 1e-4,
           node_tol: float | None = None, stop_mode: str = "rel", damping: float = 1.0) -> tuple[Tensor, SolverStats]:
    """Fixed-point iteration z_{k+1} = (1 - damping) z_k + damping f(z_k)."""
    track = _Tracker(_stats("picard", tol, node_tol, stop_mode), z0.shape[0] if z0.dim() else 1)
    z = z0
    for _ in range(max_iter):
        fz = f(z)
        if track.add(fz, z):
            break
        z = fz if damping == 1.0 else (1 - damping) * z + damping * fz
    return track.result(z0.shape)


def anderson(f: Callable[[Tensor], Tensor], z0: Tensor, max_iter: int = 50, tol: float = 1e-4,
             node_tol: float | None = None, stop_mode: str = "rel", m: int = 5, lam: float = 1e-4,
             damping: float = 1.0) -> tuple[Tensor, SolverStats]:
    """Anderson acceleration (Walker & Ni, 2011) over the flattened state; memory 2 m |z| whatever max_iter is.

    ``lam`` is a Tikhonov weight relative to the largest squared residual norm in the window; ``damping`` (beta)
    mixes the extrapolated f-values with the extrapolated iterates.
    """
    track = _Tracker(_stats("anderson", tol, node_tol, stop_mode), z0.shape[0] if z0.dim() else 1)
    shape, n = z0.shape, z0.numel()
    m = max(1, min(m, max_iter))
    X = z0.new_zeros(m, n)                      # past iterates
    Fx = z0.new_zeros(m, n)                     # f of past iterates
    X[0] = z0.reshape(-1)
    Fx[0] = f(z0).reshape(-1)
    if track.add(Fx[0], X[0]) or max_iter == 1:
        return track.result(shape)
    H = z0.new_zeros(m + 1, m + 1)
    H[0, 1:] = H[1:, 0] = 1
    rhs = z0.new_zeros(m + 1)
    rhs[0] = 1
    for k in range(1, max_iter):
        n_ = min(k, m)
        G = Fx[:n_] - X[:n_]                                            # residuals (n_, |z|)
        GG = G @ G.T
        scale = GG.diagonal().max().clamp_min(torch.finfo(z0.dtype).tiny)  # regularise relative to |G|^2
        H[1:n_ + 1, 1:n_ + 1] = GG + lam * scale * torch.eye(n_, dtype=z0.dtype, device=z0.device)
        alpha = torch.linalg.solve(H[:n_ + 1, :n_ + 1], rhs[:n_ + 1])[1:n_ + 1]  # (n_,), sums to 1
        slot = k % m
        X[slot] = damping * (alpha @ Fx[:n_]) + (1 - damping) * (alpha @ X[:n_])
        Fx[slot] = f(X[slot].view(shape)).reshape(-1)
        if track.add(Fx[slot], X[slot]):
            break
    return track.result(shape)


def broyden(f: Callable[[Tensor], Tensor], z0: Tensor, max_iter: int = 50, tol: float = 1e-4,
            node_tol: float | None = None, stop_mode: str = "rel", memory: int = 20) -> tuple[Tensor, SolverStats]:
    """Limited-memory "good" Broyden root finding on g(z) = f(z) - z (Broyden, 1965; as in Bai et al., 2019).

    The inverse Jacobian of g is kept as -I + U V^T with at most ``memory`` rank-one terms (oldest dropped), so memory
    is 2 * memory * |z| whatever max_iter is.
    """
    track = _Tracker(_stats("broyden", tol, node_tol, stop_mode), z0.shape[0] if z0.dim() else 1)
    shape = z0.shape
    z = z0.reshape(-1)
    fz = f(z0).reshape(-1)
    g = fz - z
    U, V = [], []                                                      # columns of the low-rank correction

    def binv(v: Tensor) -> Tensor:                                     # (-I + U V^T) v
        out = -v
        for u_k, v_k in zip(U, V):
            out = out + u_k * (v_k @ v)
        return out

    def binv_t(v: Tensor) -> Tensor:                                   # v^T (-I + U V^T)
        out = -v
        for u_k, v_k in zip(U, V):
            out = out + v_k * (v @ u_k)
        return out

    stop = track.add(fz, z)
    while not stop and track.stats.iterations < max_iter:
        dz = -binv(g)
        z_new = z + dz
        fz = f(z_new.view(shape)).reshape(-1)
        g_new = fz - z_new
        stop = track.add(fz, z_new)
        dg = g_new - g
        vT = binv_t(dz)
        denom = vT @ dg
        if torch.isfinite(denom) and denom.abs() > 1e-30:
            U.append((dz - binv(dg)) / denom)
            V.append(vT)
            if len(U) > memory:
                U.pop(0)
                V.pop(0)
        else:                                                          # degenerate step: restart from -I
            U.clear()
            V.clear()
        z, g = z_new, g_new
    return track.result(shape)


def fixed_point(f: Callable[[Tensor], Tensor], z0: Tensor, solver: str = "anderson", max_iter: int = 50,
                tol: float = 1e-4, node_tol: float | None = None, stop_mode: str = "rel",
                **options) -> tuple[Tensor, SolverStats]:
    """Solve z = f(z) from z0 with the named solver; returns (z*, stats).

    ``options`` are the solver's own: Anderson ``m``, ``lam``, ``damping``; Broyden ``memory``; Picard ``damping``
    (:data:`SOLVER_OPTIONS`). An option the solver does not take raises a ValueError.
    """
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; choose one of {SOLVERS}")
    unknown = set(options) - set(SOLVER_OPTIONS[solver])
    if unknown:
        raise ValueError(f"solver {solver!r} takes no option {', '.join(sorted(unknown))}; its options are "
                         f"{', '.join(SOLVER_OPTIONS[solver])}")
    fn = {"anderson": anderson, "broyden": broyden, "picard": picard}[solver]
    return fn(f, z0, max_iter=max_iter, tol=tol, node_tol=node_tol, stop_mode=stop_mode, **options)


def spectral_radius(vjp: Callable[[Tensor], Tensor], like: Tensor, iters: int = 10, seed: int = 0) -> float:
    """Estimate the spectral radius of a Jacobian J from ``vjp(v) = v^T J`` by power iteration.

    v_{k+1} = J^T v_k / ||J^T v_k|| from a seeded Gaussian v_0 (its own generator: the global RNG is untouched); the
    estimate is the geometric mean of the growth ratios ||J^T v_k|| over the second half of the iterations, which also
    settles when the dominant eigenvalues are a complex pair. J^T has the spectrum of J.
    """
    if iters < 1:
        raise ValueError(f"iters must be >= 1 (got {iters})")
    gen = torch.Generator(device=like.device).manual_seed(seed)
    v = torch.randn(like.shape, generator=gen, device=like.device, dtype=like.dtype)
    v = v / v.norm()
    logs = []
    for _ in range(iters):
        w = vjp(v)
        norm = float(w.norm())
        if not math.isfinite(norm) or norm == 0.0:
            return norm
        logs.append(math.log(norm))
        v = w / norm
    tail = logs[len(logs) // 2:]
    return math.exp(sum(tail) / len(tail))
