"""ORNet's networks: the low-level tap, the U-Net map generator and the three phases' models.

* :class:`EvaluatorNet` (phase ``evaluator``): a plain timm classifier fine-tuned on the dataset.
* :class:`CoarseNet` (phase ``coarse``): the classifier ``F^c`` cut at a low-level tap into
  ``F^c_1`` (stride 4) and ``F^c_2``; a U-Net decoder turns ``f^c = F^c_1(I)`` into class-wise maps
  ``f^a`` (K channels), a map head gives ``p = sigmoid(BN(conv3x3(f^a)))`` and an auxiliary head
  ``GAP(conv1x1(f^a))`` classifies; the main path classifies ``F^c_2(f^c * p)``.
* :class:`RefineNet` (phase ``refine``): ``F^c_1``, the decoder and the map head only (same parameter
  names as in :class:`CoarseNet`, so a coarse state dict loads into it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from wsol_lightning.backbones import Trunk, build_trunk
from wsol_lightning.backbones.weights import create_timm_model


@dataclass(frozen=True)
class LowLevelTap:
    """Where ``F^c_1`` ends: after the first ``children`` modules of trunk stage ``stage``.

    Attributes:
        stage: index of the trunk stage holding the cut.
        children: number of leading child modules of that stage run by ``F^c_1`` (``None``: all).

    """

    stage: int
    children: int | None = None


#: Low-level taps by backbone family (first matching prefix): each is the first stride-4 feature.
#: ResNet: the stem after max-pool (ResNet50: 64x56x56 at 224, the released code); VGG: pool2 ending
#: block 2 (VGG16: 128x56x56); InceptionV3: Pool1. Other timm CNNs: the whole first stride-4 stage.
LOW_LEVEL_TAPS: dict[str, LowLevelTap] = {
    "resnet": LowLevelTap(stage=1, children=1),
    "test_resnet": LowLevelTap(stage=1, children=1),
    "vgg": LowLevelTap(stage=2, children=1),
    "inception_v3": LowLevelTap(stage=1, children=1),
}


def low_level_tap(backbone: str, trunk: Trunk | None = None, reduction: int = 4) -> LowLevelTap:
    """Return the declared tap of ``backbone``, else the first stage of ``trunk`` at ``reduction``."""
    for prefix, tap in LOW_LEVEL_TAPS.items():
        if backbone.startswith(prefix):
            return tap
    if trunk is None:
        raise ValueError(f"no low-level tap declared for '{backbone}'; pass the trunk to find one")
    for index, value in enumerate(trunk.reductions):
        if value >= reduction:
            return LowLevelTap(stage=index)
    raise ValueError(f"'{backbone}' has no stage at stride {reduction} (reductions {trunk.reductions})")


def split_stage(trunk: Trunk, tap: LowLevelTap) -> tuple[nn.Sequential, nn.Sequential]:
    """Return the parts of stage ``tap.stage`` before and after the cut (sharing the modules)."""
    stage = trunk.stages[tap.stage]
    cut = len(stage) if tap.children is None else tap.children
    return stage[:cut], stage[cut:]


def tap_channels(trunk: Trunk, tap: LowLevelTap, image_size: int = 64) -> tuple[int, int]:
    """Channels and stride of ``f^c`` for ``tap``, measured on a dummy ``image_size`` input."""
    was_training = trunk.training
    trunk.eval()
    with torch.no_grad():
        x = torch.zeros(1, 3, image_size, image_size)
        x = trunk.run(x, 0, tap.stage)
        x = split_stage(trunk, tap)[0](x)
    trunk.train(was_training)
    return x.shape[1], image_size // x.shape[-1]


def kaiming_fan_out_(conv: nn.Conv2d) -> None:
    """He-normal init, ``mode="fan_out"``, ReLU gain (std ``sqrt(2 / (C_out k k))``), as the released code.

    The released ``CoarseModel`` applies it to every ``Conv2d`` of the generator, the map head and the
    auxiliary head (``models/model.py``); BatchNorm keeps PyTorch's (1, 0).
    """
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


class DoubleConv(nn.Sequential):
    """Two ``conv3x3 -> BN -> LeakyReLU`` layers."""

    def __init__(self, in_channels: int, out_channels: int, bn_momentum: float = 0.01) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels, momentum=bn_momentum), nn.LeakyReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels, momentum=bn_momentum), nn.LeakyReLU(inplace=True),
        )


class Up(nn.Module):
    """Bilinear upsampling to the skip's size, concatenation with the skip, :class:`DoubleConv`."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int,
                 bn_momentum: float = 0.01) -> None:
        super().__init__()
        self.conv = DoubleConv(in_channels + skip_channels, out_channels, bn_momentum)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        """``x`` ``(B, C_in, h, w)``, ``skip`` ``(B, C_skip, H, W)`` -> ``(B, C_out, H, W)``."""
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(torch.cat([skip, x], dim=1))


