"""The authors' released RevGNN checkpoints (Li et al., ICML 2021) as :class:`~revgnn.nn.models.RevGNN` models.

The official code (lightaime/deep_gcns_torch, ``examples/ogb_eff/ogbn_proteins``, commit 4f6681e) saves
``{'epoch', 'model_state_dict', 'optimizer_state_dict', 'loss'}`` with ``torch.save``; its ``RevGCN`` names its
tensors as below (l = layer, i = group), and :func:`load_checkpoint` maps each one, exactly once, to revgnn's:

=====================================================  =============================================
official ``RevGCN``                                     revgnn ``RevGNN``
=====================================================  =============================================
``node_one_hot_encoder`` Linear(8, 8)                   ``heads.species_encoder`` (columns by taxon id)
``node_features_encoder`` Linear(16, D)                 ``heads.node_encoder``
``edge_encoder`` Linear(8, D)                           ``heads.edge_encoder``
``last_norm`` LayerNorm(D)                              ``heads.out_norm``
``node_pred_linear`` Linear(D, T)                       ``heads.out_lin``
``gcns.{l}._fn.Fms.{i}.norm`` LayerNorm(D/C)            ``stack.layers.{l}.{i}.norm``
``gcns.{l}._fn.Fms.{i}.gcn.edge_encoder`` Lin(D, D/C)   ``stack.layers.{l}.{i}.conv.lin_edge``
``gcns.{l}._fn.Fms.{i}.gcn.mlp.{0,1,3}``                ``stack.layers.{l}.{i}.conv.mlp.{0,1,4}``
=====================================================  =============================================

Node input. Both codes feed ``[x | species encoding]`` to the node encoder, with x the sum of each node's incident
edge features over ``edge_index[0]`` (the official ``extract_node_features('add')``; revgnn's ogbn-proteins loader).

Species. The official code numbers species with scikit-learn's ``LabelEncoder`` on ``taxon % max(taxon)``, so the
largest taxon id (E. coli, 511145, which becomes 0) is one-hot column 0 and the others follow in increasing order;
revgnn numbers species by sorted taxon id, so E. coli is species 7. The species encoder's input columns are permuted
by taxon id (:func:`official_species_order`).

The checkpoint is read with ``torch.load(weights_only=True)``: a file that holds anything but tensors and plain
containers is refused, and no code in it runs. Each tensor must be dense, hold data, be real floating point and
finite (:func:`check_weights`), and each layer must have its weight and its bias; a refusal is one
:class:`CheckpointError` line naming the file and the tensor.
"""
from __future__ import annotations

import os
import pickle
import re
import warnings
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

__all__ = ["OGBN_PROTEINS_TAXA", "CheckpointError", "official_species_order", "read_official_state",
           "check_weights", "convert_state_dict", "model_from_state", "load_checkpoint", "on_each_layer"]

OGBN_PROTEINS_TAXA = (3702, 4932, 6239, 7227, 7955, 9606, 10090, 511145)  # NCBI taxon ids of the 8 species, sorted
OFFICIAL_REPO = "lightaime/deep_gcns_torch"
OFFICIAL_COMMIT = "4f6681eee2290e217bda941b5536452a7c09decb"

_HEADS = {"node_one_hot_encoder": "heads.species_encoder", "node_features_encoder": "heads.node_encoder",
          "edge_encoder": "heads.edge_encoder", "last_norm": "heads.out_norm", "node_pred_linear": "heads.out_lin"}
_BLOCK = {"norm": "norm", "gcn.edge_encoder": "conv.lin_edge", "gcn.mlp.0": "conv.mlp.0", "gcn.mlp.1": "conv.mlp.1",
          "gcn.mlp.3": "conv.mlp.4"}
_BLOCK_KEY = re.compile(r"^gcns\.(\d+)\._fn\.Fms\.(\d+)\.(.+)\.(weight|bias)$")
_REVGNN_BLOCK_KEY = re.compile(r"^stack\.layers\.(\d+)\.(\d+)\.(.+)\.(weight|bias)$")
_LINEAR_WEIGHTS = ("node_one_hot_encoder.weight", "node_features_encoder.weight", "edge_encoder.weight",
                   "node_pred_linear.weight")  # the sizes _shape_of reads: each (out, in)


