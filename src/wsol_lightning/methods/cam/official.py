"""Converter from clovaai/wsolevaluation's CAM checkpoints (``architecture_type='cam'``) to :class:`CAM`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from wsol_lightning.methods.wsoleval_official import CAM_HEADS, convert_wsoleval_state_dict


def convert_official_state_dict(official: Mapping[str, Any], module: nn.Module) -> dict[str, Tensor]:
    """Rename a wsolevaluation CAM state dict onto ``module.state_dict()``.

    Keys of ``ResNetCam`` / ``VggCam`` / ``InceptionCam``.

    Accepts the bare state dict or ``main.py``'s checkpoint dict (``{'state_dict': ...}``, ``module.`` prefixes).
    Build the module with the checkpoint's backbone, class count and ``large_feature_map``.

    Raises:
        OfficialCheckpointError: a key has no place, a module key is not filled, or a shape differs.

    """
    return convert_wsoleval_state_dict(official, module, CAM_HEADS, source="wsolevaluation CAM checkpoint")