class UNetDecoder(nn.Module):
    """ORNet's activation map generator ``F^d``: three max-pool downs, three bilinear ups.

    Down blocks give ``channels`` (128/256/512) at strides 2x, 4x, 8x of the input; up blocks give
    ``up_channels`` (256, 192) and finally ``out_channels`` (K) at the input's resolution, the last
    skip being the input itself.

    Args:
        in_channels: channels of ``f^c``.
        out_channels: channels of ``f^a`` (the number of classes).
        channels: channels of the three down blocks.
        up_channels: channels of the first two up blocks.
        bn_momentum: BatchNorm momentum (0.01 as released).

    """

    def __init__(self, in_channels: int, out_channels: int, channels: Sequence[int] = (128, 256, 512),
                 up_channels: Sequence[int] = (256, 192), bn_momentum: float = 0.01) -> None:
        super().__init__()
        c1, c2, c3 = channels
        u1, u2 = up_channels
        self.down1 = DoubleConv(in_channels, c1, bn_momentum)
        self.down2 = DoubleConv(c1, c2, bn_momentum)
        self.down3 = DoubleConv(c2, c3, bn_momentum)
        self.up1 = Up(c3, c2, u1, bn_momentum)
        self.up2 = Up(u1, c1, u2, bn_momentum)
        self.up3 = Up(u2, in_channels, out_channels, bn_momentum)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                kaiming_fan_out_(module)

    def blocks(self) -> list[nn.Module]:
        """Return the six blocks in order (down1..3, up1..3)."""
        return [self.down1, self.down2, self.down3, self.up1, self.up2, self.up3]

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, h, w)`` -> ``(B, K, h, w)`` class-wise maps ``f^a`` (LeakyReLU output)."""
        d1 = self.down1(F.max_pool2d(x, 2, ceil_mode=True))
        d2 = self.down2(F.max_pool2d(d1, 2, ceil_mode=True))
        d3 = self.down3(F.max_pool2d(d2, 2, ceil_mode=True))
        return self.up3(self.up2(self.up1(d3, d2), d1), x)


class MapHead(nn.Module):
    """``p = sigmoid(BN(conv3x3(f^a)))``, one channel."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 1, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(1)
        kaiming_fan_out_(self.conv)

    def forward(self, class_maps: Tensor) -> Tensor:
        """``(B, K, h, w)`` -> ``(B, 1, h, w)`` in (0, 1)."""
        return torch.sigmoid(self.bn(self.conv(class_maps)))


class _GeneratorMixin(nn.Module):
    """Shared construction of ``F^c_1`` + decoder + map head (``trunk``, ``decoder``, ``map_head``)."""

    trunk: Trunk
    tap: LowLevelTap

    def _build(self, backbone: str, num_classes: int, pretrained: bool | str, tap: LowLevelTap | None,
               decoder_channels: Sequence[int], up_channels: Sequence[int], full_trunk: bool) -> None:
        self.trunk = build_trunk(backbone, pretrained)
        self.tap = tap or low_level_tap(backbone, self.trunk)
        if not 0 <= self.tap.stage < len(self.trunk.stages):
            raise ValueError(f"low-level tap stage {self.tap.stage} out of range for '{backbone}'")
        self.low_channels, self.low_stride = tap_channels(self.trunk, self.tap)
        if not full_trunk:  # keep only F^c_1 (same parameter names as the full trunk)
            del self.trunk.stages[self.tap.stage + 1:]
            self.trunk.stages[self.tap.stage] = split_stage(self.trunk, self.tap)[0]
        self.decoder = UNetDecoder(self.low_channels, num_classes, decoder_channels, up_channels)
        self.map_head = MapHead(num_classes)

    def low_level(self, images: Tensor) -> Tensor:
        """``F^c_1``: ``(B, 3, H, W)`` -> ``f^c`` ``(B, C_low, H/4, W/4)``."""
        x = self.trunk.run(images, 0, self.tap.stage)
        return split_stage(self.trunk, self.tap)[0](x)

    def generate(self, low: Tensor) -> tuple[Tensor, Tensor]:
        """Class-wise maps ``f^a`` ``(B, K, h, w)`` and the map ``p`` ``(B, 1, h, w)`` from ``f^c``."""
        class_maps = self.decoder(low)
        return class_maps, self.map_head(class_maps)


