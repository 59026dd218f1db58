"""Accuracy of B-CAM's threshold-free mask (object score > background score), with fixed-size counters."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

from wsol_lightning.metrics.functional import box_iou_inclusive, boxes_at_threshold
from wsol_lightning.types import MASK_IGNORE, MASK_OBJECT


def mask_boxes(mask: Tensor, multi_contour: bool = True) -> Tensor:
    """Return the boxes of a binary mask ``(H, W)`` from the shared box miner, largest region first.

    Every contour (MaxBoxAccV2) or only the largest (V1); an empty mask gives the box ``(0, 0, 0, 0)``, as in
    wsolevaluation.

    Returns:
        ``(n, 4)`` int64 boxes ``x0, y0, x1, y1`` (inclusive).

    """
    return boxes_at_threshold(mask.detach().to(torch.float64).cpu(), 0.5, multi_contour=multi_contour)


class MaskAccuracy(Metric):
    """Box accuracy (IoU >= ``iou_threshold``) and pixel IoU of binary masks, with no threshold search.

    States are four sums: ``hits``/``count`` over images with GT boxes, ``intersection``/``union`` over
    mask pixels (pixels marked 255 in the GT mask excluded).

    Args:
        iou_threshold: box IoU (percent) counted as a hit.
        multi_contour: boxes of every contour of the mask (MaxBoxAccV2 protocol) or the largest (V1).

    """

    full_state_update = False

    def __init__(self, iou_threshold: float = 50, multi_contour: bool = True) -> None:
        super().__init__()
        self.iou_threshold = iou_threshold / 100
        self.multi_contour = multi_contour
        for name in ("hits", "count", "intersection", "union"):
            self.add_state(name, default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, masks: Tensor, boxes: list[Tensor] | None = None,
               gt_masks: Tensor | None = None) -> None:
        """Add predicted masks ``(B, H, W)`` bool, their GT ``boxes`` and/or GT masks ``(B, H, W)`` uint8."""
        masks = masks.bool()
        if boxes is not None:
            for mask, gt in zip(masks, boxes, strict=True):
                if len(gt) == 0:
                    continue
                iou = box_iou_inclusive(mask_boxes(mask, self.multi_contour), gt.cpu()).max()
                self.hits += float(iou >= self.iou_threshold)
                self.count += 1
        if gt_masks is not None:
            valid = gt_masks != MASK_IGNORE
            target = (gt_masks == MASK_OBJECT) & valid
            self.intersection += (masks & target).sum()
            self.union += ((masks | target) & valid).sum()

    def compute(self) -> dict[str, Tensor]:
        """``mask_gt_known_loc`` and ``mask_piou`` in percent, each only when it has data."""
        results: dict[str, Tensor] = {}
        if self.count > 0:
            results["mask_gt_known_loc"] = self.hits / self.count * 100
        if self.union > 0:
            results["mask_piou"] = self.intersection / self.union * 100
        return results
