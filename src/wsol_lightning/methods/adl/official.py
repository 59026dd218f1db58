"""Converter from clovaai/wsolevaluation's ADL checkpoints (``architecture_type='adl'``) to :class:`ADL`."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from wsol_lightning.methods.cam.wsoleval_official import convert_wsoleval_cam


def convert_official_state_dict(official: Mapping[str, Tensor], module: nn.Module) -> dict[str, Tensor]:
    """Rename a wsolevaluation ADL state dict (``ResNetAdl`` / ``VggCam`` keys) onto ``module.state_dict()``.

    The reference's ADL layers sit inside its ``nn.Sequential`` containers and shift the indices after them;
    blocks and convolutions are matched by order, so those shifts need no table.

    Raises:
        OfficialCheckpointError: a key has no place, a module key is not filled, or a shape differs.

    """
    return convert_wsoleval_cam(official, module.state_dict(), source="wsolevaluation ADL checkpoint")
