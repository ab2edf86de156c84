"""Does DEQ-GNN reach its equilibrium? The solver statistics of a committed ``benchmarks/deq_convergence.py`` record.

For "Training Graph Neural Networks with 1000 Layers" (Li et al., ICML 2021), Sec. 3.3: a DEQ-GNN is only an
equilibrium model where its solves converge. Issue 29's check runs the Fig. 1 setting with the shipped warm-up and
records, for every forward and adjoint solve of the first solver steps, the iterations, the whole-graph relative
residual, the worst node's residual and the spectral radius of df/dz at the fixed point; the same record holds the bare
solver (no warm-up) for contrast and the warm-ups compared. :func:`deq_convergence_reading` says all of it from the
record, so the page's numbers are the record's. Returns Markdown.
"""
from __future__ import annotations

import re

from .records import markdown_table

__all__ = ["deq_convergence_reading"]

_SEED = re.compile(r"seed (\d+) ")


def _sci(value) -> str:
    return "–" if value is None else f"{value:.1e}"


def _seeds(seeds: list[int]) -> str:
    return ", ".join(map(str, seeds)) if seeds else "none"


def _run_row(run: dict, steps: int) -> dict:
    first, window = run["steps"][0], run["steps"][:steps]
    row = {"seed": run["seed"], "radius": "–" if first.get("spectral_radius") is None
           else f"{first['spectral_radius']:.2f}"}
    for kind in ("forward", "backward"):
        solve = first[kind]
        state = "" if solve["converged"] else " (missed)"
        row[f"{kind}1"] = (f"{solve['iters']} it., {_sci(solve['residual'])}, node {_sci(solve['node_residual'])}"
                           f"{state}")
        solves = [s[kind] for s in window if s[kind]["iters"] is not None]
        worst = _sci(max((s["node_residual"] for s in solves), default=None))
        row[f"{kind}_max"] = f"{max(s['iters'] for s in solves)} it., node {worst}" if solves else "–"
    return row


def _verdicts(targets: dict) -> list[str]:
    within, node = targets["within_tol_at_cap"], targets["worst_node"]
    radius, finite = targets["spectral_radius_step_1"], targets["finite"]
    mark = {True: "met", False: "**not met**"}
    missed = within["missed"]
    return [
        f"- {within['target']}: {mark[within['met']]} ({targets['solves']} solves; at most "
        f"{targets['max_forward_iters']} forward and {targets['max_backward_iters']} adjoint iterations"
        + (f"; missed: {', '.join(missed[:6])}{' ...' if len(missed) > 6 else ''}" if missed else "") + ").",
        f"- {node['target']}: {mark[node['met']]} (the worst node of any solve: {_sci(node['max'])}).",
        f"- {finite['target']}: {mark[finite['met']]}.",
        f"- spectral radius of df/dz {radius['target']}: {mark[radius['met']]} (from "
        f"{min(radius['per_seed']):.2f} to {radius['max']:.2f} over the seeds).",
    ]


def _sweep_rows(variants: list[dict], shipped: tuple[int, int]) -> list[dict]:
    rows = []
    for v in variants:
        check = v["check_3_steps"]
        seeds = len(v["forward_iters"])
        missing = sorted({int(m[1]) for m in map(_SEED.match, check["within_tol_at_cap"]["missed"]) if m})
        radii = [r for r in v["spectral_radius"] if r is not None]
        name = "none" if v["warmup_epochs"] == 0 else f"{v['warmup_epochs']} x k = {v['warmup_iters']}"
        rows.append({"warmup": name + (" (shipped)" if (v["warmup_epochs"], v["warmup_iters"]) == shipped else ""),
                     "first": f"{seeds - len(v['missed_seeds'])} of {seeds}",
                     "three": f"{seeds - len(missing)} of {seeds}",
                     "radius": f"{min(radii):.2f} - {max(radii):.2f}" if radii else "–",
                     "node": _sci(check["worst_node"]["max"])})
    return rows


