r"""Deep equilibrium layers: a fixed point and its implicit differentiation (Bai et al., 2019; Li et al., 2021).

A DEQ layer returns the equilibrium z* = f(z*, x) of a weight-tied cell f. The forward pass finds z* with a
root finder under ``no_grad``; the backward pass uses the implicit function theorem,

.. math::
    \frac{\partial \ell}{\partial (x, \theta)} = u^\top \frac{\partial f(z^*, x)}{\partial (x, \theta)}, \qquad
    u = \Big(\frac{\partial f}{\partial z}\Big|_{z^*}\Big)^{\!\top} u + \frac{\partial \ell}{\partial z^*},

solving the adjoint fixed point u with the same solver. Only z* (and the inputs) are stored, so memory does not grow
with the number of iterations (the layer is O(ND), like RevGNN).

The solvers (:mod:`revgnn.nn.solvers`: Anderson, the default; Broyden; Picard) return a :class:`SolverStats` record
per solve: iterations, the whole-graph and the worst node's residual traces, converged, non-finite. A solve
converges when the whole-graph residual is within ``tol`` and the worst node within ``node_factor * tol``; one that
does not emits a :class:`ConvergenceWarning` and says so in its stats, and a NaN or inf is a failure, never
"converged". :func:`solver_fields` flattens the last forward and adjoint solves (and counts of the training solves
that missed) into record fields; ``revgnn.measure.memory`` and ``revgnn.training.loop`` put them in every step
record and training-history entry of a DEQ-GNN, with the spectral radius of df/dz at the fixed point when
``spectral_iters`` asks for it.

At its initial weights the DEQ-GNN cell need not be a contraction: the spectral radius of df/dz at the fixed point
can exceed 1, and the first training step's solves then stall above 1e-4 at their cap (the ``bare`` section of
``results/deq_convergence.json``, Fig. 1's live graph). ``revgnn.training`` therefore trains the model first as its
weight-tied unrolled network (``unrolled_iters``, set by :func:`set_unrolled` for ``ModelConfig.warmup_epochs``), then
switches to the solver; ``benchmarks/deq_convergence.py`` checks every solve of the first 10 solver steps of seeds 0-9
at the shipped defaults and compares other warm-ups. The stabilisers here are options, off by default and tested
(``tests/test_deq_solver.py``): the phantom gradient (``backward="phantom"``) and Jacobian regularisation
(``jac_reg``); weight and spectral normalisation live in :class:`~revgnn.nn.layers.DEQCell`.
``results/deq_stabilisers.json`` (``benchmarks/deq_convergence.py stabilisers``) measures them against the same check.
"""
from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

from .reversible import check_versions, record_versions, refuse_double_backward
from .solver_options import BACKWARDS, check_solver_options
from .solvers import ConvergenceWarning, SolverStats, fixed_point, spectral_radius

__all__ = ["SolverStats", "ConvergenceWarning", "fixed_point", "DEQLayer", "solver_fields", "SOLVER_FIELDS",
           "BACKWARDS", "set_unrolled", "check_solver_options"]

SOLVER_FIELDS = ("deq_solver", "deq_tol", "deq_stop_mode", "deq_node_tol", "deq_backward_mode",
                 "deq_forward_iters", "deq_forward_residual", "deq_forward_node_residual", "deq_forward_converged",
                 "deq_backward_iters", "deq_backward_residual", "deq_backward_node_residual",
                 "deq_backward_converged", "deq_spectral_radius", "deq_jac_loss", "deq_forward_solves",
                 "deq_forward_unconverged", "deq_backward_solves", "deq_backward_unconverged")


