"""Converter from the released ORNet checkpoints (Sierkinhane/ORNet) to :class:`ORNet`'s state dict.

The authors release three files (``debug/checkpoints/<name>/...`` in their layout), each a
``torch.save({"state_dict": model.state_dict(), ...})`` of a plain (not DataParallel) model:

* ``evaluator`` (``train_evaluator.py``): ``Evaluator``, a torchvision VGG16 under ``model.``
  (``model.features.<i>``, ``model.classifier.{0,3,6}``) -> phase ``evaluator``;
* ``cub_coarse_best_model`` (stage 1, script unreleased; read by ``FineModel`` as ``["state_dict"]``):
  ``CoarseModel``: the torchvision ResNet50 (``conv1``, ``bn1``, ``layer1..4``, ``fc``), the U-Net
  ``att_layer4``, the heads ``att_conv2`` / ``att_conv3`` + ``bn_att3`` -> phase ``coarse`` (or ``refine``,
  which keeps the stem, the U-Net and the map head only);
* ``cub_fine_best_model`` (``train_2nd_step.py``): ``FineModel``: the stem, ``att_layer4``,
  ``att_conv3`` / ``bn_att3`` and the evaluator under ``vgg.model.`` -> phase ``refine``.

The library's modules must be built with the released architecture: ``backbone="resnet50"`` (the
stem is the low-level tap), ``evaluator_backbone="vgg16"``, the default decoder channels. torchvision's
VGG16 classifier (``Linear`` 25088->4096, 4096->4096) is timm's ``pre_logits`` (``Conv2d`` 7x7, 1x1):
the weights are reshaped. Keys are checked strictly (:func:`remap_strict`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from torch import Tensor

from wsol_lightning.methods.official import OfficialCheckpointError, remap_strict, strip_prefixes

if TYPE_CHECKING:
    from wsol_lightning.methods.ornet.module import ORNet

#: torchvision VGG16 ``classifier.<i>`` -> timm VGG16 module.
_VGG_CLASSIFIER = {"0": "pre_logits.fc1", "3": "pre_logits.fc2", "6": "head.fc"}
#: Official top-level modules of the stage-1 network -> library names (under ``net.``).
_HEADS = {"att_conv2": "aux_head", "att_conv3": "map_head.conv", "bn_att3": "map_head.bn", "fc": "classifier"}
_TRUNK = re.compile(r"^(conv1|bn1|layer[1-4])\.")
_UNET = re.compile(r"^att_layer4\.(down|up)_([123])\.(?:1\.|conv\.)UConv\.(.*)$")


def unwrap_official(official: Mapping[str, Any]) -> dict[str, Tensor]:
    """The state dict of an official file: its ``state_dict`` (or ``model``) entry, ``module.`` stripped.

    Raises:
        OfficialCheckpointError: the mapping holds no tensors.

    """
    state: Mapping[str, Any] = official
    for key in ("state_dict", "model"):
        if isinstance(state.get(key), Mapping):
            state = state[key]
            break
    tensors = {k: v for k, v in state.items() if isinstance(v, Tensor)}
    if not tensors:
        raise OfficialCheckpointError(
            f"official checkpoint: no tensors found (top-level keys {sorted(official)[:10]}); expected the "
            "released {'state_dict': ...} file or a state dict")
    return strip_prefixes(tensors)


def _rename_vgg(key: str, prefix: str) -> str:
    """``model.features.3.weight`` (after ``prefix``) -> ``eval_classifier.model.features.3.weight``.

    A key outside ``prefix`` or of an unknown classifier layer gets a name the module lacks (an error).
    """
    rest = key[len(prefix):] if key.startswith(prefix) else f"<unknown official key {key}>"
    match = re.match(r"^classifier\.(\d+)\.(weight|bias)$", rest)
    if match:
        layer = _VGG_CLASSIFIER.get(match.group(1), f"<unknown classifier layer {match.group(1)}>")
        return f"eval_classifier.model.{layer}.{match.group(2)}"
    return f"eval_classifier.model.{rest}"


def _rename_generator(key: str, trunk_keys: Mapping[str, str]) -> str | None:
    """Official stem / trunk / U-Net / head key -> library ``net.`` key (``None``: not a generator key)."""
    match = _UNET.match(key)
    if match:
        kind, index, rest = match.groups()
        return f"net.decoder.{kind}{index}.{'conv.' if kind == 'up' else ''}{rest}"
    if _TRUNK.match(key):
        return trunk_keys.get(key, f"net.trunk.<no place for {key}>")
    head, _, rest = key.partition(".")
    if head in _HEADS:
        return f"net.{_HEADS[head]}.{rest}"
    return None


def _trunk_index(target: Mapping[str, Tensor]) -> dict[str, str]:
    """timm/torchvision ResNet key -> library key (``net.trunk.stages.<i>.<key>``)."""
    out = {}
    for key in target:
        match = re.match(r"^net\.trunk\.stages\.\d+\.(.*)$", key)
        if match:
            out[match.group(1)] = key
    return out


def _reshape_vgg(state: Mapping[str, Tensor], target: Mapping[str, Tensor],
                 rename: Callable[[str], str | None]) -> dict[str, Tensor]:
    """Reshape torchvision's linear classifier weights to timm's convolution shapes where they map."""
    out = dict(state)
    for key, value in state.items():
        new_key = rename(key)
        if new_key in target and value.numel() == target[new_key].numel() and value.shape != target[new_key].shape:
            if new_key.endswith(("pre_logits.fc1.weight", "pre_logits.fc2.weight")):
                out[key] = value.reshape(target[new_key].shape)
    return out


def official_kind(state: Mapping[str, Tensor]) -> str:
    """Which released file a state dict is: ``"evaluator"``, ``"coarse"`` (stage 1) or ``"refine"`` (stage 2)."""
    if any(k.startswith("model.features.") for k in state):
        return "evaluator"
    return "refine" if any(k.startswith("vgg.") for k in state) else "coarse"


def official_renamer(kind: str, phase: str, target: Mapping[str, Tensor]) -> Callable[[str], str | None]:
    """Official key -> library key (``None``: deliberately unused) for a ``kind`` file into ``phase``.

    Args:
        kind: the file's kind (:func:`official_kind`).
        phase: the receiving module's phase.
        target: the receiving module's ``state_dict()`` (for the trunk's stage indices).

    """
    trunk_keys = _trunk_index(target)

    def rename(key: str) -> str | None:
        if kind == "evaluator":
            return _rename_vgg(key, "model.")
        if key.startswith("vgg."):
            return _rename_vgg(key, "vgg.model.")
        new_key = _rename_generator(key, trunk_keys)
        if new_key is None:
            return f"<unknown official key {key}>"
        if phase == "refine" and (key.startswith("att_conv2.") or (new_key not in target and _TRUNK.match(key))
                                  or key.startswith("fc.")):
            return None  # stage 1's classification path is not part of stage 2
        return new_key

    return rename


def convert_official_state_dict(official: Mapping[str, Any], module: ORNet) -> dict[str, Tensor]:
    """Map a released ORNet checkpoint onto ``module.state_dict()`` (exactly its keys).

    Args:
        official: the loaded official file (``{"state_dict": ..., ...}``) or its state dict.
        module: an :class:`ORNet` of the phase the file belongs to (``evaluator`` for ``evaluator``,
            ``coarse`` or ``refine`` for ``cub_coarse_best_model``, ``refine`` for ``cub_fine_best_model``).

    Returns:
        The converted state dict; buffers the official format has no tensor for (the operating threshold,
        the phase flag) keep the module's values, and ``previous_phase_loaded`` is set.

    Raises:
        OfficialCheckpointError: a key has no place in the module, a module key is not filled, or a shape
            differs (every key is named); or the file does not belong to the module's phase.

    """
    state = unwrap_official(official)
    target = module.state_dict()
    phase = module.phase
    source = {"evaluator": "ORNet evaluator checkpoint", "coarse": "ORNet stage-1 (coarse) checkpoint",
              "refine": "ORNet stage-2 (fine) checkpoint"}
    kind = official_kind(state)
    if phase == "evaluator" and kind != "evaluator" or phase != "evaluator" and kind == "evaluator":
        raise OfficialCheckpointError(
            f"{source[kind]} cannot be loaded into an ORNet of phase '{phase}': the released 'evaluator' file "
            "goes into phase 'evaluator', 'cub_coarse_best_model' into 'coarse' (or 'refine', without its "
            "evaluator), 'cub_fine_best_model' into 'refine'")
    if phase == "coarse" and kind == "refine":
        raise OfficialCheckpointError(
            f"{source[kind]} holds no classification path (layer1-4, fc, att_conv2): load it into phase 'refine'")
    rename = official_renamer(kind, phase, target)
    own = {k: v for k, v in target.items() if not k.startswith(("net.", "eval_classifier."))}

    def fill(key: str) -> Tensor | None:
        if key == "previous_phase_loaded":
            return own[key].clone().fill_(True)
        if key in own:
            return own[key].clone()
        if phase == "refine" and kind == "coarse" and key.startswith("eval_classifier."):
            return target[key].clone()  # the coarse file has no evaluator: keep the module's
        return None

    state = _reshape_vgg(state, target, rename)
    return remap_strict(state, target, rename, source=source[kind], fill_missing=fill)
