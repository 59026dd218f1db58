"""WSOLModule: the Lightning steps every WSOL method shares.

A method subclasses :class:`WSOLModule` and implements three things:

* ``forward(images) -> dict`` with at least ``"logits"`` ``(B, C)``;
* ``training_losses(batch) -> dict`` of named loss terms, each already weighted, plus ``"loss"``
  (their sum); every term is logged as ``train/<name>`` and checked for NaN/inf;
* ``localization_maps(outputs, classes) -> (B, h, w)`` raw maps of the given classes.

The base does the rest: the evaluation protocol (maps of the GT class, bicubic upsampling to the
image, min-max normalisation, MaxBoxAcc/PxAP, top-1/top-5 aware localisation accuracy at the
operating threshold chosen on **val** and reused on test), prediction, optimizer parameter groups
and learning-rate schedules.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import lightning as L
import torch
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from wsol_lightning.methods.evaluation import LocalizationEvaluator, any_process_updated, forward_once, skipped_report
from wsol_lightning.methods.optim import build_optimizer, build_scheduler, parameter_groups_by_name
from wsol_lightning.methods.pretrained import PretrainedMixin
from wsol_lightning.methods.sanity import print_sanity_warnings
from wsol_lightning.methods.thresholds import seed_threshold_after_test, thresholds_before_test
from wsol_lightning.metrics import SeedMIoU
from wsol_lightning.metrics.functional import upsample_and_normalize
from wsol_lightning.types import WSOLBatch, WSOLPrediction

#: ``self.log`` arguments for epoch-level values already reduced over all processes (torchmetrics ``compute``):
#: every rank holds the same value, so syncing with ``max`` returns it unchanged (exactly, where a mean could
#: round), and Lightning does not warn under DDP that an epoch-level value is logged without ``sync_dist``.
ALREADY_REDUCED: dict[str, Any] = {"sync_dist": True, "reduce_fx": "max"}


class NonFiniteLossError(RuntimeError):
    """A loss term became NaN or infinite."""


class WSOLModule(PretrainedMixin, L.LightningModule):
    """Shared training, evaluation, prediction and optimisation for WSOL methods.

    Args:
        backbone: timm model name of the trunk.
        num_classes: number of classes (linked from the datamodule by the CLI).
        pretrained: ``False``, ``True`` (timm's weights) or the path of a local weights file.
        optimizer: ``"sgd"``, ``"adam"`` or ``"adamw"``.
        lr: base learning rate (backbone weights).
        momentum: SGD momentum.
        nesterov: SGD Nesterov momentum.
        weight_decay: weight decay for every group.
        backbone_lr_mult: lr multiplier of pretrained backbone weights.
        backbone_bias_lr_mult: lr multiplier of pretrained backbone biases.
        head_lr_mult: lr multiplier of new layers' weights.
        head_bias_lr_mult: lr multiplier of new layers' biases.
        lr_scheduler: ``"multistep"`` (x ``lr_gamma`` at ``lr_milestones`` epochs), ``"step"``
            (x ``lr_gamma`` every ``lr_step_size`` epochs), ``"cosine"`` (to 0 at ``max_epochs``),
            ``"poly"`` (power ``lr_poly_power`` over the run's steps) or ``"none"``.
        lr_milestones: epochs of the multistep decay.
        lr_step_size: period (epochs) of the step decay.
        lr_gamma: decay factor.
        lr_poly_power: power of the poly schedule.
        iou_thresholds: IoU thresholds (percent) of MaxBoxAcc.
        cam_curve_interval: spacing of the CAM threshold grid.
        multi_contour: all contours (MaxBoxAccV2) or the largest (V1).
        operating_threshold: fixed operating threshold for GT-known/Top-1/Top-5 Loc and prediction.
            ``None`` (default): chosen on the val split (best BoxAcc@50) and stored in checkpoints.
        map_interpolation: how raw maps are upsampled to the image before min-max normalisation:
            ``"bicubic"`` (wsolevaluation's protocol, the default) or ``"bilinear"`` (what the BAS and
            B-CAM official code does; a method's config names the one it uses).
        warmup_epochs: epochs at the start of training during which only the classification terms
            (``classification_terms``: ``loss_cls``, B-CAM's ``loss_obj_cls``) are optimised; the other terms
            are still computed and logged, detached. 0 (the papers' value: they start from an ImageNet
            classifier) turns it off; from-scratch CPU recipes use it so that the method's extra terms act on
            a classifier that already recognises the objects.
        async_metrics: run the localisation metric updates (MaxBoxAcc, PxAP, sanity counters) on background
            threads, their per-image work split over ``torch.get_num_threads()`` threads, while the next forward
            runs; results are bit-identical to ``False`` (inline), see :mod:`~wsol_lightning.methods.background`.
        async_max_pending: batches each metric may hold queued before the evaluation loop waits for it.

    """

    #: loss terms kept during the classification warm-up (``warmup_epochs``).
    classification_terms: tuple[str, ...] = ("loss_cls",)

    def __init__(
        self,
        backbone: str = "resnet50",
        num_classes: int = 200,
        pretrained: bool | str = False,
        optimizer: Literal["sgd", "adam", "adamw"] = "sgd",
        lr: float = 1e-3,
        momentum: float = 0.9,
        nesterov: bool = True,
        weight_decay: float = 5e-4,
        backbone_lr_mult: float = 1.0,
        backbone_bias_lr_mult: float = 1.0,
        head_lr_mult: float = 10.0,
        head_bias_lr_mult: float = 10.0,
        lr_scheduler: Literal["multistep", "step", "cosine", "poly", "none"] = "multistep",
        lr_milestones: Sequence[int] = (),
        lr_step_size: int = 30,
        lr_gamma: float = 0.1,
        lr_poly_power: float = 0.9,
        iou_thresholds: Sequence[int] = (30, 50, 70),
        cam_curve_interval: float = 0.001,
        multi_contour: bool = True,
        operating_threshold: float | None = None,
        map_interpolation: Literal["bicubic", "bilinear"] = "bicubic",
        warmup_epochs: int = 0,
        async_metrics: bool = True,
        async_max_pending: int = 2,
    ) -> None:
        super().__init__()
        # Collects the arguments of the subclass's __init__ too (Lightning walks the __init__ frames).
        self.save_hyperparameters()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if map_interpolation not in ("bicubic", "bilinear"):
            raise ValueError(f"map_interpolation must be 'bicubic' or 'bilinear', got {map_interpolation!r}")
        self.map_interpolation = map_interpolation
        if warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {warmup_epochs}")
        self.num_classes = num_classes
        self.backbone_name = backbone
        self.evaluator = LocalizationEvaluator(
            iou_thresholds=tuple(iou_thresholds), cam_curve_interval=cam_curve_interval,
            multi_contour=multi_contour, asynchronous=async_metrics, max_pending=async_max_pending,
        )
        top5 = min(5, num_classes)
        self.top1_cls = MulticlassAccuracy(num_classes=num_classes, top_k=1, average="micro")
        self.top5_cls = MulticlassAccuracy(num_classes=num_classes, top_k=top5, average="micro")
        fixed = math.nan if operating_threshold is None else float(operating_threshold)
        self.register_buffer("operating_threshold", torch.tensor(fixed, dtype=torch.float64))
        # Seed mIoU (multi-label segmentation data such as VOC): background threshold chosen on val.
        self.seed_miou = SeedMIoU(num_classes)
        self.register_buffer("seed_bg_threshold", torch.tensor(math.nan, dtype=torch.float64))
        self._sanity_messages: dict[str, list[str]] = {}
        self._num_skipped = 0  # samples the eval loader skipped this epoch on this process (skip_bad)
        self._eval_batch = "eval batch"  # names the batch in a metric update's error

    # ------------------------------------------------------------------ to implement
    def forward(self, images: Tensor) -> dict[str, Tensor]:  # pragma: no cover - abstract
        """Return at least ``{"logits": (B, C)}`` for images ``(B, 3, H, W)``."""
        raise NotImplementedError

    def training_losses(self, batch: WSOLBatch) -> dict[str, Tensor]:  # pragma: no cover - abstract
        """Return the weighted loss terms and their sum under ``"loss"``."""
        raise NotImplementedError

    def localization_maps(self, outputs: dict[str, Tensor], classes: Tensor) -> Tensor:  # pragma: no cover
        """Return raw maps ``(B, h, w)`` of ``classes`` ``(B,)`` from ``forward`` outputs."""
        raise NotImplementedError

    def head_modules(self) -> Iterable[nn.Module]:
        """Modules trained from scratch (higher lr); everything else is the pretrained backbone."""
        return ()

    # ------------------------------------------------------------------ training
    def warmup_objective(self, losses: dict[str, Tensor], epoch: int) -> dict[str, Tensor]:
        """``losses`` with ``"loss"`` re-summed over ``classification_terms`` while ``epoch < warmup_epochs``.

        The other terms stay in the dict, detached (logged, no gradient); from ``warmup_epochs`` on,
        ``losses`` is returned unchanged.
        """
        if epoch >= self.hparams.get("warmup_epochs", 0):
            return losses
        kept = [name for name in self.classification_terms if name in losses]
        if not kept:
            raise KeyError(f"{type(self).__name__}: warm-up needs one of the classification terms "
                           f"{list(self.classification_terms)} among the loss terms {sorted(losses)}")
        out = {k: (v if k in kept else v.detach()) for k, v in losses.items() if k != "loss"}
        out["loss"] = sum(losses[k] for k in kept)  # type: ignore[assignment]
        return out

    def training_step(self, batch: WSOLBatch, batch_idx: int) -> Tensor | None:
        """Compute, check and log the loss terms (``None``: every sample of the batch was skipped).

        During ``warmup_epochs`` only the classification terms are optimised (:meth:`warmup_objective`).
        """
        if "num_skipped" in batch:  # skip_bad: summed over the epoch and the processes
            self.log("train/num_skipped", batch["num_skipped"].float(), on_step=False, on_epoch=True,
                     reduce_fx="sum", sync_dist=True, batch_size=1)
        if "image" not in batch:
            return None
        losses = self.warmup_objective(self.training_losses(batch), self.current_epoch)
        for name in sorted(losses, key=lambda k: k == "loss"):  # name the term, not only the total
            value = losses[name]
            if not torch.isfinite(value).all():
                raise NonFiniteLossError(
                    f"loss term '{name}' is {value.detach().float().cpu().tolist()} at global step "
                    f"{self.global_step} (epoch {self.current_epoch}, batch {batch_idx}); lower the lr, "
                    "enable gradient clipping (--trainer.gradient_clip_val) or check the data"
                )
        batch_size = batch["image"].shape[0]
        terms = {f"train/{k}": v.detach() for k, v in losses.items() if k != "loss"}  # "loss" is logged below
        self.log_dict(terms, batch_size=batch_size,
                      prog_bar=False, sync_dist=False)
        self.log("train/loss", losses["loss"].detach(), prog_bar=True, batch_size=batch_size)
        return losses["loss"]

    # ------------------------------------------------------------------ evaluation
    def evaluation_maps(self, batch: WSOLBatch) -> tuple[Tensor, Tensor]:
        """Return logits ``(B, C)`` and GT-class maps normalised at image size ``(B, H, W)``."""
        outputs = self(batch["image"])
        maps = self.localization_maps(outputs, batch["label"])
        return outputs["logits"], self.normalize_to_image(maps, batch["image"].shape[-2:])

    def normalize_to_image(self, maps: Tensor, size: Sequence[int]) -> Tensor:
        """Upsample ``(B, h, w)`` maps to ``size`` (float64, ``map_interpolation``) and min-max them to [0, 1].

        This is wsolevaluation's order (resize, then normalise); a constant or non-finite map becomes
        zeros.
        """
        return upsample_and_normalize(maps, size, getattr(self, "map_interpolation", "bicubic"))

    def _evaluation_step(self, batch: WSOLBatch, stage: str) -> None:
        with forward_once(self, batch["image"]):  # the GT-class maps and the seed maps share one forward pass
            logits, maps = self.evaluation_maps(batch)
            labels = batch["label"]
            self.top1_cls.update(logits, labels)
            self.top5_cls.update(logits, labels)
            self.evaluator.update(maps, batch, logits, context=self._eval_batch)
            if "semantic" in batch and "multi_hot" in batch:
                self.seed_miou.update(self.seed_maps(batch), batch["semantic"])

    @torch.no_grad()
    def seed_maps(self, batch: WSOLBatch) -> Tensor:
        """Seed maps ``(B, C, H, W)`` for multi-label data: the normalised map of every positive class, 0 elsewhere.

        Each class map is upsampled and min-max normalised like the localisation maps.
        """
        images = batch["image"]
        outputs = self(images)
        present = batch["multi_hot"] > 0.5
        size = images.shape[-2:]
        maps = torch.zeros(images.shape[0], self.num_classes, *size, dtype=torch.float64, device=images.device)
        for cls in present.any(dim=0).nonzero().flatten().tolist():
            classes = torch.full((images.shape[0],), cls, dtype=torch.long, device=images.device)
            maps[:, cls] = self.normalize_to_image(self.localization_maps(outputs, classes), size)
        return maps * present[:, :, None, None]

    def on_validation_batch_start(self, batch: WSOLBatch, batch_idx: int, dataloader_idx: int = 0) -> None:
        """Count the samples the loader skipped (``skip_bad``) for ``val/num_skipped``."""
        self._eval_batch = f"val batch {batch_idx}"
        self._num_skipped += int(batch.get("num_skipped", 0))

    def on_test_batch_start(self, batch: WSOLBatch, batch_idx: int, dataloader_idx: int = 0) -> None:
        """Count the samples the loader skipped (``skip_bad``) for ``test/num_skipped``."""
        self._eval_batch = f"test batch {batch_idx}"
        self._num_skipped += int(batch.get("num_skipped", 0))

    def validation_step(self, batch: WSOLBatch, batch_idx: int) -> None:
        """Accumulate val metrics."""
        self._evaluation_step(batch, "val")

    def test_step(self, batch: WSOLBatch, batch_idx: int) -> None:
        """Accumulate test metrics."""
        self._evaluation_step(batch, "test")

    def on_validation_epoch_end(self) -> None:
        """Choose the operating threshold on val (unless fixed) and log every metric."""
        if self.trainer.sanity_checking:
            self._reset_eval_metrics()
            return
        self._log_eval_metrics("val", choose_threshold=True)

    def on_test_start(self) -> None:
        """Choose the box operating threshold on val only if the module holds none (:mod:`.thresholds`' rule)."""
        self._seed_val_pass = thresholds_before_test(self)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store what prediction needs (class names, image size, mean/std, method, threshold) as plain values."""
        from wsol_lightning.checkpoints import PREDICTION_KEY, prediction_settings

        trainer = self._trainer
        checkpoint[PREDICTION_KEY] = prediction_settings(self, getattr(trainer, "datamodule", None))

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """A fixed ``operating_threshold`` argument wins over the stored one; stored settings -> ``wsol_settings``."""
        from wsol_lightning.checkpoints import stored_prediction_settings

        self.wsol_settings = stored_prediction_settings(checkpoint)  # class names, image size, ... (save_pretrained)
        fixed = self.hparams.get("operating_threshold")
        state = checkpoint.get("state_dict")
        if fixed is not None and isinstance(state, dict) and "operating_threshold" in state:
            state["operating_threshold"] = torch.tensor(float(fixed), dtype=torch.float64)

    def on_test_epoch_end(self) -> None:
        """Log test metrics at the thresholds chosen on val (a missing seed threshold is chosen on val first)."""
        seed_threshold_after_test(self, tried=getattr(self, "_seed_val_pass", False))
        self._log_eval_metrics("test", choose_threshold=False)

    def _log_eval_metrics(self, stage: str, choose_threshold: bool) -> None:
        self.evaluator.flush()  # the background updates land before any (synced) compute
        results = self.evaluator.compute()
        if choose_threshold and self.hparams.get("operating_threshold") is None and "best_threshold" in results:
            self.operating_threshold.fill_(float(results["best_threshold"]))
        threshold = float(self.operating_threshold)
        if math.isnan(threshold):
            threshold = self.evaluator.fallback_threshold(stage)
        results.update(self.evaluator.accuracy_at(threshold))
        results["operating_threshold"] = torch.tensor(threshold)
        results["top1_cls"] = self.top1_cls.compute() * 100
        results["top5_cls"] = self.top5_cls.compute() * 100
        results.update(self._seed_results(choose_threshold))
        skipped, skip_message = skipped_report(stage, self._num_skipped)
        results["num_skipped"] = torch.tensor(skipped)
        flags, self._sanity_messages[stage] = self.evaluator.warnings(results, threshold)  # printed at teardown
        self._sanity_messages[stage] += [skip_message] if skip_message else []
        results.update(flags)
        self.log_dict({f"{stage}/{k}": torch.as_tensor(v, dtype=torch.float32) for k, v in results.items()
                       if k != "best_threshold"}, **ALREADY_REDUCED)
        self._reset_eval_metrics()

    def teardown(self, stage: str) -> None:
        """Print the last val/test table's sanity warnings once, after Lightning has printed the table."""
        for split, messages in sorted(self._sanity_messages.items()):
            print_sanity_warnings(split, messages)
        self._sanity_messages.clear()

    def _seed_results(self, choose_threshold: bool) -> dict[str, Tensor]:
        if not any_process_updated(self.seed_miou):
            return {}
        seeds = self.seed_miou.compute()
        if choose_threshold:
            self.seed_bg_threshold.fill_(float(seeds["best_bg_threshold"]))
        results = {"miou_best": seeds["miou_best"]}
        threshold = float(self.seed_bg_threshold)
        if not math.isnan(threshold):  # never chosen on val: only the best-on-split value, named as such
            results["miou"] = self.seed_miou.miou_at(seeds["miou_curve"], threshold)
            results["seed_bg_threshold"] = torch.tensor(threshold)
        return results

    def _reset_eval_metrics(self) -> None:
        self._num_skipped = 0
        self.seed_miou.reset()
        self.evaluator.reset()
        self.top1_cls.reset()
        self.top5_cls.reset()

    # ------------------------------------------------------------------ prediction
    def predict_step(self, batch: WSOLBatch, batch_idx: int, dataloader_idx: int = 0) -> WSOLPrediction:
        """Return class scores, the normalised map of the top-1 class and its boxes per image."""
        outputs = self(batch["image"])
        logits = outputs["logits"]
        pred_class = logits.argmax(dim=1)
        maps = self.normalize_to_image(self.localization_maps(outputs, pred_class), batch["image"].shape[-2:])
        threshold = float(self.operating_threshold)
        if math.isnan(threshold):
            threshold = self.evaluator.default_threshold
        from wsol_lightning.metrics.functional import boxes_at_threshold

        boxes = [boxes_at_threshold(m, threshold) for m in maps]
        prediction: WSOLPrediction = {
            "logits": logits, "pred_class": pred_class, "maps": maps.float(), "boxes": boxes,
            "threshold": threshold,
        }
        for key in ("index", "image_id"):
            if key in batch:
                prediction[key] = batch[key]  # type: ignore[literal-required]
        return prediction

    # ------------------------------------------------------------------ optimisation
    def parameter_groups(self) -> list[dict[str, Any]]:
        """Four groups: backbone weights/biases and head weights/biases, each with its lr multiplier.

        A "bias" is a parameter NAMED ``bias`` (the last component of its name), as in the official code
        (``'bias' in name``): BatchNorm scales, 1-d layer-scale or embedding vectors are weights.
        """
        hp = self.hparams
        return parameter_groups_by_name(
            self.named_parameters(), {id(p) for m in self.head_modules() for p in m.parameters()}, hp.lr,
            {"backbone_weights": hp.backbone_lr_mult, "backbone_biases": hp.backbone_bias_lr_mult,
             "head_weights": hp.head_lr_mult, "head_biases": hp.head_bias_lr_mult},
        )

    def configure_optimizers(self) -> Any:
        """Build the optimizer over :meth:`parameter_groups` and the epoch-wise LR schedule."""
        hp = self.hparams
        optimizer = build_optimizer(self.parameter_groups(), hp.optimizer, hp.lr, hp.momentum, hp.nesterov,
                                    hp.weight_decay)
        total_steps = None
        if hp.lr_scheduler == "poly":
            total_steps = int(self.trainer.estimated_stepping_batches)
        scheduler = build_scheduler(
            optimizer, hp.lr_scheduler, milestones=hp.lr_milestones, step_size=hp.lr_step_size,
            gamma=hp.lr_gamma, max_epochs=max(1, self.trainer.max_epochs or 1), total_steps=total_steps,
            poly_power=hp.lr_poly_power,
        )
        if scheduler is None:
            return optimizer
        interval = "step" if hp.lr_scheduler == "poly" else "epoch"
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": interval}}