def solver_fields(module: nn.Module, reset: bool = False) -> dict:
    """Flat record fields of the first :class:`DEQLayer` in ``module`` ({} when it has none).

    ``deq_forward_iters``, ``deq_forward_residual`` (whole graph), ``deq_forward_node_residual`` (worst node),
    ``deq_forward_converged`` and the same for ``backward`` (the adjoint solve; None under the phantom gradient)
    describe the last solve of each kind (None before the first); ``deq_spectral_radius`` the estimate of the last
    step (None unless ``spectral_iters``), ``deq_jac_loss`` the last Jacobian penalty (None unless ``jac_reg``);
    ``deq_forward_solves`` / ``deq_forward_unconverged`` (and backward) count the training solves since the layer was
    built or last read with ``reset=True``, and how many of them did not converge.
    """
    layer = next((m for m in module.modules() if isinstance(m, DEQLayer)), None)
    if layer is None:
        return {}
    out: dict = {"deq_solver": layer.solver, "deq_tol": layer.tol, "deq_stop_mode": layer.stop_mode,
                 "deq_node_tol": layer.node_tol, "deq_backward_mode": layer.backward}
    for kind, stats in (("forward", layer.last_stats), ("backward", layer.last_backward_stats)):
        out[f"deq_{kind}_iters"] = stats.iterations if stats else None
        out[f"deq_{kind}_residual"] = stats.residual if stats else None
        out[f"deq_{kind}_node_residual"] = stats.node_residual if stats else None
        out[f"deq_{kind}_converged"] = stats.converged if stats else None
    out["deq_spectral_radius"] = layer.last_stats.spectral_radius if layer.last_stats else None
    out["deq_jac_loss"] = layer.last_jac_loss
    for kind in ("forward", "backward"):
        out[f"deq_{kind}_solves"] = layer.solve_counts[kind]
        out[f"deq_{kind}_unconverged"] = layer.solve_counts[f"{kind}_unconverged"]
    if reset:
        layer.solve_counts = dict.fromkeys(layer.solve_counts, 0)
    return out


def set_unrolled(module: nn.Module, iters: int | None) -> bool:
    """Run every :class:`DEQLayer` of ``module`` as its weight-tied unrolled network of ``iters`` cell applications
    (the warm-up), or with ``None`` by its solver. True when ``module`` has a DEQ layer."""
    layers = [m for m in module.modules() if isinstance(m, DEQLayer)]
    for layer in layers:
        layer.unrolled_iters = iters
    return bool(layers)


def _warn_unconverged(stats: SolverStats, what: str) -> None:
    if stats.converged:
        return
    head = f"DEQ {what} solve did not converge: "
    fix = "Raise max_iter, loosen tol, warm up longer (warmup_epochs), or shrink the learning rate."
    if stats.nonfinite:
        text = (f"a non-finite residual ({stats.residuals[-1]}) at iteration {stats.iterations} ({stats.solver}); "
                "the iterates diverged. Shrink the learning rate, warm up longer (warmup_epochs) or normalise the "
                "cell (norm).")
    else:
        mode = "relative" if stats.stop_mode == "rel" else "absolute"
        if stats.residual > stats.tol:
            text = (f"{mode} residual {stats.residual:.2e} > tol {stats.tol:.1e} after {stats.iterations} iterations "
                    f"({stats.solver}); worst node {stats.node_residual:.2e}. {fix}")
        else:
            text = (f"{mode} residual {stats.residual:.2e} is within tol {stats.tol:.1e}, but the worst node's "
                    f"{stats.node_residual:.2e} > {stats.node_tol:.1e} after {stats.iterations} iterations "
                    f"({stats.solver}). {fix}")
    warnings.warn(head + text, ConvergenceWarning, stacklevel=3)


class _ImplicitFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, layer: DEQLayer, num_args: int, x: Tensor, *rest):
        args, params = rest[:num_args], rest[num_args:]
        z, stats = layer.solve(x, args, kind="forward")
        tensors = [a if isinstance(a, Tensor) else None for a in args]
        ctx.save_for_backward(z, x, *[t for t in tensors if t is not None])
        ctx.slots = [t is not None for t in tensors]
        ctx.constants = [None if isinstance(a, Tensor) else a for a in args]
        ctx.layer, ctx.num_params, ctx.stats = layer, len(params), stats
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

            def vjp(v: Tensor) -> Tensor:                                  # v^T df/dz at z*
                return torch.autograd.grad(fz, zd, v, retain_graph=True)[0]

            u, stats = fixed_point(lambda u: vjp(u) + grad_z, torch.zeros_like(grad_z), layer.solver,
                                   layer.backward_max_iter, layer.tol, layer.node_tol, layer.stop_mode,
                                   **layer.solver_options())
            layer.last_backward_stats = stats
            layer.count(stats, "backward")
            _warn_unconverged(stats, "backward (adjoint)")
            if layer.spectral_iters:
                ctx.stats.spectral_radius = stats.spectral_radius = spectral_radius(vjp, zd, layer.spectral_iters)
            wrt = ([xd] if needs[2] else []) + [a for a, r in zip(argsd, args_req) if r] + params
            penalty = layer.jacobian_penalty(fz, zd, wrt) if layer.jac_reg else None
            grads = list(torch.autograd.grad(fz, wrt, u, allow_unused=True)) if wrt else []
            if penalty is not None:
                grads = [g if p is None else p if g is None else g + p for g, p in zip(grads, penalty)]
        gx = grads.pop(0) if needs[2] else None
        gargs = [grads.pop(0) if r else None for r in args_req]
        return (None, None, gx, *gargs, *grads)


