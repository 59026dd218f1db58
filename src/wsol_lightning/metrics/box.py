"""MaxBoxAcc (V1/V2) with GT-known, Top-1 and Top-5 localisation counters, as a torchmetrics Metric."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric

from wsol_lightning.metrics import functional as F
from wsol_lightning.metrics._checks import ArrayLike, as_tensor, check_boxes, check_flags, check_maps


class MaxBoxAcc(Metric):
    """Box accuracy at every CAM threshold, maximised over thresholds (Choe et al., CVPR 2020).

    For each image, CAM threshold ``t`` and IoU threshold ``delta``, the image is a hit when some box
    mined from the map at ``t`` (all contours with ``multi_contour=True``, the largest otherwise) has
    IoU >= ``delta / 100`` with some GT box. ``MaxBoxAcc(delta) = max_t 100 * hits / images``;
    ``maxboxacc_v2`` is the mean over the IoU thresholds. ``multi_contour=False, iou_thresholds=(50,)`` is
    the CVPR "MaxBoxAcc" (V1). Results equal clovaai/wsolevaluation's to float precision.

    Speed: every level of an image comes from exact union-find sweeps over its pixels sorted by value
    (numba, GIL released, images spread over ``num_threads`` threads), whatever ``cam_curve_interval``:
    V2 is one 8-connected foreground sweep plus a hole sweep (skipped when no scored level has a hole); V1
    is one sweep keeping each component's ``cv2.contourArea`` (window area; exact for components without
    holes, OpenCV's tie order) and tracing the outer contour of a component with holes only where it could
    be the largest (no OpenCV call). About 0.6-1.5 ms per 224x224 map on one core: ``benchmarks/metrics.py``
    times both against the real wsolevaluation evaluator.

    State: fixed-size integer counters ``(len(iou_thresholds), T)`` for gt-known, top-1 and top-5 hits and
    scalar counts, summed across processes (``dist_reduce_fx="sum"``); no map is ever stored. Under DDP use
    a sampler that does not pad (``DistributedSampler`` pads by repeating samples, which would count some
    images twice); the datamodules provide one.

    Args:
        iou_thresholds: IoU thresholds in percent.
        cam_curve_interval: spacing of the threshold grid ``arange(0, 1, interval)``.
        multi_contour: all contours (V2 protocol) or only the largest (V1).
        outer_contours_only: with ``multi_contour``, box only the object contours (OpenCV
            ``RETR_EXTERNAL``: no hole contours, nothing nested in a hole) instead of wsolevaluation's
            ``RETR_TREE``. Not the protocol: a diagnostic under which an inverted map (high on the
            background) cannot score through the hole the object leaves.
        num_threads: threads for the sweeps (default ``torch.get_num_threads()``).
        kwargs: forwarded to :class:`torchmetrics.Metric`.

    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, iou_thresholds: Sequence[int] = (30, 50, 70), cam_curve_interval: float = 0.001,
                 multi_contour: bool = True, num_threads: int | None = None, outer_contours_only: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if len(iou_thresholds) == 0 or any(not 0 < d <= 100 for d in iou_thresholds):
            raise ValueError(f"iou_thresholds must be percentages in (0, 100]; got {iou_thresholds}.")
        self.iou_thresholds = tuple(int(d) for d in iou_thresholds)
        self.cam_curve_interval = float(cam_curve_interval)
        self.multi_contour = bool(multi_contour)
        self.outer_contours_only = bool(outer_contours_only)
        self.num_threads = num_threads
        self.thresholds = F.cam_thresholds(cam_curve_interval)
        shape = (len(self.iou_thresholds), len(self.thresholds))
        for name in ("gt_known_hits", "top1_hits", "top5_hits"):
            self.add_state(name, default=torch.zeros(shape, dtype=torch.long), dist_reduce_fx="sum")
        for name in ("num_images", "num_top1_flags", "num_top5_flags"):
            self.add_state(name, default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    @property
    def selection_iou(self) -> int:
        """The IoU threshold whose gt-known curve picks ``best_threshold`` (50, else the middle one)."""
        if 50 in self.iou_thresholds:
            return 50
        return self.iou_thresholds[len(self.iou_thresholds) // 2]

    def update(self, cams: ArrayLike, boxes: Sequence[ArrayLike], top1_correct: ArrayLike | None = None,
               top5_correct: ArrayLike | None = None) -> None:
        """Accumulate a batch.

        Args:
            cams: ``(B, H, W)`` float maps in [0, 1] (min-max normalised; see ``functional.normalize_maps``).
            boxes: ``B`` integer tensors ``(n_i, 4)``, ``x0, y0, x1, y1`` inclusive in the maps' frame,
                ``n_i >= 1``.
            top1_correct: optional ``(B,)`` bool, the top-1 prediction is the GT class.
            top5_correct: optional ``(B,)`` bool, the GT class is among the top-5 predictions.

        Raises:
            ValueError: NaN/infinite or out-of-range maps, an image without boxes, malformed boxes or
                flags; the message names the image index.

        """
        maps = check_maps(cams)
        batch = maps.shape[0]
        check_boxes(boxes, batch)
        flags1 = check_flags(top1_correct, batch, "top1_correct")
        flags5 = check_flags(top5_correct, batch, "top5_correct")
        if batch == 0:
            return
        best = F.best_iou_per_threshold(F.quantize_maps(maps), boxes, self.thresholds, self.multi_contour,
                                        num_threads=self.num_threads, outer_only=self.outer_contours_only)
        deltas = np.array([d / 100 for d in self.iou_thresholds])
        hits = best[None, :, :] >= deltas[:, None, None]  # (D, B, T)
        device = self.gt_known_hits.device
        self.gt_known_hits += torch.from_numpy(hits.sum(axis=1)).to(device)
        self.num_images += batch
        for flags, key in ((flags1, "top1"), (flags5, "top5")):
            if flags is None:
                continue
            flagged = torch.from_numpy((hits & flags[None, :, None]).sum(axis=1))
            getattr(self, f"{key}_hits").add_(flagged.to(device))
            getattr(self, f"num_{key}_flags").add_(batch)

    def _synced_counts(self) -> dict[str, np.ndarray]:
        """Numpy copies of the states, summed over processes when running distributed."""
        names = ("gt_known_hits", "top1_hits", "top5_hits", "num_images", "num_top1_flags", "num_top5_flags")
        with self.sync_context(dist_sync_fn=self.dist_sync_fn, should_sync=self._to_sync,
                               should_unsync=True):
            return {n: getattr(self, n).detach().cpu().numpy().copy() for n in names}

    def _accuracy(self, counts: dict[str, np.ndarray], name: str, flags: str | None) -> np.ndarray:
        """Hits in percent of the images that could score them: all images, or those given ``flags``."""
        n = int(counts["num_images" if flags is None else flags])
        if n == 0:
            return np.full(counts[name].shape, np.nan)
        return counts[name] * 100.0 / float(n)

    def compute(self) -> dict[str, Tensor]:
        """MaxBoxAcc per IoU threshold and their mean, in percent, and the selected threshold.

        Returns:
            ``maxboxacc@{delta}`` for each IoU threshold, ``maxboxacc_v2`` (their mean) and
            ``best_threshold``: the grid threshold maximising gt-known box accuracy at IoU
            :attr:`selection_iou` (ties to the smallest), to reuse unchanged on the test split. All
            float64 scalar tensors (NaN before any update).

        """
        counts = {"gt_known_hits": self.gt_known_hits.cpu().numpy(),
                  "num_images": self.num_images.cpu().numpy()}
        acc = self._accuracy(counts, "gt_known_hits", None)
        maxima = [float(np.max(row)) for row in acc]
        out = {f"maxboxacc@{d}": self._tensor(m) for d, m in zip(self.iou_thresholds, maxima)}
        out["maxboxacc_v2"] = self._tensor(sum(maxima) / len(maxima))
        row = acc[self.iou_thresholds.index(self.selection_iou)]
        best = np.nan if np.isnan(row).all() else self.thresholds[int(np.argmax(row))]
        out["best_threshold"] = self._tensor(best)
        return out

    def _tensor(self, x: np.ndarray | float) -> Tensor:
        return as_tensor(x, like=self.num_images)

    def threshold_index(self, threshold: float) -> int:
        """Index of the grid threshold nearest below ``threshold`` (exact for a grid value, even float32)."""
        tol = self.cam_curve_interval * 1e-4
        index = int(np.searchsorted(self.thresholds, float(threshold) + tol, side="right")) - 1
        if index < 0 or not threshold <= 1:
            raise ValueError(f"threshold must be in [0, 1]; got {threshold}.")
        return index

    def accuracy_at(self, threshold: float, iou_threshold: int = 50) -> dict[str, Tensor]:
        """GT-known, Top-1 and Top-5 Loc (percent) at one operating threshold.

        Args:
            threshold: operating threshold (chosen on val, e.g. ``compute()["best_threshold"]``); the grid
                value nearest below it is used.
            iou_threshold: IoU threshold in percent; must be one of ``iou_thresholds``.

        Returns:
            ``gt_known_loc``, ``top1_loc``, ``top5_loc`` float64 scalar tensors (NaN when no image, or no
            top-1/top-5 flags, were given).

        """
        if iou_threshold not in self.iou_thresholds:
            raise ValueError(f"iou_threshold {iou_threshold} is not among {self.iou_thresholds}.")
        t, d = self.threshold_index(threshold), self.iou_thresholds.index(iou_threshold)
        counts = self._synced_counts()
        return {
            "gt_known_loc": self._tensor(self._accuracy(counts, "gt_known_hits", None)[d, t]),
            "top1_loc": self._tensor(self._accuracy(counts, "top1_hits", "num_top1_flags")[d, t]),
            "top5_loc": self._tensor(self._accuracy(counts, "top5_hits", "num_top5_flags")[d, t]),
        }

    def curves(self) -> dict[str, Tensor]:
        """Localisation accuracy versus CAM threshold, for plots and loggers.

        Returns:
            ``thresholds`` ``(T,)`` and, per IoU threshold ``d``, ``box_acc@{d}`` (gt-known),
            ``top1_loc@{d}`` and ``top5_loc@{d}`` ``(T,)`` in percent (float64; NaN where undefined).

        """
        counts = self._synced_counts()
        out = {"thresholds": self._tensor(self.thresholds)}
        for key, name, flags in (("box_acc", "gt_known_hits", None),
                                 ("top1_loc", "top1_hits", "num_top1_flags"),
                                 ("top5_loc", "top5_hits", "num_top5_flags")):
            acc = self._accuracy(counts, name, flags)
            for i, d in enumerate(self.iou_thresholds):
                out[f"{key}@{d}"] = self._tensor(acc[i])
        return out
