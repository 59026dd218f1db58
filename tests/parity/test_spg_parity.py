"""Golden parity of SPG with wsolevaluation (ResNet50, VGG16), from fixtures of tools/parity/acol_spg.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.parity.wsoleval_cells import check_cell
from wsol_lightning.methods import SPG
from wsol_lightning.methods.spg.official import ALIASES, HEADS, convert_official_state_dict
from wsol_lightning.testing import load_fixture

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "parity" / "spg"


@pytest.mark.parametrize("backbone", ["resnet50", "vgg16"])
def test_spg_matches_official(backbone: str) -> None:
    """The classification and three guidance terms, gradients, logits and test CAMs at rel 1e-10."""
    fx = load_fixture(FIXTURES / f"{backbone}.pt")
    (h1, l1), (h2, l2), (h3, l3) = fx["spg_thresholds"]
    module = SPG(backbone=backbone, num_classes=fx["num_classes"], threshold_1h=h1, threshold_1l=l1,
                 threshold_2h=h2, threshold_2l=l2, threshold_3h=h3, threshold_3l=l3)
    check_cell(fx, module, convert_official_state_dict, HEADS, ALIASES)
