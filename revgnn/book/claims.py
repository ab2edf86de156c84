"""The paper's claims, each checked by one rule: "Training Graph Neural Networks with 1000 Layers" (Li et al., 2021).

The paper's 112-layer comparison (its Fig. 1 and table) makes qualitative claims: reversible models at least match
their residual twins at a fraction of the memory, DEQ-GNN too needs a fraction of ResGNN's memory, and weight-tied
and DEQ models trade accuracy for parameters. :data:`CLAIMS` lists them; :func:`check_claims` checks every one on a
set of records with one rule (:func:`compare`): **a difference counts only beyond the larger seed std of the two
records**. Accuracy has a seed std (``test_std``); a parameter count is exact and one training step's peak memory is
the same for every seed, so their std is 0 unless a record carries one (``params_std``, ``peak_bytes_std``). A
difference in accuracy between single-seed records (no std) is not judged.

The same output is shown everywhere: the Fig. 1 and 112-layer pages (:func:`claims_markdown`), the claims overview
page (:func:`claims_table`), the ``claims`` list of ``results/accuracy_fig1.json`` (:func:`claim_records`, written
by ``benchmarks/accuracy.py``) and the ``results-claims`` passage of ``results/README.md``
(:mod:`revgnn.book.quotes`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .records import MODEL_NAMES, PAPER_112_LAYERS, _pct, markdown_table

__all__ = ["Claim", "CLAIMS", "compare", "check_claims", "claim_records", "claims_markdown", "claims_table"]

FIG1 = "fig1_auc_vs_memory"  # the page each claim's figure is on
FIGURE_NAMES = {FIG1: "Fig. 1"}  # how the overview links it


@dataclass(frozen=True)
class Claim:
    """One qualitative claim of the paper: ``model`` against ``baseline``.

    Args:
        key: a stable name, e.g. ``rev-matches-res``.
        kind: ``matches`` (accuracy not lower, beyond the std), ``less-memory`` (peak memory lower) or ``trade``
            (fewer parameters and a lower accuracy, both beyond the std).
        model, baseline: model kinds (keys of :data:`revgnn.book.records.MODEL_NAMES`).
        figure: the notebook stem of the page that plots it.
    """

    key: str
    kind: str
    model: str
    baseline: str
    figure: str = FIG1

    @property
    def statement(self) -> str:
        a, b = MODEL_NAMES[self.model], MODEL_NAMES[self.baseline]
        return {"matches": f"{a} at least matches {b}'s ROC-AUC",
                "less-memory": f"{a} trains in less memory than {b}",
                "trade": f"{a} trades accuracy for parameters against {b}"}[self.kind]


CLAIMS: tuple[Claim, ...] = (
    Claim("rev-matches-res", "matches", "rev", "res"),
    Claim("rev-less-memory-than-res", "less-memory", "rev", "res"),
    Claim("wt-rev-matches-wt-res", "matches", "wt-rev", "wt-res"),
    Claim("wt-rev-less-memory-than-wt-res", "less-memory", "wt-rev", "wt-res"),
    Claim("deq-less-memory-than-res", "less-memory", "deq", "res"),
    Claim("wt-res-trades-against-res", "trade", "wt-res", "res"),
    Claim("wt-rev-trades-against-rev", "trade", "wt-rev", "rev"),
    Claim("deq-trades-against-res", "trade", "deq", "res"),
)

# quantity -> (record key of the mean, key of its seed std or None for an exact/seed-independent value)
_QUANTITIES = {"accuracy": ("test", "test_std"), "params": ("params", "params_std"),
               "memory": ("peak_bytes", "peak_bytes_std")}


def _accuracy(record: dict) -> float | None:
    value = record.get("test", record.get("roc_auc"))
    return _pct(value)


def compare(a: dict, b: dict, quantity: str) -> dict | None:
    """The one rule: is ``a``'s quantity higher, lower or equal to ``b``'s, counting a difference only beyond the
    larger seed std of the two?

    Args:
        a, b: records; accuracy is ``test`` (± ``test_std``) or a single seed's ``roc_auc`` (a fraction or %).
        quantity: ``accuracy`` (in % points), ``params`` or ``memory`` (``peak_bytes``).

    Returns:
        ``{"a", "b", "gap" (a - b), "std" (the larger std, None when unknown), "outcome"}`` with outcome
        ``higher``, ``lower``, ``equal`` (within the std) or ``unknown`` (an accuracy without a seed std: one seed);
        None when either value is missing.
    """
    key, std_key = _QUANTITIES[quantity]
    if quantity == "accuracy":
        va, vb = _accuracy(a), _accuracy(b)
        stds = [a.get("test_std"), b.get("test_std")]
        std = None if any(s is None for s in stds) else max(_pct(s) if s > 0 else 0.0 for s in stds)
    else:
        va, vb = a.get(key), b.get(key)
        std = max(a.get(std_key) or 0, b.get(std_key) or 0)
    if va is None or vb is None:
        return None
    gap = va - vb
    if std is None:
        outcome = "unknown"
    else:
        outcome = "higher" if gap > std else "lower" if gap < -std else "equal"
    return {"a": va, "b": vb, "gap": gap, "std": std, "outcome": outcome}


def _verdict(claim: Claim, by_model: dict) -> dict:
    a, b = by_model.get(claim.model), by_model.get(claim.baseline)
    result = {"key": claim.key, "claim": claim.statement, "figure": claim.figure, "model": claim.model,
              "baseline": claim.baseline, "kind": claim.kind}
    if a is None or b is None:
        return result | {"holds": None, "finding": "not measured (a family is missing)", "numbers": {}}
    tied = next((r for r in (a, b) if r["model"].startswith("wt-")), None)
    if tied is not None and (tied.get("num_layers") or 3) <= 2 and claim.baseline in ("res", "rev"):
        return result | {"holds": None, "numbers": {},
                         "finding": f"not judged at L = {tied['num_layers']}: a weight-tied model of 2 layers or fewer "
                                    "has as many distinct layers as its untied twin (tying starts at L = 3)"}
    accuracy, memory, params = (compare(a, b, q) for q in ("accuracy", "memory", "params"))
    if claim.kind == "matches":
        parts = {"accuracy": accuracy}
        holds = None if accuracy is None or accuracy["outcome"] == "unknown" else accuracy["outcome"] != "lower"
    elif claim.kind == "less-memory":
        parts = {"memory": memory}
        holds = None if memory is None else memory["outcome"] == "lower"
    else:
        parts = {"params": params, "accuracy": accuracy}
        if params is None or accuracy is None:
            holds = None
        elif params["outcome"] != "lower":
            holds = False
        else:
            holds = None if accuracy["outcome"] == "unknown" else accuracy["outcome"] == "lower"
    return result | {"holds": holds, "finding": _finding(claim, parts, holds), "numbers": parts}


def _finding(claim: Claim, parts: dict, holds: bool | None) -> str:
    words = []
    for quantity, c in parts.items():
        if c is None:
            words.append(f"{quantity} not recorded")
        elif quantity == "accuracy":
            std = "one seed, no std" if c["std"] is None else f"larger seed std {c['std']:.1f}"
            words.append(f"{c['a']:.1f} vs {c['b']:.1f} % ROC-AUC, {c['gap']:+.1f} points, {std}")
        elif quantity == "memory":
            words.append(f"{c['a'] / 2**20:.1f} vs {c['b'] / 2**20:.1f} MiB peak, {c['a'] / c['b']:.2f} x")
        else:
            words.append(f"{c['a']:,} vs {c['b']:,} parameters, {c['a'] / c['b']:.2f} x")
    return "; ".join(words)


def check_claims(records: Sequence[dict], claims: Sequence[Claim] = CLAIMS) -> list[dict]:
    """Check every claim on ``records`` (one per model kind; committed rows with ``test`` ± ``test_std`` or live
    records with ``roc_auc``), with the rule of :func:`compare`.

    Returns:
        One dict per claim: ``key``, ``claim`` (the statement), ``figure``, ``holds`` (True, False, or None when it
        cannot be judged), ``finding`` (the numbers in words) and ``numbers`` (the comparisons).
    """
    by_model: dict[str, dict] = {}
    for r in records:
        by_model.setdefault(r["model"], r)
    return [_verdict(c, by_model) for c in claims]


def claim_records(rows: Sequence[dict]) -> list[dict]:
    """The ``claims`` list of a committed record: :func:`check_claims` without the derived display fields."""
    return [{k: v for k, v in c.items() if k not in ("figure", "model", "baseline", "kind")}
            for c in check_claims(rows)]


def verdict_word(holds: bool | None) -> str:
    return {True: "holds", False: "does not hold at our scale", None: "not judged"}[holds]


def claims_markdown(results: Sequence[dict]) -> str:
    """The claims as a Markdown list, one line each: the claim, the verdict in bold, the numbers."""
    return "\n".join(f"- {c['claim']}: **{verdict_word(c['holds'])}** ({c['finding']})." for c in results)


def paper_numbers(claim: Claim, paper: Sequence[dict] = PAPER_112_LAYERS) -> str:
    """The paper's numbers behind ``claim`` at D = 64 and L = 112, with their confidence marks."""
    rows = {p["model"]: p for p in paper if p["hidden_channels"] == 64}
    a, b = rows.get(claim.model), rows.get(claim.baseline)
    if a is None or b is None:
        return "–"
    auc = f"{a['roc_auc']:.2f} vs {b['roc_auc']:.2f} % [{a['mark']}]"
    if claim.kind == "matches":
        return auc
    if claim.kind == "less-memory":
        return f"{a['memory_gb']:.2f} vs {b['memory_gb']:.2f} GB [{a['mark']}]"
    return f"{a['params']:,} [{a['params_mark']}] vs {b['params']:,} [{b['params_mark']}] params; {auc}"


def claims_table(results: Sequence[dict], paper: Sequence[dict] = PAPER_112_LAYERS) -> str:
    """The claims overview: one row per claim with the paper's numbers (L = 112, D = 64, marked), ours, the
    verdict and a link to the page of its figure (MyST ``{doc}`` links, relative to ``book/``)."""
    by_key = {c.key: c for c in CLAIMS}
    rows = [{"claim": c["claim"], "paper": paper_numbers(by_key[c["key"]], paper) if c["key"] in by_key else "–",
             "ours": c["finding"], "verdict": f"**{verdict_word(c['holds'])}**",
             "figure": f"{{doc}}`{FIGURE_NAMES.get(c['figure'], c['figure'])} <_executed/{c['figure']}>`"}
            for c in results]
    return markdown_table(rows, [("claim", "paper's claim"), ("paper", "paper (L=112, D=64)"), ("ours", "ours"),
                                 ("verdict", "verdict"), ("figure", "figure")])
