"""The x10-lr parameter group of every wsolevaluation method equals the reference's ``main.py`` rule.

wsolevaluation's ``Trainer._set_optimizer`` splits the parameters by NAME with
``_FEATURE_PARAM_LAYER_PATTERNS`` (substring match): on ResNet50 the parameters whose names contain
``layer4.`` or ``fc.`` train at ``lr * lr_classifier_ratio``; on VGG16 every parameter whose name does NOT
contain ``features.``; on InceptionV3 every parameter whose name contains none of ``Mixed``, ``Conv2d_1`` ..
``Conv2d_4``. That rule is applied here to the official key list stored in each parity fixture, the
official names are mapped to the library's through the converter's key map, and the set must equal the
parameters the library module puts in its head groups (``lr_groups="official"``, the default).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest

from wsol_lightning.methods import ADL, CAM, SPG, ACoL, CutMix, HaS
from wsol_lightning.methods.acol.official import HEADS as ACOL_HEADS
from wsol_lightning.methods.base import WSOLModule
from wsol_lightning.methods.spg.official import ALIASES as SPG_ALIASES
from wsol_lightning.methods.spg.official import HEADS as SPG_HEADS
from wsol_lightning.methods.wsoleval_official import CAM_HEADS, wsoleval_key_map
from wsol_lightning.testing import load_fixture

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "parity"
# wsolevaluation main.py _FEATURE_PARAM_LAYER_PATTERNS
PATTERNS = {"resnet50": ("layer4.", "fc."), "vgg16": ("features.",),
            "inception_v3": ("Mixed", "Conv2d_1", "Conv2d_2", "Conv2d_3", "Conv2d_4")}


def reference_x10(name: str, architecture: str) -> bool:
    """The reference's rule: ResNet50 matches go to the classifier group, VGG16/InceptionV3 matches stay at 1x."""
    matches = any(pattern in name for pattern in PATTERNS[architecture])
    return matches if architecture == "resnet50" else not matches


KeyMap = Callable[[list[str], list[str]], dict[str, str]]
CAM_KEY_MAP = partial(wsoleval_key_map, heads=CAM_HEADS)
CASES: dict[str, tuple[type[WSOLModule], str, KeyMap]] = {
    # CAM, HaS and CutMix train the reference's CAM network: the HaS fixture's key list is that network.
    "cam": (CAM, "has", CAM_KEY_MAP),
    "has": (HaS, "has", CAM_KEY_MAP),
    "cutmix": (CutMix, "cutmix", CAM_KEY_MAP),
    "adl": (ADL, "adl", CAM_KEY_MAP),
    "acol": (ACoL, "acol", partial(wsoleval_key_map, heads=ACOL_HEADS)),
    "spg": (SPG, "spg", partial(wsoleval_key_map, heads=SPG_HEADS, aliases=SPG_ALIASES)),
}


CELLS = [(m, a) for a in ("resnet50", "vgg16", "inception_v3") for m in CASES]


@pytest.mark.parametrize(("method", "architecture"), CELLS)
def test_head_group_is_the_references_x10_group(method: str, architecture: str) -> None:
    cls, fixture_name, key_map = CASES[method]
    fixture = load_fixture(FIXTURES / fixture_name / f"{architecture}.pt")
    module = cls(backbone=architecture, num_classes=fixture["num_classes"])
    official = [key for key, _ in fixture["key_shapes"]]
    names = key_map(official, list(module.state_dict()))
    params = dict(module.named_parameters())
    expected = {names[key] for key in official if names[key] in params and reference_x10(key, architecture)}
    head = {id(p) for m in module.head_modules() for p in m.parameters()}
    actual = {name for name, p in params.items() if id(p) in head}
    assert actual == expected, (f"{method}/{architecture}: only library {sorted(actual - expected)[:5]}, "
                                f"only reference {sorted(expected - actual)[:5]}")
    # Every trainable official parameter is accounted for (the key map reaches all of them).
    assert {names[key] for key in official if names[key] in params} == set(params)


def test_new_layers_keeps_layer4_at_the_base_lr() -> None:
    module = CAM(backbone="resnet18", num_classes=3, lr_groups="new_layers")
    head = {id(p) for m in module.head_modules() for p in m.parameters()}
    assert not any(id(p) in head for p in module.net.trunk.stages[-1].parameters())
    assert all(id(p) in head for p in module.net.classifier.parameters())
    with pytest.raises(ValueError, match="lr_groups"):
        CAM(backbone="resnet18", num_classes=3, lr_groups="layer4")
