"""Golden parity of ADL with clovaai/wsolevaluation (ResNet50, VGG16 and InceptionV3; see ``wsoleval_cells.py``).

The reference's ``torch.rand`` draw of each ADL layer is stored (one per layer, forward order; both the
importance-map and the drop-mask branch occur) and replayed through :meth:`ADL.losses`. The converter maps the
reference's ADL-shifted block / conv indices onto the library's trunk.
"""

from __future__ import annotations

import pytest
import torch

from tests.parity.wsoleval_cells import FIXTURES, check_cell
from wsol_lightning.methods import ADL
from wsol_lightning.methods.adl.official import convert_official_state_dict
from wsol_lightning.methods.official import OfficialCheckpointError
from wsol_lightning.testing import load_fixture, seeded_state_dict

BACKBONES = {"resnet50": "resnet50", "vgg16": "vgg16", "inception_v3": "inception_v3"}


def build(fixture: dict) -> ADL:
    return ADL(backbone=BACKBONES[fixture["architecture"]], num_classes=fixture["num_classes"],
               adl_drop_rate=fixture["drop_rate"], adl_threshold=fixture["threshold"])


def step(module: ADL, images: torch.Tensor, labels: torch.Tensor, fixture: dict) -> dict[str, torch.Tensor]:
    return module.losses(images, labels, fixture["uniforms"])


@pytest.mark.parametrize("architecture", list(BACKBONES))
def test_adl_matches_wsolevaluation(architecture: str) -> None:
    check_cell("adl", architecture, build, step, convert_official_state_dict)


def test_checkpoint_of_another_class_count_is_refused_naming_the_key() -> None:
    fixture = load_fixture(FIXTURES / "adl" / "resnet50.pt")
    official = {"state_dict": seeded_state_dict(fixture["key_shapes"], fixture["weight_seed"], torch.float32)}
    with pytest.raises(OfficialCheckpointError, match=r"fc\.weight \(200, 2048\) vs net\.classifier\.weight"):
        convert_official_state_dict(official, ADL(backbone="resnet50", num_classes=10))
