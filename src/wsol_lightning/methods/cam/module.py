"""CAM as a LightningModule."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import Tensor, nn

from wsol_lightning.methods.base import WSOLModule
from wsol_lightning.methods.cam.loss import classification_loss
from wsol_lightning.methods.cam.model import CAMNet
from wsol_lightning.types import WSOLBatch


class CAM(WSOLModule):
    """Class activation mapping on a timm trunk (the wsolevaluation baseline).

    Args:
        backbone: timm model name.
        num_classes: number of classes.
        pretrained: ``False``, ``True`` or a local weights file.
        label_smoothing: label smoothing of the cross-entropy.
        **kwargs: optimisation and evaluation arguments of :class:`WSOLModule`.

    """

    def __init__(self, backbone: str = "resnet50", num_classes: int = 200, pretrained: bool | str = False,
                 label_smoothing: float = 0.0, **kwargs: Any) -> None:
        super().__init__(backbone=backbone, num_classes=num_classes, pretrained=pretrained, **kwargs)
        self.net = CAMNet(backbone, num_classes, pretrained)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """Return ``features`` and ``logits``."""
        return self.net(images)

    def training_losses(self, batch: WSOLBatch) -> dict[str, Tensor]:
        """Cross-entropy on the image label."""
        outputs = self(batch["image"])
        loss_cls = classification_loss(outputs["logits"], batch["label"], self.hparams.label_smoothing)
        return {"loss_cls": loss_cls, "loss": loss_cls}

    def localization_maps(self, outputs: dict[str, Tensor], classes: Tensor) -> Tensor:
        """CAMs of ``classes``."""
        return self.net.class_maps(outputs["features"], classes)

    def head_modules(self) -> Iterable[nn.Module]:
        """The extra conv and the classifier are new layers."""
        return (self.net.extra, self.net.classifier)
