"""Golden parity of SPG with wsolevaluation (ResNet50, VGG16, InceptionV3), from fixtures of tools/parity/acol_spg.py.

The shared check (:func:`tests.parity.wsoleval_cells.check_cell`) requires at relative 1e-10 in float64 the
loss, every parameter's gradient norm, gradient slices, the eval logits and the raw test CAMs; the step below
also requires each term (classification and the three self-produced-guidance BCEs), and the CAM readout the
maps of other classes.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest

from tests.parity.wsoleval_cells import cams_with_other_classes, check_cell, step_with_terms
from wsol_lightning.methods import SPG
from wsol_lightning.methods.spg.official import ALIASES, HEADS, convert_official_state_dict
from wsol_lightning.methods.wsoleval_official import wsoleval_key_map


@pytest.mark.parametrize("architecture", ["resnet50", "vgg16", "inception_v3"])
def test_spg_matches_wsolevaluation(architecture: str) -> None:
    fx: dict[str, Any] = {}

    def build(fixture: dict[str, Any]) -> SPG:
        fx.update(fixture)
        (h1, l1), (h2, l2), (h3, l3) = fixture["spg_thresholds"]
        return SPG(backbone=architecture, num_classes=fixture["num_classes"], threshold_1h=h1, threshold_1l=l1,
                   threshold_2h=h2, threshold_2l=l2, threshold_3h=h3, threshold_3l=l3)

    check_cell("spg", architecture, build, step_with_terms, convert_official_state_dict,
               key_map=partial(wsoleval_key_map, heads=HEADS, aliases=ALIASES), cams=cams_with_other_classes(fx))
