"""Key mapping from clovaai/wsolevaluation's CAM-architecture checkpoints onto :class:`CAMNet`.

The reference trains CAM, HaS and CutMix on one architecture (``architecture_type='cam'``: ``ResNetCam``,
``VggCam``) and ADL on the same one with parameter-free ``ADL`` layers inserted into its ``nn.Sequential``
containers (which shifts the indices of the layers after them). Its state-dict layout is:

* ResNet50: ``conv1``, ``bn1``, ``layer{1..4}.{block}.*``, ``fc``;
* VGG16: ``features.{index}.*`` (convolutions only carry tensors), ``conv6``, ``fc``.

The library keeps timm's names inside :class:`~wsol_lightning.backbones.Trunk` stages
(``trunk.stages.3.layer3.0.conv1.weight``, ``trunk.stages.2.features_10.weight``), the extra conv as
``extra.0`` and the linear classifier as ``classifier``. Blocks and convolutions are matched by their
order, so the ADL-shifted indices need no table. The methods' ``official.py`` converters build on this through
:func:`~wsol_lightning.methods.wsoleval_official.convert_wsoleval_state_dict` (which also matches InceptionV3's
``Conv2d_*`` / ``Mixed_*`` names, timm's own, and its ``SPG_A3_*`` head by ``CAM_HEADS``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_RESNET_BLOCK = re.compile(r"^layer(\d)\.(\d+)\.(.+)$")
_VGG_FEATURE = re.compile(r"^features\.(\d+)\.(weight|bias)$")
_LIB_VGG_CONV = re.compile(r"^(.*trunk\.stages\.\d+\.features_(\d+))\.weight$")
_LIB_RESNET_STEM = re.compile(r"^(.*trunk\.stages\.0)\.conv1\.weight$")


def _dense(indices: Iterable[int]) -> dict[int, int]:
    """Sorted distinct indices -> their rank (0, 1, 2, ...)."""
    return {index: rank for rank, index in enumerate(sorted(set(indices)))}


def wsoleval_cam_key_map(official_keys: Iterable[str], library_keys: Iterable[str],
                         prefix: str = "net.") -> dict[str, str]:
    """Map every official key of a wsolevaluation CAM/ADL checkpoint to the library key it fills.

    Args:
        official_keys: keys of the reference's state dict (``module.`` already stripped).
        library_keys: the library module's ``state_dict()`` keys.
        prefix: where the :class:`CAMNet` sits in the library module (``"net."`` in the LightningModules).

    Returns:
        ``{official key: library key}``; a key the layout does not know is mapped to itself (so that
        :func:`remap_strict` reports it by name).

    """
    official_keys, library_keys = list(official_keys), list(library_keys)
    mapping: dict[str, str] = {}
    stem = next((m.group(1) for k in library_keys if (m := _LIB_RESNET_STEM.match(k))), None)
    lib_convs = sorted((int(m.group(2)), m.group(1)) for k in library_keys if (m := _LIB_VGG_CONV.match(k)))
    blocks: dict[str, list[int]] = {}
    for key in official_keys:
        if m := _RESNET_BLOCK.match(key):
            blocks.setdefault(m.group(1), []).append(int(m.group(2)))
    dense_blocks = {layer: _dense(indices) for layer, indices in blocks.items()}
    conv_rank = _dense(int(m.group(1)) for k in official_keys if (m := _VGG_FEATURE.match(k)))
    for key in official_keys:
        head, _, leaf = key.partition(".")
        if head == "fc":
            mapping[key] = f"{prefix}classifier.{leaf}"
        elif head == "conv6":
            mapping[key] = f"{prefix}extra.0.{leaf}"
        elif head in ("conv1", "bn1") and stem is not None:
            mapping[key] = f"{stem}.{key}"
        elif m := _RESNET_BLOCK.match(key):
            layer, block, rest = m.group(1), int(m.group(2)), m.group(3)
            mapping[key] = f"{prefix}trunk.stages.{layer}.layer{layer}.{dense_blocks[layer][block]}.{rest}"
        elif (m := _VGG_FEATURE.match(key)) and conv_rank[int(m.group(1))] < len(lib_convs):
            mapping[key] = f"{lib_convs[conv_rank[int(m.group(1))]][1]}.{m.group(2)}"
        else:
            mapping[key] = key
    return mapping
