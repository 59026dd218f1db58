"""The *legacy* box protocol printed by the BAS and ORNet papers (not wsolevaluation's MaxBoxAcc).

Named as such so published tables can be reproduced and compared, never mixed with MaxBoxAccV2:
a fixed threshold chosen by the authors, the largest 8-connected component of ``map > threshold``
(pixel count; ties to the component met first in raster order), its tight box (a map with nothing on
gives the whole image), IoU with the ``+1`` convention (max over GT boxes) and success ``IoU > 0.5``
(strict by default). GT boxes live in the resize-256 / centre-crop-224 frame (:func:`legacy_crop_boxes`).
Per-class averaging (BAS CVPR CUB scripts) and ten-crop classification are left to the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric

from wsol_lightning.metrics._checks import ArrayLike, as_tensor, check_flags, check_maps, to_numpy
from wsol_lightning.metrics.functional import iou_matrix


def legacy_largest_component_box(scoremap: ArrayLike, threshold: float) -> np.ndarray:
    """Tight box of the largest 8-connected component of ``scoremap > threshold``.

    Args:
        scoremap: ``(H, W)`` float map.
        threshold: fixed threshold (strict ``>``).

    Returns:
        ``(4,)`` int64 ``x0, y0, x1, y1`` inclusive; ``(0, 0, W - 1, H - 1)`` when nothing is on.

    """
    s = to_numpy(scoremap)
    height, width = s.shape
    binary = (s > threshold).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if n <= 1:
        return np.array([0, 0, width - 1, height - 1], np.int64)
    areas = stats[1:, cv2.CC_STAT_AREA]
    tied = np.flatnonzero(areas == areas.max()) + 1
    if tied.size > 1:  # first in raster order, as skimage.measure.label numbers components
        first = [int(np.argmax((labels == k).ravel())) for k in tied]
        best = int(tied[int(np.argmin(first))])
    else:
        best = int(tied[0])
    x, y = stats[best, cv2.CC_STAT_LEFT], stats[best, cv2.CC_STAT_TOP]
    w, h = stats[best, cv2.CC_STAT_WIDTH], stats[best, cv2.CC_STAT_HEIGHT]
    return np.array([x, y, x + w - 1, y + h - 1], np.int64)


def legacy_crop_boxes(boxes: ArrayLike, orig_wh: Sequence[float], resize: int = 256, crop: int = 224,
                      clip: str = "int") -> np.ndarray:
    """Map GT boxes into the resize-``resize``-square / centre-crop-``crop`` frame.

    ``x -> x * resize / W - (resize - crop) / 2`` (same for y with H), then:
    ``clip="int"`` truncates to int and clips to ``[0, crop - 1]`` (BAS IJCV), ``"float"`` clips to
    ``[0, crop]`` without rounding (BAS CVPR), ``"none"`` leaves the shifted floats (ORNet).

    Args:
        boxes: ``(n, 4)`` boxes ``x0, y0, x1, y1`` in the original image.
        orig_wh: original ``(width, height)``.
        resize: side of the square resize.
        crop: side of the centre crop.
        clip: ``"int"``, ``"float"`` or ``"none"``.

    Returns:
        ``(n, 4)`` boxes (int64 for ``"int"``, float64 otherwise).

    """
    b = to_numpy(boxes).astype(np.float64).reshape(-1, 4)
    w, h = map(float, orig_wh)
    shift = (resize - crop) / 2
    out = b * np.array([resize / w, resize / h, resize / w, resize / h]) - shift
    if clip == "int":
        return np.clip(out.astype(np.int64), 0, crop - 1)
    if clip == "float":
        return np.clip(out, 0, crop)
    if clip == "none":
        return out
    raise ValueError(f"clip must be 'int', 'float' or 'none'; got {clip!r}.")


def legacy_iou(pred: ArrayLike, gt: ArrayLike) -> np.ndarray:
    """``+1``-convention IoU of ``(n_a, 4)`` against ``(n_b, 4)`` boxes, float coordinates allowed."""
    a = to_numpy(pred).astype(np.float64).reshape(-1, 4)
    b = to_numpy(gt).astype(np.float64).reshape(-1, 4)
    return iou_matrix(a, b)


class LegacyBoxAccuracy(Metric):
    """GT-known / Top-1 / Top-5 Loc of the legacy protocol at one fixed threshold (see module docstring).

    Args:
        threshold: fixed CAM threshold (e.g. BAS CUB 0.15 / ILSVRC 0.5).
        iou_threshold: IoU threshold (fraction), 0.5.
        strict: success is ``IoU > iou_threshold`` (papers) instead of ``>=``.
        kwargs: forwarded to :class:`torchmetrics.Metric`.

    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, threshold: float, iou_threshold: float = 0.5, strict: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.threshold = float(threshold)
        self.iou_threshold = float(iou_threshold)
        self.strict = bool(strict)
        names = ("gt_known_hits", "top1_hits", "top5_hits", "num_images", "num_top1_flags", "num_top5_flags")
        for name in names:
            self.add_state(name, default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, cams: ArrayLike, boxes: Sequence[ArrayLike], top1_correct: ArrayLike | None = None,
               top5_correct: ArrayLike | None = None) -> None:
        """Accumulate ``(B, H, W)`` maps in [0, 1] with ``B`` GT box sets ``(n_i, 4)`` in the maps' frame."""
        maps = check_maps(cams)
        batch = maps.shape[0]
        if len(boxes) != batch:
            raise ValueError(f"boxes must hold one (n_i, 4) tensor per image: {len(boxes)} for {batch} maps.")
        for i, b in enumerate(boxes):
            shape = tuple(to_numpy(b).shape)
            if len(shape) != 2 or shape[1] != 4 or shape[0] == 0:
                raise ValueError(f"boxes[{i}] must have shape (n, 4) with n >= 1; got {shape}.")
        flags1 = check_flags(top1_correct, batch, "top1_correct")
        flags5 = check_flags(top5_correct, batch, "top5_correct")
        hits = np.zeros(batch, bool)
        for i in range(batch):
            iou = legacy_iou(legacy_largest_component_box(maps[i], self.threshold), boxes[i]).max()
            hits[i] = iou > self.iou_threshold if self.strict else iou >= self.iou_threshold
        self.gt_known_hits += int(hits.sum())
        self.num_images += batch
        if flags1 is not None:
            self.top1_hits += int((hits & flags1).sum())
            self.num_top1_flags += batch
        if flags5 is not None:
            self.top5_hits += int((hits & flags5).sum())
            self.num_top5_flags += batch

    def compute(self) -> dict[str, Tensor]:
        """``gt_known_loc``, ``top1_loc``, ``top5_loc`` in percent (NaN when undefined)."""
        n = float(self.num_images)

        def pct(hits: Tensor, seen: Tensor | None) -> Tensor:
            ok = n > 0 and (seen is None or int(seen) > 0)
            return as_tensor(float(hits) * 100.0 / n if ok else np.nan, like=self.num_images)

        return {"gt_known_loc": pct(self.gt_known_hits, None),
                "top1_loc": pct(self.top1_hits, self.num_top1_flags),
                "top5_loc": pct(self.top5_hits, self.num_top5_flags)}
