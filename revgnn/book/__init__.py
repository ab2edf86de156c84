"""The book layer of revgnn ("Training Graph Neural Networks with 1000 Layers", Li et al., ICML 2021).

Modules, imported one way (a module imports only those before it):

- :mod:`~revgnn.book.params`: the notebooks' parameter checks;
- :mod:`~revgnn.book.records`: the paper's numbers and our records (load, measure, tabulate);
- :mod:`~revgnn.book.claims`: the paper's claims, each checked by one rule;
- :mod:`~revgnn.book.figures`: plots and tables;
- :mod:`~revgnn.book.prose`: the "Reading the figure" text, computed from the plotted records;
- :mod:`~revgnn.book.equilibrium`: whether DEQ-GNN reaches its equilibrium, from the committed solver statistics;
- :mod:`~revgnn.book.sources`: committed records or a fresh run, "plotted from" tables, rerun notes;
- :mod:`~revgnn.book.headlines` and :mod:`~revgnn.book.quotes`: every figure of ours that ``README.md``,
  ``results/README.md`` and the static pages state, generated from the registered records
  (``python -m revgnn.book.quotes``);
- :mod:`~revgnn.book.other_datasets`: ogbn-arxiv and ogbn-products: the paper's numbers, full-run commands, Fig. 5;
- :mod:`~revgnn.book.offline`: MathJax from the build, and no page loading anything from another host;
- :mod:`~revgnn.book.trace`: what a notebook's kernel reads (an audit hook), the inputs of its cache key;
- :mod:`~revgnn.book.cache`: a notebook runs again only when its notebook, parameters, inputs or environment changed;
- :mod:`~revgnn.book.environment`: the page that says what built the book;
- :mod:`~revgnn.book.report`: the execution report, one row per notebook;
- :mod:`~revgnn.book.launch`: Binder and Colab buttons where a repository is named;
- :mod:`~revgnn.book.extension`: the book's Sphinx extension (one copy of each script; launch buttons that open
  ``notebooks/``);
- :mod:`~revgnn.book.browser`: every built page opened in Chromium and checked (``make test``);
- :mod:`~revgnn.book.execute`: run the notebooks with papermill, or reuse their stored runs;
- :mod:`~revgnn.book.build`: execute the notebooks and render the book (``python -m revgnn.book``).

Notebooks import the public names from here (``from revgnn.book import memory_panels``); each is loaded from its
module on first use (PEP 562), so checking a parameter does not import matplotlib.

Imports: everything below (``revgnn.nn``, ``data``, ``training``, ``measure``) and, to rerun a committed record, the
command line's parser (``revgnn.cli``, ``revgnn.commands.train``); nothing in revgnn imports the book.
"""
import importlib

_EXPORTS = {
    "params": ("BookError", "notebook_parameters", "check_parameter_names", "check_parameters", "check_choice",
               "check_range", "check_results_file", "check_save_to", "notebook_device", "notebook_dataset"),
    "records": ("REPO_ROOT", "FRESH", "MODEL_NAMES", "PAPER_MARKS", "PAPER_112_LAYERS", "PAPER_MAIN", "resolve_path",
                "load_records", "memory_records", "solver_misses", "solver_summary",
                "accuracy_records", "live_record", "markdown_table"),
    "claims": ("Claim", "CLAIMS", "compare", "check_claims", "claim_records", "claims_markdown", "claims_table"),
    "figures": ("MODEL_STYLES", "provenance_line", "plot_auc_vs_memory", "memory_panels", "plot_metric_vs_depth",
                "memory_table", "model_label", "accuracy_table", "series_colour", "series_colours"),
    "prose": ("memory_reading", "depth_reading", "reproduce_reading", "deq_solver_note", "deq_caps_reading"),
    "equilibrium": ("deq_convergence_reading",),
    "sources": ("memory_file_setting", "committed_or_fresh", "plotted_from", "describe_values", "memory_comparison",
                "accuracy_results_table", "rerun_note"),
    "other_datasets": ("PAPER_OTHER", "FULL_RUN_COMMANDS", "other_datasets_table", "full_run_commands",
                       "batching_panels", "batching_table", "batching_reading", "batching_setting",
                       "batching_file", "batching_extrapolation"),
    "execute": ("page_stamp", "execute_notebooks"),
    "build": ("main",),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = [name for names in _EXPORTS.values() for name in names]


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *__all__})