class DEQLayer(nn.Module):
    r"""Equilibrium layer ``z* = f(z*, x, *args)`` with implicit-differentiation backward (Bai et al., 2019).

    Args:
        cell (nn.Module): f, called as ``cell(z, x, *args)``; z and x share a shape, rows are nodes.
        solver (str): ``"anderson"``, ``"broyden"`` or ``"picard"``. (default: ``"anderson"``)
        max_iter (int): forward iteration cap. (default: 30)
        tol (float): whole-graph residual to stop at, relative or absolute (``stop_mode``). (default: 1e-4)
        backward_max_iter (int, optional): adjoint iteration cap (default: ``max_iter``).
        unrolled_iters (int, optional): when set, :meth:`forward` applies f this many times from z = 0 with ordinary
            autograd instead of solving (the weight-tied warm-up of the official code; memory O(k N D)).
        stop_mode (str): ``"rel"`` (||f(z) - z|| / ||f(z)||) or ``"abs"`` (||f(z) - z||). (default: ``"rel"``)
        node_factor (float, optional): a solve converges only when its worst node's residual is also within
            ``node_factor * tol`` (:mod:`revgnn.nn.solvers`); None checks the whole graph alone. (default: 10)
        m (int): Anderson's window. (default: 5)
        damping (float): Anderson's and Picard's mixing beta in (0, 1]; 1 is undamped. (default: 1)
        memory (int): Broyden's rank-one updates kept. (default: 20)
        backward (str): ``"implicit"`` (solve the adjoint fixed point) or ``"phantom"`` (the phantom gradient of
            Geng et al., 2021: backpropagate through ``phantom_steps`` applications of f from z*, no adjoint solve;
            memory O(phantom_steps N D)). (default: ``"implicit"``)
        phantom_steps (int): f applications the phantom gradient differentiates. (default: 1)
        jac_reg (float): weight gamma of the Jacobian regularisation gamma ||df/dz||_F^2 / (N D) of Bai et al.
            (2021), a one-sample Hutchinson estimate at z*, whose gradient is added in the implicit backward; needs
            a cell that can be differentiated twice. (default: 0, off)
        spectral_iters (int): power iterations of :func:`~revgnn.nn.solvers.spectral_radius` per training step
            (0: none); the estimate lands in the forward and backward stats. (default: 0)

    Shapes:
        - x: (N, D); output: (N, D)

    After each forward, ``last_stats`` holds the :class:`SolverStats`; after each backward,
    ``last_backward_stats``; :meth:`solver_stats` gives both as dicts, :func:`solver_fields` as flat record fields.
    ``solve_counts`` counts the training (autograd) solves and those that did not converge.
    """

    def __init__(self, cell: nn.Module, solver: str = "anderson", max_iter: int = 30, tol: float = 1e-4,
                 backward_max_iter: int | None = None, unrolled_iters: int | None = None, stop_mode: str = "rel",
                 node_factor: float | None = 10.0, m: int = 5, damping: float = 1.0, memory: int = 20,
                 backward: str = "implicit", phantom_steps: int = 1, jac_reg: float = 0.0,
                 spectral_iters: int = 0):
        super().__init__()
        check_solver_options(solver=solver, max_iter=max_iter, tol=tol, backward_max_iter=backward_max_iter,
                             stop_mode=stop_mode, node_factor=node_factor, m=m, damping=damping, memory=memory,
                             backward=backward, phantom_steps=phantom_steps, jac_reg=jac_reg,
                             spectral_iters=spectral_iters)
        self.cell = cell
        self.solver, self.max_iter, self.tol, self.stop_mode = solver, max_iter, tol, stop_mode
        self.backward_max_iter = backward_max_iter or max_iter
        self.node_factor, self.m, self.damping, self.memory = node_factor, m, damping, memory
        self.backward, self.phantom_steps, self.jac_reg = backward, phantom_steps, jac_reg
        self.spectral_iters = spectral_iters
        self.unrolled_iters = unrolled_iters
        self.last_stats: SolverStats | None = None
        self.last_backward_stats: SolverStats | None = None
        self.last_jac_loss: float | None = None
        self.solve_counts = {"forward": 0, "forward_unconverged": 0, "backward": 0, "backward_unconverged": 0}

    @property
    def node_tol(self) -> float | None:
        """The worst node's tolerance, ``node_factor * tol`` (None when only the whole graph is checked)."""
        return None if self.node_factor is None else self.node_factor * self.tol

    def solver_options(self) -> dict:
        """The options the chosen solver takes (Anderson: m, damping; Broyden: memory; Picard: damping)."""
        return {"anderson": {"m": self.m, "damping": self.damping}, "broyden": {"memory": self.memory},
                "picard": {"damping": self.damping}}[self.solver]

    def solve(self, x: Tensor, args: tuple, kind: str | None) -> tuple[Tensor, SolverStats]:
        """z* of f(., x, *args) from z = 0 under no_grad; ``kind="forward"`` counts it as a training solve."""
        with torch.no_grad():
            z, stats = fixed_point(lambda z: self.cell(z, x, *args), torch.zeros_like(x), self.solver,
                                   self.max_iter, self.tol, self.node_tol, self.stop_mode, **self.solver_options())
        self.last_stats = stats
        if kind:
            self.count(stats, kind)
        _warn_unconverged(stats, "forward")
        return z, stats

    def count(self, stats: SolverStats, kind: str) -> None:
        self.solve_counts[kind] += 1
        self.solve_counts[f"{kind}_unconverged"] += not stats.converged

    def jacobian_penalty(self, fz: Tensor, z: Tensor, wrt: list[Tensor]) -> list[Tensor | None]:
        """Gradients with respect to ``wrt`` of gamma ||eps^T df/dz||^2 / numel (Hutchinson, eps ~ N(0, I)), the
        Jacobian regularisation of Bai et al. (2021); its value (without gamma) lands in ``last_jac_loss``."""
        eps = torch.randn_like(z)
        try:
            vjp = torch.autograd.grad(fz, z, eps, create_graph=True, retain_graph=True)[0]
        except RuntimeError as err:
            if "once_differentiable" not in str(err):
                raise
            raise RuntimeError("jac_reg needs a cell that can be differentiated twice; the fused GENConv kernels "
                               "cannot: build the model with fused=False (PyG's GENConv, the same weights)") from err
        penalty = vjp.pow(2).sum() / eps.numel()
        self.last_jac_loss = float(penalty.detach())
        return list(torch.autograd.grad(self.jac_reg * penalty, wrt, retain_graph=True, allow_unused=True))

    def solver_stats(self) -> dict:
        """``{"forward": ..., "backward": ...}``: the last solves' :meth:`SolverStats.to_dict` (None before one)."""
        return {"forward": self.last_stats.to_dict() if self.last_stats else None,
                "backward": self.last_backward_stats.to_dict() if self.last_backward_stats else None}

    def _radius_at(self, z: Tensor, x: Tensor, args: tuple, stats: SolverStats) -> None:
        """The spectral radius of df/dz at z into ``stats`` (a graph of one f call, built here)."""
        with torch.enable_grad():
            zd = z.detach().requires_grad_()
            fz = self.cell(zd, x.detach(), *[a.detach() if isinstance(a, Tensor) else a for a in args])
            stats.spectral_radius = spectral_radius(
                lambda v: torch.autograd.grad(fz, zd, v, retain_graph=True)[0], zd, self.spectral_iters)

    def forward(self, x: Tensor, *args) -> Tensor:
        if self.unrolled_iters:
            z = torch.zeros_like(x)
            for _ in range(self.unrolled_iters):
                z = self.cell(z, x, *args)
            return z
        if not torch.is_grad_enabled():
            return self.solve(x, args, kind=None)[0]
        if self.backward == "phantom":
            z, stats = self.solve(x, args, kind="forward")
            self.last_backward_stats = None
            if self.spectral_iters:
                self._radius_at(z, x, args, stats)
            for _ in range(self.phantom_steps):                  # the phantom gradient: k steps of f from z*
                z = self.cell(z, x, *args)
            return z
        params = [p for p in self.cell.parameters() if p.requires_grad]
        return _ImplicitFunction.apply(self, len(args), x, *args, *params)
