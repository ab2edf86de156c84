"""The book layer (revgnn.book): one claims checker shown everywhere, prose that follows the plotted records, pages
that name their parameter set and marks defined once (its imports run one way: tests/test_layout.py)."""
import json
import random
import re
from pathlib import Path

import nbformat
import pytest
import yaml

from revgnn.book import (
    CLAIMS,
    PAPER_112_LAYERS,
    PAPER_MAIN,
    PAPER_MARKS,
    accuracy_records,
    check_claims,
    claim_records,
    claims_markdown,
    compare,
    depth_reading,
    memory_reading,
    reproduce_reading,
)
from revgnn.book.quotes import render as render_passage

ROOT = Path(__file__).resolve().parents[1]
FIG1 = ROOT / "results" / "accuracy_fig1.json"
MiB = 2**20


def _row(model, test, std, params, peak, **extra):
    return {"model": model, "test": test, "test_std": std, "params": params, "peak_bytes": peak, **extra}


def _verdicts(records):
    return {c["key"]: c["holds"] for c in check_claims(records)}


# --- one source of truth for the claims ----------------------------------------------------------------------------

def test_record_readme_and_pages_show_the_one_claims_checker():
    rows = json.loads(FIG1.read_text())["rows"]
    committed = json.loads(FIG1.read_text())["claims"]
    assert committed == json.loads(json.dumps(claim_records(rows))), \
        "the record's claims are check_claims' output on its own rows (rescore with benchmarks/accuracy.py --rescore)"
    readme = (ROOT / "results" / "README.md").read_text()
    assert render_passage("results-claims").strip() == claims_markdown(check_claims(accuracy_records(FIG1))), \
        "the results-claims passage is check_claims' verdicts on the committed record, word for word"
    assert render_passage("results-claims") in readme, "results/README.md shows that passage"
    for name in ("fig1_auc_vs_memory", "table_112_layers"):
        source = "\n".join(c.source for c in nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", 4).cells)
        assert "claims_markdown(check_claims(committed))" in source, f"{name} shows the same checker's verdicts"
        assert "check_112_claims" not in source, f"{name} uses no second claims rule"
    keys = {c["key"] for c in committed}
    assert {"deq-less-memory-than-res", "deq-trades-against-res", "wt-rev-matches-wt-res"} <= keys, \
        "DEQ-GNN's memory claim and WT-RevGNN against WT-ResGNN are checked"


def test_deq_trade_counts_a_drop_only_beyond_the_seed_std():
    res = _row("res", 0.773, 0.019, 48_128, 53 * MiB)
    within = _row("deq", 0.711, 0.066, 15_546, 41 * MiB)  # the committed record: -6.2 points, std 6.6
    beyond = _row("deq", 0.60, 0.02, 15_546, 41 * MiB)
    assert _verdicts([res, within])["deq-trades-against-res"] is False, "a drop inside the seed std is no trade-off"
    assert _verdicts([res, beyond])["deq-trades-against-res"] is True, "a drop beyond the seed std is one"
    assert _verdicts([res, within])["deq-less-memory-than-res"] is True, "less peak memory: the memory claim holds"
    heavier = _row("deq", 0.711, 0.066, 15_546, 60 * MiB)
    assert _verdicts([res, heavier])["deq-less-memory-than-res"] is False, \
        "DEQ-GNN above ResGNN's peak (the live run at 3 layers) fails the memory claim"


def test_one_rule_for_accuracy_memory_and_parameters():
    a, b = _row("rev", 0.80, 0.02, 100, 10 * MiB), _row("res", 0.79, 0.01, 200, 30 * MiB)
    assert compare(a, b, "accuracy")["outcome"] == "equal", "+1 point inside a 2-point std is no difference"
    assert compare(a, _row("res", 0.70, 0.01, 200, 1), "accuracy")["outcome"] == "higher"
    assert compare(a, b, "params")["outcome"] == "lower" and compare(a, b, "memory")["outcome"] == "lower", \
        "exact counts and seed-independent peaks count any difference"
    noisy = {**a, "peak_bytes_std": 25 * MiB}
    assert compare(noisy, b, "memory")["outcome"] == "equal", "a recorded memory std is honoured by the same rule"
    single = {"model": "rev", "roc_auc": 0.8, "params": 1, "peak_bytes": 1}
    assert compare(single, {**single, "roc_auc": 0.7}, "accuracy")["outcome"] == "unknown", \
        "one seed has no std: an accuracy difference is not judged"
    assert _verdicts([single | {"model": "res"}, single])["rev-matches-res"] is None


def test_claims_cover_every_family_and_the_paper_numbers_carry_their_marks():
    from revgnn.book import claims_table

    assert {c.model for c in CLAIMS} | {c.baseline for c in CLAIMS} == {"res", "rev", "wt-res", "wt-rev", "deq"}
    table = claims_table(check_claims(accuracy_records(FIG1)))
    assert table.count("{doc}`Fig. 1 <_executed/fig1_auc_vs_memory>`") == len(CLAIMS), "each claim links to its figure"
    assert "85.48 vs 85.94 % [unconfirmed]" in table, "the paper's RevGNN-64 vs ResGNN-64 with its mark"


# --- generated prose ---------------------------------------------------------------------------------------------

def _memory(model, depth, peak_mib, state_mib, oom=False):
    return {"model": model, "depth": depth, "peak_bytes": peak_mib * MiB, "state_bytes": state_mib * MiB, "oom": oom}


def test_memory_reading_follows_the_plotted_numbers():
    paper_like = [_memory("res", d, 2 * d, 0.01 * d, oom=2 * d > 512) for d in (1, 10, 100, 250, 500)]
    paper_like += [_memory("rev", d, 3.3 + 0.014 * d, 0.014 * d) for d in (1, 10, 100, 250, 500)]
    smoke = [_memory("res", d, 0.9 * d, 0.01 * d) for d in (1, 2, 4)]
    smoke += [_memory("rev", d, 1.2, 0.01) for d in (1, 2, 4)]
    big, small = memory_reading(paper_like, 512 * MiB), memory_reading(smoke, 512 * MiB)
    assert "crosses the 512 MiB limit between L = 250 and 500" in big, big
    assert "crosses" not in small and "every step fits under the 512 MiB limit" in small, \
        "a smoke book with a 3.6 MiB maximum does not claim a crossing at 512 MiB"
    assert "3.6 MiB at L = 4" in small and "500 MiB" not in small, small
    assert "**RevGNN**" in small and "**flat**" in small.split("**RevGNN**")[1], "RevGNN's flat activation peak"
    assert "**not flat**" in big.split("**ResGNN**")[1].split("**RevGNN**")[0], "ResGNN's grows"


def test_depth_reading_reports_a_sweep_that_falls():
    rows = [{"source": "a.json", "num_layers": L, "test": t, "test_std": 0.008, "num_nodes": 2000, "max_hops": 8}
            for L, t in ((1, 0.72), (2, 0.774), (4, 0.794), (8, 0.788))]
    text = depth_reading(rows)
    assert "L = 8 is below L = 4" in text and "**not every step exceeds the seed std**" in text, text
    rising = [{**r, "test": 0.6 + 0.05 * i} for i, r in enumerate(rows)]
    assert "**rises at every step by more than the seed std**" in depth_reading(rising)
    committed = accuracy_records(ROOT / "results" / "accuracy_synthetic-depth-2000.json")
    assert "L = 8 is below L = 4" in depth_reading(committed), "the committed 2,000-node sweep is read as it is"


def test_reproduce_reading_quotes_its_own_table():
    text = reproduce_reading(64.7, 68.4, views=3, parts=2, eval_parts=2)
    assert "64.7 %" in text and "68.4 %" in text and "+3.7 points" in text, text
    assert "66" not in text and "70 %" not in text


def test_depth_sweep_page_reads_every_committed_sweep():
    nb = nbformat.read(ROOT / "notebooks" / "depth_sweep.ipynb", 4)
    params = next(c.source for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    for name in ("accuracy_synthetic-depth.json", "accuracy_synthetic-depth-2000.json",
                 "accuracy_synthetic-depth-16hops.json"):
        assert f"results/{name}" in params, f"the depth-sweep page plots {name}"
    fig2 = nbformat.read(ROOT / "notebooks" / "fig2_memory_res_vs_rev.ipynb", 4)
    assert 'partition_file: str = "results/memory_depth_partition.json"' in fig2.cells[2].source + "".join(
        c.source for c in fig2.cells if "parameters" in c.metadata.get("tags", [])), "Fig. 2 plots the partition record"


# --- pages name their parameter set ------------------------------------------------------------------------------

def test_page_stamp_names_the_set_the_time_and_the_duration():
    from revgnn.book import page_stamp

    meta = {"start_time": "2026-12-02T21:30:05.123456", "duration": 41.6}
    smoke = page_stamp(meta, "smoke", "/repo/params/smoke/fig2_memory_res_vs_rev.yaml")
    assert "parameter set: smoke" in smoke and "`params/smoke/fig2_memory_res_vs_rev.yaml`" in smoke
    assert "executed 2026-12-02 21:30 UTC" in smoke and "took 42 s" in smoke, smoke
    assert "parameter set: none" in page_stamp(meta, ""), "a default build says it used no set"


def test_a_smoke_book_page_names_its_set(tmp_path):
    pytest.importorskip("papermill")
    from revgnn.book import execute_notebooks

    (tmp_path / "notebooks").mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# A page"),
                                         nbformat.v4.new_code_cell("n: int = 1  # a parameter")])
    nb.cells[1].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "notebooks" / "page.ipynb")
    (tmp_path / "params" / "smoke").mkdir(parents=True)
    (tmp_path / "params" / "smoke" / "page.yaml").write_text("n: 2\n")
    execute_notebooks(tmp_path, ["page"], tmp_path / "params" / "smoke", jobs=1)
    done = nbformat.read(tmp_path / "book" / "_executed" / "page.ipynb", 4)
    stamp = done.cells[1]
    assert "page-stamp" in stamp.metadata["tags"] and "parameter set: smoke" in stamp.source, \
        "the executed page names its parameter set under its title"
    assert re.search(r"executed \d{4}-\d\d-\d\d \d\d:\d\d UTC", stamp.source) and "took" in stamp.source


