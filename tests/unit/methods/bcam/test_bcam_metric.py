"""The threshold-free mask metric on hand-made masks."""

from __future__ import annotations

import pytest
import torch

from wsol_lightning.methods.bcam.metric import MaskAccuracy, mask_boxes


def rect_mask(h: int, w: int, *rects: tuple[int, int, int, int]) -> torch.Tensor:
    mask = torch.zeros(h, w, dtype=torch.bool)
    for x0, y0, x1, y1 in rects:
        mask[y0 : y1 + 1, x0 : x1 + 1] = True
    return mask


def test_mask_boxes_follow_wsolevaluation():
    # tight box (2, 3)-(5, 7); wsolevaluation boxes end at x + w, y + h (one pixel beyond the tight box)
    boxes = mask_boxes(rect_mask(10, 10, (2, 3, 5, 7)))
    assert boxes.tolist() == [[2, 3, 6, 8]]
    assert mask_boxes(torch.zeros(10, 10, dtype=torch.bool)).tolist() == [[0, 0, 0, 0]]
    two = rect_mask(20, 20, (0, 0, 9, 9), (15, 15, 16, 16))
    assert mask_boxes(two).tolist() == [[0, 0, 10, 10], [15, 15, 17, 17]]  # largest first
    assert mask_boxes(two, multi_contour=False).tolist() == [[0, 0, 10, 10]]


def test_box_hits_and_count():
    metric = MaskAccuracy(iou_threshold=50)
    masks = torch.stack([rect_mask(10, 10, (2, 3, 5, 7)), rect_mask(10, 10, (2, 3, 5, 7))])
    gt = [torch.tensor([[2, 3, 6, 8]]), torch.tensor([[7, 7, 9, 9]])]  # IoU 1 and IoU 0
    metric.update(masks, gt)
    metric.update(masks[:1], [torch.zeros(0, 4, dtype=torch.int64)])  # no GT box: not counted
    results = metric.compute()
    assert results["mask_gt_known_loc"].item() == pytest.approx(50.0)
    assert "mask_piou" not in results


def test_all_contours_versus_the_largest():
    masks = rect_mask(20, 20, (0, 0, 9, 9), (15, 15, 16, 16))[None]
    gt = [torch.tensor([[15, 15, 17, 17]])]  # the small region only
    v2, v1 = MaskAccuracy(multi_contour=True), MaskAccuracy(multi_contour=False)
    v2.update(masks, gt)
    v1.update(masks, gt)
    assert v2.compute()["mask_gt_known_loc"].item() == 100.0
    assert v1.compute()["mask_gt_known_loc"].item() == 0.0


def test_pixel_iou_ignores_255():
    pred = torch.tensor([[[1, 1, 1, 0]]], dtype=torch.bool)
    gt = torch.tensor([[[255, 1, 1, 1]]], dtype=torch.uint8)  # pixel 0 ignored
    metric = MaskAccuracy()
    metric.update(pred, gt_masks=gt)
    assert metric.compute()["mask_piou"].item() == pytest.approx(200 / 3)
    # counters add up over batches: a second image with intersection 1, union 2 -> 3 / 5 overall
    metric.update(torch.tensor([[[1, 0, 1, 0]]], dtype=torch.bool), gt_masks=torch.tensor([[[1, 0, 0, 0]]],
                                                                                             dtype=torch.uint8))
    assert metric.compute()["mask_piou"].item() == pytest.approx(60.0)
    metric.reset()
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert metric.compute() == {}
