"""The committed measurements in results/ carry their provenance, and the book quotes them as measured."""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = sorted((ROOT / "results").glob("*.json"))


@pytest.mark.parametrize("path", RESULTS, ids=[p.name for p in RESULTS])
def test_every_result_names_its_revision_command_and_device(path):
    prov = json.loads(path.read_text())["provenance"]
    assert re.fullmatch(r"[0-9a-f]{40}", prov["git_revision"]), "a full git revision"
    assert prov["git_dirty"] is False, "measured on committed code (rerun the command on a clean tree)"
    # the script, run from the repository root (a benchmark that launches itself may name it by absolute path)
    assert re.match(r"python (\S*/)?benchmarks/\w+\.py", prov["command"]), "the command that wrote it"
    assert prov["device"] in ("cpu", "cuda") and prov["device_name"], "the device, named"
    assert {"python", "torch", "torch_geometric"} <= set(prov["versions"]), "library versions"


def test_results_page_quotes_the_committed_accuracy_numbers():
    """The results page includes the table generated from every results/accuracy_*.json, in % with '–' for one seed."""
    from revgnn.book import accuracy_results_table

    page = (ROOT / "book" / "results.md").read_text()
    assert "```{include} ../_build/_generated/accuracy.md" in page, "the page includes the generated table"
    table = accuracy_results_table(ROOT / "results")
    files = sorted((ROOT / "results").glob("accuracy_*.json"))
    assert {p.stem for p in files} >= {"accuracy_synthetic-depth", "accuracy_ppi", "accuracy_cora"}, \
        "the issue's three accuracy measurements are committed"
    for path in files:
        content = json.loads(path.read_text())
        for row in content["rows"]:
            spread = f"{100 * row['test_std']:.1f}" if len(row["seeds"]) > 1 else "–"
            shown = f"| {100 * row['test']:.1f} ± {spread} |"
            line = next((ln for ln in table.splitlines() if shown in ln and f"`results/{path.name}`" in ln), None)
            assert line is not None, f"{path.name} {row['name']}: a table row shows test {shown}"
            assert f"| {row['params']:,} |" in line, f"{path.name} {row['name']}: the same row shows its params"
            prov = row.get("provenance") or content["provenance"]   # a row rerun alone carries its own
            assert prov["git_revision"][:7] in line, "the row names the revision it was measured at"
            if row.get("oracle_test") is not None:
                assert f"| {100 * row['oracle_test']:.1f} |" in line, f"{row['name']}: the same row shows the ceiling"


def test_plotted_from_table_is_generated_from_the_records():
    from revgnn.book import FRESH, accuracy_records, plotted_from

    committed = accuracy_records("results/accuracy_synthetic-depth.json")
    content = json.loads((ROOT / "results" / "accuracy_synthetic-depth.json").read_text())
    live = [{"model": "rev", "num_layers": L, "hidden_channels": 8, "num_nodes": 200, "num_edges": 2000,
             "epochs": 3, "seed": seed, "device_name": "test CPU", "git_revision": "abc" * 14 + "+dirty"}
            for L in (1, 3) for seed in (0, 5)]
    table = plotted_from({"committed": committed, "live run": live})
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip().strip("|").split("|")]
            for line in table.splitlines()[3:]}
    from revgnn.data.synthetic import SyntheticProteinsConfig

    depths = ", ".join(str(r["num_layers"]) for r in content["rows"])
    seeds = ", ".join(str(s["seed"]) for s in content["rows"][0]["seeds"])
    command = content["rows"][0]["command"]  # the setting, read independently of revgnn.book

    def flag(name, default):
        found = re.search(rf"--{name} (\d+)", command)
        return f"{int(found.group(1)) if found else default:,}"

    assert rows["committed"] == ["committed", "results/accuracy_synthetic-depth.json",
                                 content["provenance"]["git_revision"][:10], depths, flag("channels", 64),
                                 flag("num-nodes", SyntheticProteinsConfig().num_nodes),
                                 flag("num-edges", SyntheticProteinsConfig().num_edges),
                                 flag("max-hops", SyntheticProteinsConfig().max_hops), flag("epochs", 50),
                                 seeds, content["provenance"]["device_name"]], rows["committed"]
    assert rows["live run"] == ["live run", FRESH, "abcabcabca+dirty", "1, 3", "8", "200", "2,000", "–", "3",
                                "0, 5", "test CPU"], rows["live run"]
    assert "task radii up to" not in plotted_from({"live run": live}), "the radius column only for synthetic graphs"
    assert "none (no records)" in plotted_from({"committed": []}), "a missing committed file is said, not hidden"


