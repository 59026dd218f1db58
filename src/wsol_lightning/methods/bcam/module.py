"""B-CAM as a LightningModule: stagger loss, selectable test maps and the threshold-free mask metric."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from wsol_lightning.methods.base import ALREADY_REDUCED, WSOLModule
from wsol_lightning.methods.bcam.loss import stagger_loss
from wsol_lightning.methods.bcam.metric import MaskAccuracy
from wsol_lightning.methods.bcam.model import BCAMNet, GradientVariant, bcam_preset
from wsol_lightning.types import WSOLBatch

#: Official stagger-loss weights per backbone family (SingleObjectLocalization/Train.sh).
OFFICIAL_LOSS_WEIGHTS: dict[str, tuple[float, float, float, float]] = {
    "resnet": (1.0, 1.0, 1.0, 1.0),
    "vgg": (1.0, 0.4, 0.4, 0.2),
    "inception_v3": (1.0, 0.4, 0.4, 0.2),
}


def official_loss_weights(backbone: str) -> tuple[float, float, float, float]:
    """Return the official ``(l1, l2, l3, l4)`` of ``backbone``'s family (else ``1, 1, 1, 1``)."""
    for prefix, weights in OFFICIAL_LOSS_WEIGHTS.items():
        if backbone.startswith(prefix):
            return weights
    return (1.0, 1.0, 1.0, 1.0)


