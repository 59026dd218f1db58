"""Per-image evaluation records for visualisation: image, map, GT and predicted boxes, IoU, class and score.

Pure numpy/torch (no logger): :func:`tiles_from_batch` turns one evaluated batch into :class:`Tile` records that
``render`` draws and ``wandb_media`` turns into W&B images, tables and masks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from wsol_lightning.metrics.functional import box_iou_inclusive, boxes_at_threshold
from wsol_lightning.predict import threshold_mask


@dataclass
class Tile:
    """One evaluated image in the network frame.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB.
        scoremap: ``(H, W)`` float map in [0, 1] of the GT class.
        gt_boxes: ``(n, 4)`` int64 inclusive GT boxes (``n`` may be 0).
        pred_boxes: ``(k, 4)`` int64 inclusive boxes of the map at the operating threshold.
        pred_ious: ``(k,)`` best IoU of each predicted box with a GT box (NaN without GT boxes).
        label: GT class index; ``pred_class`` the top-1 class, ``score`` its softmax probability.
        class_name / pred_name: names of ``label`` / ``pred_class``.
        mask: optional ``(H, W)`` uint8 GT mask (1 object, 0 background, 255 ignored).
        pred_mask: ``(H, W)`` bool map binarised at the operating threshold as the metrics do.
        image_id: the sample's id (file name) when known.
        threshold: the operating threshold.

    """

    image: np.ndarray
    scoremap: np.ndarray
    gt_boxes: np.ndarray
    pred_boxes: np.ndarray
    pred_ious: np.ndarray
    label: int
    pred_class: int
    score: float
    class_name: str
    pred_name: str
    mask: np.ndarray | None
    pred_mask: np.ndarray
    image_id: str
    threshold: float

    @property
    def iou(self) -> float:
        """Best IoU over predicted x GT boxes (NaN without GT boxes, 0 without predicted boxes)."""
        if not len(self.gt_boxes):
            return math.nan
        return float(self.pred_ious.max()) if len(self.pred_ious) else 0.0

    def hit(self, iou_threshold: float = 0.5) -> bool | None:
        """Whether the best IoU reaches ``iou_threshold`` (``None`` without GT boxes)."""
        iou = self.iou
        return None if math.isnan(iou) else iou >= iou_threshold


def class_name(names: Sequence[str], index: int) -> str:
    """``names[index]`` or ``class_<index>`` when there are no names."""
    return names[index] if 0 <= index < len(names) else f"class_{index}"


def tiles_from_batch(images: np.ndarray, maps: Tensor, logits: Tensor, labels: Tensor,
                     gt_boxes: Sequence[Tensor] | None, masks: Tensor | None, threshold: float,
                     names: Sequence[str] = (), image_ids: Sequence[str] | None = None) -> list[Tile]:
    """Records of a batch: ``images`` ``(B, H, W, 3)`` uint8, ``maps`` ``(B, H, W)`` in [0, 1], ``logits`` ``(B, C)``.

    ``gt_boxes`` are ``B`` ``(n_i, 4)`` inclusive boxes, ``masks`` ``(B, H, W)`` uint8, all in the maps' frame.
    """
    probs = torch.softmax(logits.detach().float(), dim=1).cpu()
    maps_np = maps.detach().float().cpu().numpy()
    tiles = []
    for b, scoremap in enumerate(maps_np):
        gt = np.zeros((0, 4), np.int64) if gt_boxes is None else gt_boxes[b].detach().cpu().numpy().astype(np.int64)
        pred = boxes_at_threshold(scoremap, threshold, keep_empty=False).numpy()
        if len(pred) and len(gt):
            ious = box_iou_inclusive(pred, gt).max(axis=1)
        else:
            ious = np.full(len(pred), math.nan if not len(gt) else 0.0)
        pred_class = int(probs[b].argmax())
        label = int(labels[b])
        tiles.append(Tile(
            image=images[b], scoremap=scoremap, gt_boxes=gt, pred_boxes=pred, pred_ious=ious, label=label,
            pred_class=pred_class, score=float(probs[b, pred_class]), class_name=class_name(names, label),
            pred_name=class_name(names, pred_class),
            mask=None if masks is None else masks[b].detach().cpu().numpy().astype(np.uint8),
            pred_mask=threshold_mask(scoremap, threshold),
            image_id=str(image_ids[b]) if image_ids is not None else str(b),
            threshold=threshold,
        ))
    return tiles
