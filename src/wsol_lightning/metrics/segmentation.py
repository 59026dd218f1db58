"""Seed-map mIoU of weakly supervised semantic segmentation (the WSSS protocol of BAS-IJCV and B-CAM)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric

IGNORE_INDEX = 255


def seed_confusion(class_maps: Tensor, semantic: Tensor, bg_thresholds: Tensor) -> Tensor:
    """Confusion matrices of seed labels at every background threshold.

    A pixel gets background (0) when no class map exceeds the threshold, else ``1 + argmax_c`` of the
    maps (the argmax of ``[threshold, map_1, ..., map_C]``, background winning ties).

    Args:
        class_maps: ``(B, C, H, W)`` maps in [0, 1]; classes absent from an image must be 0.
        semantic: ``(B, H, W)`` integer GT (0 background, ``c + 1`` class ``c``, 255 ignored).
        bg_thresholds: ``(T,)`` background thresholds.

    Returns:
        ``(T, C + 1, C + 1)`` int64 counts, rows = GT label, columns = predicted label.

    """
    num_labels = class_maps.shape[1] + 1
    best_value, best_class = class_maps.max(dim=1)
    valid = semantic != IGNORE_INDEX
    if (semantic[valid] >= num_labels).any():
        bad = int(semantic[valid].max())
        raise ValueError(f"semantic mask holds label {bad} but maps have only {num_labels - 1} classes")
    gt = semantic[valid].long()
    value = best_value[valid]
    fg_label = best_class[valid] + 1
    out = torch.zeros(len(bg_thresholds), num_labels, num_labels, dtype=torch.long, device=class_maps.device)
    for t, threshold in enumerate(bg_thresholds.tolist()):
        pred = torch.where(value > threshold, fg_label, torch.zeros_like(fg_label))
        out[t] = torch.bincount(gt * num_labels + pred, minlength=num_labels**2).view(num_labels, num_labels)
    return out


def iou_per_class(confusion: Tensor) -> Tensor:
    """Per-label IoU ``(..., L)`` = TP / (TP + FP + FN) from ``(..., L, L)`` confusion (NaN: label absent)."""
    confusion = confusion.double()
    tp = confusion.diagonal(dim1=-2, dim2=-1)
    union = confusion.sum(dim=-1) + confusion.sum(dim=-2) - tp
    return torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))


class SeedMIoU(Metric):
    """mIoU (background + C classes, percent) of seed maps, at every background threshold.

    ``compute()`` gives the mIoU curve over the grid, and ``miou_best``/``best_bg_threshold``: the best over the
    grid on the evaluated split itself (the WSSS papers' protocol, e.g. BAS-IJCV sweeps 0.20-0.44 on VOC
    train; named as such). :meth:`miou_at` reads the curve at a threshold chosen elsewhere (on val).

    Args:
        num_classes: foreground classes ``C``.
        bg_thresholds: background thresholds (default 0.00, 0.01, ..., 0.99).

    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, num_classes: int, bg_thresholds: Sequence[float] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        grid = np.arange(0, 1, 0.01) if bg_thresholds is None else np.asarray(bg_thresholds, dtype=np.float64)
        self.register_buffer("bg_thresholds", torch.as_tensor(grid, dtype=torch.float64), persistent=False)
        self.num_classes = num_classes
        size = (len(grid), num_classes + 1, num_classes + 1)
        self.add_state("confusion", default=torch.zeros(size, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, class_maps: Tensor, semantic: Tensor) -> None:
        """Add ``(B, C, H, W)`` seed maps and their ``(B, H, W)`` class-indexed GT."""
        if class_maps.shape[1] != self.num_classes or class_maps.shape[-2:] != semantic.shape[-2:]:
            raise ValueError(f"class maps {tuple(class_maps.shape)} do not fit {self.num_classes} classes "
                             f"and masks {tuple(semantic.shape)}")
        self.confusion += seed_confusion(class_maps, semantic, self.bg_thresholds.to(class_maps.device))

    def compute(self) -> dict[str, Tensor]:
        """``miou_curve`` ``(T,)``, ``miou_best`` and ``best_bg_threshold`` (percent / threshold)."""
        miou = torch.nanmean(iou_per_class(self.confusion), dim=-1) * 100
        best = int(torch.argmax(torch.nan_to_num(miou, nan=-1.0)))
        return {"miou_curve": miou, "miou_best": miou[best], "best_bg_threshold": self.bg_thresholds[best]}

    def miou_at(self, curve: Tensor, threshold: float) -> Tensor:
        """MIoU of ``curve`` (from :meth:`compute`) at the grid threshold nearest to ``threshold``."""
        return curve[int(torch.argmin((self.bg_thresholds - threshold).abs()))]