class CheckpointError(ValueError):
    """A file that is not a usable official RevGNN checkpoint; the message says what was found and what to do."""


_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.save's pre-zip format opens with this number, pickled (protocol 2)


def _is_plain_pickle(path: str | os.PathLike) -> bool:
    """Whether ``path`` was written by :mod:`pickle` (protocol 2 or later) rather than by ``torch.save`` (a zip, or
    the legacy format that opens with torch's pickled magic number)."""
    with open(path, "rb") as f:
        head = f.read(14)
    legacy = head[2:4] == b"\x8a\x0a" and int.from_bytes(head[4:14], "little") == _LEGACY_MAGIC
    return head[:1] == b"\x80" and not legacy


def _load_quietly(path: str | os.PathLike, map_location="cpu"):
    """``torch.load(path, weights_only=True)`` without torch's warnings (e.g. its two lines on a plain pickle's
    protocol): the caller's one line says what the file is."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.load(path, map_location=map_location, weights_only=True)


def _not_torch_save(path: str | os.PathLike, advice: str) -> CheckpointError:
    return CheckpointError(f"{path} is a plain Python pickle, not a torch.save checkpoint; revgnn reads only "
                           f"torch.save files, with weights_only, since a pickle could run code (nothing in it was "
                           f"executed): {advice}")


def official_species_order(taxa: Sequence[int]) -> list[int]:
    """The taxon ids in the official code's one-hot column order: ``LabelEncoder`` sorts ``taxon % max(taxa)``.

    >>> official_species_order([3702, 4932, 6239, 7227, 7955, 9606, 10090, 511145])[:2]
    [511145, 3702]
    """
    taxa = sorted(int(t) for t in set(taxa))
    top = max(taxa)
    return sorted(taxa, key=lambda t: t % top)


def check_weights(weights: Mapping, path: str, like: Mapping[str, Tensor] | None = None,
                  advice: str = "the file is damaged or was edited: download it again") -> None:
    """Refuse, naming the file and the tensor, what ``load_state_dict`` would turn into a traceback or copy without a
    word: a value that is not a tensor, a sparse (or other non-strided) layout, a meta tensor (a shape without data),
    a complex, integer or bool dtype where the weights are floats (copying would drop the imaginary part or pass
    integers off as weights), and NaN or infinite values, also those a float64 value becomes in the float32 model.
    A real floating dtype other than the model's is converted as ``load_state_dict`` converts it (float16 and
    bfloat16 exactly, float64 to the nearest float32).

    Args:
        weights: Name -> tensor, as read from ``path``.
        path: Named in errors.
        like: The model's own state dict: the names, shapes and dtypes to expect (None: floating-point tensors of any
            name and shape).
        advice: What the user can do, ending each error line.

    Raises:
        CheckpointError: the first problem, in one line.
    """
    if like is not None:
        missing, extra = sorted(set(like) - set(weights), key=str), sorted(set(weights) - set(like), key=str)
        if missing or extra:
            which, names = ("is missing", missing) if missing else ("has no place in the model", extra)
            raise CheckpointError(f"{path}: tensor {names[0]!r} {which} ({len(names)} such tensors); {advice}")
    for name, value in weights.items():
        where = f"{path}: tensor {name!r}"
        if not isinstance(value, Tensor):
            raise CheckpointError(f"{where} is of type {type(value).__name__}, not a tensor; {advice}")
        if value.layout != torch.strided or value.is_nested:
            raise CheckpointError(f"{where} is stored as {value.layout} ({'nested' if value.is_nested else 'sparse'}); "
                                  f"revgnn loads dense tensors only and converts none; {advice}")
        if value.is_meta:
            raise CheckpointError(f"{where} is a meta tensor: a shape without data, so there are no weights to load; "
                                  f"{advice}")
        want = torch.float32 if like is None else like[name].dtype
        if (not value.is_floating_point()) if want.is_floating_point else value.dtype != want:
            raise CheckpointError(f"{where} has dtype {value.dtype} where the model holds {want}; revgnn casts no "
                                  f"complex, integer or bool tensor to weights; {advice}")
        if like is not None and value.shape != like[name].shape:
            raise CheckpointError(f"{where} has shape {tuple(value.shape)}, the model's is {tuple(like[name].shape)}; "
                                  f"{advice}")
        if want.is_floating_point and not bool(torch.isfinite(value.to(want)).all()):
            beyond = bool(torch.isfinite(value).all())  # finite in its own dtype: too large for the model's
            raise CheckpointError(f"{where} holds " + (f"values beyond {want}'s range (NaN or infinite in the model)"
                                                       if beyond else "NaN or infinite values") + f"; {advice}")


def read_official_state(path: str | os.PathLike, map_location="cpu") -> dict[str, Tensor]:
    """The official model's state dict from ``path`` (``{'model_state_dict': ...}`` or a bare state dict), each tensor
    checked by :func:`check_weights` (dense, with data, real floats, finite).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: a truncated or damaged file, a pickle that would run code or build other objects, a
            file without tensors, or a tensor :func:`check_weights` refuses.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint at {path}; download revgnn_deep.pth or revgnn_wide.pth (links in "
                                f"{OFFICIAL_REPO}/examples/ogb_eff/ogbn_proteins/README.md)")
    try:
        obj = _load_quietly(path, map_location)
    except pickle.UnpicklingError as err:  # weights_only refused a global (a payload, a non-tensor object) or junk
        if _is_plain_pickle(path):
            raise _not_torch_save(path, "save the state dict with torch.save") from None
        found = re.search(r"GLOBAL (\S+)", str(err))
        if found is None:
            raise CheckpointError(f"{path} is not a readable torch checkpoint (truncated or damaged?); download it "
                                  "again") from None
        raise CheckpointError(f"{path} holds Python objects besides tensors ({found.group(1)}), which revgnn does "
                              "not load (it could run code); nothing in it was executed") from None
    except Exception as err:  # a truncated zip, an empty file: torch raises many types
        if _is_plain_pickle(path):  # protocol 2: torch takes it for its legacy format, whose magic number is absent
            raise _not_torch_save(path, "save the state dict with torch.save") from None
        raise CheckpointError(f"{path} is not a readable torch checkpoint (truncated or damaged? "
                              f"{type(err).__name__}); download it again") from None
    state = obj.get("model_state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not state or not all(isinstance(v, Tensor) for v in state.values()):
        kind = type(obj).__name__ if not isinstance(obj, dict) else f"a dict with keys {sorted(obj)[:6]}"
        raise CheckpointError(f"{path} holds {kind}, not a model state dict; give the official revgnn_deep.pth or "
                              "revgnn_wide.pth")
    odd = next((k for k in state if not isinstance(k, str)), None)
    if odd is not None:
        raise CheckpointError(f"{path}: its state dict has the key {odd!r}, which is not a tensor name; give the "
                              "official revgnn_deep.pth or revgnn_wide.pth")
    check_weights(state, path)
    return {k.removeprefix("module."): v for k, v in state.items()}


def _revgnn_name(key: str) -> str | None:
    """The revgnn ``RevGNN`` name of an official ``RevGCN`` tensor name (the module docstring's table), or None."""
    head, _, leaf = key.rpartition(".")
    m = _BLOCK_KEY.match(key)
    if head in _HEADS and leaf in ("weight", "bias"):
        return f"{_HEADS[head]}.{leaf}"
    if m and m.group(3) in _BLOCK:
        return f"stack.layers.{m.group(1)}.{m.group(2)}.{_BLOCK[m.group(3)]}.{m.group(4)}"
    return None


def _official_name(name: str) -> str:
    """The official ``RevGCN`` name of a revgnn ``RevGNN`` tensor name (the inverse of :func:`_revgnn_name`)."""
    head, _, leaf = name.rpartition(".")
    for official, ours in _HEADS.items():
        if head == ours:
            return f"{official}.{leaf}"
    m = _REVGNN_BLOCK_KEY.match(name)
    for official, ours in _BLOCK.items():
        if m and m.group(3) == ours:
            return f"gcns.{m.group(1)}._fn.Fms.{m.group(2)}.{official}.{m.group(4)}"
    return name


def _check_pairs(state: dict[str, Tensor], path: str) -> None:
    """Every mapped layer has both its weight and its bias: one without the other is a damaged or edited file (and
    a missing species weight would otherwise make the model quietly lose its species input)."""
    for key in state:
        head, _, leaf = key.rpartition(".")
        other = f"{head}.{'bias' if leaf == 'weight' else 'weight'}"
        if _revgnn_name(key) is not None and other not in state:
            raise CheckpointError(f"{path}: tensor {other!r} (revgnn's {_revgnn_name(other)}) is missing while "
                                  f"{key!r} is there; the file is incomplete or was edited: download it again")


def _shape_of(state: dict[str, Tensor], path: str) -> dict[str, int]:
    """L, C, D, T, edge_dim, x_dim and num_species from the official key names and shapes."""
    _check_pairs(state, path)
    for key in _LINEAR_WEIGHTS:
        if key in state and state[key].dim() != 2:
            raise CheckpointError(f"{path}: tensor {key!r} has shape {tuple(state[key].shape)}; a Linear layer's "
                                  "weight is 2-D (out, in): the file is damaged or was edited, download it again")
    layers, groups = set(), set()
    for key in state:
        m = _BLOCK_KEY.match(key)
        if m:
            layers.add(int(m.group(1)))
            groups.add(int(m.group(2)))
    need = ("node_features_encoder.weight", "edge_encoder.weight", "node_pred_linear.weight")
    missing = [k for k in need if k not in state]
    if missing or not layers:
        found = ", ".join(sorted(state)[:4])
        raise CheckpointError(f"{path} is not an official RevGNN (RevGCN) checkpoint: it lacks "
                              f"{missing or ['gcns.<l>._fn.Fms.<i>.* blocks']} (found {found}, ...)")
    if layers != set(range(len(layers))) or groups != set(range(len(groups))) or len(groups) < 2:
        raise CheckpointError(f"{path}: layers {sorted(layers)[:5]}... and groups {sorted(groups)} are not "
                              "numbered 0..L-1 and 0..C-1 with C >= 2, as the official RevGCN numbers them")
    D = state["node_features_encoder.weight"].size(0)
    node_in = state["node_features_encoder.weight"].size(1)
    one_hot = state.get("node_one_hot_encoder.weight")
    species_dim = 0 if one_hot is None else one_hot.size(0)
    return {"num_layers": len(layers), "num_groups": len(groups), "hidden_channels": D,
            "out_channels": state["node_pred_linear.weight"].size(0),
            "edge_dim": state["edge_encoder.weight"].size(1), "in_channels": node_in - species_dim,
            "num_species": None if one_hot is None else one_hot.size(1), "species_dim": species_dim}


def convert_state_dict(state: dict[str, Tensor], taxa: Sequence[int] = OGBN_PROTEINS_TAXA,
                       path: str = "the checkpoint") -> tuple[dict[str, Tensor], dict[str, int]]:
    """Map an official ``RevGCN`` state dict to revgnn ``RevGNN`` names (the module docstring's table).

    Args:
        state: The official state dict.
        taxa: The dataset's taxon ids (any order); revgnn's species s is the s-th smallest. The species encoder's
            columns move from the official order (:func:`official_species_order`) to revgnn's.
        path: Named in errors.

    Returns:
        (revgnn state dict, shape) with shape's ``num_layers``, ``num_groups``, ``hidden_channels``,
        ``out_channels``, ``edge_dim``, ``in_channels``, ``num_species``.

    Raises:
        CheckpointError: a tensor without a place, a place without a tensor, or a wrong shape.
    """
    shape = _shape_of(state, path)
    out, used = {}, []
    for key, value in state.items():
        name = _revgnn_name(key)
        if name is not None:
            out[name] = value
        else:
            raise CheckpointError(f"{path}: tensor {key!r} {tuple(value.shape)} has no place in RevGNN (this "
                                  "loader reads the released RevGNN-Deep/Wide: max aggregation, 2-layer MLPs, "
                                  "no message norm, no learned temperature)")
        used.append(key)
    if shape["num_species"] is not None:
        order = official_species_order(taxa)
        if len(order) != shape["num_species"]:
            raise CheckpointError(f"{path} encodes {shape['num_species']} species but the dataset has "
                                  f"{len(order)} taxon ids ({sorted(order)})")
        column = [order.index(t) for t in sorted(order)]      # revgnn species s -> official one-hot column
        w = out["heads.species_encoder.weight"]               # (8, S), official columns
        out["heads.species_encoder.weight"] = w[:, column].contiguous()
    assert len(used) == len(out) == len(state), "each official tensor is used exactly once"
    return out, shape


def load_checkpoint(path: str | os.PathLike, map_location="cpu", taxa: Sequence[int] = OGBN_PROTEINS_TAXA,
                    fused: bool = True) -> nn.Module:
    """A ready :class:`~revgnn.nn.models.RevGNN` (eval mode) with the weights of an official RevGNN checkpoint.

    L, D, C, the tasks and the input widths are read from the keys and shapes; every tensor is mapped exactly once
    and checked against the model's own (names and shapes). Dropout is 0: the released models are for inference.

    Args:
        path: ``revgnn_deep.pth`` / ``revgnn_wide.pth`` (a ``{'model_state_dict': ...}`` dict) or a bare state dict.
        map_location: As :func:`torch.load`.
        taxa: The dataset's taxon ids (default: ogbn-proteins'), which fix the species columns.
        fused: Use the fused edge-chunked GENConv (bounded memory on the whole graph). (default: ``True``)

    Raises:
        FileNotFoundError, CheckpointError (a ValueError): with one line saying what was found.
    """
    model = model_from_state(read_official_state(path, map_location), taxa, fused, os.fspath(path))
    return model.to(map_location if isinstance(map_location, (str, torch.device)) else "cpu").eval()


def model_from_state(state: dict[str, Tensor], taxa: Sequence[int] = OGBN_PROTEINS_TAXA, fused: bool = True,
                     path: str = "the checkpoint") -> nn.Module:
    """:func:`load_checkpoint` for a state dict already read by :func:`read_official_state` (eval mode, CPU)."""
    from revgnn.nn.models import RevGNN

    mapped, s = convert_state_dict(state, taxa, path)
    model = RevGNN(s["in_channels"], s["hidden_channels"], s["out_channels"], s["num_layers"],
                   num_groups=s["num_groups"], dropout=0.0, edge_dim=s["edge_dim"], num_species=s["num_species"],
                   aggr="max", fused=fused)
    own = model.state_dict()
    missing = sorted(set(own) - set(mapped))
    if missing:
        raise CheckpointError(f"{path}: tensor {_official_name(missing[0])!r} (revgnn's {missing[0]}) is missing "
                              f"({len(missing)} in all); is it a RevGCN checkpoint with conv_encode_edge, one-hot "
                              "species and 2-layer MLPs?")
    extra = sorted(set(mapped) - set(own))
    if extra:  # e.g. a species encoder's tensors in a model read as having no species input
        raise CheckpointError(f"{path}: tensor {_official_name(extra[0])!r} has no place in RevGNN "
                              f"L={s['num_layers']} D={s['hidden_channels']} C={s['num_groups']} as its other "
                              f"tensors describe it ({len(extra)} such tensors)")
    wrong = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in mapped.items() if v.shape != own[k].shape]
    if wrong:
        k, got, want = wrong[0]
        raise CheckpointError(f"{path}: {k} has shape {got}, RevGNN L={s['num_layers']} D={s['hidden_channels']} "
                              f"C={s['num_groups']} expects {want} ({len(wrong)} such tensors)")
    model.load_state_dict(mapped, strict=True)
    return model.eval()


def on_each_layer(model: nn.Module, callback: Callable[[], None]) -> list:
    """Call ``callback()`` after each reversible layer of a RevGNN's forward pass (a forward hook on the layer's
    last group block), e.g. to advance a progress bar or time the layers. Returns the hook handles (``.remove()``).
    """
    stack = getattr(model, "stack", None)
    if stack is None:
        return []
    blocks = {id(layer[-1]): layer[-1] for layer in stack.layers}  # a weight-tied layer is one module
    return [b.register_forward_hook(lambda *_: callback()) for b in blocks.values()]
