"""HaS as a LightningModule: CAM trained on images with hidden patches."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from wsol_lightning.methods.cam.loss import classification_loss
from wsol_lightning.methods.cam.module import CAM
from wsol_lightning.methods.has.model import hide_patches
from wsol_lightning.types import WSOLBatch


class HaS(CAM):
    """Hide-and-Seek (Singh & Lee, ICCV 2017) on the wsolevaluation CAM trunk.

    Training images get random ``grid_size`` x ``grid_size`` pixel cells hidden (set to 0) with probability
    ``drop_rate`` each; evaluation and prediction see whole images. Network, maps and evaluation are CAM's.

    Args:
        backbone: timm model name.
        num_classes: number of classes.
        pretrained: ``False``, ``True`` or a local weights file.
        grid_size: cell side in pixels (wsolevaluation ``--has_grid_size``, default 4); 0 disables hiding.
        drop_rate: probability of hiding a cell (wsolevaluation ``--has_drop_rate``, default 0.5).
        **kwargs: other arguments of :class:`CAM` (``label_smoothing``) and :class:`WSOLModule`.

    """

    def __init__(self, backbone: str = "resnet50", num_classes: int = 200, pretrained: bool | str = False,
                 grid_size: int = 4, drop_rate: float = 0.5, **kwargs: Any) -> None:
        if grid_size < 0 or not 0.0 <= drop_rate <= 1.0:
            raise ValueError(f"HaS: grid_size must be >= 0 and drop_rate in [0, 1], got {grid_size}, {drop_rate}")
        if kwargs.get("timm_head"):
            raise ValueError("HaS trains the wsolevaluation CAM trunk: timm_head=True is not supported")
        super().__init__(backbone=backbone, num_classes=num_classes, pretrained=pretrained, **kwargs)

    def losses(self, images: Tensor, labels: Tensor, uniforms: Tensor | None = None) -> dict[str, Tensor]:
        """Cross-entropy on the images with hidden patches.

        Args:
            images: ``(B, 3, H, W)`` training images.
            labels: ``(B,)`` class indices.
            uniforms: ``(B, rows, cols)`` hiding draws (``None``: drawn from the global generator).

        """
        hidden = hide_patches(images, self.hparams.grid_size, self.hparams.drop_rate, uniforms)
        outputs = self(hidden)
        loss_cls = classification_loss(outputs["logits"], labels, self.hparams.label_smoothing)
        return {"loss_cls": loss_cls, "loss": loss_cls}

    def training_losses(self, batch: WSOLBatch) -> dict[str, Tensor]:
        """Cross-entropy on the batch's images with random patches hidden."""
        return self.losses(batch["image"], batch["label"])
