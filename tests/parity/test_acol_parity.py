"""Golden parity of ACoL with wsolevaluation (ResNet50, VGG16, InceptionV3), from fixtures of tools/parity/acol_spg.py.

The shared check (:func:`tests.parity.wsoleval_cells.check_cell`) requires at relative 1e-10 in float64 the
loss, every parameter's gradient norm, gradient slices, the eval logits and the raw test CAMs; the step below
also requires each of the two cross-entropies, and the CAM readout the maps of other classes (the erasing is
driven by the class asked for).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest

from tests.parity.wsoleval_cells import cams_with_other_classes, check_cell, step_with_terms
from wsol_lightning.methods import ACoL
from wsol_lightning.methods.acol.official import HEADS, convert_official_state_dict
from wsol_lightning.methods.wsoleval_official import wsoleval_key_map


@pytest.mark.parametrize("architecture", ["resnet50", "vgg16", "inception_v3"])
def test_acol_matches_wsolevaluation(architecture: str) -> None:
    fx: dict[str, Any] = {}

    def build(fixture: dict[str, Any]) -> ACoL:
        fx.update(fixture)
        return ACoL(backbone=architecture, num_classes=fixture["num_classes"],
                    erase_threshold=fixture["acol_threshold"])

    check_cell("acol", architecture, build, step_with_terms, convert_official_state_dict,
               key_map=partial(wsoleval_key_map, heads=HEADS), cams=cams_with_other_classes(fx))
