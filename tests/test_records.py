"""Records that cannot go stale (issue 26): every record in results/ is registered once, carries a fingerprint of its
computation, and is what today's code gives; a change of the computation's numbers is seen, a refactor is not."""
import json
from pathlib import Path

import pytest
import torch

from revgnn import ModelConfig
from revgnn.commands.records import parse_train_command
from revgnn.measure import freshness
from revgnn.measure.fingerprint import differences, model_numerics, training_numerics
from revgnn.measure.registry import KINDS, REGISTRY

ROOT = Path(__file__).resolve().parents[1]


def test_results_holds_exactly_the_registered_records():
    committed = {p.relative_to(ROOT).as_posix() for p in (ROOT / "results").glob("*.json")}
    registered = [r.file for r in REGISTRY]
    assert len(set(registered)) == len(registered), "each record is declared once"
    assert len({r.name for r in REGISTRY}) == len(REGISTRY), "record names are unique"
    assert committed == set(registered), (
        f"results/ holds the registered records only (unregistered: {sorted(committed - set(registered))}; "
        f"missing: {sorted(set(registered) - committed)})")


@pytest.mark.parametrize("record", REGISTRY, ids=[r.name for r in REGISTRY])
def test_registry_entry_names_a_benchmark_its_cost_and_pages(record):
    assert record.kinds and set(record.kinds) <= set(KINDS), record.kinds
    assert "benchmarks/" in record.command and record.cost_s > 0 and record.cost_how, \
        "a record names the benchmark command that writes it and what regenerating it costs"
    for page in record.shown_on:
        assert (ROOT / page).is_file(), f"{record.name} is shown on {page}, which exists"
    if "timing" in record.kinds:
        assert record.cpu and (record.models or record.commands), \
            "a timing record names its CPU and the computation whose numbers fingerprint it"
    if "memory" in record.kinds:
        assert record.sample or record.probe, "a memory record is checked by a sample or a probe"
    prov = json.loads((ROOT / record.file).read_text())["provenance"]
    assert record.command.split("python ", 1)[1].split()[0] in prov["command"], \
        "the registered command runs the script that wrote the record"


@pytest.mark.slow
@pytest.mark.parametrize("record", REGISTRY, ids=[r.name for r in REGISTRY])
def test_record_is_what_todays_code_gives(record):
    """Memory: a sample of points (or a probe) measured again gives the same bytes; training and timing: the
    fingerprint of the computation agrees with today's to 1e-7. A stale record fails with one line naming it and the
    command that regenerates it."""
    problems = freshness.check(record, parse_train_command)
    assert not problems, freshness.stale_line(record, problems)


# --- the fingerprint itself ---------------------------------------------------------------------------------------

CFG = ModelConfig("rev", 2, 16, dropout=0.1)


def test_model_fingerprint_sees_a_changed_initialisation(monkeypatch):
    before = model_numerics(CFG)
    original = torch.nn.Linear.reset_parameters

    def scaled(self):
        original(self)
        with torch.no_grad():
            self.weight.mul_(1.001)

    monkeypatch.setattr(torch.nn.Linear, "reset_parameters", scaled)
    after = model_numerics(CFG)
    assert differences(before, after), "a 0.1 % change of the initial weights changes the fingerprint"


def test_model_fingerprint_is_the_same_for_two_implementations_of_one_computation():
    """The native kernel and the pure-torch fused operator compute the same GENConv in another order, as PyG's
    GENConv does unfused: the float64 fingerprint is the same (what a refactor or another CPU changes is rounding)."""
    native = model_numerics(CFG.replace(kernel="native"))
    assert not differences(native, model_numerics(CFG.replace(kernel="torch")))
    assert not differences(native, model_numerics(CFG.replace(fused=False)))


def test_model_fingerprint_is_the_same_on_one_and_two_threads():
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = model_numerics(CFG)
        torch.set_num_threads(2)
        two = model_numerics(CFG)
    finally:
        torch.set_num_threads(threads)
    assert not differences(one, two), "the thread count moves float64 sums by rounding only"


def test_training_fingerprint_sees_a_changed_default(monkeypatch):
    """A default of the training command (here the clipping norm of TrainConfig, through the command-line parser)
    changes the training fingerprint of a recorded command."""
    from revgnn.commands import train

    command = "revgnn train --model rev --layers 2 --channels 16 --dataset synthetic-proteins --epochs 400"
    before = training_numerics(*parse_train_command(command))
    monkeypatch.setitem(train.GLOBAL_DEFAULTS, "clip", 1e-3)
    after = training_numerics(*parse_train_command(command))
    assert differences(before, after), "a changed default of the command changes the fingerprint"


