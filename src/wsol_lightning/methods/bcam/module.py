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
from wsol_lightning.methods.bcam.model import BCAMNet, GradientVariant, InitMode, bcam_preset
from wsol_lightning.methods.bcam.seeds import max_normalize, multi_scale_class_maps
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
        head_lr_taps: trunk stages trained at the head lr; ``None`` = preset (ResNet: layer4, tap 4).
        stride_one_taps: trunk stages run at stride 1; ``None`` = preset (ResNet: layer3 and layer4, 28x28
            at 224; the VOC/IRN code uses ``[4]``, output stride 16).
        aggregator_bias: aggregators with a bias; ``None`` = preset (VGG: yes).
        classifier_bias: classifiers with a bias (official WSOL: yes; VOC: no).
        head_init: initialisation of the new convs and classifiers: ``he`` (normal, fan_out; official WSOL),
            ``xavier`` (official VOC) or ``default`` (PyTorch's).
        aggregator_init: initialisation of the aggregators: ``zeros`` (official WSOL: starts as GAP),
            ``xavier`` (official VOC), ``he`` or ``default``.
        frozen_taps: trunk stages with frozen parameters (official VOC: ``[0]``, the stem conv1/bn1).
        detach_taps: trunk stages whose output is detached (official VOC: ``[2]``, layer2).
        frozen_bn: the trunk's BatchNorms always use their running statistics (official VOC: IRN's
            ``FixedBatchNorm``); their affine parameters still train.
        seed_scales: image scales of the multi-label seed maps (official VOC: ``1.0, 0.5, 1.5, 2.0``).
        seed_flip: add the flipped image's map to the seeds (official VOC: yes).
        seed_normalization: ``minmax`` (the base protocol: the localisation map of each class, upsampled
            with ``map_interpolation`` and min-max normalised) or ``max`` (official VOC: ``ReLU(W_o F)``
            summed over ``seed_scales``/flips, divided by its maximum + 1e-5; needs ``localization_map:
            plain``).
        **kwargs: optimisation and evaluation arguments of :class:`WSOLModule` (``map_interpolation`` also
            sets how the threshold-free mask upsamples the object and background maps).

    """

    classification_terms = ("loss_obj_cls",)  # kept during WSOLModule(warmup_epochs=...)

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
        head_lr_taps: Sequence[int] | None = None,
        stride_one_taps: Sequence[int] | None = None,
        aggregator_bias: bool | None = None,
        classifier_bias: bool = True,
        head_init: InitMode = "he",
        aggregator_init: InitMode = "zeros",
        frozen_taps: Sequence[int] = (),
        detach_taps: Sequence[int] = (),
        frozen_bn: bool = False,
        seed_scales: Sequence[float] = (1.0,),
        seed_flip: bool = False,
        seed_normalization: Literal["minmax", "max"] = "minmax",
        **kwargs: Any,
    ) -> None:
        super().__init__(backbone=backbone, num_classes=num_classes, pretrained=pretrained, **kwargs)
        if localization_map not in ("gradient", "plain"):
            raise ValueError(f"localization_map must be 'gradient' or 'plain', got {localization_map!r}")
        if swept_map not in ("object", "difference"):
            raise ValueError(f"swept_map must be 'object' or 'difference', got {swept_map!r}")
        if seed_normalization not in ("minmax", "max"):
            raise ValueError(f"seed_normalization must be 'minmax' or 'max', got {seed_normalization!r}")
        if seed_normalization == "max" and localization_map != "plain":
            raise ValueError("seed_normalization='max' (the official VOC seeds ReLU(W_o F)) needs "
                             "localization_map='plain'")
        if not seed_scales:
            raise ValueError("seed_scales needs at least one scale")
        if seed_normalization == "minmax" and (tuple(seed_scales) != (1.0,) or seed_flip):
            raise ValueError("multi-scale / flipped seeds (seed_scales, seed_flip) need seed_normalization='max'")
        self.net = BCAMNet(backbone, num_classes, pretrained, num_heads=num_heads,
                           detach_obj_for_bg=detach_obj_for_bg, detach_bg_for_bg=detach_bg_for_bg,
                           aggregator_bias=aggregator_bias, classifier_bias=classifier_bias,
                           stride_one_taps=None if stride_one_taps is None else tuple(stride_one_taps),
                           head_init=head_init, aggregator_init=aggregator_init, frozen_taps=tuple(frozen_taps),
                           detach_taps=tuple(detach_taps), frozen_bn=frozen_bn)
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

    @property
    def maps_need_autograd(self) -> bool:
        """``True`` for the gradient map (exporters then trace its backward pass into the graph)."""
        return self.hparams.localization_map == "gradient"

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

        Both maps are upsampled in float64 with ``map_interpolation`` (the official code: bilinear) and
        compared pixel by pixel, as the official ``inference.py`` does (a tie is background).
        """
        up = [F.interpolate(m.detach().to(torch.float64)[:, None], size=tuple(size), mode=self.map_interpolation,
                            align_corners=False)[:, 0] for m in (obj, bg)]
        return up[0] > up[1]

    # ------------------------------------------------------------------ multi-label seeds
    @torch.no_grad()
    def seed_maps(self, batch: WSOLBatch) -> Tensor:
        """Seed maps ``(B, N, H, W)`` of the positive classes (0 elsewhere).

        ``seed_normalization="minmax"``: the base's maps. ``max``: the official VOC seeds
        (:func:`~wsol_lightning.methods.bcam.seeds.multi_scale_class_maps` over ``seed_scales`` and flips,
        then :func:`~wsol_lightning.methods.bcam.seeds.max_normalize`).
        """
        hp = self.hparams
        if hp.seed_normalization == "minmax":
            return super().seed_maps(batch)
        present = (batch["multi_hot"] > 0.5)[:, :, None, None]
        maps = multi_scale_class_maps(lambda x: self.net.head.class_maps(self.net(x)["features"]), batch["image"],
                                      hp.seed_scales, hp.seed_flip)
        return max_normalize(maps.to(torch.float64) * present)

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
