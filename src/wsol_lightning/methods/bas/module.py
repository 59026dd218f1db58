"""BAS as a LightningModule: wires :class:`BASNet`, the loss terms and the test-time top-k map."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from wsol_lightning.methods.bas.loss import (
    area_loss,
    background_activation_loss,
    classification_loss,
    foreground_guidance_loss,
    gather_class,
    multilabel_classification_loss,
)
from wsol_lightning.methods.bas.model import BackgroundBN, BASNet, PoolBetween
from wsol_lightning.methods.base import WSOLModule
from wsol_lightning.methods.recompute import leaf_blocks
from wsol_lightning.types import WSOLBatch

Variant = Literal["cvpr", "ijcv"]


def default_clip_value(variant: Variant, backbone: str) -> float:
    """Return the ``L_bas`` constant where ``S^b_y >= S_y``: 0 (CVPR; IJCV VGG16), 1 (IJCV, others)."""
    if variant == "cvpr" or backbone.startswith("vgg"):
        return 0.0
    return 1.0


class BAS(WSOLModule):
    """Background Activation Suppression (Wu et al., CVPR 2022; Zhai et al., IJCV 2024).

    ``L = L_cls + alpha * L_frg + bas_weight * L_bas + beta * L_ac``, logged as ``loss_cls``,
    ``loss_frg``, ``loss_bas``, ``loss_ac`` (each already weighted). Defaults: CUB / ResNet50 / CVPR.

    Args:
        backbone: timm model name (presets for ``vgg*``, ``resnet*``, ``inception_v3``, ``mobilenetv1*``).
        num_classes: number of classes (linked from the datamodule).
        pretrained: ``False``, ``True`` or a local weights file.
        variant: ``"cvpr"`` (head ends with a ReLU; clip constant 0) or ``"ijcv"`` (no final ReLU; clip
            constant 1, 0 for VGG).
        alpha: weight of ``L_frg``.
        beta: weight of ``L_ac``.
        bas_weight: weight of ``L_bas`` (1 in the papers).
        clip_value: override the variant's ``L_bas`` constant where ``S^b_y >= S_y``.
        top_k: test-time map = mean FPM of the top-k predicted classes; 1 = the map of the class asked
            for (the GT class in evaluation, the predicted one in prediction).
        multilabel: WSSS mode: ``L_cls`` becomes the multi-label loss on ``batch["multi_hot"]``; the other
            terms use ``batch["label"]`` (one positive class sampled per image by the datamodule).
        background_bn: BatchNorm of the background branch: ``"batch"`` (official: batch statistics,
            running statistics not updated) or ``"running"``.
        checkpoint_background: recompute the background branch in backward instead of storing its
            activations (lower peak memory, about one more F2 forward per step; same gradients).
        checkpoint_extractor: recompute F1 block by block in backward, keeping only the block boundaries
            (the largest saving: layer3 at stride 1 holds most activations; one more F1 forward per step;
            same losses, gradients and BatchNorm statistics).
        checkpoint_blocks: recompute F1's first ``checkpoint_blocks`` layers (``leaf_blocks``: a ResNet's
            ``conv1, bn1, act1, maxpool``, then its bottlenecks) as one segment in backward, keeping only the
            images and the segment's output. The early layers hold many activations for few FLOPs: 4 (the
            ResNet stem) saves ~60 MiB, 5 (stem + first bottleneck) ~140 MiB at batch 8, 224 px, for a
            recomputation of ~1% and ~2% of the step (same losses, gradients and BatchNorm statistics).
            0: off. Ignored with ``checkpoint_extractor``.
        generator_gt_only: in training run the generator for the GT class only, the only map the losses
            read (same losses and gradients; 1/C of the generator's work). ``False``: every class, as the
            official code.
        channels_last: run the network in the channels-last memory format (same numbers up to float
            rounding; often faster convolutions on CPU/oneDNN and GPU tensor cores).
        compile: compile F1 (the extractor, most of the step) with ``torch.compile`` (``nn.Module.compile``:
            state-dict keys unchanged): ``True`` for the default (inductor) backend, or a backend name
            (``"aot_eager"``, ...); same numbers up to float rounding; the first steps pay the compilation.
            Not combined with ``checkpoint_extractor``.
        detach_frg_features: stop the gradient of ``L_frg`` into F (the WSSS code does; WSOL code not).
        mid_tap: override the preset's generator tap.
        high_tap: override the preset's classifier tap.
        stride_one_taps: override the preset's stride-1 stages.
        pool_between: override the preset's pool between the taps (``"max"`` / ``"none"``).
        head_channels: width of the head's 3x3 convs.
        head_convs: number of 3x3 conv + ReLU layers in the head.
        head_bias: biases in the generator and head convs (WSOL code: yes; WSSS code: no).
        backbone_act: trunk activation (timm name); ``None`` = the preset's: ``"relu"`` for MobileNetV1 as the
            official network (timm's ``mobilenetv1_100`` default is ReLU6: pass ``"relu6"`` for it).
        lr: base learning rate.
        momentum: SGD momentum.
        nesterov: Nesterov momentum.
        weight_decay: weight decay.
        backbone_bias_lr_mult: lr multiplier of backbone biases (x2 in the papers).
        head_lr_mult: lr multiplier of the generator and head weights (x10).
        head_bias_lr_mult: lr multiplier of their biases (x20).
        lr_scheduler: schedule (the papers: step decay x0.1 at ``lr_milestones``).
        lr_milestones: epochs of the decay (CUB: 80).
        **kwargs: other arguments of :class:`WSOLModule`.

    """

    def __init__(
        self,
        backbone: str = "resnet50",
        num_classes: int = 200,
        pretrained: bool | str = False,
        variant: Variant = "cvpr",
        alpha: float = 0.5,
        beta: float = 1.2,
        bas_weight: float = 1.0,
        clip_value: float | None = None,
        top_k: int = 1,
        multilabel: bool = False,
        background_bn: BackgroundBN = "batch",
        checkpoint_background: bool = False,
        checkpoint_extractor: bool = False,
        checkpoint_blocks: int = 0,
        generator_gt_only: bool = True,
        channels_last: bool = False,
        compile: bool | str = False,
        detach_frg_features: bool = False,
        mid_tap: int | None = None,
        high_tap: int | None = None,
        stride_one_taps: Sequence[int] | None = None,
        pool_between: PoolBetween | None = None,
        head_channels: int = 1024,
        head_convs: int = 2,
        head_bias: bool = True,
        backbone_act: str | None = None,
        lr: float = 1e-3,
        momentum: float = 0.9,
        nesterov: bool = True,
        weight_decay: float = 5e-4,
        backbone_bias_lr_mult: float = 2.0,
        head_lr_mult: float = 10.0,
        head_bias_lr_mult: float = 20.0,
        lr_scheduler: Literal["multistep", "step", "cosine", "poly", "none"] = "multistep",
        lr_milestones: Sequence[int] = (80,),
        **kwargs: Any,
    ) -> None:
        super().__init__(
            backbone=backbone, num_classes=num_classes, pretrained=pretrained, lr=lr, momentum=momentum,
            nesterov=nesterov, weight_decay=weight_decay, backbone_bias_lr_mult=backbone_bias_lr_mult,
            head_lr_mult=head_lr_mult, head_bias_lr_mult=head_bias_lr_mult, lr_scheduler=lr_scheduler,
            lr_milestones=lr_milestones, **kwargs,
        )
        if variant not in ("cvpr", "ijcv"):
            raise ValueError(f"variant must be 'cvpr' or 'ijcv', got {variant!r}")
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        self.clip_value = default_clip_value(variant, backbone) if clip_value is None else float(clip_value)
        self.net = BASNet(
            backbone, num_classes, pretrained, mid_tap=mid_tap, high_tap=high_tap,
            stride_one_taps=stride_one_taps, pool_between=pool_between, head_channels=head_channels,
            head_convs=head_convs, final_relu=variant == "cvpr", head_bias=head_bias, act_layer=backbone_act,
        )
        if channels_last:
            self.net.to(memory_format=torch.channels_last)
        blocks = leaf_blocks(self.net.extractor)
        if not 0 <= checkpoint_blocks <= len(blocks):
            raise ValueError(f"checkpoint_blocks must be in [0, {len(blocks)}] for '{backbone}', "
                             f"got {checkpoint_blocks}")
        if 0 < checkpoint_blocks < len(blocks) and getattr(blocks[checkpoint_blocks], "inplace", False):
            raise ValueError(f"checkpoint_blocks={checkpoint_blocks} ends the segment before an in-place layer "
                             f"({type(blocks[checkpoint_blocks]).__name__}); use {checkpoint_blocks + 1}")
        if compile:
            if checkpoint_extractor or checkpoint_blocks:
                raise ValueError("BAS: compile and checkpoint_extractor/checkpoint_blocks cannot be combined; "
                                 "choose one")
            self.net.extractor.compile(**({} if compile is True else {"backend": compile}))

    def _input(self, images: Tensor) -> Tensor:
        return images.contiguous(memory_format=torch.channels_last) if self.hparams.channels_last else images

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """Return ``mid``, ``fpm``, ``cams`` and ``logits`` (no background branch, no label needed)."""
        return self.net(self._input(images))

    def training_losses(self, batch: WSOLBatch) -> dict[str, Tensor]:
        """Compute the four BAS terms on the GT class ``batch["label"]`` and their sum."""
        hp = self.hparams
        labels = batch["label"]
        outputs = self.net(self._input(batch["image"]), classes=labels if hp.generator_gt_only else None,
                           recompute_extractor=hp.checkpoint_extractor, recompute_blocks=hp.checkpoint_blocks)
        logits, cams = outputs["logits"], outputs["cams"]
        foreground = outputs["fpm"] if hp.generator_gt_only else gather_class(outputs["fpm"], labels)  # M_y
        background = self.net.background_logits(outputs["mid"], foreground, hp.background_bn,
                                                  checkpoint=hp.checkpoint_background)
        if hp.multilabel:
            if "multi_hot" not in batch:
                raise KeyError("BAS(multilabel=True) needs batch['multi_hot'] (a multi-label datamodule)")
            loss_cls = multilabel_classification_loss(logits, batch["multi_hot"])
        else:
            loss_cls = classification_loss(logits, labels)
        frg_cams = cams.detach() if hp.detach_frg_features else cams
        losses = {
            "loss_cls": loss_cls,
            "loss_frg": hp.alpha * foreground_guidance_loss(frg_cams, foreground, labels),
            "loss_bas": hp.bas_weight * background_activation_loss(
                gather_class(background, labels), gather_class(logits, labels), self.clip_value),
            "loss_ac": hp.beta * area_loss(foreground),
        }
        losses["loss"] = sum(losses.values())  # type: ignore[assignment]
        return losses

    def localization_maps(self, outputs: dict[str, Tensor], classes: Tensor) -> Tensor:
        """Return FPMs ``(B, H', W')`` of ``classes`` (``top_k == 1``) or the mean of the top-k predicted."""
        fpm = outputs["fpm"]
        k = min(int(self.hparams.top_k), fpm.shape[1])
        if k == 1:
            return gather_class(fpm, classes)
        top = outputs["logits"].topk(k, dim=1).indices  # (B, k)
        index = top[:, :, None, None].expand(-1, -1, *fpm.shape[2:])
        return fpm.gather(1, index).mean(dim=1)

    def head_modules(self) -> Iterable[nn.Module]:
        """Return the generator and the classifier head (x10 / x20 learning rates)."""
        return self.net.head_modules()

    @torch.no_grad()
    def class_maps(self, images: Tensor) -> Tensor:
        """FPMs of every class ``(B, C, H', W')`` (e.g. WSSS seeds: keep the image's positive classes)."""
        return self.net(self._input(images))["fpm"]
