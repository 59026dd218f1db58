"""Read checkpoints without running code, and reconcile a checkpoint's settings with the ones a user gave.

Every checkpoint the library reads goes through :func:`read_checkpoint`: ``torch.load(weights_only=True)``,
which only rebuilds tensors and plain Python values, so a file whose pickle would call a function is
refused (:class:`CheckpointError` naming the file and the refused global) and never executed.

:func:`reconcile_settings` decides, for ``wsol <subcommand> --ckpt_path FILE``, which value each model
argument takes. The rule (also in the README):

* a setting the user gave explicitly (in a ``-c`` config file or on the command line) that equals the
  checkpoint's is fine; the checkpoint's value is used for every setting the user did not give;
* **evaluation settings** (:data:`EVALUATION_ARGS`, e.g. ``operating_threshold``) given explicitly win:
  they are used and saved (hyperparameters, ``config.yaml``);
* **training settings** (:data:`TRAINING_ARGS`) given explicitly win for ``test``/``validate``/``predict``
  (they change nothing there); when resuming ``fit`` a different one is refused, since the optimizer and
  scheduler state restored from the checkpoint would silently replace it;
* **initialisation settings** (:data:`INITIALIZATION_ARGS`: ``pretrained``, ``init_from``, ...) only choose
  starting weights, which the checkpoint's replace: the checkpoint's value is kept (nothing is downloaded or
  read for nothing) and a note says the given one is not used;
* every other setting defines the model (backbone, heads, method variant, ...): a different explicit
  value is refused, naming each key with both values; so is a checkpoint of another method class.

So ``wsol test -c CFG --ckpt_path CK`` of a run trained with ``CFG`` has no conflict, and a run trained
with extra ``--model...`` overrides is tested with the same overrides (or without ``-c``).
"""

from __future__ import annotations

import json
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

#: Settings that only change how a trained model is evaluated: an explicit value always wins.
EVALUATION_ARGS = frozenset({
    "operating_threshold", "cam_curve_interval", "iou_thresholds", "multi_contour", "map_interpolation",
    "async_metrics", "async_max_pending",
})
#: Settings of the optimizer and schedule (``WSOLModule.configure_optimizers``).
TRAINING_ARGS = frozenset({
    "optimizer", "lr", "momentum", "nesterov", "weight_decay", "backbone_lr_mult", "backbone_bias_lr_mult",
    "head_lr_mult", "head_bias_lr_mult", "lr_scheduler", "lr_milestones", "lr_step_size", "lr_gamma",
    "lr_poly_power",
})
#: Settings that only choose the starting weights, which a checkpoint replaces.
INITIALIZATION_ARGS = frozenset({"pretrained", "init_from", "evaluator_from", "evaluator_pretrained"})
#: Hyperparameters that are not model settings (Lightning's bookkeeping) or come from the data.
NOT_SETTINGS = frozenset({"_class_path", "_instantiator", "num_classes"})


class CheckpointError(ValueError):
    """A checkpoint cannot be read safely, or does not match the run it is given to (names file and keys)."""


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (tensors and plain values only; never runs code).

    Args:
        path: the checkpoint file.

    Returns:
        The checkpoint dict (``state_dict``, ``hyper_parameters``, ...), tensors on the CPU.

    Raises:
        CheckpointError: the file is missing, unreadable, not a dict, or holds pickled code (the refused
            global is named; nothing from the file is executed).

    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"(?:unsupported )?GLOBAL ([\w.]+)", str(err), flags=re.IGNORECASE)
        what = f"a call to `{found.group(1)}`" if found else "Python objects other than tensors and plain values"
        raise CheckpointError(
            f"{path}: refused to load: the file holds {what}, which unpickling would execute. wsol_lightning "
            "reads checkpoints with torch.load(weights_only=True) and never runs code from a file. If you wrote "
            "this file yourself, re-save it with only tensors and plain values (e.g. torch.save("
            "{'state_dict': model.state_dict()}, path))."
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f"{path}: holds a {type(checkpoint).__name__}, not a checkpoint dict")
    return dict(checkpoint)