class CoarseNet(_GeneratorMixin):
    """Stage 1: classifier with the generator's map gating its low-level features.

    Args:
        backbone: timm name of the classifier ``F^c``.
        num_classes: number of classes ``K``.
        pretrained: ``False``, ``True`` or a local weights file for the trunk.
        tap: low-level tap (default: :data:`LOW_LEVEL_TAPS`).
        decoder_channels: channels of the decoder's down blocks.
        up_channels: channels of the decoder's first two up blocks.
        reinit_last_stages: re-initialise the last ``n`` trunk stages (the released ImageNet recipe
            re-initialises ResNet50's layer4 so that the pretrained trunk does not classify without the map).

    """

    def __init__(self, backbone: str, num_classes: int, pretrained: bool | str = False,
                 tap: LowLevelTap | None = None, decoder_channels: Sequence[int] = (128, 256, 512),
                 up_channels: Sequence[int] = (256, 192), reinit_last_stages: int = 0) -> None:
        super().__init__()
        self._build(backbone, num_classes, pretrained, tap, decoder_channels, up_channels, full_trunk=True)
        self.aux_head = nn.Conv2d(num_classes, num_classes, 1, bias=False)
        kaiming_fan_out_(self.aux_head)
        self.classifier = nn.Linear(self.trunk.channels[-1], num_classes)
        self.reinit_stages(reinit_last_stages)

    def reinit_stages(self, count: int) -> None:
        """Re-initialise the parameters of the last ``count`` trunk stages (``reset_parameters``)."""
        if count <= 0:
            return
        for stage in list(self.trunk.stages)[-count:]:
            for module in stage.modules():
                if module is not stage and hasattr(module, "reset_parameters"):
                    module.reset_parameters()

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """Return ``logits`` (main path), ``aux_logits``, ``map`` ``(B, 1, h, w)`` and ``class_maps``."""
        low = self.low_level(images)
        class_maps, maps = self.generate(low)
        x = split_stage(self.trunk, self.tap)[1](low * maps)
        x = self.trunk.run(x, self.tap.stage + 1)
        return {
            "logits": self.classifier(x.mean(dim=(2, 3))),
            "aux_logits": self.aux_head(class_maps).mean(dim=(2, 3)),
            "map": maps,
            "class_maps": class_maps,
        }


class RefineNet(_GeneratorMixin):
    """Stage 2's generator: ``F^c_1``, the decoder and the map head (no classification path).

    Args:
        backbone: timm name of the stage-1 classifier (must match the coarse checkpoint).
        num_classes: number of classes ``K``.
        tap: low-level tap (default: :data:`LOW_LEVEL_TAPS`).
        decoder_channels: channels of the decoder's down blocks.
        up_channels: channels of the decoder's first two up blocks.

    """

    def __init__(self, backbone: str, num_classes: int, tap: LowLevelTap | None = None,
                 decoder_channels: Sequence[int] = (128, 256, 512), up_channels: Sequence[int] = (256, 192)
                 ) -> None:
        super().__init__()
        self._build(backbone, num_classes, False, tap, decoder_channels, up_channels, full_trunk=False)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """Return ``map`` ``(B, 1, h, w)`` and ``class_maps`` ``(B, K, h, w)``."""
        class_maps, maps = self.generate(self.low_level(images))
        return {"map": maps, "class_maps": class_maps}

    def trainable_modules(self, decoder_blocks: int = 2) -> list[nn.Module]:
        """Return the last ``decoder_blocks`` decoder blocks and the map head (the rest stays frozen)."""
        blocks = self.decoder.blocks()
        return [*blocks[len(blocks) - decoder_blocks:], self.map_head] if decoder_blocks else [self.map_head]


class EvaluatorNet(nn.Module):
    """The evaluator ``F^e``: a timm classifier (VGG16 with its FC/dropout head by default).

    With ``num_classes != 1000`` the last layer is new; a linear one gets PyTorch's default init, as the
    released code's ``nn.Linear(4096, num_classes)`` (timm would draw it from N(0, 0.01), bias 0).

    Args:
        backbone: timm model name.
        num_classes: number of classes.
        pretrained: ``False``, ``True`` or a local weights file.
        drop_rate: dropout of the classifier head (torchvision's VGG16 uses 0.5).

    """

    def __init__(self, backbone: str = "vgg16", num_classes: int = 200, pretrained: bool | str = False,
                 drop_rate: float = 0.5) -> None:
        super().__init__()
        self.model = create_timm_model(backbone, pretrained, num_classes=num_classes, drop_rate=drop_rate)
        head = self.head()
        if num_classes != 1000 and isinstance(head, nn.Linear):
            head.reset_parameters()

    def forward(self, images: Tensor) -> Tensor:
        """``(B, 3, H, W)`` -> logits ``(B, C)``."""
        return self.model(images)

    def head(self) -> nn.Module:
        """Return the classification layer (a new layer when fine-tuning)."""
        return self.model.get_classifier()