class BCAM(WSOLModule):
    """Background-aware CAM (Zhu et al., arXiv:2112.14379, TPAMI 2023) on a timm trunk.

    Args:
        backbone: timm model name (presets for ``resnet*``, ``vgg*``, ``inception_v3``; others use their
            last tap as is).
        num_classes: classes ``N``.
        pretrained: ``False``, ``True`` or a local weights file.
        num_heads: attention heads ``K`` per aggregator (official: 100; VOC: 20).
        loss_weights: ``(l1, l2, l3, l4)`` of ``loss_obj_cls``, ``loss_bg_on_obj``, ``loss_bg_on_bg``,
            ``loss_obj_on_bg``; ``None`` = the official ones of the backbone (ResNet ``1, 1, 1, 1``;
            VGG16/InceptionV3 ``1, 0.4, 0.4, 0.2``).
        detach_obj_for_bg: the background classifier scores ``f~_o`` pooled from stop-gradient pixel
            features (official WSOL code: yes; official VOC code: no).
        detach_bg_for_bg: same for ``f~_b``.
        multi_label: the VOC variant: every term multi-label soft margin, targets from ``batch["multi_hot"]``.
        localization_map: ``"gradient"`` (the official test map, gradients at the target layer) or
            ``"plain"`` (``W_o F + b_o`` and ``W_b F + b_b`` on the pixel features).
        gradient_variant: the official dataset-specific formula of the gradient map: ``cub``, ``ilsvrc``
            or ``openimages``.
        swept_map: what the threshold sweep (MaxBoxAcc/PxAP) sees: the ``"object"`` map (official) or the
            ``"difference"`` object - background.
        mask_upsample: interpolation of the object and background maps to the image size before the
            threshold-free comparison (``bicubic`` as the official code, or ``bilinear``).
        head_lr_taps: trunk stages trained at the head lr; ``None`` = preset (ResNet: layer4, tap 4).
        stride_one_taps: trunk stages run at stride 1; ``None`` = preset (ResNet: layer3 and layer4, 28x28
            at 224; the VOC/IRN code uses ``[4]``, output stride 16).
        aggregator_bias: aggregators with a bias; ``None`` = preset (VGG: yes).
        classifier_bias: classifiers with a bias (official WSOL: yes; VOC: no).
        **kwargs: optimisation and evaluation arguments of :class:`WSOLModule`.

    """

    def __init__(
        self,
        backbone: str = "resnet50",
        num_classes: int = 200,
        pretrained: bool | str = False,
        num_heads: int = 100,
        loss_weights: Sequence[float] | None = None,
        detach_obj_for_bg: bool = True,
        detach_bg_for_bg: bool = True,
        multi_label: bool = False,
        localization_map: Literal["gradient", "plain"] = "gradient",
        gradient_variant: GradientVariant = "cub",
        swept_map: Literal["object", "difference"] = "object",
        mask_upsample: Literal["bicubic", "bilinear"] = "bicubic",
        head_lr_taps: Sequence[int] | None = None,
        stride_one_taps: Sequence[int] | None = None,
        aggregator_bias: bool | None = None,
        classifier_bias: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(backbone=backbone, num_classes=num_classes, pretrained=pretrained, **kwargs)
        if localization_map not in ("gradient", "plain"):
            raise ValueError(f"localization_map must be 'gradient' or 'plain', got {localization_map!r}")
        if swept_map not in ("object", "difference"):
            raise ValueError(f"swept_map must be 'object' or 'difference', got {swept_map!r}")
        self.net = BCAMNet(backbone, num_classes, pretrained, num_heads=num_heads,
                           detach_obj_for_bg=detach_obj_for_bg, detach_bg_for_bg=detach_bg_for_bg,
                           aggregator_bias=aggregator_bias, classifier_bias=classifier_bias,
                           stride_one_taps=None if stride_one_taps is None else tuple(stride_one_taps))
        self.loss_weights = tuple(float(w) for w in (official_loss_weights(backbone) if loss_weights is None
                                                        else loss_weights))
        if len(self.loss_weights) != 4:
            raise ValueError(f"loss_weights needs four values, got {list(self.loss_weights)}")
        preset_taps = bcam_preset(backbone).head_lr_taps
        self.head_lr_taps = tuple(preset_taps if head_lr_taps is None else head_lr_taps)
        self.mask_metric = MaskAccuracy(iou_threshold=self.evaluator.loc_iou,
                                        multi_contour=self.hparams.multi_contour)
        self._mask_maps: tuple[Tensor, Tensor] | None = None

    # ------------------------------------------------------------------ WSOLModule interface
    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """Return the four stagger logits (``logits`` = ``W_o f_o``), attentions and features."""
        return self.net(images)

    def training_losses(self, batch: WSOLBatch) -> dict[str, Tensor]:
        """Return the four weighted stagger terms and their sum."""
        outputs = self(batch["image"])
        multi_hot = None
        if self.hparams.multi_label:
            if "multi_hot" not in batch:
                raise KeyError("BCAM(multi_label=True) needs batch['multi_hot'] (a multi-label datamodule)")
            multi_hot = batch["multi_hot"]
        return stagger_loss(outputs["logits"], outputs["logits_bg_on_obj"], outputs["logits_bg_on_bg"],
                            outputs["logits_obj_on_bg"], batch["label"], self.loss_weights, multi_hot)

    def score_maps(self, outputs: dict[str, Tensor], classes: Tensor) -> tuple[Tensor, Tensor]:
        """Object and background maps ``(B, h, w)`` of ``classes`` for the selected ``localization_map``."""
        if self.hparams.localization_map == "plain":
            obj, bg = self.net.plain_maps(outputs, classes)
            return obj.detach(), bg.detach()
        return self.net.gradient_maps(outputs, classes, self.hparams.gradient_variant)

    def localization_maps(self, outputs: dict[str, Tensor], classes: Tensor) -> Tensor:
        """Return the swept map: the object map, or object - background (``swept_map``)."""
        obj, bg = self.score_maps(outputs, classes)
        return obj if self.hparams.swept_map == "object" else obj - bg

    def head_modules(self) -> Iterable[nn.Module]:
        """Return the new layers (extra convs, aggregators, classifiers) and the ``head_lr_taps`` stages."""
        return [*self.net.new_modules(), *(self.net.trunk.stages[t] for t in self.head_lr_taps)]

    # ------------------------------------------------------------------ threshold-free mask
    def threshold_free_masks(self, obj: Tensor, bg: Tensor, size: Sequence[int]) -> Tensor:
        """``(B, H, W)`` bool: object map > background map, both upsampled to ``size`` first.

        Interpolation is linear in the map, so comparing the two upsampled maps is the same as
        thresholding the upsampled difference at 0, which is what this computes.
        """
        diff = (obj - bg).detach().to(torch.float64)[:, None]
        diff = F.interpolate(diff, size=tuple(size), mode=self.hparams.mask_upsample, align_corners=False)
        return diff[:, 0] > 0

    def evaluation_maps(self, batch: WSOLBatch) -> tuple[Tensor, Tensor]:
        """As the base, and keep the object/background maps of the batch for the mask metric."""
        outputs = self(batch["image"])
        obj, bg = self.score_maps(outputs, batch["label"])
        self._mask_maps = (obj, bg)
        swept = obj if self.hparams.swept_map == "object" else obj - bg
        return outputs["logits"], self.normalize_to_image(swept, batch["image"].shape[-2:])

    def _evaluation_step(self, batch: WSOLBatch, stage: str) -> None:
        super()._evaluation_step(batch, stage)
        assert self._mask_maps is not None
        masks = self.threshold_free_masks(*self._mask_maps, batch["image"].shape[-2:])
        self._mask_maps = None
        self.mask_metric.update(masks, batch.get("boxes"), batch.get("mask"))

    def _log_eval_metrics(self, stage: str, choose_threshold: bool) -> None:
        results = self.mask_metric.compute() if self.mask_metric.update_count else {}
        if results:
            self.log_dict({f"{stage}/{k}": v.float() for k, v in results.items()}, **ALREADY_REDUCED)
        super()._log_eval_metrics(stage, choose_threshold)

    def _reset_eval_metrics(self) -> None:
        super()._reset_eval_metrics()
        self.mask_metric.reset()
