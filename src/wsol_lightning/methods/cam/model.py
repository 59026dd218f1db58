"""The CAM network: a trunk, an optional extra conv, global average pooling and a linear classifier."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from wsol_lightning.backbones import build_trunk


@dataclass(frozen=True)
class CAMPreset:
    """How the wsolevaluation CAM baselines cut each backbone.

    Attributes:
        num_taps: stages kept (the last one feeds the classifier).
        stride_one_taps: stages run at stride 1 (no dilation).
        extra_conv: channels of an extra 3x3 conv + ReLU before GAP (VGG's conv6), 0 for none.

    """

    num_taps: int | None = None
    stride_one_taps: tuple[int, ...] = ()
    extra_conv: int = 0


#: wsolevaluation's CAM trunks: ResNet layer4 at stride 1 (14x14 at 224), VGG16 conv5_3 without pool5
#: plus conv6 (512 -> 1024), InceptionV3 widened to Mixed_6e at 28x28 plus a 3x3 conv (768 -> 1024).
CAM_PRESETS: dict[str, CAMPreset] = {
    "vgg": CAMPreset(num_taps=5, extra_conv=1024),
    "inception_v3": CAMPreset(num_taps=4, stride_one_taps=(3,), extra_conv=1024),
    "mobilenetv1": CAMPreset(stride_one_taps=(4,)),
    "resnet": CAMPreset(stride_one_taps=(4,)),
}


def cam_preset(backbone: str) -> CAMPreset:
    """Return the preset of the first family prefix ``backbone`` starts with (default: last tap as is)."""
    for prefix, preset in CAM_PRESETS.items():
        if backbone.startswith(prefix):
            return preset
    return CAMPreset()


class CAMNet(nn.Module):
    """Trunk -> (extra conv) -> GAP -> linear; the CAM of class c is sum_k w_ck F_k.

    Args:
        backbone: timm model name.
        num_classes: number of classes.
        pretrained: ``False``, ``True`` or a local weights file.
        stride_one_taps: override the preset's stride-1 stages.
        num_taps: override the preset's number of stages.
        extra_conv: override the preset's extra conv channels (0 = none).

    """

    def __init__(self, backbone: str, num_classes: int, pretrained: bool | str = False,
                 stride_one_taps: tuple[int, ...] | None = None, num_taps: int | None = None,
                 extra_conv: int | None = None) -> None:
        super().__init__()
        preset = cam_preset(backbone)
        self.trunk = build_trunk(
            backbone, pretrained,
            stride_one_taps=preset.stride_one_taps if stride_one_taps is None else stride_one_taps,
            num_taps=preset.num_taps if num_taps is None else num_taps,
        )
        channels = self.trunk.channels[-1]
        extra = preset.extra_conv if extra_conv is None else extra_conv
        self.extra = nn.Identity()
        if extra:
            self.extra = nn.Sequential(nn.Conv2d(channels, extra, 3, padding=1), nn.ReLU(inplace=True))
            channels = extra
        self.classifier = nn.Linear(channels, num_classes)
        self.feature_channels = channels

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """Return ``features`` ``(B, K, h, w)`` and ``logits`` ``(B, C)`` for ``(B, 3, H, W)`` images."""
        features = self.extra(self.trunk.run(images))
        logits = self.classifier(features.mean(dim=(2, 3)))
        return {"features": features, "logits": logits}

    def class_maps(self, features: Tensor, classes: Tensor) -> Tensor:
        """CAMs ``(B, h, w)``: the classifier weights of ``classes`` ``(B,)`` applied to ``features``."""
        weights = self.classifier.weight[classes]  # (B, K)
        return torch.einsum("bk,bkhw->bhw", weights, features)