def test_committed_memory_records_stand_in_only_for_their_own_parameters():
    from revgnn.book import committed_or_fresh, memory_file_setting

    setting = memory_file_setting("results/memory_depth_small.json", ["res", "rev"])
    asked = {k: setting[k] for k in ("hidden_channels", "num_nodes", "num_edges", "seed", "dataset", "device",
                                     "fused")}
    asked["x"] = setting["x"]
    assert setting["fused"] is False, "the committed Fig. 2 records were measured on PyG's GENConv"
    use, note = committed_or_fresh("auto", "results/memory_depth_small.json", asked, ["res", "rev"])
    assert use and "every shaping parameter matches" in note
    for key, value in (("x", {"res": [1, 2, 4], "rev": [1, 2, 4]}), ("hidden_channels", 32), ("num_nodes", 600),
                       ("device", "cuda"), ("fused", True)):
        use, note = committed_or_fresh("auto", "results/memory_depth_small.json", {**asked, key: value},
                                       ["res", "rev"])
        assert not use and key in note, f"a different {key} is measured fresh, and the note says why"
        with pytest.raises(ValueError, match="source fresh"):
            committed_or_fresh("committed", "results/memory_depth_small.json", {**asked, key: value}, ["res", "rev"])
    assert committed_or_fresh("auto", "results/no-such-file.json", asked, ["res"])[0] is False
    assert committed_or_fresh("fresh", "results/memory_depth_small.json", asked, ["res", "rev"])[0] is False


def test_relative_results_paths_resolve_from_any_working_directory(tmp_path, monkeypatch):
    from revgnn.book import accuracy_records, load_records

    here = accuracy_records("results/accuracy_cora.json")
    monkeypatch.chdir(tmp_path)
    assert accuracy_records("results/accuracy_cora.json") == here and here, "the same records from another folder"
    assert load_records("results/memory_depth_small.json"), "load_records reads from the repository root too"


def test_api_page_documents_every_config_field():
    import dataclasses

    from revgnn import ModelConfig
    from revgnn.training.config import TrainConfig

    page = (ROOT / "book" / "api.md").read_text()
    missing = [f.name for f in dataclasses.fields(ModelConfig) if f"| `{f.name}` |" not in page]
    assert not missing, f"the API page's ModelConfig table lists every field: {missing}"
    doc = TrainConfig.__doc__
    missing = [f.name for f in dataclasses.fields(TrainConfig) if f"{f.name}:" not in doc]
    assert not missing, f"TrainConfig's docstring (rendered on the API page) documents every field: {missing}"


def test_recorded_accuracy_commands_still_parse_and_build():
    """Each committed accuracy row names a revgnn train command; it must still be a valid one."""
    import shlex

    from revgnn.cli import build_parser
    from revgnn.commands.train import model_config, train_config
    from revgnn.data.datasets import load_dataset
    from revgnn.nn.presets import build_model, count_parameters
    from revgnn.training.config import adapt_model_config

    for path in sorted((ROOT / "results").glob("accuracy_*.json")):
        for row in json.loads(path.read_text())["rows"]:
            argv = shlex.split(row["command"])
            assert argv[:2] == ["revgnn", "train"], row["command"]
            args = build_parser().parse_args(argv[1:])
            mcfg, tcfg = model_config(args), train_config(args)
            assert tcfg.runs == len(row["seeds"]), f"{path.name} {row['name']}: --runs matches the seeds recorded"
            ds = load_dataset(tcfg.dataset, **tcfg.dataset_kwargs)
            model = build_model(adapt_model_config(mcfg, ds, tcfg))
            assert count_parameters(model) == row["params"], f"{path.name} {row['name']}: the command builds the model"


def test_checkpoints_page_cost_section_is_generated_from_the_record(tmp_path):
    """The "Check the published numbers" page includes its cost section, generated from
    results/official_inference.json: every row's layer times, peaks and extrapolation come from the record, and
    another record gives another text."""
    from revgnn.book.build import GENERATED_DIR, write_generated
    from revgnn.book.prose import official_cost

    page = (ROOT / "book" / "checkpoints.md").read_text()
    assert "```{include} ../_build/_generated/official_cost.md" in page, "the page includes the generated section"
    record = json.loads((ROOT / "results" / "official_inference.json").read_text())
    text = official_cost(record)
    for r in record["runs"]:
        ex = r["extrapolated"]
        assert ", ".join(f"{t:.1f}" for t in r["layer_seconds"]) in text, "each layer's time, as recorded"
        assert f"{ex['layers']} layers:" in text and f"({ex['seconds_per_layer']:.1f} s a layer)" in text
        assert f"peak {ex['peak_bytes'] / 1e9:.2f} GB" in text
    assert record["provenance"]["git_revision"][:7] in text, "the record's revision"
    # a different record: different numbers, a peak over the target and no 2-thread sentence
    fake = json.loads(json.dumps(record))
    fake["runs"] = [dict(fake["runs"][0], threads=1, layer_seconds=[1.4, 3.5, 3.5], rss_peak_after_layer_bytes=[
        6.1e9, 6.2e9, 6.2e9], extrapolated=dict(fake["runs"][0]["extrapolated"], seconds_per_layer=3.5,
                                                    seconds=7200.0, peak_bytes=6.2e9))]
    other = official_cost(fake)
    assert "1.4, 3.5, 3.5" in other and "2.0 h (3.5 s a layer)" in other and "over the 6 GB target" in other
    assert "Two threads" not in other
    # the build writes it where the page includes it
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "official_inference.json").write_text(json.dumps(fake))
    folder = write_generated(tmp_path)
    assert folder == tmp_path / GENERATED_DIR and (folder / "official_cost.md").read_text().strip() == other.strip()
