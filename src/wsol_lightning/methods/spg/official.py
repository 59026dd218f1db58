"""Convert wsolevaluation SPG checkpoints (``ResNetSpg``, ``VggSpg``, ``InceptionSpg``) onto :class:`SPG`.

Trunk blocks the reference renames: ResNet50 ``SPG_A1.0`` = ``layer3.0`` and ``SPG_A2.i`` = ``layer3.(i+1)``;
VGG16 ``SPG_A_1.{0,2,4}`` = conv4 (``features.17/19/21``) and ``SPG_A_2.{0,2,4}`` = conv5
(``features.24/26/28``). New layers: ``SPG_A_3`` (VGG) / ``SPG_A3_1b``, ``SPG_A3_2b`` (Inception) ->
``net.extra``, ``SPG_A4`` / ``SPG_A_4`` -> ``net.classifier``, ``SPG_B_1a`` / ``SPG_B_2a`` / ``SPG_B_shared``
-> ``net.b1_in`` / ``net.b2_in`` / ``net.b_shared``, ``SPG_C`` -> ``net.c_head``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from torch import Tensor

from wsol_lightning.methods.wsoleval_official import convert_wsoleval_state_dict

if TYPE_CHECKING:
    from wsol_lightning.methods.spg.module import SPG

HEADS = {
    "SPG_A4": "net.classifier", "SPG_A_4": "net.classifier",
    "SPG_A_3.0": "net.extra.0", "SPG_A_3.2": "net.extra.2",
    "SPG_A3_1b.0": "net.extra.1", "SPG_A3_2b.0": "net.extra.4",
    "SPG_B_1a.0": "net.b1_in.0", "SPG_B_2a.0": "net.b2_in.0",
    "SPG_B_shared.0": "net.b_shared.0", "SPG_B_shared.2": "net.b_shared.2",
    "SPG_C.0": "net.c_head.0", "SPG_C.2": "net.c_head.2",
}
#: Official trunk names -> torchvision names.
ALIASES = (
    (r"^SPG_A1\.0\.", "layer3.0."),
    (r"^SPG_A2\.(\d+)\.", lambda m: f"layer3.{int(m.group(1)) + 1}."),
    (r"^SPG_A_1\.(\d+)\.", lambda m: f"features.{17 + int(m.group(1))}."),
    (r"^SPG_A_2\.(\d+)\.", lambda m: f"features.{24 + int(m.group(1))}."),
)


def convert_official_state_dict(official: Mapping[str, Any], module: SPG) -> dict[str, Tensor]:
    """Return ``module.state_dict()``'s keys filled from an official SPG state dict (or ``main.py`` checkpoint).

    Raises:
        OfficialCheckpointError: unknown or missing keys or shape mismatches, each named.

    """
    return convert_wsoleval_state_dict(official, module, HEADS, ALIASES, source="official SPG checkpoint")
