"""PxAP and PIoU (pixel precision-recall over CAM thresholds) as a torchmetrics Metric."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric

from wsol_lightning.metrics import functional as F
from wsol_lightning.metrics._checks import ArrayLike, as_tensor, check_maps, check_masks


class PxAP(Metric):
    """Pixel average precision (wsolevaluation's ``MaskEvaluator``) and pixel IoU at the best threshold.

    Map values are histogrammed on object (mask 1) and background (mask 0) pixels over the edges
    ``arange(0, 1, interval) + [1, 2, 3]``; ignored pixels (255) are dropped. ``pxap`` is the step
    integral of precision over recall at the descending operating points, ``piou`` the best
    dataset-level pixel IoU ``TP / (TP + FP + FN)`` (as DA-WSOL/BAS-Extension define it). Equal to
    wsolevaluation's PxAP to float precision.

    State: two ``(T + 2,)`` int64 histograms summed across processes (``dist_reduce_fx="sum"``); use an
    unpadded distributed sampler so no image is counted twice.

    Args:
        cam_curve_interval: spacing of the threshold grid.
        kwargs: forwarded to :class:`torchmetrics.Metric`.

    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, cam_curve_interval: float = 0.001, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cam_curve_interval = float(cam_curve_interval)
        self.thresholds = F.cam_thresholds(cam_curve_interval)
        n_bins = len(self.thresholds) + 2
        self.add_state("hist_pos", default=torch.zeros(n_bins, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("hist_neg", default=torch.zeros(n_bins, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, cams: ArrayLike, masks: ArrayLike | Sequence[ArrayLike]) -> None:
        """Accumulate a batch.

        Args:
            cams: ``(B, H, W)`` float maps in [0, 1].
            masks: ``(B, H, W)`` uint8 (or a list of ``(H, W)``), 1 = object, 0 = background, 255 = ignored.

        Raises:
            ValueError: NaN/infinite or out-of-range maps, a mask whose shape differs from its map, or
                a mask value other than 0, 1, 255; the message names the image index.

        """
        maps = check_maps(cams)
        gt = check_masks(masks, maps)
        self._add_counts(*F.pixel_histograms(maps, gt, self.thresholds))

    def add_histograms(self, hist_pos: np.ndarray, hist_neg: np.ndarray) -> None:
        """One update from ``(T + 2,)`` int64 object/background histograms (``functional.pixel_histograms``).

        A hook for callers that histogram a batch's images in parts on several threads
        (``methods/evaluation.py``) and add the summed parts: the counts are integers, so this equals
        :meth:`update` on the whole batch. Recorded as an update, as torchmetrics' ``update`` wrapper does.
        """
        self._computed = None
        self._update_count += 1
        self._add_counts(hist_pos, hist_neg)

    def _add_counts(self, hist_pos: np.ndarray, hist_neg: np.ndarray) -> None:
        self.hist_pos += torch.from_numpy(hist_pos).to(self.hist_pos.device)
        self.hist_neg += torch.from_numpy(hist_neg).to(self.hist_neg.device)

    def compute(self) -> dict[str, Tensor]:
        """Return ``pxap`` and ``piou`` in percent (float64 scalar tensors).

        Raises:
            ValueError: no object pixel or no positive prediction was accumulated.

        """
        pos, neg = self.hist_pos.cpu().numpy(), self.hist_neg.cpu().numpy()
        return {
            "pxap": as_tensor(F.pxap_from_histograms(pos, neg), like=self.hist_pos),
            "piou": as_tensor(F.piou_from_histograms(pos, neg), like=self.hist_pos),
        }

    def curve(self) -> dict[str, Tensor]:
        """Return the pixel precision-recall curve at the descending operating points.

        Returns:
            ``precision``, ``recall``, ``iou`` and ``thresholds`` ``(T + 2,)`` float64 tensors, thresholds
            ``(2.0, 1.0, t_{T-1}, ..., t_0)``: a pixel is predicted positive when its value is >= the
            threshold (precision is NaN where nothing is predicted).

        """
        with self.sync_context(dist_sync_fn=self.dist_sync_fn, should_sync=self._to_sync, should_unsync=True):
            pos, neg = self.hist_pos.cpu().numpy().copy(), self.hist_neg.cpu().numpy().copy()
        c = F.precision_recall_from_histograms(pos, neg)
        denom = c["tp"] + c["fp"] + c["fn"]
        iou = np.where(denom > 0, c["tp"] / np.where(denom > 0, denom, 1), np.nan)
        thresholds = np.concatenate([[2.0, 1.0], self.thresholds[::-1]])
        named = {"precision": c["precision"], "recall": c["recall"], "iou": iou, "thresholds": thresholds}
        return {k: as_tensor(v, like=self.hist_pos) for k, v in named.items()}
