"""MaxBoxAcc and PxAP of a fixed reference map (centre Gaussian, whole image), exact and cheap.

A reference baseline shows every image the same map, so the boxes it yields at each of the 256
uint8 levels, and the histogram bin of each pixel, depend only on the image size: they are computed
once per size with the protocol's own rules (:func:`.functional.boxes_from_map`,
:func:`.functional.pixel_histograms`) and cached. Each update then only scores those boxes against the
images' GT boxes, or counts those bins under the images' masks: the same numbers as feeding the
reference maps to :class:`.MaxBoxAcc` / :class:`.PxAP`, at a small fraction of the cost, with the same
summed, DDP-safe states.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from wsol_lightning.metrics import functional as F
from wsol_lightning.metrics._checks import ArrayLike, check_boxes, check_maps, check_masks
from wsol_lightning.metrics._sweep import NUM_LEVELS
from wsol_lightning.metrics.box import MaxBoxAcc
from wsol_lightning.metrics.pixel import PxAP

ReferenceMapFn = Callable[[int, int], ArrayLike]


def _reference(map_fn: ReferenceMapFn, height: int, width: int) -> np.ndarray:
    """The validated ``(H, W)`` reference map as numpy."""
    return check_maps(torch.as_tensor(map_fn(height, width))[None], "reference map")[0]


def whole_image_map(height: int, width: int) -> torch.Tensor:
    """The whole-image reference: a map of ones ``(H, W)``; at every threshold its one box is the image."""
    return torch.ones(height, width, dtype=torch.float64)


class ReferenceMapBoxAcc(MaxBoxAcc):
    """:class:`.MaxBoxAcc` of one fixed map per image size, computed from cached per-level boxes.

    Args:
        map_fn: ``(height, width) -> (H, W)`` float map in [0, 1] (the reference, e.g. the centre
            Gaussian); called once per image size. Must be picklable to checkpoint the module (a
            module-level function or ``functools.partial``).
        iou_thresholds: IoU thresholds in percent.
        cam_curve_interval: spacing of the threshold grid.
        multi_contour: all contours (V2) or the largest (V1), as the method's metric.
        kwargs: forwarded to :class:`torchmetrics.Metric`.

    """

    def __init__(self, map_fn: ReferenceMapFn, iou_thresholds: Sequence[int] = (30, 50, 70),
                 cam_curve_interval: float = 0.001, multi_contour: bool = True, **kwargs: Any) -> None:
        super().__init__(iou_thresholds=iou_thresholds, cam_curve_interval=cam_curve_interval,
                         multi_contour=multi_contour, **kwargs)
        self.map_fn = map_fn
        self._level_boxes: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def level_boxes(self, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The reference's boxes at every level for one image size (cached).

        Returns:
            ``boxes`` ``(K, 4)`` int64 (the levels' boxes, concatenated), ``starts`` ``(256,)`` (level
            ``L`` owns ``boxes[starts[L]:starts[L + 1]]``) and ``levels`` ``(T,)``: the integer level of
            each grid threshold, ``int(t * max(U))`` as for any map.

        """
        key = (int(height), int(width))
        if key not in self._level_boxes:
            u = F.quantize_maps(_reference(self.map_fn, *key)[None])[0]
            per_level = [F.boxes_from_map(u, level, self.multi_contour) for level in range(NUM_LEVELS)]
            starts = np.cumsum([0] + [len(b) for b in per_level[:-1]])
            levels = (self.thresholds * float(u.max())).astype(np.int64)
            self._level_boxes[key] = (np.concatenate(per_level), starts, levels)
        return self._level_boxes[key]

    def update(self, boxes: Sequence[ArrayLike], height: int, width: int) -> None:  # type: ignore[override]
        """Add images of size ``height x width`` with their GT boxes (``B`` int tensors ``(n_i, 4)``)."""
        gt, offsets = check_boxes(boxes, len(boxes))
        if len(boxes) == 0:
            return
        ref_boxes, starts, levels = self.level_boxes(height, width)
        ious = F.iou_matrix(ref_boxes, gt)  # (K, M): every reference box against every GT box of the batch
        best = np.stack([np.maximum.reduceat(ious[:, offsets[b]:offsets[b + 1]].max(axis=1), starts)[levels]
                         for b in range(len(boxes))])  # (B, T)
        deltas = np.array([d / 100 for d in self.iou_thresholds])
        hits = best[None, :, :] >= deltas[:, None, None]
        self.gt_known_hits += torch.from_numpy(hits.sum(axis=1)).to(self.gt_known_hits.device)
        self.num_images += len(boxes)


class ReferenceMapPxAP(PxAP):
    """:class:`.PxAP` of one fixed map per image size, from each pixel's cached histogram bin.

    Args:
        map_fn: ``(height, width) -> (H, W)`` float map in [0, 1], called once per image size.
        cam_curve_interval: spacing of the threshold grid.
        kwargs: forwarded to :class:`torchmetrics.Metric`.

    """

    def __init__(self, map_fn: ReferenceMapFn, cam_curve_interval: float = 0.001, **kwargs: Any) -> None:
        super().__init__(cam_curve_interval=cam_curve_interval, **kwargs)
        self.map_fn = map_fn
        self._pixel_bins: dict[tuple[int, int], np.ndarray] = {}

    def pixel_bins(self, height: int, width: int) -> np.ndarray:
        """``(H * W,)`` int64 histogram bin of each reference pixel (``functional.pixel_histograms``' bins)."""
        key = (int(height), int(width))
        if key not in self._pixel_bins:
            edges = np.append(self.thresholds, [1.0, 2.0, 3.0])
            values = _reference(self.map_fn, *key).astype(np.float64).ravel()
            self._pixel_bins[key] = np.searchsorted(edges, values, side="right") - 1
        return self._pixel_bins[key]

    def update(self, masks: ArrayLike | Sequence[ArrayLike], height: int, width: int) -> None:  # type: ignore[override]
        """Add ``B`` masks ``(H, W)`` (1 object, 0 background, 255 ignored) of images of that size."""
        count = len(masks)
        gt = check_masks(masks, np.broadcast_to(np.zeros((), np.uint8), (count, int(height), int(width))))
        self._add_counts(*self.mask_histograms(gt))

    def mask_histograms(self, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The reference map's ``(hist_pos, hist_neg)`` ``(T + 2,)`` int64 under checked ``(B, H, W)`` uint8 masks.

        No state is touched (callers may run it on several threads and add the parts with ``add_histograms``).
        """
        count, height, width = masks.shape
        labels = masks.reshape(count, -1)
        keep = labels != 255
        n_bins = len(self.thresholds) + 2
        idx = np.broadcast_to(self.pixel_bins(height, width), labels.shape)[keep] + n_bins * (labels[keep] == 1)
        counts = np.bincount(idx, minlength=2 * n_bins).astype(np.int64)
        return counts[n_bins:], counts[:n_bins]
