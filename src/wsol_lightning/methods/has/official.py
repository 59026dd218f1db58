"""Converter from clovaai/wsolevaluation's HaS checkpoints (``architecture_type='cam'``) to :class:`HaS`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from wsol_lightning.methods.wsoleval_official import CAM_HEADS, convert_wsoleval_state_dict


def convert_official_state_dict(official: Mapping[str, Any], module: nn.Module) -> dict[str, Tensor]:
    """Rename a wsolevaluation HaS state dict (the reference's CAM network) onto ``module.state_dict()``.

    As :func:`wsol_lightning.methods.cam.official.convert_official_state_dict`, naming HaS in its errors.
    """
    return convert_wsoleval_state_dict(official, module, CAM_HEADS, source="wsolevaluation HaS checkpoint")
