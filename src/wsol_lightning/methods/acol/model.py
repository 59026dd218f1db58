"""The ACoL network: a trunk and two convolutional classifiers, the second one on adversarially erased features.

Notation (Zhang et al., CVPR 2018; the wsolevaluation re-implementation): trunk features ``F``
``(B, K, h, w)``; classifier A (3x3 conv K->1024, ReLU, 3x3 conv 1024->1024, ReLU, 1x1 conv 1024->C) gives
class maps ``M_A`` ``(B, C, h, w)`` and logits ``GAP(M_A)``. The map of the label, min-max normalised and
detached, erases ``F`` where it reaches ``erase_threshold``; classifier B (same shape) on the erased features
gives ``M_B`` and its logits. The test map of class ``c`` is ``max(norm(M_A[c]), norm(M_B[c]))``, with the
erasing driven by ``c``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from wsol_lightning.backbones import build_trunk
from wsol_lightning.methods.wsoleval import (
    HeadInit,
    backbone_family,
    conv_relu,
    init_new_layers,
    minmax_per_map,
    pool_before_mixed_6a,
)


def acol_classifier(in_channels: int, num_classes: int, width: int = 1024) -> nn.Sequential:
    """The reference's ACoL classifier: 3x3 conv + ReLU, 3x3 conv + ReLU, 1x1 conv to the classes."""
    return nn.Sequential(*conv_relu(in_channels, width), *conv_relu(width, width), nn.Conv2d(width, num_classes, 1))


def erase(features: Tensor, attention: Tensor, threshold: float) -> Tensor:
    """Zero ``features`` ``(B, K, h, w)`` where ``attention`` ``(B, h, w)`` >= ``threshold`` (NaN keeps them)."""
    keep = ~(attention >= threshold)
    return features * keep.unsqueeze(1).to(features.dtype)


def _acol_vgg_pools(stages: nn.ModuleList, large_feature_map: bool) -> None:
    """The reference's ACoL VGG16: 3x3/2 pad-1 max-pools instead of the 2x2 ones (the 4th at stride 1 if large)."""
    for index in range(1, 5):
        stage = stages[index]
        name = next(n for n, m in stage.named_children() if isinstance(m, nn.MaxPool2d))
        stride = 1 if (large_feature_map and index == 4) else 2
        setattr(stage, name, nn.MaxPool2d(3, stride=stride, padding=1))


class ACoLNet(nn.Module):
    """Trunk -> (family tail) -> classifiers A and B.

    Args:
        backbone: timm model name (``resnet50``, ``vgg16``, ``inception_v3`` get the reference's cuts; any
            other timm CNN is used up to its last tap).
        num_classes: number of classes.
        pretrained: ``False``, ``True`` or a local weights file.
        large_feature_map: the reference's ``large_feature_map`` (28x28 instead of 14x14 at 224).
        head_width: channels of the classifiers' hidden convs (reference: 1024).
        head_init: ``he`` (reference for ResNet50), ``xavier`` (VGG16, InceptionV3) or ``default``;
            ``None`` = the reference's choice for the family.

    """

    def __init__(self, backbone: str, num_classes: int, pretrained: bool | str = False,
                 large_feature_map: bool = False, head_width: int = 1024, head_init: HeadInit | None = None) -> None:
        super().__init__()
        self.family = backbone_family(backbone)
        self.tail: nn.Module = nn.Identity()
        if self.family == "resnet":
            self.trunk = build_trunk(backbone, pretrained, stride_one_taps=(3, 4) if large_feature_map else (4,))
        elif self.family == "vgg":
            self.trunk = build_trunk(backbone, pretrained, num_taps=5)
            _acol_vgg_pools(self.trunk.stages, large_feature_map)
            # the reference's trailing 'M2' (3x3/1 max-pool) of the features, then a 3x3/1 average pool
            self.tail = nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.AvgPool2d(3, 1, 1))
        elif self.family == "inception_v3":
            self.trunk = build_trunk(backbone, pretrained, num_taps=4, stride_one_taps=(3,))
            pool_before_mixed_6a(self.trunk, large_feature_map)
        else:
            self.trunk = build_trunk(backbone, pretrained)
        channels = self.trunk.channels[-1]
        self.classifier_a = acol_classifier(channels, num_classes, head_width)
        self.classifier_b = acol_classifier(channels, num_classes, head_width)
        init = head_init if head_init is not None else ("he" if self.family == "resnet" else "xavier")
        for head in (self.classifier_a, self.classifier_b):
            init_new_layers(head, init)

    def new_layers(self) -> list[nn.Module]:
        """The layers trained from scratch (the two classifiers)."""
        return [self.classifier_a, self.classifier_b]

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """``features`` ``(B, K, h, w)``, classifier A's ``maps_a`` ``(B, C, h, w)`` and ``logits`` ``(B, C)``."""
        features = self.tail(self.trunk.run(images))
        maps_a = self.classifier_a(features)
        return {"features": features, "maps_a": maps_a, "logits": maps_a.mean(dim=(2, 3))}

    def erased_maps(self, outputs: dict[str, Tensor], classes: Tensor, threshold: float) -> Tensor:
        """Classifier B's maps ``(B, C, h, w)`` on the features erased by the detached map A of ``classes``."""
        rows = torch.arange(classes.shape[0], device=classes.device)
        attention = minmax_per_map(outputs["maps_a"].detach()[rows, classes])
        return self.classifier_b(erase(outputs["features"], attention, threshold))

    def class_maps(self, outputs: dict[str, Tensor], classes: Tensor, threshold: float) -> Tensor:
        """Test maps ``(B, h, w)``: the larger of the min-max normalised maps A and B of ``classes``."""
        rows = torch.arange(classes.shape[0], device=classes.device)
        map_a = minmax_per_map(outputs["maps_a"].detach()[rows, classes])
        map_b = minmax_per_map(self.erased_maps(outputs, classes, threshold).detach()[rows, classes])
        return torch.maximum(map_a, map_b)