# --- notebook parameter checks (one clear line) -------------------------------------------------------------------

def test_results_file_that_is_not_json_and_save_to_a_folder_fail_in_one_line(tmp_path):
    from revgnn.book import check_results_file, check_save_to, committed_or_fresh

    text = tmp_path / "passwd"
    text.write_text("root:x:0:0:root:/root:/bin/bash\n")
    with pytest.raises(ValueError, match=r"is not a JSON results file; give one of results/\*\.json") as err:
        committed_or_fresh("auto", str(text), {}, ["res"])
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="must name a .json file in an existing folder"):
        check_save_to("save_to", "/")
    with pytest.raises(ValueError, match="must name a .json file"):
        check_save_to("save_to", str(tmp_path))
    check_save_to("save_to", "")  # nothing to save
    check_save_to("save_to", str(tmp_path / "records.json"))
    assert check_results_file("results_file", FIG1)["benchmark"] == "accuracy_fig1"


# --- confidence marks --------------------------------------------------------------------------------------------

def _pages() -> dict[str, str]:
    texts = {p.name: p.read_text() for p in sorted((ROOT / "book").glob("*.md"))}
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        texts[path.name] = "\n".join(c.source for c in nbformat.read(path, 4).cells if c.cell_type == "markdown")
    return texts


