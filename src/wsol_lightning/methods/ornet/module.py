"""ORNet as one LightningModule with three phases: ``evaluator``, ``coarse`` and ``refine``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wsol_lightning.methods.base import ALREADY_REDUCED, WSOLModule
from wsol_lightning.methods.ornet import handoff
from wsol_lightning.methods.ornet.erasing import ErasingUniforms, attentive_erase
from wsol_lightning.methods.ornet.loss import classification_loss, refinement_area_loss, weighted_entropy_loss
from wsol_lightning.methods.ornet.model import CoarseNet, EvaluatorNet, LowLevelTap, RefineNet
from wsol_lightning.types import WSOLBatch, WSOLPrediction

Phase = Literal["evaluator", "coarse", "refine"]
PHASES = ("evaluator", "coarse", "refine")


class ORNet(WSOLModule):
    """ORNet (Xie et al., ICCV 2021): online refinement of a low-level-feature activation map.

    ``phase="evaluator"`` fine-tunes the classifier that later judges the maps (VGG16); ``"coarse"``
    trains the low-level tap + U-Net generator inside a classifier (two cross-entropies);
    ``"refine"`` freezes all but the generator's last decoder blocks and its map head and trains them so
    that the frozen evaluator still classifies the image masked by the attentively erased map. The
    localisation map is the generator's sigmoid map; the class used for Top-1/Top-5 Loc comes from the
    evaluator (refine) or the gated classifier (coarse).

    Args:
        phase: ``evaluator``, ``coarse`` or ``refine``.
        backbone: timm name of the network this phase builds: the evaluator (phase ``evaluator``) or
            the stage-1 classifier ``F^c`` (``coarse``, ``refine``).
        num_classes: number of classes (linked from the datamodule).
        pretrained: weights of the evaluator/``F^c`` before training (unused by ``refine``).
        init_from: checkpoint of the previous phase: an evaluator checkpoint with the same backbone
            for ``coarse`` (optional; its trunk initialises ``F^c``), the coarse checkpoint for ``refine``
            (required).
        evaluator_from: the evaluator checkpoint (``refine`` only, required).
        evaluator_backbone: timm name of the evaluator used by ``refine``.
        evaluator_pretrained: weights of the evaluator when ``evaluator_from`` is ``None`` (``refine``):
            ``True`` uses timm's ImageNet classifier unchanged, as the released code does on ImageNet.
        evaluator_drop_rate: dropout of the evaluator's head.
        low_level_stage: trunk stage of the low-level tap (``None``: the backbone's declared tap).
        low_level_children: leading children of that stage run by ``F^c_1`` (``None``: all).
        decoder_channels: channels of the U-Net's down blocks.
        decoder_up_channels: channels of the U-Net's first two up blocks.
        reinit_last_stages: re-initialise the last trunk stages of ``F^c`` (1 on ImageNet, as released).
        aux_weight: weight of the cross-entropy of the head on ``f^a`` (``coarse``).
        ce_weight: weight of the main cross-entropy.
        area_weight: weight of the area loss (``refine``).
        entropy_weight: weight of the weighted entropy (``refine``).
        entropy_mu: centre of the entropy weight.
        entropy_sigma: width of the entropy weight.
        entropy_beta: offset of the entropy weight.
        area_class_term: add the released code's class-channel term to the area loss.
        area_rank_start: first evaluator rank of the class term (1-based).
        area_rank_end: last evaluator rank of the class term.
        erase_prob: probability that an image's map is erased.
        erase_alpha_max: erasing factor ``alpha ~ U(0, erase_alpha_max)``.
        erase_min_half: smallest half-size of the erasing rectangle (map pixels).
        erase_scale: rescale of the map before masking (``scale * p + shift``).
        erase_shift: offset of that rescale.
        per_sample_alpha: one alpha per image (``False``: one per batch, as released).
        erase_seed: seed of a dedicated erasing generator (``None``: the global one).
        trainable_decoder_blocks: decoder blocks trained by ``refine`` (the last ones).
        frozen_train_mode: let frozen parts follow ``train()`` like the released code (BatchNorm
            statistics drift, evaluator dropout active); ``False`` keeps them in eval mode.
        cosine_per_step: with ``lr_scheduler="cosine"``, anneal once per optimizer step over the whole run
            (``CosineAnnealingLR(T_max=iterations x epochs)`` stepped every iteration, as
            ``train_evaluator.py`` and ``train_2nd_step.py``); ``False``: once per epoch.
        **kwargs: optimisation and evaluation arguments of :class:`WSOLModule`.

    """

    def __init__(
        self,
        phase: Phase = "coarse",
        backbone: str = "resnet50",
        num_classes: int = 200,
        pretrained: bool | str = False,
        init_from: str | None = None,
        evaluator_from: str | None = None,
        evaluator_backbone: str = "vgg16",
        evaluator_pretrained: bool | str = False,
        evaluator_drop_rate: float = 0.5,
        low_level_stage: int | None = None,
        low_level_children: int | None = None,
        decoder_channels: Sequence[int] = (128, 256, 512),
        decoder_up_channels: Sequence[int] = (256, 192),
        reinit_last_stages: int = 0,
        aux_weight: float = 1.0,
        ce_weight: float = 1.0,
        area_weight: float = 0.02,
        entropy_weight: float = 1.5,
        entropy_mu: float = 0.5,
        entropy_sigma: float = 0.1,
        entropy_beta: float = 0.0,
        area_class_term: bool = True,
        area_rank_start: int = 4,
        area_rank_end: int = 25,
        erase_prob: float = 0.5,
        erase_alpha_max: float = 0.5,
        erase_min_half: int = 4,
        erase_scale: float = 0.6,
        erase_shift: float = 0.2,
        per_sample_alpha: bool = False,
        erase_seed: int | None = None,
        trainable_decoder_blocks: int = 2,
        frozen_train_mode: bool = False,
        cosine_per_step: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(backbone=backbone, num_classes=num_classes, pretrained=pretrained, **kwargs)
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
        if phase == "refine" and (init_from is None or (evaluator_from is None and not evaluator_pretrained)):
            raise ValueError("phase 'refine' needs init_from (the coarse checkpoint) and evaluator_from (the "
                             "evaluator checkpoint, or evaluator_pretrained for a stock classifier); "
                             f"got init_from={init_from!r}, evaluator_from={evaluator_from!r}")
        self.phase = phase
        tap = None if low_level_stage is None else LowLevelTap(low_level_stage, low_level_children)
        self.net: CoarseNet | RefineNet | None = None
        self.eval_classifier: EvaluatorNet | None = None
        if phase == "evaluator":
            self.eval_classifier = EvaluatorNet(backbone, num_classes, pretrained, evaluator_drop_rate)
        elif phase == "coarse":
            self.net = CoarseNet(backbone, num_classes, pretrained, tap, decoder_channels,
                                 decoder_up_channels, reinit_last_stages)
        else:
            self.net = RefineNet(backbone, num_classes, tap, decoder_channels, decoder_up_channels)
            weights = evaluator_pretrained if evaluator_from is None else False
            self.eval_classifier = EvaluatorNet(evaluator_backbone, num_classes, weights, evaluator_drop_rate)
            trainable = {id(p) for m in self.net.trainable_modules(trainable_decoder_blocks)
                         for p in m.parameters()}
            for param in self.parameters():
                param.requires_grad_(id(param) in trainable)
        # True once the previous phases' weights are in (saved, so a restored model is not re-initialised).
        self.register_buffer("previous_phase_loaded", torch.tensor(
            phase == "evaluator" or (phase == "coarse" and init_from is None)))
        self._erase_generator: torch.Generator | None = None
        self.train(self.training)  # frozen parts start in eval mode

    # ------------------------------------------------------------------ phase hand-off and freezing
    def setup(self, stage: str) -> None:
        """Load the previous phases' checkpoints unless a checkpoint of this run is being restored."""
        if not bool(self.previous_phase_loaded) and getattr(self.trainer, "ckpt_path", None) is None:
            self.load_previous_phases()

    def load_previous_phases(self) -> None:
        """Load ``init_from`` (and ``evaluator_from``) into this phase's networks.

        Raises:
            handoff.PhaseCheckpointError: a file is missing, from another phase/backbone, or lacks keys.

        """
        hp = self.hparams
        if self.phase == "coarse" and hp.init_from is not None:
            state = handoff.read_phase_checkpoint(hp.init_from, ("evaluator", "coarse"), "init_from",
                                                  hp.backbone)
            if any(k.startswith("net.") for k in state):  # a coarse checkpoint: same layout
                handoff.load_checked(self, handoff.select_prefix(state, "net.", "net."), hp.init_from,
                                     "init_from", required_prefix="net.")
            else:  # an evaluator checkpoint: its timm trunk (and classifier if shapes agree) initialise F^c
                timm_state = handoff.select_prefix(state, "eval_classifier.model.", "")
                trunk_state = handoff.timm_to_trunk(timm_state, self.net.trunk)
                renamed = handoff.select_prefix(trunk_state, "", "net.trunk.")
                from timm.models import get_pretrained_cfg_value

                head = get_pretrained_cfg_value(hp.backbone, "classifier") or "fc"
                for suffix in ("weight", "bias"):
                    if f"{head}.{suffix}" in timm_state:
                        renamed[f"net.classifier.{suffix}"] = timm_state[f"{head}.{suffix}"]
                handoff.load_checked(self, renamed, hp.init_from, "init_from", required_prefix="net.trunk.",
                                     optional=("net.classifier.weight", "net.classifier.bias"))
                self.net.reinit_stages(hp.reinit_last_stages)
        elif self.phase == "refine":
            state = handoff.read_phase_checkpoint(hp.init_from, ("coarse", "refine"), "init_from",
                                                  hp.backbone)
            handoff.load_checked(self, handoff.select_prefix(state, "net.", "net."), hp.init_from,
                                 "init_from", required_prefix="net.")
            if hp.evaluator_from is not None:
                state = handoff.read_phase_checkpoint(hp.evaluator_from, ("evaluator",), "evaluator_from",
                                                      hp.evaluator_backbone)
                state = handoff.select_prefix(state, "eval_classifier.", "eval_classifier.")
                handoff.load_checked(self, state, hp.evaluator_from, "evaluator_from",
                                     required_prefix="eval_classifier.")
        self.previous_phase_loaded.fill_(True)

    def frozen_modules(self) -> list[nn.Module]:
        """Modules whose parameters are frozen in this phase (kept in eval mode while training)."""
        if self.phase != "refine":
            return []
        assert isinstance(self.net, RefineNet) and self.eval_classifier is not None
        trainable = self.net.trainable_modules(self.hparams.trainable_decoder_blocks)
        frozen = [b for b in self.net.decoder.blocks() if b not in trainable]
        return [self.net.trunk, *frozen, self.eval_classifier]

    def train(self, mode: bool = True) -> ORNet:
        """Set train/eval mode; frozen parts stay in eval mode unless ``frozen_train_mode``."""
        super().train(mode)
        if mode and not self.hparams.frozen_train_mode:
            for module in self.frozen_modules():
                module.eval()
        return self

    def configure_optimizers(self) -> Any:
        """:meth:`WSOLModule.configure_optimizers`, with the cosine schedule per step when ``cosine_per_step``."""
        config = super().configure_optimizers()
        if self.hparams.lr_scheduler != "cosine" or not self.hparams.cosine_per_step:
            return config
        optimizer = config["optimizer"]
        total = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ------------------------------------------------------------------ WSOLModule interface
    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """``logits`` (the evaluator's for ``evaluator``/``refine``), plus ``map``/``class_maps``."""
        if self.phase == "evaluator":
            return {"logits": self.eval_classifier(images)}
        outputs = self.net(images)
        if self.phase == "refine":
            outputs["logits"] = self.eval_classifier(images)
        return outputs

    def training_losses(self, batch: WSOLBatch) -> dict[str, Tensor]:
        """Weighted loss terms of the phase and their sum."""
        hp, images, labels = self.hparams, batch["image"], batch["label"]
        if self.phase == "evaluator":
            loss_cls = hp.ce_weight * classification_loss(self.eval_classifier(images), labels)
            return {"loss_cls": loss_cls, "loss": loss_cls}
        if self.phase == "coarse":
            outputs = self.net(images)
            loss_cls = hp.ce_weight * classification_loss(outputs["logits"], labels)
            loss_aux = hp.aux_weight * classification_loss(outputs["aux_logits"], labels)
            return {"loss_cls": loss_cls, "loss_aux": loss_aux, "loss": loss_cls + loss_aux}
        return self.refine_losses(images, labels)

    def refine_losses(self, images: Tensor, labels: Tensor, uniforms: ErasingUniforms | None = None
                      ) -> dict[str, Tensor]:
        """The ``refine`` phase's weighted loss terms and their sum (what :meth:`training_losses` returns).

        Args:
            images: ``(B, 3, H, W)`` images.
            labels: ``(B,)`` class indices.
            uniforms: the erasing draws to use (``None``: drawn from ``erase_seed``'s or the global generator).

        Returns:
            ``loss_cls``, ``loss_area``, ``loss_entropy`` and ``loss`` (scalars).

        """
        hp = self.hparams
        outputs = self.net(images)
        maps = outputs["map"]
        erased = attentive_erase(maps, hp.erase_prob, hp.erase_alpha_max, hp.erase_min_half, hp.erase_scale,
                                 hp.erase_shift, hp.per_sample_alpha, self._generator(maps.device), uniforms)
        masks = F.interpolate(erased.maps, size=images.shape[-2:], mode="nearest")
        logits = self.eval_classifier(images * masks)
        loss_cls = hp.ce_weight * classification_loss(logits, labels)
        class_maps = outputs["class_maps"] if hp.area_class_term else None
        loss_area = hp.area_weight * refinement_area_loss(maps, class_maps, logits, hp.area_rank_start,
                                                          hp.area_rank_end)
        loss_entropy = hp.entropy_weight * weighted_entropy_loss(maps, hp.entropy_mu, hp.entropy_sigma,
                                                                 hp.entropy_beta)
        if self._trainer is not None:
            self.log("train/erased_fraction", erased.erased.float().mean(), batch_size=images.shape[0])
        return {"loss_cls": loss_cls, "loss_area": loss_area, "loss_entropy": loss_entropy,
                "loss": loss_cls + loss_area + loss_entropy}

    def localization_maps(self, outputs: dict[str, Tensor], classes: Tensor) -> Tensor:
        """Return the class-agnostic sigmoid map ``(B, h, w)`` (the same for every class)."""
        if "map" not in outputs:
            raise RuntimeError("the 'evaluator' phase trains a classifier only and has no localisation map; "
                               "evaluate the 'coarse' or 'refine' phase")
        return outputs["map"][:, 0]

    def head_modules(self) -> Iterable[nn.Module]:
        """Return the new layers: the evaluator's head, the generator and heads, or what ``refine`` trains."""
        if self.phase == "evaluator":
            return (self.eval_classifier.head(),)
        if self.phase == "coarse":
            return (self.net.decoder, self.net.map_head, self.net.aux_head, self.net.classifier)
        return tuple(self.net.trainable_modules(self.hparams.trainable_decoder_blocks))

    # ------------------------------------------------------------------ evaluator phase: classification only
    def validation_step(self, batch: WSOLBatch, batch_idx: int) -> None:
        """Accumulate val metrics (classification only in the ``evaluator`` phase)."""
        if self.phase == "evaluator":
            self._classification_step(batch)
        else:
            super().validation_step(batch, batch_idx)

    def test_step(self, batch: WSOLBatch, batch_idx: int) -> None:
        """Accumulate test metrics (classification only in the ``evaluator`` phase)."""
        if self.phase == "evaluator":
            self._classification_step(batch)
        else:
            super().test_step(batch, batch_idx)

    def on_validation_epoch_end(self) -> None:
        """Log val metrics."""
        if self.phase == "evaluator":
            self._log_classification("val")
        else:
            super().on_validation_epoch_end()

    def on_test_start(self) -> None:
        """Choose the operating threshold on val first (not needed by the ``evaluator`` phase)."""
        if self.phase != "evaluator":
            super().on_test_start()

    def on_test_epoch_end(self) -> None:
        """Log test metrics."""
        if self.phase == "evaluator":
            self._log_classification("test")
        else:
            super().on_test_epoch_end()

    def predict_step(self, batch: WSOLBatch, batch_idx: int, dataloader_idx: int = 0) -> WSOLPrediction:
        """Predict maps and boxes (``coarse``/``refine``); class scores only for the ``evaluator`` phase."""
        if self.phase != "evaluator":
            return super().predict_step(batch, batch_idx, dataloader_idx)
        logits = self(batch["image"])["logits"]
        prediction: WSOLPrediction = {"logits": logits, "pred_class": logits.argmax(dim=1)}
        for key in ("index", "image_id"):
            if key in batch:
                prediction[key] = batch[key]  # type: ignore[literal-required]
        return prediction

    def _classification_step(self, batch: WSOLBatch) -> None:
        logits = self(batch["image"])["logits"]
        self.top1_cls.update(logits, batch["label"])
        self.top5_cls.update(logits, batch["label"])

    def _log_classification(self, stage: str) -> None:
        if not (stage == "val" and self.trainer.sanity_checking):
            self.log_dict({f"{stage}/top1_cls": self.top1_cls.compute() * 100,
                           f"{stage}/top5_cls": self.top5_cls.compute() * 100}, **ALREADY_REDUCED)
        self.top1_cls.reset()
        self.top5_cls.reset()

    def _generator(self, device: torch.device) -> torch.Generator | None:
        seed = self.hparams.erase_seed
        if seed is None:
            return None
        if self._erase_generator is None or self._erase_generator.device != device:
            self._erase_generator = torch.Generator(device=device).manual_seed(int(seed))
        return self._erase_generator