def checkpoint_hparams(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """The model hyperparameters a checkpoint stores (``hyper_parameters``; ``{}`` when absent)."""
    hparams = checkpoint.get("hyper_parameters") or {}
    return dict(hparams) if isinstance(hparams, Mapping) else {}


def _plain(value: Any) -> Any:
    """The value as JSON types (tuples as lists, paths as strings), for comparisons."""
    return json.loads(json.dumps(value, default=lambda v: list(v) if isinstance(v, tuple) else str(v)))


def _short(class_path: str) -> str:
    return class_path.rpartition(".")[2]


def check_method_class(path: str | Path, checkpoint_class: str | None, given_class: str | None) -> None:
    """Refuse a checkpoint of another method class than the one the config or command line names.

    Classes are compared by their class name (``wsol_lightning.methods.CAM`` and
    ``wsol_lightning.methods.cam.module.CAM`` are the same method).

    Raises:
        CheckpointError: naming both classes.

    """
    if checkpoint_class and given_class and _short(checkpoint_class) != _short(given_class):
        raise CheckpointError(
            f"{path} is a checkpoint of {_short(checkpoint_class)} ({checkpoint_class}), but the config or "
            f"command line names {_short(given_class)} ({given_class}). Use a {_short(checkpoint_class)} "
            f"config, or pass --model {_short(checkpoint_class)}."
        )


def check_num_classes(path: str | Path, checkpoint_classes: Any, data_classes: int) -> None:
    """Refuse a checkpoint trained on another number of classes than the data has.

    Raises:
        CheckpointError: ``"<path>: the checkpoint has 4 classes, the data has 3"``.

    """
    if checkpoint_classes is not None and int(checkpoint_classes) != int(data_classes):
        raise CheckpointError(
            f"{path}: the checkpoint has {int(checkpoint_classes)} classes, the data has {int(data_classes)} "
            "(data.num_classes). Evaluate it on data with the checkpoint's classes, or fine-tune a new run."
        )


def stored_values(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """Settings a checkpoint stores as state rather than as hyperparameters (the threshold chosen on val)."""
    threshold = (checkpoint.get("state_dict") or {}).get("operating_threshold")
    if isinstance(threshold, torch.Tensor) and threshold.numel() == 1 and bool(torch.isfinite(threshold)):
        return {"operating_threshold": round(float(threshold), 6)}
    return {}


def reconcile_settings(path: str | Path, checkpoint: Mapping[str, Any], explicit: Mapping[str, Any],
                       resuming: bool, stored: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], list[str]]:
    """Merge a checkpoint's model settings with the explicitly given ones (see the module docstring).

    Args:
        path: the checkpoint file (for messages).
        checkpoint: its hyperparameters (:func:`checkpoint_hparams`).
        explicit: the model arguments the user gave in config files or on the command line.
        resuming: ``True`` for ``fit --ckpt_path`` (training settings must match too).
        stored: values the checkpoint holds as state (:func:`stored_values`), shown in the notes instead of
            the hyperparameter (e.g. the operating threshold chosen on val rather than ``None``).

    Returns:
        ``(settings, notes)``: the model arguments to build with (checkpoint values overridden by explicit
        ones that win; no ``num_classes``, which comes from the data) and one line per explicit value that
        differs from the checkpoint's (used, or for initialisation settings, not needed).

    Raises:
        CheckpointError: listing every conflicting key with the checkpoint's and the given value.

    """
    settings = {k: v for k, v in checkpoint.items() if k not in NOT_SETTINGS}
    stored = stored or {}
    conflicts, notes = [], []
    for key in sorted(explicit):
        if key in NOT_SETTINGS:
            continue
        given = explicit[key]
        had = stored.get(key, checkpoint.get(key))
        if key not in checkpoint or _plain(had) == _plain(given):
            settings[key] = given
            continue
        if key in INITIALIZATION_ARGS:
            notes.append(f"model.{key}: the checkpoint's weights replace the initial ones, so its {_plain(had)!r} "
                         f"is kept instead of {_plain(given)!r} (given)")
        elif key in EVALUATION_ARGS or (key in TRAINING_ARGS and not resuming):
            settings[key] = given
            notes.append(f"model.{key} = {_plain(given)!r} (given) instead of the checkpoint's {_plain(had)!r}")
        else:
            conflicts.append(f"  model.init_args.{key}: the checkpoint has {_plain(checkpoint[key])!r}, "
                             f"the config or command line gives {_plain(given)!r}")
    if conflicts:
        why = ("resuming continues the checkpoint's run: its model and optimizer settings must be the same"
               if resuming else "these settings define the model the checkpoint's weights belong to")
        raise CheckpointError(
            f"{path} conflicts with the settings given ({why}):\n" + "\n".join(conflicts) + "\n"
            "Give the checkpoint's values (or drop these keys from the config/command line)."
        )
    return settings, notes


#: Key of the prediction settings a checkpoint carries (:func:`prediction_settings`).
PREDICTION_KEY = "wsol"


def prediction_settings(module: Any, datamodule: Any) -> dict[str, Any]:
    """What prediction needs besides the weights, as plain values (readable with ``weights_only=True``).

    Args:
        module: the :class:`~wsol_lightning.methods.WSOLModule` being saved.
        datamodule: the run's datamodule, or ``None`` (then only the method and threshold are stored).

    Returns:
        ``{"method", "operating_threshold"}`` plus, with a datamodule, ``class_names``, ``image_size``,
        ``mean`` and ``std`` (the normalisation of the datamodule's ``eval_transform()``).

    """
    cls = type(module)
    threshold = getattr(module, "operating_threshold", None)
    settings: dict[str, Any] = {
        "method": f"{cls.__module__}.{cls.__qualname__}",
        "operating_threshold": float(threshold) if isinstance(threshold, torch.Tensor) else None,
    }
    if datamodule is not None:
        names = getattr(datamodule, "class_names", None)
        size = getattr(datamodule, "image_size", None)
        settings.update({
            "class_names": [str(n) for n in names] if names else None,
            "image_size": int(size) if size is not None else None,
        })
        transform = datamodule.eval_transform() if hasattr(datamodule, "eval_transform") else None
        for key in ("mean", "std"):  # the normalisation the eval transform really applies
            value = getattr(transform, key, None)
            settings[key] = [float(v) for v in value] if value is not None else None
    return settings


def stored_prediction_settings(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """The settings :func:`prediction_settings` stored in a checkpoint (``{}`` for older checkpoints)."""
    stored = checkpoint.get(PREDICTION_KEY)
    return {k: v for k, v in stored.items() if v is not None} if isinstance(stored, Mapping) else {}
