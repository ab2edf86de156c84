r"""Deep equilibrium layers: fixed-point solvers and implicit differentiation (Bai et al., 2019; Li et al., 2021).

A DEQ layer returns the equilibrium z* = f(z*, x) of a weight-tied cell f. The forward pass finds z* with a
root finder under ``no_grad``; the backward pass uses the implicit function theorem,

.. math::
    \frac{\partial \ell}{\partial (x, \theta)} = u^\top \frac{\partial f(z^*, x)}{\partial (x, \theta)}, \qquad
    u = \Big(\frac{\partial f}{\partial z}\Big|_{z^*}\Big)^{\!\top} u + \frac{\partial \ell}{\partial z^*},

solving the adjoint fixed point u with the same solver. Only z* (and the inputs) are stored, so memory does not grow
with the number of iterations (the layer is O(ND), like RevGNN).

Solvers: ``"anderson"`` (Anderson acceleration, window m, Tikhonov-regularised least squares; the default),
``"broyden"`` (limited-memory good Broyden) and ``"picard"`` (plain iteration z <- f(z)). Every solve returns a
:class:`SolverStats` record; a solve that stops at ``max_iter`` above tolerance emits a
:class:`ConvergenceWarning` and says so in its stats. :func:`solver_fields` flattens the last forward and adjoint
solves (and counts of the training solves that missed) into record fields; ``revgnn.measure.memory`` and
``revgnn.training.loop`` put them in every step record and training-history entry of a DEQ-GNN.

The defaults (Anderson, m = 5, tol 1e-4, cap 30) do not always converge, and the records say when they do not
(``results/deq_convergence.json``, ``benchmarks/deq_convergence.py``). At the initial weights the cell need not be a
contraction: on the Fig. 1 live graph (N = 2,000, D = 32) the first training step's solves need 33 and 31
iterations for seed 0, 23 and 18 for seed 1, and for seed 2 stay near 4e-3 after 100. From the second step on,
every solve of the three seeds converged within 13 iterations. Fig. 4's points run with tol = 0 (every cap in full),
so they never count as converged; the record gives the residual each cap reaches.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .reversible import check_versions, record_versions, refuse_double_backward

__all__ = ["SolverStats", "ConvergenceWarning", "fixed_point", "anderson", "broyden", "picard", "DEQLayer",
           "solver_fields", "SOLVER_FIELDS"]

SOLVERS = ("anderson", "broyden", "picard")


class ConvergenceWarning(UserWarning):
    """A fixed-point solve stopped at its iteration cap with the residual above tolerance."""


@dataclass
class SolverStats:
    """What a fixed-point solve did.

    Attributes:
        solver: solver name.
        iterations: calls of f made.
        residuals: relative residual ||f(z) - z|| / ||f(z)|| after each call (the trace).
        converged: the returned point's residual (:attr:`residual`) <= tol.
        tol: the tolerance asked for.
    """

    solver: str
    iterations: int = 0
    residuals: list[float] = field(default_factory=list)
    converged: bool = False
    tol: float = 0.0

    @property
    def residual(self) -> float:
        """The relative residual of the returned point (the solvers return the best iterate seen)."""
        return min(self.residuals) if self.residuals else float("nan")

    def to_dict(self) -> dict:
        """``solver``, ``iterations``, ``residual``, ``converged``, ``tol`` and the ``residuals`` trace."""
        return {"solver": self.solver, "iterations": self.iterations, "residual": self.residual,
                "converged": self.converged, "tol": self.tol, "residuals": list(self.residuals)}


SOLVER_FIELDS = ("deq_solver", "deq_tol", "deq_forward_iters", "deq_forward_residual", "deq_forward_converged",
                 "deq_backward_iters", "deq_backward_residual", "deq_backward_converged", "deq_forward_solves",
                 "deq_forward_unconverged", "deq_backward_solves", "deq_backward_unconverged")


def solver_fields(module: nn.Module, reset: bool = False) -> dict:
    """Flat record fields of the first :class:`DEQLayer` in ``module`` ({} when it has none).

    ``deq_forward_iters``, ``deq_forward_residual``, ``deq_forward_converged`` and the same for ``backward`` (the
    adjoint solve) describe the last solve of each kind (None before the first); ``deq_forward_solves`` /
    ``deq_forward_unconverged`` (and backward) count the training solves since the layer was built or last read
    with ``reset=True``, and how many of them stopped at the cap above ``deq_tol``.
    """
    layer = next((m for m in module.modules() if isinstance(m, DEQLayer)), None)
    if layer is None:
        return {}
    out: dict = {"deq_solver": layer.solver, "deq_tol": layer.tol}
    for kind, stats in (("forward", layer.last_stats), ("backward", layer.last_backward_stats)):
        out[f"deq_{kind}_iters"] = stats.iterations if stats else None
        out[f"deq_{kind}_residual"] = stats.residual if stats else None
        out[f"deq_{kind}_converged"] = stats.converged if stats else None
    for kind in ("forward", "backward"):
        out[f"deq_{kind}_solves"] = layer.solve_counts[kind]
        out[f"deq_{kind}_unconverged"] = layer.solve_counts[f"{kind}_unconverged"]
    if reset:
        layer.solve_counts = dict.fromkeys(layer.solve_counts, 0)
    return out


def _rel(fz: Tensor, z: Tensor) -> float:
    return float((fz - z).norm() / (fz.norm() + 1e-12))


def picard(f: Callable[[Tensor], Tensor], z0: Tensor, max_iter: int = 50,
           tol: float = 1e-4) -> tuple[Tensor, SolverStats]:
    """Plain fixed-point iteration z_{k+1} = f(z_k); returns the iterate with the lowest residual seen."""
    stats = SolverStats("picard", tol=tol)
    z, best = z0, (float("inf"), z0)
    for _ in range(max_iter):
        fz = f(z)
        stats.iterations += 1
        stats.residuals.append(_rel(fz, z))
        if stats.residuals[-1] < best[0]:
            best = (stats.residuals[-1], fz)
        z = fz
        if stats.residuals[-1] <= tol:
            break
    stats.converged = best[0] <= tol
    return best[1], stats


def anderson(f: Callable[[Tensor], Tensor], z0: Tensor, max_iter: int = 50, tol: float = 1e-4, m: int = 5,
             lam: float = 1e-4, beta: float = 1.0) -> tuple[Tensor, SolverStats]:
    """Anderson acceleration (Walker & Ni, 2011) over the flattened state; memory 2 m |z| whatever max_iter is.

    ``lam`` is a Tikhonov weight relative to the largest squared residual norm in the window.
    """
    stats = SolverStats("anderson", tol=tol)
    shape, n = z0.shape, z0.numel()
    m = max(1, min(m, max_iter))
    X = z0.new_zeros(m, n)                      # past iterates
    Fx = z0.new_zeros(m, n)                     # f of past iterates
    X[0] = z0.reshape(-1)
    Fx[0] = f(z0).reshape(-1)
    stats.iterations, best = 1, (_rel(Fx[0], X[0]), Fx[0].clone())
    stats.residuals.append(best[0])
    if best[0] <= tol or max_iter == 1:
        stats.converged = best[0] <= tol
        return Fx[0].view(shape), stats
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
        X[slot] = beta * (alpha @ Fx[:n_]) + (1 - beta) * (alpha @ X[:n_])
        Fx[slot] = f(X[slot].view(shape)).reshape(-1)
        stats.iterations += 1
        res = _rel(Fx[slot], X[slot])
        stats.residuals.append(res)
        if res < best[0]:
            best = (res, Fx[slot].clone())
        if res <= tol:
            break
    stats.converged = best[0] <= tol
    return best[1].view(shape), stats


def broyden(f: Callable[[Tensor], Tensor], z0: Tensor, max_iter: int = 50, tol: float = 1e-4,
            memory: int = 20) -> tuple[Tensor, SolverStats]:
    """Limited-memory "good" Broyden root finding on g(z) = f(z) - z (Broyden, 1965; as in Bai et al., 2019).

    The inverse Jacobian of g is kept as -I + U V^T with at most ``memory`` rank-one terms (oldest dropped), so memory
    is 2 * memory * |z| whatever max_iter is. Returns the iterate with the lowest residual seen.
    """
    stats = SolverStats("broyden", tol=tol)
    shape = z0.shape
    z = z0.reshape(-1)
    fz = f(z0).reshape(-1)
    g = fz - z
    stats.iterations = 1
    stats.residuals.append(_rel(fz, z))
    best = (stats.residuals[-1], fz.clone())
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

    while stats.iterations < max_iter and best[0] > tol:
        dz = -binv(g)
        z_new = z + dz
        fz = f(z_new.view(shape)).reshape(-1)
        g_new = fz - z_new
        stats.iterations += 1
        res = _rel(fz, z_new)
        stats.residuals.append(res)
        if res < best[0]:
            best = (res, fz.clone())
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
        if not torch.isfinite(g).all():
            break
    stats.converged = best[0] <= tol
    return best[1].view(shape), stats


def fixed_point(f: Callable[[Tensor], Tensor], z0: Tensor, solver: str = "anderson", max_iter: int = 50,
                tol: float = 1e-4, **kwargs) -> tuple[Tensor, SolverStats]:
    """Solve z = f(z) from z0 with the named solver; returns (z*, stats)."""
    if solver == "anderson":
        return anderson(f, z0, max_iter=max_iter, tol=tol, **kwargs)
    if solver == "picard":
        return picard(f, z0, max_iter=max_iter, tol=tol)
    if solver == "broyden":
        return broyden(f, z0, max_iter=max_iter, tol=tol, **kwargs)
    raise ValueError(f"unknown solver {solver!r}; choose one of {SOLVERS}")


def _warn_unconverged(stats: SolverStats, what: str) -> None:
    if not stats.converged:
        warnings.warn(f"DEQ {what} solve did not converge: relative residual {stats.residual:.2e} > tol "
                      f"{stats.tol:.1e} after {stats.iterations} iterations ({stats.solver}). Raise max_iter, "
                      "loosen tol, or shrink the learning rate.", ConvergenceWarning, stacklevel=3)


class _ImplicitFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, layer: DEQLayer, num_args: int, x: Tensor, *rest):
        args, params = rest[:num_args], rest[num_args:]
        with torch.no_grad():
            z, stats = fixed_point(lambda z: layer.cell(z, x, *args), torch.zeros_like(x), layer.solver,
                                   layer.max_iter, layer.tol)
        layer.last_stats = stats
        layer.count(stats, "forward")
        _warn_unconverged(stats, "forward")
        tensors = [a if isinstance(a, Tensor) else None for a in args]
        ctx.save_for_backward(z, x, *[t for t in tensors if t is not None])
        ctx.slots = [t is not None for t in tensors]
        ctx.constants = [None if isinstance(a, Tensor) else a for a in args]
        ctx.layer, ctx.num_params = layer, len(params)
        ctx.versions = record_versions(layer.cell)
        return z

    @staticmethod
    def backward(ctx, grad_z: Tensor):
        refuse_double_backward("a DEQ layer's implicit backward", "use unrolled_iters (plain autograd through the "
                               "unrolled cell) for gradient penalties and other second-order terms")
        check_versions(ctx.versions, "the implicit backward re-evaluates the cell at the stored fixed point")
        saved = list(ctx.saved_tensors)
        z, x = saved[0], saved[1]
        rest = saved[2:]
        args = [rest.pop(0) if slot else c for slot, c in zip(ctx.slots, ctx.constants)]
        layer, needs = ctx.layer, ctx.needs_input_grad  # (layer, num_args, x, *args, *params)
        args_req = [isinstance(a, Tensor) and needs[3 + k] for k, a in enumerate(args)]
        params = [p for p in layer.cell.parameters() if p.requires_grad]
        with torch.enable_grad():
            zd = z.detach().requires_grad_()
            xd = x.detach().requires_grad_(needs[2])
            argsd = [a.detach().requires_grad_() if r else a for a, r in zip(args, args_req)]
            fz = layer.cell(zd, xd, *argsd)

            def adjoint(u: Tensor) -> Tensor:
                return torch.autograd.grad(fz, zd, u, retain_graph=True)[0] + grad_z

            u, stats = fixed_point(adjoint, torch.zeros_like(grad_z), layer.solver, layer.backward_max_iter,
                                   layer.tol)
            layer.last_backward_stats = stats
            layer.count(stats, "backward")
            _warn_unconverged(stats, "backward (adjoint)")
            wrt = ([xd] if needs[2] else []) + [a for a, r in zip(argsd, args_req) if r] + params
            grads = list(torch.autograd.grad(fz, wrt, u, allow_unused=True)) if wrt else []
        gx = grads.pop(0) if needs[2] else None
        gargs = [grads.pop(0) if r else None for r in args_req]
        return (None, None, gx, *gargs, *grads)


class DEQLayer(nn.Module):
    r"""Equilibrium layer ``z* = f(z*, x, *args)`` with implicit-differentiation backward (Bai et al., 2019).

    Args:
        cell (nn.Module): f, called as ``cell(z, x, *args)``; z and x share a shape.
        solver (str): ``"anderson"``, ``"broyden"`` or ``"picard"``. (default: ``"anderson"``)
        max_iter (int): forward iteration cap. (default: 30)
        tol (float): relative residual ||f(z) - z|| / ||f(z)|| to stop at. (default: 1e-4)
        backward_max_iter (int, optional): adjoint iteration cap (default: ``max_iter``).
        unrolled_iters (int, optional): when set, :meth:`forward` applies f this many times from z = 0 with ordinary
            autograd instead of solving (the weight-tied warm-up of the official code; memory O(k N D)).

    Shapes:
        - x: (N, D); output: (N, D)

    After each forward, ``last_stats`` holds the :class:`SolverStats`; after each backward,
    ``last_backward_stats``; :meth:`solver_stats` gives both as dicts, :func:`solver_fields` as flat record fields.
    ``solve_counts`` counts the training (autograd) solves and those that stopped above tolerance.
    """

    def __init__(self, cell: nn.Module, solver: str = "anderson", max_iter: int = 30, tol: float = 1e-4,
                 backward_max_iter: int | None = None, unrolled_iters: int | None = None):
        super().__init__()
        if solver not in SOLVERS:
            raise ValueError(f"unknown solver {solver!r}; choose one of {SOLVERS}")
        if max_iter < 1:
            raise ValueError(f"max_iter must be >= 1 (got {max_iter})")
        self.cell = cell
        self.solver, self.max_iter, self.tol = solver, max_iter, tol
        self.backward_max_iter = backward_max_iter or max_iter
        self.unrolled_iters = unrolled_iters
        self.last_stats: SolverStats | None = None
        self.last_backward_stats: SolverStats | None = None
        self.solve_counts = {"forward": 0, "forward_unconverged": 0, "backward": 0, "backward_unconverged": 0}

    def count(self, stats: SolverStats, kind: str) -> None:
        self.solve_counts[kind] += 1
        self.solve_counts[f"{kind}_unconverged"] += not stats.converged

    def solver_stats(self) -> dict:
        """``{"forward": ..., "backward": ...}``: the last solves' :meth:`SolverStats.to_dict` (None before one)."""
        return {"forward": self.last_stats.to_dict() if self.last_stats else None,
                "backward": self.last_backward_stats.to_dict() if self.last_backward_stats else None}

    def forward(self, x: Tensor, *args) -> Tensor:
        if self.unrolled_iters:
            z = torch.zeros_like(x)
            for _ in range(self.unrolled_iters):
                z = self.cell(z, x, *args)
            return z
        if not torch.is_grad_enabled():
            z, stats = fixed_point(lambda z: self.cell(z, x, *args), torch.zeros_like(x), self.solver,
                                   self.max_iter, self.tol)
            self.last_stats = stats
            _warn_unconverged(stats, "forward")
            return z
        params = [p for p in self.cell.parameters() if p.requires_grad]
        return _ImplicitFunction.apply(self, len(args), x, *args, *params)
