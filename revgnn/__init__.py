"""revgnn: grouped reversible GNNs with 1000 layers (Li, Müller, Ghanem, Koltun, ICML 2021), reproducibly."""
from .deq import ConvergenceWarning, DEQLayer, SolverStats, fixed_point
from .layers import DEQCell, GENBlock, shared_dropout_mask
from .models import DEQGNN, GraphHeads, ResGNN, RevGNN, WTResGNN, WTRevGNN
from .presets import PAPER_PARAMS, PRESETS, ModelConfig, build_model, count_parameters, get_preset, list_presets
from .reversible import ReversibleStack

__version__ = "0.1.0"

__all__ = [
    "ReversibleStack", "GENBlock", "DEQCell", "shared_dropout_mask", "DEQLayer", "SolverStats",
    "ConvergenceWarning", "fixed_point", "GraphHeads", "ResGNN", "RevGNN", "WTResGNN", "WTRevGNN", "DEQGNN",
    "ModelConfig", "build_model", "count_parameters", "get_preset", "list_presets", "PRESETS", "PAPER_PARAMS",
]
