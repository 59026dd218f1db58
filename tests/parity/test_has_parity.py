"""Golden parity of HaS with clovaai/wsolevaluation (ResNet50, VGG16 and InceptionV3; see ``wsoleval_cells.py``).

The reference's ``random.random()`` cell draws are replayed as the ``(B, rows, cols)`` uniforms of
:func:`hide_patches` (rows along dim 2, the reference's loop order).
"""

from __future__ import annotations

import pytest
import torch

from tests.parity.wsoleval_cells import check_cell
from wsol_lightning.methods import HaS
from wsol_lightning.methods.has.model import grid_cells
from wsol_lightning.methods.has.official import convert_official_state_dict

BACKBONES = {"resnet50": "resnet50", "vgg16": "vgg16", "inception_v3": "inception_v3"}


def build(fixture: dict) -> HaS:
    return HaS(backbone=BACKBONES[fixture["architecture"]], num_classes=fixture["num_classes"],
               grid_size=fixture["grid_size"], drop_rate=fixture["drop_rate"])


def step(module: HaS, images: torch.Tensor, labels: torch.Tensor, fixture: dict) -> dict[str, torch.Tensor]:
    rows, cols = grid_cells(images.shape[2], images.shape[3], fixture["grid_size"])
    uniforms = torch.rand(images.shape[0], rows, cols, generator=torch.Generator().manual_seed(fixture["has_seed"]),
                          dtype=torch.float64)
    return module.losses(images, labels, uniforms)


@pytest.mark.parametrize("architecture", list(BACKBONES))
def test_has_matches_wsolevaluation(architecture: str) -> None:
    check_cell("has", architecture, build, step, convert_official_state_dict)

