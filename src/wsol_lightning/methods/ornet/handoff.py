"""Checkpoint hand-off between ORNet's phases (evaluator -> coarse -> refine).

Each phase starts from a file the previous phase wrote (a Lightning checkpoint of :class:`ORNet`). These
helpers read it, check that it comes from the expected phase and backbone, rename its keys to the
receiving model's, and refuse to start when a required weight is missing or has another shape; every
error names the file and the keys that differ.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from wsol_lightning.backbones import Trunk
from wsol_lightning.checkpoints import CheckpointError, read_checkpoint


class PhaseCheckpointError(RuntimeError):
    """A previous phase's checkpoint is missing, from the wrong phase/backbone, or does not match."""


def read_phase_checkpoint(path: str | Path, expected_phases: Iterable[str], argument: str,
                          backbone: str | None = None) -> dict[str, Tensor]:
    """Read a previous phase's checkpoint and return its state dict.

    Args:
        path: the checkpoint file (a Lightning ``.ckpt`` of ``ORNet``, or a plain state dict).
        expected_phases: phases this file may come from (checked when the file records its phase).
        argument: the argument that named the file (for error messages).
        backbone: the backbone the file must have been trained with (``None``: not checked).

    Raises:
        PhaseCheckpointError: the file does not exist, or its phase or backbone differs.

    """
    path = Path(path).expanduser()
    expected = tuple(expected_phases)
    if not path.is_file():
        raise PhaseCheckpointError(
            f"{argument}: checkpoint file not found: {path}. Run the {' or '.join(expected)} phase first "
            f"(e.g. `wsol fit --config configs/ornet_<dataset>_{expected[0]}.yaml`) or point {argument} "
            "at its checkpoint."
        )
    try:  # weights_only: a file from elsewhere never runs code
        checkpoint = read_checkpoint(path)
    except CheckpointError as err:
        raise PhaseCheckpointError(f"{argument}: {err}") from None
    hparams: Mapping[str, Any] = checkpoint.get("hyper_parameters", {}) or {}
    state = checkpoint.get("state_dict", checkpoint)
    phase = hparams.get("phase")
    if phase is not None and phase not in expected:
        raise PhaseCheckpointError(
            f"{argument}: {path} is a checkpoint of the '{phase}' phase; expected one of {list(expected)}"
        )
    if backbone is not None and hparams.get("backbone") not in (None, backbone):
        raise PhaseCheckpointError(
            f"{argument}: {path} was trained with backbone '{hparams.get('backbone')}', but this model uses "
            f"'{backbone}'; set the same backbone in both phases' configs"
        )
    return {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, Tensor)}


def select_prefix(state: Mapping[str, Tensor], source: str, target: str) -> dict[str, Tensor]:
    """Keep the keys starting with ``source`` and rename that prefix to ``target``."""
    return {target + k[len(source):]: v for k, v in state.items() if k.startswith(source)}


def timm_to_trunk(state: Mapping[str, Tensor], trunk: Trunk) -> dict[str, Tensor]:
    """Rename a timm model's keys (``layer1.0.conv1.weight``, ``features.0.weight``) to ``trunk``'s.

    :class:`~wsol_lightning.backbones.Trunk` holds timm's modules under ``stages.<i>.<name>`` where
    ``<name>`` is timm's module path with ``.`` replaced by ``_`` for flattened sequentials
    (``features.0`` -> ``features_0``). Keys of modules the trunk does not hold (the head) are dropped.
    """
    owner = {name: index for index, stage in enumerate(trunk.stages) for name, _ in stage.named_children()}
    renamed = {}
    for key, value in state.items():
        parts = key.split(".")
        for cut in range(1, len(parts)):
            flat = "_".join(parts[:cut])
            if flat in owner:
                renamed[f"stages.{owner[flat]}.{flat}." + ".".join(parts[cut:])] = value
                break
    return renamed


def load_checked(module: nn.Module, state: Mapping[str, Tensor], path: str | Path, argument: str,
                 required_prefix: str = "", optional: Iterable[str] = ()) -> list[str]:
    """Load ``state`` into ``module``; every key of ``module`` under ``required_prefix`` must be present.

    Args:
        module: the receiving module.
        state: renamed state dict (keys of ``module``); extra keys are ignored.
        path: the file ``state`` came from (for errors).
        argument: the argument that named the file (for errors).
        required_prefix: keys of ``module`` starting with it must all be in ``state`` with equal shapes.
        optional: keys loaded only when present with the same shape (e.g. a classifier of another size).

    Returns:
        The keys loaded.

    Raises:
        PhaseCheckpointError: a required key is missing or has another shape (the keys are named).

    """
    own = module.state_dict()
    optional = set(optional)
    required = [k for k in own if k.startswith(required_prefix) and k not in optional]
    missing = [k for k in required if k not in state]
    mismatched = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                  for k in required if k in state and state[k].shape != own[k].shape]
    if missing or mismatched:
        raise PhaseCheckpointError(
            f"{argument}: {path} does not match this model ({len(missing)} missing, {len(mismatched)} "
            f"mismatched of {len(required)} required keys). Missing: {_head(missing)}; mismatched: "
            f"{_head(mismatched)}. Check that backbone, num_classes and the low-level tap are those of the "
            "phase that wrote the file."
        )
    loadable = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape
                and (k in required or k in optional)}
    module.load_state_dict(loadable, strict=False)
    return sorted(loadable)


def _head(keys: list[str], count: int = 8) -> str:
    if not keys:
        return "none"
    more = f" (+{len(keys) - count} more)" if len(keys) > count else ""
    return ", ".join(keys[:count]) + more
