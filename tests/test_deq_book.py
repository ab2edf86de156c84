"""The book says what the DEQ-GNN convergence record holds (issue 29): each target's verdict, every seed's solves, the
bare solver's misses, the warm-ups compared; a missed solve is never shown as a pass."""
import json
from pathlib import Path

from revgnn.book import deq_convergence_reading

ROOT = Path(__file__).resolve().parents[1]


def _solve(iters, residual, node, converged=True):
    return {"iters": iters, "residual": residual, "node_residual": node, "converged": converged}


def _run(seed, radius, forward, backward):
    return {"seed": seed, "steps": [{"epoch": 3, "spectral_radius": radius, "forward": forward, "backward": backward},
                                    {"epoch": 4, "spectral_radius": 0.2, "forward": _solve(7, 5e-5, 2e-4),
                                     "backward": _solve(6, 4e-5, 1e-4)}]}


def _targets(met, missed=(), worst=3e-4, radii=(0.31, 0.42)):
    return {"solves": 8, "max_forward_iters": 11, "max_backward_iters": 9,
            "within_tol_at_cap": {"target": "every solve <= 0.0001 in <= 30", "missed": list(missed),
                                  "met": not missed},
            "worst_node": {"target": "worst node <= 10 x tol", "max": worst, "met": worst <= 1e-3},
            "finite": {"target": "no NaN or inf", "met": True},
            "spectral_radius_step_1": {"target": "< 0.9 at the first solver step", "per_seed": list(radii),
                                       "max": max(radii), "met": max(radii) < 0.9},
            "met": met}


RECORD = {
    "provenance": {"command": "python benchmarks/deq_convergence.py"},
    "settings": {"tol": 1e-4, "max_iter": 30, "solver": "anderson", "m": 5, "dropout": 0.1, "lr": 0.01,
                 "spectral_iters": 50, "steps": 2, "bare_steps": 2,
                 "warmup": {"epochs": 2, "iters": 8, "switch_epoch": 3}},
    "fig1": {"graph": {"name": "synthetic-proteins", "num_nodes": 2000, "num_edges": 32000, "hidden_channels": 32},
             "runs": [_run(0, 0.31, _solve(11, 6e-5, 3e-4), _solve(9, 7e-5, 2e-4)),
                      _run(1, 0.42, _solve(10, 8e-5, 2e-4), _solve(8, 9e-5, 3e-4))],
             "targets": _targets(True)},
    "bare": {"runs": [{"seed": 0}, {"seed": 1}],
             "first_step": {"missed_seeds": [1], "forward_iters": [14, 30], "backward_iters": [12, 30],
                            "spectral_radius": [0.83, 1.27]},
             "targets": _targets(False, missed=["seed 1 epoch 1 forward", "seed 1 epoch 1 backward"], worst=2e-1,
                                 radii=(0.83, 1.27))},
    "warmup": {"graphs": {"small": {"num_nodes": 200, "hidden_channels": 16, "seeds": 2}},
               "variants": {"small": [
                   {"warmup_epochs": 0, "warmup_iters": 8, "missed_seeds": [1], "forward_iters": [9, 30],
                    "backward_iters": [8, 30], "spectral_radius": [0.7, 1.1],
                    "check_3_steps": _targets(False, missed=["seed 1 epoch 1 forward"], worst=1e-2)},
                   {"warmup_epochs": 2, "warmup_iters": 8, "missed_seeds": [], "forward_iters": [8, 9],
                    "backward_iters": [7, 8], "spectral_radius": [0.3, 0.4], "check_3_steps": _targets(True)}]}},
    "warmup_memory": {"warmup_iters": 8, "warmup_over_solver_peak": 2.5},
}


def test_the_reading_states_each_target_and_every_seeds_solves():
    text = deq_convergence_reading(RECORD, "results/deq_convergence.json")
    head = text.split("**Without the warm-up**")[0]
    assert "**not met**" not in head and head.count(": met") == 4, "the shipped defaults' four targets, each met"
    assert "11 it., 6.0e-05, node 3.0e-04" in head, "seed 0's first forward solve: iterations, residual, worst node"
    assert "0.31" in head and "0.42" in head, "the spectral radius at step 1 of each seed"
    assert "2 epochs as the weight-tied network of k = 8 cells" in head, "the warm-up that was shipped"


def test_the_bare_solvers_misses_are_named_not_hidden():
    text = deq_convergence_reading(RECORD)
    bare = text.split("**Without the warm-up**")[1].split("**Warm-ups compared**")[0]
    assert "seeds 1 (1 of 2)" in bare and "above 1 for 1 of them" in bare and "**not met**" in bare, \
        "the bare solver's missed seed, its radius above 1 and its failed check"
    sweep = text.split("**Warm-ups compared**")[1]
    assert "| none | 1 of 2 | 1 of 2 |" in sweep and "| 2 x k = 8 (shipped) | 2 of 2 | 2 of 2 |" in sweep, \
        "each warm-up: how many seeds converged at step 1 and in steps 1-3"


def test_a_missed_solve_shows_as_missed():
    record = json.loads(json.dumps(RECORD))
    run = record["fig1"]["runs"][1]
    run["steps"][0]["backward"] = _solve(30, 3e-3, 4e-2, converged=False)
    record["fig1"]["targets"] = _targets(False, missed=["seed 1 epoch 3 backward"], worst=4e-2)
    text = deq_convergence_reading(record).split("**Without the warm-up**")[0]
    assert "30 it., 3.0e-03, node 4.0e-02 (missed)" in text, "a missed solve is marked in the table"
    assert text.count("**not met**") == 2 and "seed 1 epoch 3 backward" in text, "and in the verdicts, named"


def test_an_old_record_without_the_check_gives_no_text():
    assert deq_convergence_reading({"fig4": {}}) == ""


def test_the_committed_record_reads():
    record = json.loads((ROOT / "results/deq_convergence.json").read_text())
    text = deq_convergence_reading(record, "results/deq_convergence.json")
    assert text, "the committed record holds issue 29's check"
    assert all(f"| {r['seed']} |" in text for r in record["fig1"]["runs"]), "every seed has its row"
