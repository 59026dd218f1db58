"""Convert wsolevaluation ACoL checkpoints (``ResNetAcol``, ``VggAcol``, ``InceptionAcol``) onto :class:`ACoL`.

The trunk keeps torchvision's names; the heads ``classifier_A`` / ``classifier_B`` (3x3, 3x3, 1x1 convs at
indices 0, 2, 4) become ``net.classifier_a`` / ``net.classifier_b``. Build the :class:`ACoL` with the
checkpoint's backbone, class count and ``large_feature_map``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from torch import Tensor

from wsol_lightning.methods.wsoleval_official import convert_wsoleval_state_dict

if TYPE_CHECKING:
    from wsol_lightning.methods.acol.module import ACoL

#: Official head prefixes -> library prefixes.
HEADS = {f"classifier_{side}.{i}": f"net.classifier_{side.lower()}.{i}" for side in "AB" for i in (0, 2, 4)}


def convert_official_state_dict(official: Mapping[str, Any], module: ACoL) -> dict[str, Tensor]:
    """Return ``module.state_dict()``'s keys filled from an official ACoL state dict (or ``main.py`` checkpoint).

    Raises:
        OfficialCheckpointError: unknown or missing keys or shape mismatches, each named.

    """
    return convert_wsoleval_state_dict(official, module, HEADS, source="official ACoL checkpoint")
