"""Accuracy of B-CAM's threshold-free mask (object score > background score), with fixed-size counters."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

from wsol_lightning.types import MASK_IGNORE, MASK_OBJECT


def best_box_iou(boxes: Tensor, gt_boxes: Tensor) -> float:
    """Best IoU (inclusive pixels, the wsolevaluation ``+1`` convention) of any box against any GT box.

    Args:
        boxes: ``(n, 4)`` int ``x0, y0, x1, y1`` (``n = 0`` counts as the box ``(0, 0, 0, 0)``).
        gt_boxes: ``(m, 4)`` int GT boxes, ``m >= 1``.

    Returns:
        The best IoU in [0, 1].

    """
    if len(boxes) == 0:
        boxes = torch.zeros(1, 4, dtype=torch.int64)
    a = boxes.to(torch.int64).cpu()[:, None]
    g = gt_boxes.to(torch.int64).cpu()[None]
    iw = (torch.minimum(a[..., 2], g[..., 2]) - torch.maximum(a[..., 0], g[..., 0]) + 1).clamp(min=0)
    ih = (torch.minimum(a[..., 3], g[..., 3]) - torch.maximum(a[..., 1], g[..., 1]) + 1).clamp(min=0)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    area_g = (g[..., 2] - g[..., 0] + 1) * (g[..., 3] - g[..., 1] + 1)
    union = (area_a + area_g - inter).clamp(min=1)
    return float((inter / union).max())


def mask_boxes(mask: Tensor, multi_contour: bool = True) -> Tensor:
    """Boxes of a binary mask ``(H, W)`` with the shared box miner (every contour, or the largest one).

    Returns:
        ``(n, 4)`` int64 boxes, largest region first.

    """
    from wsol_lightning.metrics.functional import boxes_at_threshold

    boxes = boxes_at_threshold(mask.to(torch.float64), 0.5)
    return boxes if multi_contour else boxes[:1]


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
                iou = best_box_iou(mask_boxes(mask, self.multi_contour), gt)
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
