"""Offline-first weight loading for timm trunks."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import timm
import torch
from torch import nn

_OFFLINE_HELP = (
    "Could not fetch pretrained weights for '{name}' (no network here?). Download the weights file once "
    "on a machine with network access (e.g. `timm.create_model('{name}', pretrained=True)` then "
    "`torch.save(model.state_dict(), 'w.pth')`) and pass its path: `pretrained: /path/to/w.pth` "
    "(--model.init_args.pretrained /path/to/w.pth). Original error: {error}"
)


def create_timm_model(name: str, pretrained: bool | str, **kwargs: object) -> nn.Module:
    """Create a timm model, with weights from timm's hub (``True``) or from a local file (a path).

    Args:
        name: timm model name.
        pretrained: ``False`` for random init, ``True`` for timm's weights (needs network once),
            or the path of a local ``.pth``/``.safetensors`` file.
        **kwargs: forwarded to :func:`timm.create_model`.

    Raises:
        FileNotFoundError: the weights path does not exist.
        RuntimeError: ``pretrained=True`` and the weights could not be fetched (says how to pass a file).

    """
    if isinstance(pretrained, (str, Path)) and not isinstance(pretrained, bool):
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"pretrained weights file not found: {path}")
        model = timm.create_model(name, pretrained=False, **kwargs)
        load_weights_file(model, path, strict=False)
        return model
    if not pretrained:
        return timm.create_model(name, pretrained=False, **kwargs)
    try:
        return timm.create_model(name, pretrained=True, **kwargs)
    except Exception as error:  # hub, network, SSL errors all end here
        raise RuntimeError(_OFFLINE_HELP.format(name=name, error=error)) from error


def load_weights_file(model: nn.Module, path: str | Path, strict: bool = False) -> list[str]:
    """Load a state dict file into ``model`` safely (``weights_only=True``, never unpickling code).

    Classifier weights whose shapes differ (another number of classes) are dropped. Keys of the file that
    the model does not have, and model keys missing from the file, are reported; with ``strict=True``
    any difference is an error naming the keys.

    Returns:
        The model keys that kept their initial values (missing from the file or dropped).

    """
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:  # weights_only refused a pickled object (code): name the file
            raise ValueError(f"{path}: refused to load as weights: it holds pickled objects, not only tensors "
                             f"(nothing was executed). Save a plain state dict. ({err})") from err
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict of tensors, got {type(state).__name__}")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    own = model.state_dict()
    mismatched = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    unexpected = [k for k in state if k not in own]
    missing = [k for k in own if k not in state]
    if strict and (mismatched or unexpected or missing):
        raise RuntimeError(
            f"{path} does not match the model: missing keys {missing[:10]}, unexpected keys "
            f"{unexpected[:10]}, shape mismatches {mismatched[:10]}"
        )
    if len(missing) == len(own):
        by_position = match_by_position(state, own)
        if by_position is None:
            raise RuntimeError(
                f"{path}: none of its keys match the model (first file keys: {list(state)[:5]}), and its "
                f"tensors do not match the model's by position either"
            )
        warnings.warn(
            f"{path}: no key matches the model; loaded its first {len(by_position)} tensors by position (the "
            f"official WSOL code loads e.g. mobilenet_v1_with_relu_69_5.pth this way), every shape checked",
            stacklevel=2,
        )
        state = by_position
        mismatched, missing = [], [k for k in own if k not in state]
    head = getattr(model, "pretrained_cfg", {}).get("classifier") or "\0"  # a new head is expected to differ
    not_loaded = [k for k in missing + mismatched if not k.startswith(head) and not k.endswith("num_batches_tracked")]
    if not_loaded:
        warnings.warn(
            f"{path} does not fully match the model: {len(not_loaded)} of {len(own)} tensors keep their "
            f"initial values (missing from the file: {[k for k in missing if k in not_loaded][:8]}, shape "
            f"mismatches: {[k for k in mismatched if k in not_loaded][:8]}); is it a file of this backbone?",
            stacklevel=2,
        )
    filtered = {k: v for k, v in state.items() if k in own and k not in mismatched}
    model.load_state_dict(filtered, strict=False)
    return missing + mismatched


def match_by_position(state: dict[str, torch.Tensor], own: dict[str, torch.Tensor],
                      max_extra: int = 2) -> dict[str, torch.Tensor] | None:
    """Rename ``state`` onto ``own``'s keys by position, as the official WSOL code loads third-party files.

    ``num_batches_tracked`` entries are skipped on both sides. The file's tensors, in order, must have
    exactly the shapes of the model's tensors, in order; at most ``max_extra`` trailing file tensors (an
    ImageNet classifier the trunk does not have) are left out.

    Returns:
        ``{model key: tensor}`` or ``None`` when the shapes do not line up.

    """
    ours = [k for k in own if not k.endswith("num_batches_tracked")]
    theirs = [k for k in state if not k.endswith("num_batches_tracked")]
    if not ours or not 0 <= len(theirs) - len(ours) <= max_extra:
        return None
    if any(tuple(state[t].shape) != tuple(own[o].shape) for o, t in zip(ours, theirs)):
        return None
    return {o: state[t] for o, t in zip(ours, theirs)}
