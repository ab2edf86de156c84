"""Fig. 5's measurement (revgnn.measure.batching): the products-shaped graph, its random part, and the figure's
claims on a tiny graph: RevGNN's memory is flat in depth, ResGNN's grows, and a step predicted not to fit is not run."""
import torch

from revgnn.measure.batching import PRODUCTS, batching_records, products_graph, random_part


def test_products_graph_has_the_schema_and_is_destination_sorted():
    g = products_graph(500, 500 + 2 * 6000, seed=1)
    ei = g.edge_index
    assert g.x.shape == (500, PRODUCTS["num_features"]) and g.y.shape == (500,)
    assert int(g.y.max()) < PRODUCTS["num_classes"] and ei.size(1) == 12_500
    assert bool((ei[1, 1:] >= ei[1, :-1]).all()), "sorted by destination (the CSR aggregation needs no sort)"
    pairs = set(map(tuple, ei.t().tolist()))
    assert all((i, i) in pairs for i in range(500)), "one self-loop per node"
    assert all((d, s) in pairs for s, d in list(pairs)[:200]), "every edge in both directions"


def test_a_random_part_keeps_a_tenth_of_the_nodes_and_about_a_hundredth_of_the_edges():
    g = products_graph(2000, 2000 + 2 * 50_000, seed=0)
    part = random_part(g, 10, seed=0)
    assert part.num_nodes == 200
    other = part.edge_index.size(1) - 200  # without the self-loops
    assert 0.5 * 1000 < other < 1.5 * 1000, "about (E - N) / 100 edges between the part's nodes"


def test_revgnn_is_flat_resgnn_grows_and_a_predicted_oom_is_not_run():
    g = products_graph(1500, 1500 + 2 * 20_000, seed=0)
    recs = batching_records(("res", "rev"), (1, 2, 4), g, hidden_channels=32, repeats=0, warmup=0)
    by = {(r["model"], r["batching"], r["depth"]): r for r in recs}
    above = {k: r["peak_bytes"] - r["state_bytes"] for k, r in by.items()}
    for batching in ("full", "parts"):
        assert above[("rev", batching, 4)] <= 1.05 * above[("rev", batching, 2)], \
            f"RevGNN's peak above the model state is flat from L = 2 to 4 ({batching})"
        assert above[("res", batching, 4)] > 1.2 * above[("res", batching, 2)], f"ResGNN's grows ({batching})"
    assert by[("rev", "parts", 4)]["num_nodes"] == 150, "the mini-batch is one part of ten"
    limit = (by[("res", "full", 2)]["peak_bytes"] + by[("res", "full", 4)]["peak_bytes"]) / 2
    capped = batching_records(("res",), (1, 2, 4, 8), g, hidden_channels=32, repeats=0, warmup=0,
                              limit_bytes=limit, batchings=("full",))
    assert [r["oom"] for r in capped] == [False, False, True, True], "ResGNN stops fitting under the limit"
    assert capped[2].get("oom_predicted") and capped[2]["peak_bytes"] is None, "L = 4 predicted above it, not run"
    assert capped[2]["predicted_peak_bytes"] > limit


def test_step_memory_takes_class_ids():
    from revgnn.measure.batching import batching_config
    from revgnn.measure.memory import measure_config

    g = products_graph(300, 300 + 2 * 2000, seed=0)
    rec = measure_config(batching_config("rev", 2, 16), 0, 0, data=g, repeats=0, warmup=0)
    assert rec.peak_bytes > rec.baseline_bytes and rec.step_seconds > 0, "cross-entropy on (N,) class ids"
    assert torch.is_tensor(g.y) and g.y.dim() == 1
