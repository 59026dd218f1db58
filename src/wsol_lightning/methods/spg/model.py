"""The SPG network: a trunk split in three parts, the class-map head A4 and the guidance heads B1, B2 and C.

Notation (Zhang et al., ECCV 2018; the wsolevaluation re-implementation): the trunk runs in three parts,
``x1 = A1(I)``, ``x2 = A2(x1)``, ``x3 = A3(x2)``. ``A4`` (1x1 conv) gives the class maps ``(B, C, h, w)``
and the logits are their GAP. ``B1 = shared(B1a(x1))`` and ``B2 = shared(B2a(x2))`` (one shared tail) and
``C(x3)`` are one-channel maps the losses guide. The test map of class ``c`` is the raw ``A4`` map of ``c``.

Cuts (224 input, ``large_feature_map=False``): ResNet50: A1 = stem..layer3's first block (14x14), A2 = the
rest of layer3, A3 = layer4 at stride 1; VGG16: A1 = conv1_1..conv4_3 + a 3x3/2 max-pool (14x14), A2 =
conv5 (no pool4), A3 = two new 3x3 convs 512->512; InceptionV3: A1 = stem..Mixed_5d + the 3x3/2 pool,
A2 = Mixed_6a..Mixed_6d (B2 reads Mixed_6d, as the reference does), A3 = Mixed_6e and two new 3x3 convs
768->1024->1024 with dropout 0.5 before, between and after them.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from wsol_lightning.backbones import build_trunk
from wsol_lightning.backbones.surgery import remove_downsampling
from wsol_lightning.methods.wsoleval import (
    HeadInit,
    backbone_family,
    conv_relu,
    init_new_layers,
    small_inception_pool,
)


def _guidance_tail(in_channels: int, width: int) -> nn.Sequential:
    """3x3 conv + ReLU, then a 1x1 conv to one channel (SPG-B's shared tail and SPG-C)."""
    return nn.Sequential(*conv_relu(in_channels, width), nn.Conv2d(width, 1, 1))


class SPGNet(nn.Module):
    """Trunk parts A1/A2/A3, the classifier A4 and the guidance heads.

    Args:
        backbone: timm model name of the ResNet, VGG or InceptionV3 family.
        num_classes: number of classes.
        pretrained: ``False``, ``True`` or a local weights file.
        large_feature_map: the reference's ``large_feature_map`` (28x28 maps at 224 instead of 14x14).
        head_init: initialisation of the new layers (reference: ``xavier``).

    Raises:
        ValueError: a backbone outside the three families.

    """

    def __init__(self, backbone: str, num_classes: int, pretrained: bool | str = False,
                 large_feature_map: bool = False, head_init: HeadInit = "xavier") -> None:
        super().__init__()
        self.family = backbone_family(backbone)
        self.pool: nn.Module = nn.Identity()
        self.extra: nn.Module = nn.Identity()
        if self.family == "resnet":
            self.trunk = build_trunk(backbone, pretrained, stride_one_taps=(3, 4) if large_feature_map else (4,))
            c1 = c2 = self.trunk.channels[3]
            c3, b_width = self.trunk.channels[4], c1
        elif self.family == "vgg":
            self.trunk = build_trunk(backbone, pretrained, num_taps=5)
            remove_downsampling(self.trunk.stages[4])  # conv5 right after conv4 (the pool below replaces pool4)
            if not large_feature_map:
                self.pool = nn.MaxPool2d(3, stride=2, padding=1)
            c1 = c2 = c3 = b_width = 512
            self.extra = nn.Sequential(*conv_relu(512, 512), *conv_relu(512, 512))
        elif self.family == "inception_v3":
            self.trunk = build_trunk(backbone, pretrained, num_taps=4, stride_one_taps=(3,))
            self.pool = small_inception_pool(large_feature_map)
            c1, c2, c3, b_width = self.trunk.channels[2], self.trunk.channels[3], 1024, 512
            self.extra = nn.Sequential(nn.Dropout(0.5), *conv_relu(self.trunk.channels[3], 1024), nn.Dropout(0.5),
                                       *conv_relu(1024, 1024), nn.Dropout(0.5))
        else:
            raise ValueError(f"SPG has the reference's cuts for ResNet, VGG and InceptionV3 trunks, not {backbone!r}")
        self.classifier = nn.Conv2d(c3, num_classes, 1)  # SPG-A4
        self.b1_in = nn.Sequential(*conv_relu(c1, b_width))  # SPG-B1a
        self.b2_in = nn.Sequential(*conv_relu(c2, b_width))  # SPG-B2a
        self.b_shared = _guidance_tail(b_width, b_width)  # SPG-B shared
        self.c_head = _guidance_tail(c3, 512)  # SPG-C
        for layer in self.new_layers():
            init_new_layers(layer, head_init)

    def new_layers(self) -> list[nn.Module]:
        """The layers trained from scratch."""
        return [self.extra, self.classifier, self.b1_in, self.b2_in, self.b_shared, self.c_head]

    def _parts(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``x1`` (B1's input), ``x2`` (B2's input) and ``x3`` (the features of A4 and C)."""
        stages = self.trunk.stages
        if self.family == "resnet":
            blocks = list(stages[3].children())[-1]  # layer3 (a Sequential of blocks)
            x1 = blocks[0](self.trunk.run(images, 0, 3))
            x2 = blocks[1:](x1)
            return x1, x2, stages[4](x2)
        if self.family == "vgg":
            x1 = self.pool(self.trunk.run(images, 0, 4))
            x2 = stages[4](x1)
            return x1, x2, self.extra(x2)
        x1 = self.pool(self.trunk.run(images, 0, 3))
        x2 = stages[3][:-1](x1)  # Mixed_6a..Mixed_6d
        return x1, x2, self.extra(stages[3][-1](x2))

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """``maps`` ``(B, C, h, w)``, ``logits`` ``(B, C)`` and the guidance logits ``(B, 1, h_i, w_i)``."""
        x1, x2, x3 = self._parts(images)
        maps = self.classifier(x3)
        return {
            "maps": maps, "logits": maps.mean(dim=(2, 3)),
            "logits_b1": self.b_shared(self.b1_in(x1)), "logits_b2": self.b_shared(self.b2_in(x2)),
            "logits_c": self.c_head(x3),
        }

    @staticmethod
    def class_maps(outputs: dict[str, Tensor], classes: Tensor) -> Tensor:
        """The raw A4 maps of ``classes``: ``(B, h, w)``."""
        rows = torch.arange(classes.shape[0], device=classes.device)
        return outputs["maps"][rows, classes]
