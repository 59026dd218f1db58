"""Golden parity of ACoL with wsolevaluation (ResNet50, VGG16), from fixtures of tools/parity/acol_spg.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.parity.wsoleval_cells import check_cell
from wsol_lightning.methods import ACoL
from wsol_lightning.methods.acol.official import HEADS, convert_official_state_dict
from wsol_lightning.testing import load_fixture

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "parity" / "acol"


@pytest.mark.parametrize("backbone", ["resnet50", "vgg16"])
def test_acol_matches_official(backbone: str) -> None:
    """Loss terms, gradients, logits and test CAMs (erasing driven by the class asked for) at rel 1e-10."""
    fx = load_fixture(FIXTURES / f"{backbone}.pt")
    module = ACoL(backbone=backbone, num_classes=fx["num_classes"], erase_threshold=fx["acol_threshold"])
    check_cell(fx, module, convert_official_state_dict, HEADS)