_MARK = re.compile(r"\[([a-zA-Z][\w ,.\-]*)\](?![(\[])")  # [paper], [code, OGB]; not a link


def test_every_mark_is_in_the_index_key():
    index = (ROOT / "book" / "index.md").read_text()
    for mark in PAPER_MARKS:
        assert f"**[{mark}]**" in index, f"the index's key defines [{mark}]"
    for page, text in _pages().items():
        for match in _MARK.finditer(text):
            for part in match.group(1).split(", "):
                assert part in PAPER_MARKS or re.fullmatch(r"[\d.,]+[KM]?", part), \
                    f"{page}: [{match.group(1)}] is not a mark of the index's key"


def test_the_same_paper_number_carries_the_same_mark_everywhere():
    canonical = {}
    for row in PAPER_MAIN.values():
        for key in ("test", "valid", "single_view_test"):
            canonical[f"{row[key][0]:.2f}"] = row[key][2]
        canonical[str(row["days"][0])] = row["days"][1]
        canonical[str(row["seconds_per_epoch"][0])] = row["seconds_per_epoch"][1]
        canonical[f"{row['memory_gb'][0]:.2f}"] = row["memory_gb"][1]
    for row in PAPER_112_LAYERS:
        if row["roc_auc"]:
            canonical[f"{row['roc_auc']:.2f}"] = row["mark"]
    for page, text in _pages().items():
        for number, mark in canonical.items():
            for hit in re.finditer(rf"(?<![\d.]){re.escape(number)}(?![\d])", text):
                sentence = re.split(r"\.\s|\n\n|\|", text[hit.end():hit.end() + 160])[0]
                found = _MARK.search(sentence)
                if found:
                    assert mark in found.group(1).split(", "), \
                        f"{page}: {number} is marked [{found.group(1)}], elsewhere [{mark}]"


