"""Converter from clovaai/wsolevaluation's CutMix checkpoints (``architecture_type='cam'``) to :class:`CutMix`."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from wsol_lightning.methods.cam.wsoleval_official import convert_wsoleval_cam


def convert_official_state_dict(official: Mapping[str, Tensor], module: nn.Module) -> dict[str, Tensor]:
    """Rename a wsolevaluation CutMix state dict (``ResNetCam`` / ``VggCam`` keys) onto ``module.state_dict()``.

    Raises:
        OfficialCheckpointError: a key has no place, a module key is not filled, or a shape differs.

    """
    return convert_wsoleval_cam(official, module.state_dict(), source="wsolevaluation CutMix checkpoint")
