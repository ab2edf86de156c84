"""Notebook parameters of the revgnn book ("Training Graph Neural Networks with 1000 Layers", Li et al., ICML 2021).

Every notebook of the book has one ``parameters`` cell; papermill injects other values after it. The checks here stop
a notebook in its first cell with one line that names the parameter and what to pass: a misspelled name
(:func:`check_parameters`, :func:`check_parameter_names` before a build runs anything), a value of the wrong type,
out of range or not among the choices (:func:`check_range`, :func:`check_choice`), a device that is not here
(:func:`notebook_device`), a results file that is not a JSON record (:func:`check_results_file`) or a place to save
that is not a file name (:func:`check_save_to`). The lowest layer of :mod:`revgnn.book`: it imports none of it.
"""
from __future__ import annotations

import json
from pathlib import Path

import yaml

__all__ = ["BookError", "notebook_parameters", "check_parameter_names", "check_parameters", "check_choice",
           "check_range", "check_results_file", "check_save_to", "notebook_device", "notebook_dataset"]


class BookError(RuntimeError):
    """A step of the book build failed; the message says which and how to fix it."""


def notebook_parameters(path: str | Path) -> dict[str, dict]:
    """The parameters of a notebook's ``parameters`` cell as papermill sees them: name -> ``{"inferred_type_name",
    "default", "help"}`` (what ``papermill --help-notebook`` prints)."""
    import papermill

    return dict(papermill.inspect_notebook(str(path)))


def check_parameter_names(path: str | Path, parameters: dict) -> None:
    """Stop before a notebook runs when a parameter name is not one of its ``parameters`` cell (a misspelling).

    Raises:
        BookError: naming the unknown parameters, the closest known names and how to list them all.
    """
    known = notebook_parameters(path)
    unknown = sorted(set(parameters) - set(known))
    if unknown:
        raise BookError(_unknown_message(Path(path).name, unknown, known))


def _unknown_message(notebook: str, unknown: list[str], known) -> str:
    import difflib

    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, list(known), n=1)
        hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return (f"{notebook} has no parameter {', '.join(hints)}; its parameters are {sorted(known)} "
            f"(papermill --help-notebook {notebook} lists them with their types)")


def _assignments(source: str) -> dict:
    """Names assigned in a parameters cell and their literal values (``name = value`` or ``name: type = value``)."""
    import ast

    values = {}
    for node in ast.parse(source).body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else getattr(
            node, "target", None)
        if isinstance(target, ast.Name) and getattr(node, "value", None) is not None:
            try:
                values[target.id] = ast.literal_eval(node.value)
            except ValueError:
                values[target.id] = None
    return values


def check_parameters(namespace: dict) -> None:
    """Check, inside a notebook, the parameters papermill injected: every name must be one of the ``parameters``
    cell, with the type of its default. Call it first thing after the parameters: ``check_parameters(globals())``.

    A list parameter given as text (``papermill -p depths "[1, 2, 4]"``: ``-p`` passes lists as strings) is read
    as YAML and replaced in ``namespace``. Without injected parameters (nbmake, an interactive session) it checks
    nothing. papermill's injected cell is found in IPython's input history: it opens with ``# Parameters`` and
    directly follows the notebook's own ``parameters`` cell.

    Raises:
        ValueError: an unknown (misspelled) name, or a value of the wrong type; the message says what to pass.
    """
    history = namespace.get("In") or []
    injected_at = next((i for i in range(len(history) - 1, 0, -1)
                        if history[i].lstrip().startswith("# Parameters")), None)
    if injected_at is None:
        return
    defaults, injected = _assignments(history[injected_at - 1]), _assignments(history[injected_at])
    unknown = sorted(set(injected) - set(defaults))
    if unknown:
        raise ValueError(_unknown_message("this notebook", unknown, defaults))
    for name, value in injected.items():
        default = defaults[name]
        if isinstance(default, list) and isinstance(value, str):
            value = yaml.safe_load(value)
            namespace[name] = value
        kinds = {type(default), type(value)}
        if type(value) is not type(default) and kinds != {int, float} and default is not None:
            example = "[1, 2, 4]" if isinstance(default, list) else repr(default)
            raise ValueError(f"parameter {name}={value!r} must be of type {type(default).__name__}, like its default "
                             f"{example}")
        if isinstance(default, float) and isinstance(value, int):
            namespace[name] = float(value)


