"""The paper's parameter counts (PAPER.md section 2) and the `revgnn params` command."""
import json
import subprocess
import sys

import pytest

from revgnn import PAPER_PARAMS, build_model, count_parameters, get_preset, list_presets
from revgnn.cli import main

EXACT = {
    "revgnn-deep": 20_031_384,
    "revgnn-wide": 68_471_608,
    "revgnn-64": 1_457_080,
    "revgnn-80": 2_251_384,
    "revgnn-224": 17_141_560,
    "resgnn-64": 2_374_568,
    "revgat-arxiv": 2_098_256,          # 258,816 + 6 x 296,064 + 61,480 + 1,536 + 40 (the official RevGAT)
    "revgnn-112-products": 2_945_007,   # 16,160 + 112 x 26,080 + 7,887 (OGB entry)
    "revgnn-7-products": 206_607,       # the same at L = 7 (PyG's examples/rev_gnn.py)
}
APPROX = {  # the paper's rounded figures; we must be within 1 %
    "wt-resgnn-64": 51_200, "wt-revgnn-64": 35_000, "wt-revgnn-80": 51_400, "wt-revgnn-224": 337_000,
    "deq-gnn-64": 51_300, "deq-gnn-224": 537_000, "resgnn-224": 28_400_000,
}


def formula(L, D, C=2):
    """params(L, D, C) = L (D^2 (1 + 4/C) + 10 D) + 140 D + 184 (PAPER.md, derived, matches OGB)."""
    return L * (D * D * (1 + 4 // C) + 10 * D) + 140 * D + 184


@pytest.mark.parametrize("name,expected", EXACT.items())
def test_exact_parameter_counts(name, expected):
    assert count_parameters(build_model(get_preset(name))) == expected, f"{name} has the paper's parameter count"


@pytest.mark.parametrize("name,paper", APPROX.items())
def test_weight_tied_and_deq_counts_within_one_percent(name, paper):
    n = count_parameters(build_model(get_preset(name)))
    assert abs(n - paper) <= 0.01 * paper, f"{name}: {n} within 1 % of the paper's {paper}"


@pytest.mark.parametrize("name", ["wt-resgnn-64", "wt-revgnn-64", "deq-gnn-64"])
def test_tied_parameter_count_independent_of_depth(name):
    counts = {count_parameters(build_model(get_preset(name).replace(num_layers=L))) for L in (2, 7, 50)}
    assert len(counts) == 1, f"{name}'s parameter count does not depend on depth"


@pytest.mark.parametrize("L,D", [(3, 16), (10, 32), (112, 64)])
def test_revgnn_matches_the_closed_form(L, D):
    cfg = get_preset("revgnn-64").replace(num_layers=L, hidden_channels=D)
    assert count_parameters(build_model(cfg)) == formula(L, D)


def test_presets_are_documented_with_paper_counts():
    assert set(list_presets()) == set(PAPER_PARAMS)


def test_unknown_preset_error_lists_choices():
    with pytest.raises(ValueError, match="unknown preset 'revgnn-9000'.*revgnn-deep"):
        get_preset("revgnn-9000")


def test_cli_params_json(capsys):
    assert main(["params", "--preset", "revgnn-deep", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == {"preset": "revgnn-deep",
                                                                           "params": 20_031_384}


def test_cli_params_list(capsys):
    assert main(["params", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in list_presets())


def test_cli_unknown_preset_is_a_clean_error():
    r = subprocess.run([sys.executable, "-m", "revgnn", "params", "--preset", "nope"], capture_output=True,
                       text=True)
    assert r.returncode == 2 and "unknown preset" in r.stderr and "Traceback" not in r.stderr


def test_revgat_parameters_by_part():
    model = build_model(get_preset("revgat-arxiv"))
    parts = {"first": count_parameters(model.first), "reversible": count_parameters(model.stack),
             "last": count_parameters(model.last), "norm": count_parameters(model.norm), "bias": model.bias.numel()}
    assert parts == {"first": 258_816, "reversible": 6 * 296_064, "last": 61_480, "norm": 1_536, "bias": 40}, \
        "RevGAT's parts have the official code's counts (3 reversible layers of 2 groups)"


@pytest.mark.parametrize("name", ["revgat-arxiv", "revgnn-112-products", "revgnn-7-products"])
def test_params_command_prints_the_paper_counts(name, capsys):
    assert main(["params", "--preset", name]) == 0
    assert f"{PAPER_PARAMS[name][0]:,} parameters" in capsys.readouterr().out, "revgnn params gives the paper's count"
