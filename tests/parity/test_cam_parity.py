"""Golden parity of CAM on InceptionV3 with clovaai/wsolevaluation's ``InceptionCam`` (see ``wsoleval_cells.py``).

CAM's ResNet50 and VGG16 networks are the HaS cells' (HaS is CAM on hidden patches). On InceptionV3 the cell
checks the reference's head (dropout 0.5, 3x3 conv 768->1024, dropout, 3x3 conv 1024->1024, dropout, 1x1 conv to
the classes; its masks replayed from the fixture's seed), the 3x3/2 pool after Mixed_5d, the SPG-style stem and
the CAM read from the 1x1 conv's output.
"""

from __future__ import annotations

import pytest
import torch

from tests.parity.wsoleval_cells import FIXTURES, check_cell
from wsol_lightning.methods import CAM
from wsol_lightning.methods.cam.official import convert_official_state_dict
from wsol_lightning.methods.official import OfficialCheckpointError
from wsol_lightning.testing import load_fixture, seeded_state_dict


def build(fixture: dict) -> CAM:
    return CAM(backbone=fixture["architecture"], num_classes=fixture["num_classes"])


def step(module: CAM, images: torch.Tensor, labels: torch.Tensor, fixture: dict) -> dict[str, torch.Tensor]:
    return module.training_losses({"image": images, "label": labels})


def test_cam_inception_v3_matches_wsolevaluation() -> None:
    check_cell("cam", "inception_v3", build, step, convert_official_state_dict)


def test_inception_checkpoint_of_another_class_count_is_refused_naming_the_key() -> None:
    fixture = load_fixture(FIXTURES / "cam" / "inception_v3.pt")
    official = {"state_dict": seeded_state_dict(fixture["key_shapes"], fixture["weight_seed"], torch.float32)}
    with pytest.raises(OfficialCheckpointError, match=r"SPG_A4\.weight \(200, 1024, 1, 1\) vs net\.classifier"):
        convert_official_state_dict(official, CAM(backbone="inception_v3", num_classes=10))
