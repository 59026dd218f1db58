"""The operating thresholds a test uses: chosen on val, reused when the module holds them, never chosen on test.

The rule (:func:`thresholds_before_test`, :func:`seed_threshold_after_test`); the val split is read only
when a threshold is missing:

1. a fixed ``operating_threshold`` argument is used as given;
2. otherwise the threshold the module holds is reused: the one its last val epoch chose, or the one a
   checkpoint restores (the ``operating_threshold`` buffer of ``state_dict``, saved at the same moment as
   ``checkpoint["wsol"]["operating_threshold"]``, so the two are equal); no val pass runs;
3. only a module that holds none (no val during fit, a converted official checkpoint, a fresh model) runs
   one val pass before testing, which also chooses the seed threshold when that is missing too.

The seed background threshold (multi-label segmentation data only, e.g. VOC) follows the same rule, but
whether it applies is known from the test batches themselves: a missing one is chosen on val at the end of
the test epoch, so box/mask data never opens the val loader (before, every test of such data built the val
loader and read one batch to find out). Either way the thresholds come from the same model on the same val
split, so the results are the ones of a val pass run first.
"""

from __future__ import annotations

import math
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


def thresholds_before_test(module: WSOLModule) -> bool:
    """Rule step 3: one val pass when ``module`` holds no box operating threshold (it is filled in).

    Returns:
        Whether that pass also tried the seed threshold (it was missing too).

    """
    if not math.isnan(float(module.operating_threshold)):
        return False
    need_seed = math.isnan(float(module.seed_bg_threshold))
    _fill(module, *choose_thresholds_on_val(module, need_box=True, need_seed=need_seed))
    return need_seed


def seed_threshold_after_test(module: WSOLModule, tried: bool) -> None:
    """Choose on val a missing seed threshold once the test showed seed data (every process must call it).

    Args:
        module: the module at the end of its test epoch.
        tried: the val pass before the test already tried (:func:`thresholds_before_test`).

    """
    if math.isnan(float(module.seed_bg_threshold)) and not tried and any_process_updated(module.seed_miou):
        _fill(module, *choose_thresholds_on_val(module, need_box=False, need_seed=True))


def _fill(module: WSOLModule, box: float | None, seed: float | None) -> None:
    if box is not None:
        module.operating_threshold.fill_(box)
    if seed is not None:
        module.seed_bg_threshold.fill_(seed)
