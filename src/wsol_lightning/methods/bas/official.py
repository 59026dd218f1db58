"""Convert the authors' released BAS checkpoints (wpy1999/BAS, wpy1999/BAS-Extension) to :class:`BAS`.

Every released format is one official ``Model`` state dict (possibly wrapped as ``{"model": ...}`` and
prefixed ``module.`` by DataParallel/DDP):

* trunk: torchvision names for ResNet50 (``conv1``, ``layer1.0.conv1``, ...) and InceptionV3
  (``Conv2d_1a_3x3.conv``, ``Mixed_6a.branch3x3.conv``, ...), which are timm's names too; VGG16
  ``conv1_1 .. conv5_3`` and MobileNetV1 ``model.<i>.<j>``, which are matched by position (as the
  official code loads its own pretrained files) with every shape checked;
* head: ``classifier_cls.{0,2,4}`` (``classifier.{0,2,4}`` in the CVPR InceptionV3; the single
  ``classifier_cls`` conv of the WSSS net) -> ``net.tail.classifier``;
* generator: ``classifier_loc.0`` -> ``net.generator``;
* the CVPR ILSVRC models' persistent frozen copies (``layer4_copy``, ``Mixed_7a_copy``,
  ``classifier_cls_copy``, MobileNetV1's ``erase_branch``) are dropped: the official code overwrites
  them with the live weights at every forward, and the library runs the background branch on the live
  weights directly.

The module must be built with the same architecture as the checkpoint (backbone, ``num_classes``,
``variant``; ``head_convs=0, head_bias=False, stride_one_taps=[4], pool_between="none"`` for WSSS, as in
``configs/bas_voc.yaml``); anything else is an :class:`OfficialCheckpointError` naming the keys.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn

from wsol_lightning.methods.official import OfficialCheckpointError, remap_strict, strip_prefixes

_TRUNK = re.compile(r"^net\.(extractor|tail\.features)\.\d+\.")
_UNMAPPED = "<no place in BAS>:"


def _trunk_name(library_key: str) -> str:
    """``net.extractor.3.Mixed_6a.block.branch3x3.conv.weight`` -> ``Mixed_6a.branch3x3.conv.weight``."""
    return _TRUNK.sub("", library_key).replace(".block.", ".")


def _is_tracked(key: str) -> bool:
    return key.endswith("num_batches_tracked")


def official_key_map(official_keys: Iterable[str], module: nn.Module) -> dict[str, str | None]:
    """Map each official key (prefixes stripped) to its key in ``module.state_dict()``.

    Returns:
        ``{official key: library key}``; ``None`` for keys deliberately dropped (the frozen copies of the
        CVPR ILSVRC models), and a marker that is no library key for keys with no place (so
        :func:`remap_strict` names them).

    """
    official_keys = list(official_keys)
    library_keys = list(module.state_dict())
    mapping: dict[str, str | None] = {}
    trunk: list[str] = []
    for key in official_keys:
        root, _, rest = key.partition(".")
        if "_copy" in root or root == "erase_branch":
            mapping[key] = None
        elif root == "classifier_loc":
            mapping[key] = "net.generator." + rest.partition(".")[2]
        elif root in ("classifier_cls", "classifier"):
            mapping[key] = "net.tail.classifier." + (rest if "." in rest else "0." + rest)
        else:
            trunk.append(key)
    library_trunk = [k for k in library_keys if _TRUNK.match(k)]
    by_name = {_trunk_name(k): k for k in library_trunk}
    if any(k in by_name for k in trunk):  # ResNet50 / InceptionV3: timm's names are the official ones
        mapping.update({k: by_name.get(k, _UNMAPPED + k) for k in trunk})
        return mapping
    # VGG16 / MobileNetV1: the official names are not timm's; match by position, skipping
    # num_batches_tracked on both sides (old files have none), shapes checked by remap_strict.
    official_params = [k for k in trunk if not _is_tracked(k)]
    library_params = [k for k in library_trunk if not _is_tracked(k)]
    if len(official_params) != len(library_params):
        raise OfficialCheckpointError(
            f"official checkpoint: its trunk has {len(official_params)} tensors (first {official_params[:3]}), "
            f"the module's backbone {len(library_params)} (first {library_params[:3]}): another backbone?"
        )
    mapping.update(dict(zip(official_params, library_params)))
    tracked = {k.rsplit(".", 1)[0]: k for k in library_trunk if _is_tracked(k)}
    for key in trunk:
        if _is_tracked(key):
            owner = mapping.get(key.rsplit(".", 1)[0] + ".running_mean")
            mapping[key] = tracked.get(owner.rsplit(".", 1)[0], _UNMAPPED + key) if owner else _UNMAPPED + key
    return mapping


def convert_official_state_dict(official: Mapping[str, Tensor], module: nn.Module) -> dict[str, Tensor]:
    """Convert a released BAS / BAS-Extension checkpoint into ``module``'s state dict (strict).

    Args:
        official: the official ``Model`` state dict, or a checkpoint dict holding it under ``"model"``
            or ``"state_dict"``; ``module.`` prefixes are removed.
        module: the :class:`~wsol_lightning.methods.BAS` module to load into.

    Returns:
        A state dict with exactly ``module.state_dict()``'s keys.

    Raises:
        OfficialCheckpointError: a key with no place, a module key not filled, or a shape mismatch
            (e.g. another ``num_classes`` or backbone), naming the keys.

    """
    for wrapper in ("model", "state_dict"):
        if isinstance(official.get(wrapper), Mapping):
            official = official[wrapper]  # type: ignore[assignment]
    official = strip_prefixes(official, ("module.",))
    mapping = official_key_map(official, module)
    target = module.state_dict()

    def fill(key: str) -> Tensor | None:
        if _is_tracked(key):
            return torch.zeros((), dtype=torch.long)
        return target[key] if not key.startswith("net.") else None  # the module's own buffers

    def rename(key: str) -> str | None:
        return mapping[key] if key in mapping else _UNMAPPED + key

    try:
        return remap_strict(official, target, rename, source="official BAS checkpoint", fill_missing=fill)
    except OfficialCheckpointError as error:
        hint = ""
        if re.search(r"net\.(generator|tail\.classifier)\.\d*\.?bias", str(error)):
            hint = " (a WSSS checkpoint has no head biases: build BAS with head_bias=False)"
        raise OfficialCheckpointError(f"{error}{hint}") from error