def test_stale_line_names_the_record_and_its_command():
    record = next(r for r in REGISTRY if r.name == "fig2-memory")
    line = freshness.stale_line(record, ["sample rev | 1001 | train: peak_bytes 1 (recorded) != 2 (today)", "x"])
    assert "\n" not in line and record.file in line and "revgnn records regenerate fig2-memory" in line
    assert record.command in line and "and 1 more" in line
    fig1 = next(r for r in REGISTRY if r.name == "accuracy-fig1")
    assert "--remeasure-memory" in freshness.stale_line(fig1, ["sample RevGNN: peak_bytes 1 != 2"]), \
        "a training record whose memory alone is stale names its memory command"


# --- numbers in prose ------------------------------------------------------------------------------------------------

def test_every_quoted_passage_is_what_the_records_give():
    """README.md, results/README.md and the book's static pages quote our numbers only through generated passages;
    each must equal what the committed records give (`python -m revgnn.book.quotes` rewrites them)."""
    from revgnn.book import quotes

    stale = {page: quotes.stale_passages(ROOT / page) for page in quotes.PAGES}
    stale = {page: names for page, names in stale.items() if names}
    assert not stale, f"passages that differ from the records: {stale}; run `python -m revgnn.book.quotes`"
    text = "".join((ROOT / page).read_text() for page in quotes.PAGES)
    for name in quotes.QUOTES:
        assert f"<!-- quote {name}:" in text, f"passage {name} is shown on a page"


def test_results_index_lists_every_record_with_its_command_and_cost():
    from revgnn.book import quotes

    index = quotes.render("results-index")
    for r in REGISTRY:
        assert f"`{r.name}`" in index and f"`{r.command}`" in index, f"the index lists {r.name} and its command"


def test_a_changed_record_changes_its_passage(tmp_path):
    """The passages follow the records: another Fig. 2 record gives another text."""
    import shutil

    from revgnn.book import quotes

    shutil.copytree(ROOT / "results", tmp_path / "results")
    path = tmp_path / "results" / "memory_depth_small.json"
    content = json.loads(path.read_text())
    for row in content["rows"]:
        if row["label"] == "rev" and row["mode"] == "train":
            row["peak_bytes"] += 10_000 * row["x"]
            row["peak_above_state_bytes"] += 10_000 * row["x"]
    path.write_text(json.dumps(content))
    assert quotes.render("readme-measured", tmp_path) != quotes.render("readme-measured")


def test_regenerate_runs_the_command_then_check_finds_the_record_fresh(tmp_path):
    """`revgnn records regenerate` runs the registered command from the repository root and writes the record's
    fingerprint; check then finds it fresh, and a record whose fingerprint no longer matches stale."""
    from revgnn.measure.registry import Record

    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "results").mkdir()
    (tmp_path / "benchmarks" / "fake.py").write_text(
        "import json, sys\n"
        "json.dump({'provenance': {'command': 'python benchmarks/fake.py'}, 'seconds': 1.0},"
        " open('results/fake.json', 'w'))\n")
    record = Record("fake", "results/fake.json", "python benchmarks/fake.py", ("timing",), "a fake timing", 1,
                    "none", (), models=(("tiny", ModelConfig("rev", 1, 8), True),), cpu="any")
    assert freshness.check(record, parse_train_command, tmp_path) == [
        "results/fake.json does not exist; write it with `python benchmarks/fake.py`"]
    done = freshness.regenerate(record, parse_train_command, tmp_path)
    assert done["seconds"] > 0 and len(done["loadavg_start"]) == 3
    content = json.loads((tmp_path / "results" / "fake.json").read_text())
    assert content["fingerprint"]["models"]["tiny"]["loss"], "the fingerprint of its computation is written"
    assert freshness.check(record, parse_train_command, tmp_path) == [], "a regenerated record is fresh"
    content["fingerprint"]["models"]["tiny"]["loss"][0] *= 1.001
    (tmp_path / "results" / "fake.json").write_text(json.dumps(content))
    problems = freshness.check(record, parse_train_command, tmp_path)
    assert problems and "model numbers of 'tiny'" in problems[0]


def test_records_index_rewrites_a_passage_edited_by_hand(tmp_path, monkeypatch, capsys):
    """`revgnn records index` rewrites the quoted passages from the records: a figure typed over by hand is put back."""
    import argparse
    import shutil

    from revgnn.commands import records

    shutil.copytree(ROOT / "results", tmp_path / "results")
    shutil.copytree(ROOT / "book", tmp_path / "book", ignore=shutil.ignore_patterns("_*"))
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    readme = (ROOT / "README.md").read_text()
    begin = readme.index("<!-- quote readme-measured:")
    edited = readme[:begin] + readme[begin:].replace(" B at L = ", " B (typed by hand) at L = ", 1)
    assert edited != readme
    (tmp_path / "README.md").write_text(edited)
    monkeypatch.setattr(freshness, "ROOT", tmp_path)   # the quotes writer, in its own process, is given it as --root
    assert records.run(argparse.Namespace(action="index", names=[])) == 0
    assert "README.md: rewrote readme-measured" in capsys.readouterr().out
    assert (tmp_path / "README.md").read_text() == readme, "the passage is what the records give again"