def check_choice(name: str, value, choices) -> None:
    """Stop a notebook early: ValueError unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"parameter {name}={value!r} is not allowed; choose one of {list(choices)}")


def check_range(name: str, value, low=None, high=None, integer: bool = False) -> None:
    """Stop a notebook early: ValueError unless ``low <= value <= high`` (and an int when ``integer``)."""
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise ValueError(f"parameter {name}={value!r} must be {'an integer' if integer else 'a number'}")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"
        raise ValueError(f"parameter {name}={value!r} is out of range; it must lie in {bounds}")


def notebook_device(device: str):
    """The torch device a notebook asked for; ValueError when it is not available here."""
    import torch

    check_choice("device", device, ("cpu", "cuda"))
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("parameter device='cuda' but torch sees no CUDA device here; use device='cpu' or a GPU "
                         "machine (params/paper/ is meant for one)")
    return torch.device(device)


def notebook_dataset(dataset: str, num_nodes: int, num_edges: int, seed: int = 0, data_root: str = "",
                     **synthetic):
    """Load a notebook's dataset: ``synthetic-proteins`` is sized by ``num_nodes``/``num_edges`` and seeded (and
    takes further :class:`~revgnn.data.synthetic.SyntheticProteinsConfig` fields, e.g. ``max_hops``), the other names
    (``ogbn-proteins``, ``ppi``, ...) ignore those; ``data_root`` '' means the package default."""
    from revgnn.data.datasets import DATASETS, load_dataset

    if dataset == "synthetic-proteins":
        check_range("num_nodes", num_nodes, 80, None, integer=True)
        check_range("num_edges", num_edges, 2, None, integer=True)
        if num_edges % 2:
            raise ValueError(f"parameter num_edges={num_edges} must be even (edges are stored in both directions)")
        for name in ("max_hops", "pathway_length"):
            if name in synthetic:
                check_range(name, synthetic[name], 1 if name == "max_hops" else 2, None, integer=True)
        return load_dataset(dataset, root=data_root or None, num_nodes=num_nodes, num_edges=num_edges, seed=seed,
                            **synthetic)
    if dataset not in DATASETS and not dataset.startswith("planetoid:"):
        raise ValueError(f"parameter dataset={dataset!r} is not allowed; choose one of {list(DATASETS)}")
    return load_dataset(dataset, root=data_root or None)


def check_results_file(name: str, path: Path) -> dict | list:
    """The content of a committed results file given as parameter ``name``; ValueError unless it is JSON.

    Args:
        name: the parameter, e.g. ``results_file``.
        path: the file, already resolved against the repository root.
    """
    try:
        return json.loads(Path(path).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(f"parameter {name}={str(path)!r} is not a JSON results file; give one of results/*.json, "
                         "e.g. results/memory_depth_small.json") from None
    except IsADirectoryError:
        raise ValueError(f"parameter {name}={str(path)!r} is a folder; give one of results/*.json, "
                         "e.g. results/memory_depth_small.json") from None


def check_save_to(name: str, value: str, target: Path | None = None) -> None:
    """Stop a notebook early: ValueError unless ``value`` ('' = save nothing) names a ``.json`` file in an existing
    folder (``/`` or a folder would otherwise fail only after the measurement, with an unclear message).

    Args:
        name: the parameter, e.g. ``save_to``; value: as the notebook was given it.
        target: where it will be written (a relative ``value`` resolved against the repository root).
    """
    if not value:
        return
    target = Path(value).expanduser() if target is None else Path(target)
    if target.is_dir() or target.suffix != ".json" or not target.parent.is_dir():
        raise ValueError(f"parameter {name}={value!r} must name a .json file in an existing folder, "
                         "e.g. /tmp/records.json")
