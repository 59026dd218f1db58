"""Convert official B-CAM checkpoints (zh460045050/BCAM) onto :class:`~wsol_lightning.methods.BCAM`.

Formats handled (the repo releases no checkpoints; these are what its code writes and loads):

* ``SingleObjectLocalization`` (``main.py``: ``{"state_dict": model.state_dict(), "epoch": ...}``), per
  backbone: ``ResNetBCAM`` (torchvision ResNet50 names), ``VggBCAM`` (``features.N``, ``conv6``),
  ``InceptionBCAM`` (torchvision InceptionV3 names, ``SPG_A3_1b.0`` / ``SPG_A3_2b.0``); heads
  ``aggregator_A/B`` (older checkpoints ``extractor_A/B``, renamed by its ``main.py`` for ILSVRC and
  OpenImages: both spellings are accepted here) and ``classifier_A/B``. ``_A`` is the object branch.
* ``MultiObjectLocalization`` (IRN fork, ``step/train_bcam.py``: ``model.module.state_dict()`` of
  ``net.resnet50_bcam.Net``): trunk under ``resnet50.``, the same tensors again under the aliases
  ``stage1-4.`` / ``backbone.`` / ``newly_added.`` (ignored), heads ``fc_attp_fore/back`` (aggregators)
  and ``fc8_fore/back`` (classifiers).

Every official key must be used or be a known alias, every library key filled, every shape equal
(:func:`~wsol_lightning.methods.official.remap_strict`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from torch import Tensor, nn

from wsol_lightning.methods.official import fill_batches_tracked, remap_strict, strip_prefixes

if TYPE_CHECKING:
    from wsol_lightning.methods.bcam.module import BCAM

#: Official head names -> library head names (both checkpoint families, both aggregator spellings).
HEAD_NAMES = {
    "aggregator_A": "aggregator_obj", "aggregator_B": "aggregator_bg",
    "extractor_A": "aggregator_obj", "extractor_B": "aggregator_bg",
    "classifier_A": "classifier_obj", "classifier_B": "classifier_bg",
    "fc_attp_fore": "aggregator_obj", "fc_attp_back": "aggregator_bg",
    "fc8_fore": "classifier_obj", "fc8_back": "classifier_bg",
}
#: Official names of the new convs after the trunk, in order, per backbone family.
EXTRA_CONVS = {"vgg": ("conv6",), "inception_v3": ("SPG_A3_1b.0", "SPG_A3_2b.0"), "resnet": ()}
#: Aliases the VOC ``Net`` registers for the same tensors (``stage1 = Sequential(resnet50.conv1, ...)``).
VOC_ALIASES = re.compile(r"^(stage\d|backbone|newly_added)\.")
_TRUNK = re.compile(r"^net\.trunk\.stages\.\d+\.(.+)$")


def _official_trunk_name(library_key: str) -> str | None:
    """``net.trunk.stages.4.features_28.weight`` -> ``features.28.weight`` (timm = torchvision names)."""
    match = _TRUNK.match(library_key)
    if match is None:
        return None
    name = re.sub(r"^features_(\d+)\.", r"features.\1.", match.group(1))
    return name.replace(".block.", ".")  # wrappers of the stride surgery (e.g. InceptionV3 Mixed_6a)


def _extra_conv_names(module: BCAM) -> list[str]:
    """Library names of the new convs (extra_pre then extra_post), in forward order."""
    names = []
    for part in ("extra_pre", "extra_post"):
        for name, sub in getattr(module.net, part).named_modules():
            if isinstance(sub, nn.Conv2d):
                names.append(f"net.{part}.{name}")
    return names


def official_key_map(module: BCAM, official_keys: Iterable[str]) -> dict[str, str | None]:
    """Map each official key to its library key (``None``: a known alias, deliberately unused).

    Raises:
        KeyError: naming the first official key that has no counterpart.

    """
    trunk = {}
    for key in module.state_dict():
        official = _official_trunk_name(key)
        if official is not None:
            trunk[official] = key
    family = next((f for f in EXTRA_CONVS if module.backbone_name.startswith(f)), "resnet")
    extras = dict(zip(EXTRA_CONVS[family], _extra_conv_names(module), strict=False))
    mapping: dict[str, str | None] = {}
    for key in official_keys:
        if VOC_ALIASES.match(key):
            mapping[key] = None
            continue
        bare = key[len("resnet50."):] if key.startswith("resnet50.") else key
        prefix, _, leaf = bare.rpartition(".")
        if prefix in HEAD_NAMES:
            mapping[key] = f"net.head.{HEAD_NAMES[prefix]}.{leaf}"
        elif prefix in extras:
            mapping[key] = f"{extras[prefix]}.{leaf}"
        elif bare in trunk:
            mapping[key] = trunk[bare]
        else:
            mapping[key] = f"<no library key for {key}>"
    return mapping


def _unwrap(official: Mapping[str, Tensor]) -> Mapping[str, Tensor]:
    """The ``state_dict`` of a ``main.py`` checkpoint dict, ``module.`` (DataParallel) prefixes removed."""
    inner = official.get("state_dict") if "state_dict" in official else official
    if not isinstance(inner, Mapping):
        raise TypeError(f"official B-CAM checkpoint: 'state_dict' is a {type(inner).__name__}, not a mapping")
    return strip_prefixes({k: v for k, v in inner.items() if isinstance(v, Tensor)})


def convert_official_state_dict(official: Mapping[str, Tensor], module: BCAM) -> dict[str, Tensor]:
    """Return ``module.state_dict()``'s keys filled from an official B-CAM state dict (or checkpoint dict).

    Args:
        official: an official ``state_dict`` (or ``main.py``'s ``{"state_dict": ...}``), any format above.
        module: the :class:`BCAM` to load into, built with the matching backbone and head arguments
            (e.g. ``configs/bcam_voc.yaml`` for the VOC format).

    Returns:
        A state dict for ``module.load_state_dict(..., strict=True)``; the library's own buffers the
        official format does not have (operating thresholds, ``num_batches_tracked``) keep the module's values.

    Raises:
        OfficialCheckpointError: unknown or missing keys or shape mismatches, each named.

    """
    state = _unwrap(official)
    mapping = official_key_map(module, state)
    target = module.state_dict()
    own: Callable[[str], Tensor | None] = lambda key: (  # noqa: E731
        fill_batches_tracked(key) if key.endswith("num_batches_tracked")
        else target[key].clone() if not key.startswith("net.") else None)
    return remap_strict(state, target, mapping.__getitem__, source="official B-CAM checkpoint", fill_missing=own)
