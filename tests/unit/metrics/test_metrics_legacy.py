"""The legacy (BAS/ORNet papers) box protocol: largest component, whole-image fallback, strict IoU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wsol_lightning.metrics import LegacyBoxAccuracy, legacy_crop_boxes
from wsol_lightning.metrics.legacy import legacy_iou, legacy_largest_component_box


def test_largest_component_uses_8_connectivity_and_pixel_count() -> None:
    m = np.zeros((10, 10))
    m[1, 1] = m[2, 2] = m[3, 3] = 1.0  # diagonal chain: one 8-connected component of 3 pixels
    m[6:8, 6:8] = 1.0  # a 2x2 block: 4 pixels, wins
    assert legacy_largest_component_box(m, 0.5).tolist() == [6, 6, 7, 7]
    m[4, 4] = 1.0  # chain grows to 4 pixels: tie, first in raster order wins
    assert legacy_largest_component_box(m, 0.5).tolist() == [1, 1, 4, 4]
    assert legacy_largest_component_box(m, 1.0).tolist() == [0, 0, 9, 9]  # strict '>': nothing on


def test_strict_iou_threshold() -> None:
    m = torch.zeros(1, 10, 10, dtype=torch.float64)
    m[0, 0:4, 0:4] = 1.0  # box (0,0,3,3), 16 px
    gt = [torch.tensor([[0, 0, 3, 7]])]  # 32 px -> IoU exactly 0.5
    assert legacy_iou(np.array([0, 0, 3, 3]), np.array([0, 0, 3, 7]))[0, 0] == 0.5
    strict = LegacyBoxAccuracy(threshold=0.5)
    strict.update(m, gt, top1_correct=torch.tensor([True]))
    assert float(strict.compute()["gt_known_loc"]) == 0.0
    loose = LegacyBoxAccuracy(threshold=0.5, strict=False)
    loose.update(m, gt, top1_correct=torch.tensor([True]), top5_correct=torch.tensor([False]))
    out = loose.compute()
    assert (
        float(out["gt_known_loc"]) == 100.0
        and float(out["top1_loc"]) == 100.0
        and float(out["top5_loc"]) == 0.0
    )


def test_max_over_gt_boxes_and_bad_input() -> None:
    m = torch.zeros(1, 10, 10, dtype=torch.float64)
    m[0, 5:9, 5:9] = 1.0
    metric = LegacyBoxAccuracy(threshold=0.5)
    metric.update(m, [torch.tensor([[0, 0, 1, 1], [5, 5, 8, 8]])])
    assert float(metric.compute()["gt_known_loc"]) == 100.0
    with pytest.raises(ValueError, match=r"boxes\[0\]"):
        metric.update(m, [torch.zeros(0, 4)])
    with pytest.raises(ValueError, match=r"cams\[0\] contains NaN"):
        metric.update(torch.full((1, 4, 4), float("nan")), [torch.tensor([[0, 0, 1, 1]])])


def test_legacy_crop_boxes() -> None:
    box = np.array([[0, 10, 499, 300]])
    # x: 0 * 256/500 - 16 = -16 -> 0; 499 * 0.512 - 16 = 239.488 -> 239 -> 223.
    # y: 10 * 256/400 - 16 = -9.6 -> 0; 300 * 0.64 - 16 = 176.
    assert legacy_crop_boxes(box, (500, 400)).tolist() == [[0, 0, 223, 176]]
    np.testing.assert_allclose(legacy_crop_boxes(box, (500, 400), clip="float"), [[0, 0, 224, 176]])
    np.testing.assert_allclose(legacy_crop_boxes(box, (500, 400), clip="none"), [[-16, -9.6, 239.488, 176]])
    with pytest.raises(ValueError):
        legacy_crop_boxes(box, (500, 400), clip="round")