def deq_convergence_reading(record: dict, source: str = "") -> str:
    """The acceptance check, the per-seed solves, the bare solver and the warm-ups of a ``deq_convergence`` record.

    Args:
        record: the content of ``results/deq_convergence.json`` (``benchmarks/deq_convergence.py``).
        source: its path, named in the text.

    Returns:
        Markdown; '' for a record without the ``fig1`` section (one written before issue 29's check).
    """
    fig1 = record.get("fig1")
    if not fig1 or "runs" not in fig1 or "targets" not in fig1 or "settings" not in record:
        return ""
    s, graph = record["settings"], fig1["graph"]
    warm = s["warmup"]
    steps = s["steps"]
    runs = fig1["runs"]
    head = (f"**Does DEQ-GNN reach its equilibrium?** (committed{f' `{source}`' if source else ''}, "
            f"`{record['provenance']['command']}`: Fig. 1's setting, {graph['num_nodes']:,} nodes, "
            f"{graph['num_edges']:,} edges, D = {graph['hidden_channels']}, dropout {s['dropout']}, Adam lr {s['lr']}; "
            f"{s['solver'].capitalize()} m = {s['m']}, relative tolerance {s['tol']:g}, cap {s['max_iter']}; the "
            f"shipped warm-up: {warm['epochs']} epochs as the weight-tied network of k = {warm['iters']} cells, then "
            f"the solver from epoch {warm['switch_epoch']}; seeds {runs[0]['seed']}-{runs[-1]['seed']}, the first "
            f"{steps} solver steps; spectral radius by {s['spectral_iters']} power iterations.) The issue's targets:")
    columns = [("seed", "seed"), ("forward1", "forward, step 1"), ("backward1", "adjoint, step 1"),
               ("radius", "radius, step 1"), ("forward_max", f"forward, worst of {steps} steps"),
               ("backward_max", f"adjoint, worst of {steps} steps")]
    table = markdown_table([_run_row(r, steps) for r in runs], columns)
    parts = [head, "\n".join(_verdicts(fig1["targets"])), "Each solve: iterations, whole-graph relative residual, "
             "worst node's residual (relative to the mean node's norm).\n\n" + table]
    bare = record.get("bare")
    if bare and bare.get("runs"):
        first = bare["first_step"]
        radii = [r for r in first["spectral_radius"] if r is not None]
        parts.append(
            f"**Without the warm-up** (the solver from the initial weights, the same seeds): the first solver step "
            f"missed the tolerance within {s['max_iter']} iterations for seeds {_seeds(first['missed_seeds'])} "
            f"({len(first['missed_seeds'])} of {len(bare['runs'])}); its spectral radius ran from "
            f"{min(radii):.2f} to {max(radii):.2f}" + (f", above 1 for {sum(r > 1 for r in radii)} of them"
                                                       if any(r > 1 for r in radii) else "")
            + f". Over its first {s.get('bare_steps', steps)} solver steps the check is "
            + ("met" if bare["targets"]["met"] else "**not met**") + ".")
    sweep = (record.get("warmup") or {}).get("variants") or {}
    shipped = (warm["epochs"], warm["iters"])
    for name, variants in sweep.items():
        g = record["warmup"]["graphs"][name]
        rows = _sweep_rows(variants, shipped)
        parts.append(f"**Warm-ups compared** on a {g['num_nodes']:,}-node graph (D = {g['hidden_channels']}, seeds "
                     f"0-{g['seeds'] - 1}): seeds whose first solver step converged both solves, seeds whose first 3 "
                     "solver steps all did, the radius at the first solver step, the worst node of those solves.\n\n"
                     + markdown_table(rows, [("warmup", "warm-up (epochs x k)"), ("first", "step 1 converged"),
                                             ("three", "steps 1-3 converged"), ("radius", "radius, step 1"),
                                             ("node", "worst node")]))
    mem = record.get("warmup_memory")
    if mem:
        parts.append(f"A warm-up step (the unrolled network of k = {mem['warmup_iters']} cells, memory O(k N D)) "
                     f"peaks at {mem['warmup_over_solver_peak']:.2f} x a solver step's peak (30 iterations forward and "
                     "adjoint, O(N D)) on this graph; from the switch on, the solver's memory holds.")
    return "\n\n".join(parts)
