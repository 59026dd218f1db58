"""Pieces the wsolevaluation re-implementations share (ACoL, SPG, CAM's InceptionV3 pool, ``lr_groups``).

The reference re-implements every baseline on three backbones and cuts each one the same way for every
method: ResNet50 with layer4 at stride 1 (layer3 too with ``large_feature_map``), VGG16 without pool5 and
InceptionV3 with a stride-1 Mixed_6a (28x28 after Mixed_5d), plus one more 3x3/2 max-pool after Mixed_5d
unless ``large_feature_map`` (14x14). Its optimizer gives 10x the lr to the parameters whose names match
per-family patterns (``main.py`` ``_FEATURE_PARAM_LAYER_PATTERNS``): for ResNet50 that is ``layer4`` (and a
``fc``), *not* the new heads; for VGG16 and InceptionV3 every layer outside the pretrained features.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Literal

from torch import Tensor, nn

from wsol_lightning.backbones.trunk import Trunk, architecture_name

Family = Literal["resnet", "vgg", "inception_v3", "other"]
LRGroups = Literal["official", "new_layers"]
HeadInit = Literal["he", "xavier", "default"]


def backbone_family(backbone: str) -> Family:
    """The wsolevaluation family a timm name belongs to (``resnet10t`` is a ResNet, ``vgg16.tv_in1k`` a VGG)."""
    arch = architecture_name(backbone)
    for family in ("resnet", "vgg", "inception_v3"):
        if arch.startswith(family):
            return family  # type: ignore[return-value]
    return "other"


def init_new_layers(module: nn.Module, mode: HeadInit) -> None:
    """Initialise the convs of a new layer as the reference's ``initialize_weights`` does.

    ``he``: normal with std ``sqrt(2 / fan_out)``; ``xavier``: Glorot uniform; both zero the biases.
    ``default`` keeps PyTorch's initialisation.
    """
    if mode not in ("he", "xavier", "default"):
        raise ValueError(f"head_init must be 'he', 'xavier' or 'default', got {mode!r}")
    if mode == "default":
        return
    for conv in module.modules():
        if not isinstance(conv, nn.Conv2d):
            continue
        if mode == "he":
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
        else:
            nn.init.xavier_uniform_(conv.weight)
        if conv.bias is not None:
            nn.init.zeros_(conv.bias)


def conv_relu(in_channels: int, out_channels: int, kernel_size: int = 3) -> list[nn.Module]:
    """``[Conv2d(k, 'same' padding), ReLU]`` (the reference's new layers)."""
    return [nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2), nn.ReLU()]


def small_inception_pool(large_feature_map: bool) -> nn.Module:
    """The reference's 3x3/2 ceil-mode max-pool after Mixed_5d (28 -> 14 at 224), identity if ``large``."""
    return nn.Identity() if large_feature_map else nn.MaxPool2d(3, stride=2, ceil_mode=True)


def pool_before_mixed_6a(trunk: Trunk, large_feature_map: bool) -> None:
    """Put :func:`small_inception_pool` first in the stage of a widened InceptionV3 trunk that holds Mixed_6a.

    The pool becomes the stage's child ``pool_5d`` (no parameters, so state-dict keys do not change), between
    Mixed_5d and Mixed_6a as in the reference's ``Inception{Cam,Acol,Adl}.forward``.

    Raises:
        ValueError: no stage holds ``Mixed_6a``.

    """
    for index, stage in enumerate(trunk.stages):
        if "Mixed_6a" in stage._modules:
            trunk.stages[index] = nn.Sequential(OrderedDict(
                [("pool_5d", small_inception_pool(large_feature_map)), *stage.named_children()]))
            return
    raise ValueError("pool_before_mixed_6a: the trunk has no Mixed_6a (an InceptionV3 cut at Mixed_6e is needed)")


def check_lr_groups(lr_groups: str) -> None:
    """Reject an unknown ``lr_groups`` value with the accepted ones."""
    if lr_groups not in ("official", "new_layers"):
        raise ValueError(f"lr_groups must be 'official' or 'new_layers', got {lr_groups!r}")


def minmax_per_map(maps: Tensor) -> Tensor:
    """Min-max normalise every ``(h, w)`` map of ``maps`` ``(..., h, w)`` to [0, 1], as the reference does.

    The reference's ``normalize_tensor``: ``(x - min) / (max - min)`` with no guard, so a constant map
    becomes NaN (kept here: the erasing and mask rules compare against it exactly as the reference does).
    """
    flat = maps.flatten(-2)
    low = flat.amin(dim=-1, keepdim=True)
    high = flat.amax(dim=-1, keepdim=True)
    return ((flat - low) / (high - low)).view_as(maps)
