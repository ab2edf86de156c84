"""revgnn: grouped reversible GNNs with 1000 layers (Li, Müller, Ghanem, Koltun, ICML 2021), reproducibly."""
from .data import DATASETS, GraphDataset, evaluate, load_dataset
from .deq import ConvergenceWarning, DEQLayer, SolverStats, fixed_point
from .layers import DEQCell, GENBlock, shared_dropout_mask
from .memory import SavedTensorMeter, StepMemory, measure_config, measure_in_subprocess, measure_step
from .models import DEQGNN, GraphHeads, ResGNN, RevGNN, WTResGNN, WTRevGNN
from .partition import partition_subgraphs, random_partition
from .presets import PAPER_PARAMS, PRESETS, ModelConfig, build_model, count_parameters, get_preset, list_presets
from .reversible import ReversibleStack
from .synthetic import SyntheticProteinsConfig, generate_synthetic_proteins
from .train import TrainConfig, fit, predict

__version__ = "0.1.0"

__all__ = [
    "ReversibleStack", "GENBlock", "DEQCell", "shared_dropout_mask", "DEQLayer", "SolverStats",
    "ConvergenceWarning", "fixed_point", "GraphHeads", "ResGNN", "RevGNN", "WTResGNN", "WTRevGNN", "DEQGNN",
    "ModelConfig", "build_model", "count_parameters", "get_preset", "list_presets", "PRESETS", "PAPER_PARAMS",
    "load_dataset", "GraphDataset", "evaluate", "DATASETS", "SyntheticProteinsConfig", "generate_synthetic_proteins",
    "random_partition", "partition_subgraphs", "TrainConfig", "fit", "predict",
    "SavedTensorMeter", "StepMemory", "measure_step", "measure_config", "measure_in_subprocess",
]
