"""Choosing the operating thresholds on the val split before a test that has none (never on test)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from wsol_lightning.methods.evaluation import LocalizationEvaluator, any_process_updated
from wsol_lightning.metrics import SeedMIoU

if TYPE_CHECKING:  # pragma: no cover
    from wsol_lightning.methods.base import WSOLModule


@torch.no_grad()
def choose_thresholds_on_val(module: WSOLModule, need_box: bool = True,
                             need_seed: bool = True) -> tuple[float | None, float | None]:
    """Run ``module`` over its datamodule's val split for the missing thresholds only.

    Args:
        module: a WSOL module attached to a trainer with a datamodule.
        need_box: choose the box operating threshold (best BoxAcc at the localisation IoU).
        need_seed: choose the seed background threshold; applicable only to multi-label segmentation data
            (batches with ``semantic`` and ``multi_hot``), ignored elsewhere.

    Returns:
        ``(box_threshold, seed_threshold)``, each ``None`` where not needed, not applicable or not computable.

    """
    datamodule = getattr(module.trainer, "datamodule", None)
    if datamodule is None or not hasattr(datamodule, "val_dataloader"):
        return None, None
    evaluator = LocalizationEvaluator(
        iou_thresholds=module.evaluator.box.iou_thresholds, cam_curve_interval=module.hparams.cam_curve_interval,
        multi_contour=module.hparams.multi_contour, asynchronous=bool(module.hparams.get("async_metrics", False)),
        max_pending=int(module.hparams.get("async_max_pending", 2)),
    ).to(module.device)
    seeds = SeedMIoU(module.num_classes).to(module.device)
    for index, batch in enumerate(datamodule.val_dataloader()):
        has_seeds = "semantic" in batch and "multi_hot" in batch
        if index == 0:
            need_seed = need_seed and has_seeds  # not applicable to box/mask-only data
            if not (need_box or need_seed):
                return None, None
        batch = module.transfer_batch_to_device(batch, module.device, 0)
        if need_box:
            logits, maps = module.evaluation_maps(batch)
            evaluator.update(maps, batch, logits, context=f"val batch {index} (choosing the operating threshold)")
        if need_seed and has_seeds:
            seeds.update(module.seed_maps(batch), batch["semantic"])
    box = seed = None
    if need_box:
        results = evaluator.compute()
        if "best_threshold" in results:
            box = float(results["best_threshold"])
    if need_seed and any_process_updated(seeds):
        seed = float(seeds.compute()["best_bg_threshold"])
    return box, seed
