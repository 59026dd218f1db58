"""ADL as a LightningModule: CAM with attention-based dropout layers inside the trunk."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor

from wsol_lightning.methods.adl.model import default_adl_positions, insert_adl
from wsol_lightning.methods.cam.loss import classification_loss
from wsol_lightning.methods.cam.module import CAM
from wsol_lightning.types import WSOLBatch


class ADL(CAM):
    """Attention-based Dropout Layer (Choe & Shim, CVPR 2019) on the wsolevaluation CAM trunk.

    Args:
        backbone: timm model name.
        num_classes: number of classes.
        pretrained: ``False``, ``True`` or a local weights file.
        adl_drop_rate: probability that a layer uses its drop mask (wsolevaluation ``--adl_drop_rate``,
            default 0.75).
        adl_threshold: drop positions whose channel-mean attention is ``>= adl_threshold`` x its maximum
            (wsolevaluation ``--adl_threshold``, default 0.9).
        adl_positions: timm module names after which a layer is inserted (``None``: the reference's points,
            ResNet ``layer3.0, layer4.0, layer4.-1``; VGG16 ``features.16, features.22, features.29``, i.e. after
            pool3 and the last ReLUs of conv4_x and conv5_x on any VGG; InceptionV3 ``Mixed_5d, Mixed_6e,
            extra.relu_b``, i.e. after Mixed_5d, Mixed_6e and the head's second conv, as ``InceptionAdl``).
        head_dropout: dropout of the InceptionV3 head (``InceptionAdl`` has none: 0).
        **kwargs: other arguments of :class:`CAM` (``label_smoothing``) and :class:`WSOLModule`.

    """

    def __init__(self, backbone: str = "resnet50", num_classes: int = 200, pretrained: bool | str = False,
                 adl_drop_rate: float = 0.75, adl_threshold: float = 0.9,
                 adl_positions: Sequence[str] | None = None, head_dropout: float = 0.0, **kwargs: Any) -> None:
        if kwargs.get("timm_head"):
            raise ValueError("ADL inserts layers into the wsolevaluation CAM trunk: timm_head=True is not supported")
        super().__init__(backbone=backbone, num_classes=num_classes, pretrained=pretrained,
                         head_dropout=head_dropout, **kwargs)
        positions = default_adl_positions(self.net.trunk) if adl_positions is None else tuple(adl_positions)
        self._adl_layers = tuple(insert_adl(self.net.trunk, positions, adl_drop_rate, adl_threshold,
                                            head=self.net.extra))

    def losses(self, images: Tensor, labels: Tensor, uniforms: Sequence[float] | None = None) -> dict[str, Tensor]:
        """Cross-entropy of the ADL network (layers active in train mode).

        Args:
            images: ``(B, 3, H, W)`` training images.
            labels: ``(B,)`` class indices.
            uniforms: one draw per ADL layer in forward order (``None``: drawn from the global generator).

        """
        if uniforms is not None:
            if len(uniforms) != len(self._adl_layers):
                raise ValueError(f"ADL: {len(uniforms)} uniforms for {len(self._adl_layers)} layers")
            for layer, u in zip(self._adl_layers, uniforms):
                layer.pending = [u]
        outputs = self(images)
        loss_cls = classification_loss(outputs["logits"], labels, self.hparams.label_smoothing)
        return {"loss_cls": loss_cls, "loss": loss_cls}

    def training_losses(self, batch: WSOLBatch) -> dict[str, Tensor]:
        """Cross-entropy on the batch with fresh dropout draws."""
        return self.losses(batch["image"], batch["label"])
