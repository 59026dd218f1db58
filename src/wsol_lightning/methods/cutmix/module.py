"""CutMix as a LightningModule: CAM trained on box-mixed images with area-weighted labels."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from wsol_lightning.methods.cam.loss import classification_loss
from wsol_lightning.methods.cam.module import CAM
from wsol_lightning.methods.cutmix.loss import mixed_cross_entropy
from wsol_lightning.methods.cutmix.model import CutMixDraws, cut_and_mix, cutmix_box, draw_cutmix
from wsol_lightning.types import WSOLBatch


class CutMix(CAM):
    """CutMix (Yun et al., ICCV 2019) on the wsolevaluation CAM trunk.

    With probability ``prob`` a training batch is mixed: a random box of a shuffled copy of the batch is
    pasted into every image and the loss weighs both labels by area; otherwise the batch trains as CAM.
    Evaluation and prediction see whole images; network and maps are CAM's.

    Args:
        backbone: timm model name.
        num_classes: number of classes.
        pretrained: ``False``, ``True`` or a local weights file.
        beta: parameter of the Beta(beta, beta) box-area draw (wsolevaluation ``--cutmix_beta``, default 1);
            ``beta <= 0`` disables mixing.
        prob: probability of mixing a batch (wsolevaluation ``--cutmix_prob``, default 1).
        **kwargs: other arguments of :class:`CAM` (``label_smoothing``) and :class:`WSOLModule`.

    """

    def __init__(self, backbone: str = "resnet50", num_classes: int = 200, pretrained: bool | str = False,
                 beta: float = 1.0, prob: float = 1.0, **kwargs: Any) -> None:
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"CutMix: prob must be in [0, 1], got {prob}")
        if kwargs.get("timm_head"):
            raise ValueError("CutMix trains the wsolevaluation CAM trunk: timm_head=True is not supported")
        super().__init__(backbone=backbone, num_classes=num_classes, pretrained=pretrained, **kwargs)

    def losses(self, images: Tensor, labels: Tensor, draws: CutMixDraws | None = None) -> dict[str, Tensor]:
        """The CutMix loss on a batch (or CAM's cross-entropy when the batch is not mixed).

        Args:
            images: ``(B, 3, H, W)`` training images.
            labels: ``(B,)`` class indices.
            draws: the call's random draws (``None``: drawn from the global generator).

        """
        hp = self.hparams
        if hp.beta <= 0:
            outputs = self(images)
            loss_cls = classification_loss(outputs["logits"], labels, hp.label_smoothing)
            return {"loss_cls": loss_cls, "loss": loss_cls}
        height, width = images.shape[-2:]
        if draws is None:
            draws = draw_cutmix(images.shape[0], height, width, hp.beta)
        if not hp.prob > draws.coin:
            outputs = self(images)
            loss_cls = classification_loss(outputs["logits"], labels, hp.label_smoothing)
            return {"loss_cls": loss_cls, "loss": loss_cls}
        mixed, lam = cut_and_mix(images, draws.permutation, cutmix_box(height, width, draws.lam, draws.centre))
        outputs = self(mixed)
        partner = labels[draws.permutation.to(labels.device)]
        loss_cls = mixed_cross_entropy(outputs["logits"], labels, partner, lam, hp.label_smoothing)
        return {"loss_cls": loss_cls, "loss": loss_cls}

    def training_losses(self, batch: WSOLBatch) -> dict[str, Tensor]:
        """The CutMix loss on the batch with fresh draws."""
        return self.losses(batch["image"], batch["label"])