# --- figures and files -------------------------------------------------------------------------------------------

def test_colours_and_axes_do_not_depend_on_run_order():
    import matplotlib

    matplotlib.use("Agg")
    from revgnn.book import memory_panels, series_colour, series_colours

    assert series_colour("D=32, 2,000 nodes, radii 1-8") == series_colour("D=32, 2,000 nodes, radii 1-8")
    sweeps = ["D=32, 4,000 nodes, radii 1-8", "D=32, 2,000 nodes, radii 1-8", "D=32, 4,000 nodes, radii 1-16"]
    colours = series_colours(sweeps)
    assert len(set(colours.values())) == 3, "the depth sweeps' series have three different colours"
    assert colours == series_colours(reversed(sweeps)), "whatever order the series come in"
    records = [_memory(m, d, p * d, 0.01 * d) for m, p in (("res", 2.0), ("rev", 0.01)) for d in (1, 4, 16, 64)]
    shuffled = records[:]
    random.Random(0).shuffle(shuffled)
    figures = [memory_panels(r, limit_bytes=512 * MiB) for r in (records, shuffled)]
    for a, b in zip(*(f.axes for f in figures)):
        assert a.get_xlim() == b.get_xlim() and a.get_ylim() == b.get_ylim(), "axes set by the data, not its order"
        assert [(line.get_label(), line.get_color()) for line in a.lines] == \
            [(line.get_label(), line.get_color()) for line in b.lines], "one colour per model family, in one order"


def test_citation_file_names_the_software_and_the_paper():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["title"] and cff["authors"]
    paper = cff["preferred-citation"]
    assert paper["title"] == "Training Graph Neural Networks with 1000 Layers" and paper["year"] == 2021
    assert [a["family-names"] for a in paper["authors"]] == ["Li", "Müller", "Ghanem", "Koltun"]


def test_config_keeps_download_buttons_and_the_wide_table_css():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["sphinx"]["config"]["html_theme_options"]["use_download_button"] is True
    css = (ROOT / "_static" / "revgnn.css").read_text()
    assert "overflow-x: auto" in css, "wide tables scroll instead of being cut off"


def test_deq_solves_that_miss_their_tolerance_are_counted_and_said():
    import warnings

    from revgnn.book import deq_solver_note, solver_misses
    from revgnn.nn.deq import ConvergenceWarning

    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        with solver_misses() as misses:
            for what in ("forward", "backward (adjoint)", "forward"):
                warnings.warn(f"DEQ {what} solve did not converge: relative residual 1e-01 > tol 1e-04",
                              ConvergenceWarning, stacklevel=1)
            warnings.warn("something else", UserWarning, stacklevel=1)
    assert misses["forward"] == 2 and misses["backward"] == 1, "forward and backward misses are counted apart"
    assert [str(w.message) for w in shown] == ["something else"], "only other warnings reach the notebook's output"
    note = deq_solver_note([{"model": "deq", "hidden_channels": 32, "solver_misses": misses}])
    assert "**2 forward and 1 backward solves did not converge**" in note, note
    clean = deq_solver_note([{"model": "deq", "hidden_channels": 32, "solver_misses": {"forward": 0, "backward": 0}}])
    assert "converged to its tolerance" in clean and "did not" not in clean
    assert deq_solver_note([{"model": "rev"}]) == "", "no DEQ-GNN, no note"


