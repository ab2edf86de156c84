"""revgnn: grouped reversible GNNs with 1000 layers (Li, Müller, Ghanem, Koltun, ICML 2021), reproducibly.

It is four packages by role, each importing only from those before it: ``revgnn.nn`` (the networks),
``revgnn.data``, ``revgnn.training`` and ``revgnn.measure``; on top of them ``official`` (the authors' checkpoints),
the command line (``cli``, ``commands``) and the book (``book``). ``tests/test_layout.py`` holds the direction.

The names below are imported on first use (PEP 562), so ``revgnn --help`` and argument errors answer without
importing torch.
"""
import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "nn.reversible": ("ReversibleStack",),
    "nn.rev_wrapper": ("GroupAddRev", "ReversibleSequential"),
    "nn.gat": ("BoTGATConv",),
    "nn.revgat": ("RevGAT",),
    "nn.revsage": ("RevSAGE", "ResSAGE"),
    "nn.layers": ("DEQCell", "GENBlock", "shared_dropout_mask"),
    "nn.deq": ("ConvergenceWarning", "DEQLayer", "SolverStats", "fixed_point"),
    "nn.models": ("DEQGNN", "GraphHeads", "ResGNN", "RevGNN", "WTResGNN", "WTRevGNN"),
    "nn.presets": ("PAPER_PARAMS", "PRESETS", "ModelConfig", "build_model", "count_parameters", "get_preset",
                   "list_presets"),
    "data.datasets": ("DATASETS", "GraphDataset", "evaluate", "load_dataset"),
    "data.datafiles": ("DatasetError",),
    "data.synthetic": ("SyntheticProteinsConfig", "generate_synthetic_proteins"),
    "data.partition": ("partition_subgraphs", "random_partition"),
    "training.config": ("TrainConfig",),
    "training.loop": ("fit",),
    "training.protocol": ("predict",),
    "measure.memory": ("SavedTensorMeter", "StepMemory", "measure_config", "measure_in_subprocess", "measure_step"),
    "official": ("load_checkpoint",),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [
    "ReversibleStack", "GroupAddRev", "ReversibleSequential", "BoTGATConv", "RevGAT", "RevSAGE", "ResSAGE",
    "GENBlock", "DEQCell", "shared_dropout_mask", "DEQLayer", "SolverStats",
    "ConvergenceWarning", "fixed_point", "GraphHeads", "ResGNN", "RevGNN", "WTResGNN", "WTRevGNN", "DEQGNN",
    "ModelConfig", "build_model", "count_parameters", "get_preset", "list_presets", "PRESETS", "PAPER_PARAMS",
    "load_dataset", "GraphDataset", "evaluate", "DATASETS", "DatasetError", "SyntheticProteinsConfig",
    "generate_synthetic_proteins",
    "random_partition", "partition_subgraphs", "TrainConfig", "fit", "predict",
    "SavedTensorMeter", "StepMemory", "measure_step", "measure_config", "measure_in_subprocess",
    "load_checkpoint",
]


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    try:  # a submodule, as ``revgnn.training`` after a bare ``import revgnn``
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as err:
        if err.name != f"{__name__}.{name}":
            raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *__all__})
