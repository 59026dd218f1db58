"""Top-1/Top-5 Loc count only the images that carried flags (issue 12, deviation 12)."""

from __future__ import annotations

import pytest
import torch

from wsol_lightning.metrics import MaxBoxAcc


def _hits(n: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``n`` 8x8 maps with a 4x4 blob at 2..5 and the GT box (2, 2, 5, 5): IoU 16/25 with the mined box."""
    maps = torch.zeros(n, 8, 8, dtype=torch.float64)
    maps[:, 2:6, 2:6] = 1.0
    return maps, [torch.tensor([[2, 2, 5, 5]]) for _ in range(n)]


def test_top1_top5_divide_by_flagged_images_only():
    metric = MaxBoxAcc(iou_thresholds=(50,), cam_curve_interval=0.01)
    maps, boxes = _hits(2)
    metric.update(maps, boxes, top1_correct=torch.tensor([True, False]), top5_correct=torch.tensor([True, True]))
    maps, boxes = _hits(2)
    metric.update(maps, boxes)  # a batch without classification flags
    acc = metric.accuracy_at(0.5)
    assert float(acc["gt_known_loc"]) == pytest.approx(100.0)  # 4 hits / 4 images
    assert float(acc["top1_loc"]) == pytest.approx(50.0)  # 1 hit / 2 flagged images (not 1 / 4)
    assert float(acc["top5_loc"]) == pytest.approx(100.0)  # 2 / 2 (not 2 / 4)
    curves = metric.curves()
    assert float(curves["top1_loc@50"][50]) == pytest.approx(50.0)


def test_no_flags_at_all_gives_nan():
    metric = MaxBoxAcc(iou_thresholds=(50,), cam_curve_interval=0.01)
    metric.update(*_hits(3))
    acc = metric.accuracy_at(0.5)
    assert float(acc["gt_known_loc"]) == pytest.approx(100.0)
    assert torch.isnan(acc["top1_loc"]) and torch.isnan(acc["top5_loc"])
