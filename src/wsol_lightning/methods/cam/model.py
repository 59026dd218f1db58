"""The CAM network: a trunk, an optional extra conv (or InceptionV3 head), global average pooling and a classifier."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from wsol_lightning.backbones import build_trunk
from wsol_lightning.methods.wsoleval import backbone_family, init_new_layers, pool_before_mixed_6a


@dataclass(frozen=True)
class CAMPreset:
    """How the wsolevaluation CAM baselines cut each backbone.

    Attributes:
        num_taps: stages kept (the last one feeds the classifier).
        stride_one_taps: stages run at stride 1 (no dilation).
        extra_conv: channels of an extra 3x3 conv + ReLU before GAP (VGG's conv6), 0 for none.
        inception_head: the reference's ``InceptionCam`` head instead: a 3x3/2 max-pool between Mixed_5d and
            Mixed_6a (unless ``large_feature_map``), then dropout, 3x3 conv + ReLU, dropout, 3x3 conv + ReLU,
            dropout (both convs ``extra_conv`` wide) and a 1x1 conv classifier whose output is the CAM
            (Xavier-initialised, as its ``initialize_weights(init_mode='xavier')``).

    """

    num_taps: int | None = None
    stride_one_taps: tuple[int, ...] = ()
    extra_conv: int = 0
    inception_head: bool = False


#: wsolevaluation's CAM trunks: ResNet layer4 at stride 1 (14x14 at 224), VGG16 conv5_3 without pool5
#: plus conv6 (512 -> 1024), InceptionV3 widened (SPG stem, stride-1 Mixed_6a) to Mixed_6e at 14x14 (28x28 with
#: ``large_feature_map``) with ``InceptionCam``'s head (768 -> 1024 -> 1024 -> classes).
CAM_PRESETS: dict[str, CAMPreset] = {
    "vgg": CAMPreset(num_taps=5, extra_conv=1024),
    "inception_v3": CAMPreset(num_taps=4, stride_one_taps=(3,), extra_conv=1024, inception_head=True),
    "mobilenetv1": CAMPreset(stride_one_taps=(4,)),
    "resnet": CAMPreset(stride_one_taps=(4,)),
}


def cam_preset(backbone: str) -> CAMPreset:
    """Return the preset of the first family prefix ``backbone`` starts with (default: last tap as is)."""
    for prefix, preset in CAM_PRESETS.items():
        if backbone.startswith(prefix):
            return preset
    return CAMPreset()


def inception_cam_head(in_channels: int, width: int, dropout: float) -> nn.Sequential:
    """``InceptionCam``'s ``SPG_A3_1b`` / ``SPG_A3_2b`` with its three dropouts (``dropout`` 0: none).

    Children ``drop_in, conv_a, relu_a, drop_a, conv_b, relu_b, drop_b`` (a dropout of 0 is an identity).
    """

    def drop() -> nn.Module:
        return nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    return nn.Sequential(OrderedDict([
        ("drop_in", drop()), ("conv_a", nn.Conv2d(in_channels, width, 3, padding=1)), ("relu_a", nn.ReLU()),
        ("drop_a", drop()), ("conv_b", nn.Conv2d(width, width, 3, padding=1)), ("relu_b", nn.ReLU()),
        ("drop_b", drop()),
    ]))


class CAMNet(nn.Module):
    """Trunk -> (extra conv) -> GAP -> linear; the CAM of class c is sum_k w_ck F_k.

    On InceptionV3 (``inception_head``) the classifier is a 1x1 conv applied before GAP, as the reference's
    ``SPG_A4``: the CAM is its output, ``sum_k w_ck F_k + b_c``.

    Args:
        backbone: timm model name.
        num_classes: number of classes.
        pretrained: ``False``, ``True`` or a local weights file.
        stride_one_taps: override the preset's stride-1 stages.
        num_taps: override the preset's number of stages.
        extra_conv: override the preset's extra conv channels (0 = none).
        large_feature_map: the reference's ``large_feature_map`` (28x28 maps at 224 instead of 14x14): ResNet
            layer3 at stride 1 too, VGG without pool4 (its ``'28x28'`` layer list), InceptionV3 without the
            max-pool after Mixed_5d; no effect on other trunks.
        head_dropout: dropout rate of the InceptionV3 head (reference ``InceptionCam``: 0.5; ``InceptionAdl``
            has none); unused on other trunks.

    """

    def __init__(self, backbone: str, num_classes: int, pretrained: bool | str = False,
                 stride_one_taps: tuple[int, ...] | None = None, num_taps: int | None = None,
                 extra_conv: int | None = None, large_feature_map: bool = False, head_dropout: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= head_dropout < 1.0:
            raise ValueError(f"CAM: head_dropout must be in [0, 1), got {head_dropout}")
        preset = cam_preset(backbone)
        if stride_one_taps is None:
            stride_one_taps = preset.stride_one_taps
            if large_feature_map:
                stride_one_taps = {"resnet": (3, 4), "vgg": (4,)}.get(backbone_family(backbone), stride_one_taps)
        self.trunk = build_trunk(backbone, pretrained, stride_one_taps=stride_one_taps,
                                 num_taps=preset.num_taps if num_taps is None else num_taps)
        channels = self.trunk.channels[-1]
        extra = preset.extra_conv if extra_conv is None else extra_conv
        self.extra: nn.Module = nn.Identity()
        self.classifier: nn.Linear | nn.Conv2d
        if preset.inception_head:
            pool_before_mixed_6a(self.trunk, large_feature_map)
            if extra:
                self.extra = inception_cam_head(channels, extra, head_dropout)
                channels = extra
            self.classifier = nn.Conv2d(channels, num_classes, 1)
            init_new_layers(self.extra, "xavier")
            init_new_layers(self.classifier, "xavier")
        else:
            if extra:
                self.extra = nn.Sequential(nn.Conv2d(channels, extra, 3, padding=1), nn.ReLU(inplace=True))
                channels = extra
            self.classifier = nn.Linear(channels, num_classes)
        self.feature_channels = channels

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """Return ``features`` ``(B, K, h, w)`` and ``logits`` ``(B, C)`` for ``(B, 3, H, W)`` images."""
        features = self.extra(self.trunk.run(images))
        if isinstance(self.classifier, nn.Conv2d):
            logits = self.classifier(features).mean(dim=(2, 3))
        else:
            logits = self.classifier(features.mean(dim=(2, 3)))
        return {"features": features, "logits": logits}

    def class_maps(self, features: Tensor, classes: Tensor) -> Tensor:
        """CAMs ``(B, h, w)``: the classifier weights of ``classes`` ``(B,)`` applied to ``features``.

        A 1x1 conv classifier (InceptionV3) adds its bias, as the reference's map is that conv's output.
        """
        weights = self.classifier.weight[classes].flatten(1)  # (B, K)
        maps = torch.einsum("bk,bkhw->bhw", weights, features)
        if isinstance(self.classifier, nn.Conv2d) and self.classifier.bias is not None:
            maps = maps + self.classifier.bias[classes][:, None, None]
        return maps
