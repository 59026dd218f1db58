"""Golden parity of CutMix with clovaai/wsolevaluation (ResNet50, VGG16 and InceptionV3; see ``wsoleval_cells.py``).

The reference's draws (``np.random.rand`` coin, ``np.random.beta`` lambda, ``torch.randperm``,
``np.random.randint`` centre) are stored in the fixture and replayed as :class:`CutMixDraws`.
"""

from __future__ import annotations

import pytest
import torch

from tests.parity.wsoleval_cells import check_cell
from wsol_lightning.methods import CutMix
from wsol_lightning.methods.cutmix.model import CutMixDraws
from wsol_lightning.methods.cutmix.official import convert_official_state_dict

BACKBONES = {"resnet50": "resnet50", "vgg16": "vgg16", "inception_v3": "inception_v3"}


def build(fixture: dict) -> CutMix:
    return CutMix(backbone=BACKBONES[fixture["architecture"]], num_classes=fixture["num_classes"],
                  beta=fixture["beta"], prob=fixture["prob"])


def step(module: CutMix, images: torch.Tensor, labels: torch.Tensor, fixture: dict) -> dict[str, torch.Tensor]:
    draws = CutMixDraws(coin=fixture["coin"], lam=fixture["lam"], permutation=fixture["permutation"],
                        centre=tuple(fixture["centre"]))
    return module.losses(images, labels, draws)


@pytest.mark.parametrize("architecture", list(BACKBONES))
def test_cutmix_matches_wsolevaluation(architecture: str) -> None:
    check_cell("cutmix", architecture, build, step, convert_official_state_dict)
