"""SPG as a LightningModule."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import Tensor, nn

from wsol_lightning.methods.base import WSOLModule
from wsol_lightning.methods.spg.loss import spg_losses
from wsol_lightning.methods.spg.model import SPGNet
from wsol_lightning.methods.wsoleval import HeadInit, LRGroups, check_lr_groups
from wsol_lightning.types import WSOLBatch


class SPG(WSOLModule):
    """Self-Produced Guidance (Zhang et al., ECCV 2018), as wsolevaluation re-implements it.

    Args:
        backbone: timm model name of the ResNet, VGG or InceptionV3 family.
        num_classes: number of classes.
        pretrained: ``False``, ``True`` or a local weights file.
        threshold_1h: object threshold of SPG-B2's mask (on the class attention); reference 0.7.
        threshold_1l: background threshold of SPG-B2's mask; reference 0.01.
        threshold_2h: object threshold of SPG-B1's mask (on ``sigmoid(B2)``); reference 0.5.
        threshold_2l: background threshold of SPG-B1's mask; reference 0.05.
        threshold_3h: object threshold of SPG-C's mask (on the fused B1/B2 attention); reference 0.7.
        threshold_3l: background threshold of SPG-C's mask; reference 0.1.
        attention_size: side every map is upsampled to for the guidance losses (reference: 224, fixed).
        min_foreground_pixels: fewer object pixels than this and the object threshold becomes
            ``foreground_fallback_ratio x`` the map's maximum (reference: 30 and 0.7).
        foreground_fallback_ratio: see ``min_foreground_pixels``.
        large_feature_map: the reference's ``large_feature_map`` (28x28 maps at 224 instead of 14x14).
        head_init: initialisation of the new layers (reference: ``xavier``).
        lr_groups: ``"official"``: the parameters the reference trains at ``head_lr_mult`` (ResNet: layer4
            only; VGG16: conv4, conv5 and the new layers; InceptionV3: the new layers); ``"new_layers"``: the
            new layers, whatever the backbone.
        **kwargs: optimisation and evaluation arguments of :class:`WSOLModule`.

    """

    def __init__(self, backbone: str = "resnet50", num_classes: int = 200, pretrained: bool | str = False,
                 threshold_1h: float = 0.7, threshold_1l: float = 0.01, threshold_2h: float = 0.5,
                 threshold_2l: float = 0.05, threshold_3h: float = 0.7, threshold_3l: float = 0.1,
                 attention_size: int = 224, min_foreground_pixels: int = 30, foreground_fallback_ratio: float = 0.7,
                 large_feature_map: bool = False, head_init: HeadInit = "xavier", lr_groups: LRGroups = "official",
                 **kwargs: Any) -> None:
        super().__init__(backbone=backbone, num_classes=num_classes, pretrained=pretrained, **kwargs)
        check_lr_groups(lr_groups)
        if attention_size < 1:
            raise ValueError(f"attention_size must be >= 1, got {attention_size}")
        self.thresholds = (threshold_1h, threshold_1l, threshold_2h, threshold_2l, threshold_3h, threshold_3l)
        self.net = SPGNet(backbone, num_classes, pretrained, large_feature_map=large_feature_map, head_init=head_init)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """Return ``maps``, ``logits`` and the guidance logits ``logits_b1``, ``logits_b2``, ``logits_c``."""
        return self.net(images)

    def training_losses(self, batch: WSOLBatch) -> dict[str, Tensor]:
        """Cross-entropy plus the three guidance terms (the label's attention drives SPG-B2's mask)."""
        hp = self.hparams
        return spg_losses(self(batch["image"]), batch["label"], self.thresholds, hp.attention_size,
                          hp.min_foreground_pixels, hp.foreground_fallback_ratio)

    def localization_maps(self, outputs: dict[str, Tensor], classes: Tensor) -> Tensor:
        """The raw A4 maps of ``classes`` (the reference's test maps)."""
        return self.net.class_maps(outputs, classes)

    def head_modules(self) -> Iterable[nn.Module]:
        """The modules trained at ``head_lr_mult`` (see ``lr_groups``)."""
        if self.hparams.lr_groups == "official":
            if self.net.family == "resnet":
                return (self.net.trunk.stages[4],)
            if self.net.family == "vgg":
                return (self.net.trunk.stages[3], self.net.trunk.stages[4], *self.net.new_layers())
        return tuple(self.net.new_layers())
