"""Converting wsolevaluation checkpoints: the methods with their own heads (ACoL, SPG) and CAM's InceptionV3 head.

``main.py`` saves ``{"state_dict": model.state_dict(), ...}``. The trunks keep torchvision's names, which
:func:`~wsol_lightning.methods.cam.wsoleval_official.wsoleval_cam_key_map` maps for ResNet50 and VGG16
(InceptionV3's ``Conv2d_*`` / ``Mixed_*`` names are timm's own and are matched by name). A method renames a
few trunk blocks (SPG's ``SPG_A1`` = ``layer3.0``: the ``aliases``) and adds its own heads (the ``heads``
prefix table); :func:`convert_wsoleval_state_dict` applies the strict checks of
:func:`~wsol_lightning.methods.official.remap_strict`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from wsol_lightning.methods.bcam.official import _official_trunk_name
from wsol_lightning.methods.cam.wsoleval_official import wsoleval_cam_key_map
from wsol_lightning.methods.official import fill_batches_tracked, remap_strict, strip_prefixes

#: ``(pattern, replacement)`` pairs rewriting an official trunk key to its torchvision name.
Aliases = Sequence[tuple[str, str | Callable[[re.Match[str]], str]]]
#: The heads of the reference's CAM-architecture InceptionV3 (``InceptionCam``, ``InceptionAdl``: CAM, HaS, CutMix,
#: ADL) -> :class:`~wsol_lightning.methods.cam.model.CAMNet`'s; ResNet50 / VGG16 ``fc`` and ``conv6`` need no entry.
CAM_HEADS: dict[str, str] = {"SPG_A3_1b.0": "net.extra.conv_a", "SPG_A3_2b.0": "net.extra.conv_b",
                             "SPG_A4": "net.classifier"}


def wsoleval_key_map(official_keys: Iterable[str], library_keys: Iterable[str], heads: Mapping[str, str],
                     aliases: Aliases = ()) -> dict[str, str]:
    """Map each official key to the library key it fills (an unknown key is mapped to itself).

    Args:
        official_keys: keys of the official state dict (``module.`` stripped).
        library_keys: the library module's ``state_dict()`` keys (network under ``net.``).
        heads: official module prefix (``classifier_A.0``) -> library prefix (``net.classifier_a.0``).
        aliases: rewrites of official trunk names to torchvision names, applied in order.

    """
    library_keys = list(library_keys)
    by_name = {name: key for key in library_keys if (name := _official_trunk_name(key)) is not None}
    mapping: dict[str, str] = {}
    trunk: dict[str, str] = {}  # official key -> torchvision name
    for key in official_keys:
        prefix, _, leaf = key.rpartition(".")
        if prefix in heads:
            mapping[key] = f"{heads[prefix]}.{leaf}"
            continue
        name = key
        for pattern, replacement in aliases:
            name = re.sub(pattern, replacement, name)
        trunk[key] = name
    names = wsoleval_cam_key_map(trunk.values(), library_keys)
    for key, name in trunk.items():
        mapped = names[name]
        mapping[key] = by_name.get(name, key) if mapped == name else mapped
    return mapping


def convert_wsoleval_state_dict(official: Mapping[str, Any], module: nn.Module, heads: Mapping[str, str],
                                aliases: Aliases = (), source: str = "official checkpoint") -> dict[str, Tensor]:
    """Return ``module.state_dict()``'s keys filled from a wsolevaluation state dict (or checkpoint dict).

    The library's own buffers (operating thresholds) keep the module's values; ``num_batches_tracked``
    absent from an old file is filled with 0.

    Raises:
        OfficialCheckpointError: unknown or missing keys or shape mismatches, each named.

    """
    inner = official.get("state_dict", official)
    if not isinstance(inner, Mapping):
        raise TypeError(f"{source}: 'state_dict' is a {type(inner).__name__}, not a mapping")
    state = strip_prefixes({k: v for k, v in inner.items() if isinstance(v, Tensor)})
    target = module.state_dict()
    mapping = wsoleval_key_map(state, target, heads, aliases)

    def own(key: str) -> Tensor | None:
        if key.endswith("num_batches_tracked"):
            return fill_batches_tracked(key)
        return None if key.startswith("net.") else target[key].clone()

    return remap_strict(state, target, mapping.__getitem__, source=source, fill_missing=own)