def test_plotted_from_keeps_solver_iterations_apart_from_layers():
    from revgnn.book import plotted_from

    records = [{"model": "res", "depth": d, "hidden_channels": 16} for d in (1, 10)]
    records += [{"model": "deq", "depth": i, "hidden_channels": 16} for i in (5, 50)]
    header, _, row = plotted_from({"ours": records}, x_key="depth").splitlines()[2:5]
    cells = dict(zip([h.strip() for h in header.strip("|").split("|")], [c.strip() for c in row.strip("|").split("|")]))
    assert cells["depths L"] == "1, 10" and cells["DEQ-GNN solver iterations"] == "5, 50", \
        "layers and DEQ-GNN's solver iterations are separate columns"


def test_no_page_numbers_its_own_figures():
    """Sphinx numbers MyST figures per page ("Fig. 1"), which collides with the paper's figure names."""
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in nbformat.read(path, 4).cells:
            assert "figure" not in cell.metadata.get("mystnb", {}), f"{path.name}: a numbered MyST figure"


def test_fig4_reads_the_committed_solves_at_each_cap():
    from revgnn.book import deq_caps_reading

    record = json.loads((ROOT / "results" / "deq_convergence.json").read_text())
    text = deq_caps_reading(record, "results/deq_convergence.json")
    caps = record["fig4"]["caps"]
    rows = [line for line in text.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [int(r.split("|")[1]) for r in rows] == caps, "one row per iteration cap of Fig. 4"
    first = record["fig4"]["runs"][0]["forward"]["residual_after"][str(caps[-1])]
    assert f"{first:.1e}" in rows[-1], "the residuals are the record's"
    assert deq_caps_reading({}) == "", "no fig4 section, nothing said"


def test_fig4_shows_the_committed_solves_only_at_their_own_setting():
    """A smoke or parameter book does not show the default book's DEQ-GNN solves as its own (issue 26)."""
    from revgnn.book import deq_caps_reading

    record = json.loads((ROOT / "results" / "deq_convergence.json").read_text())
    fig4 = record["fig4"]
    same = {"caps": fig4["caps"], "hidden_channels": fig4["hidden_channels"],
            "num_nodes": fig4["graph"]["num_nodes"], "num_edges": fig4["graph"]["num_edges"], "fused": fig4["fused"]}
    assert "| iteration cap |" in deq_caps_reading(record, "results/deq_convergence.json", same)
    smoke = dict(same, caps=[1, 2, 4], hidden_channels=8, num_nodes=200)
    text = deq_caps_reading(record, "results/deq_convergence.json", smoke)
    assert "| iteration cap |" not in text and "not shown here" in text and "hidden_channels 16 (committed)" in text


def test_weight_tying_is_not_judged_where_it_ties_nothing():
    """At L <= 2 a weight-tied model has as many distinct layers as its untied twin: its trade-off is not judged."""
    rows = [_row("res", 0.70, None, 48_000, 50 * MiB, num_layers=2), _row("wt-res", 0.69, None, 48_000, 50 * MiB,
                                                                          num_layers=2),
            _row("rev", 0.71, None, 31_000, 17 * MiB, num_layers=2), _row("wt-rev", 0.70, None, 31_000, 17 * MiB,
                                                                          num_layers=2)]
    verdicts = {c["key"]: c for c in check_claims(rows)}
    for key in ("wt-res-trades-against-res", "wt-rev-trades-against-rev"):
        assert verdicts[key]["holds"] is None and "not judged at L = 2" in verdicts[key]["finding"], verdicts[key]
    assert verdicts["wt-rev-less-memory-than-wt-res"]["holds"] is True, "tied against tied is still compared"
    deeper = [dict(r, num_layers=3) for r in rows]
    assert _verdicts(deeper)["wt-res-trades-against-res"] is not None, "from L = 3 on it is judged"
