"""wsolevaluation's evaluation_test.py fixtures with their expected values, plus hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wsol_lightning.metrics import functional as F

UNIMODAL = np.array(
    [
        [0.0, 0.0, 0.0, 0.0, 0.0],
        [0.0, 0.4, 0.4, 0.4, 0.6],
        [0.0, 0.4, 1.0, 0.8, 0.6],
        [0.0, 0.4, 0.4, 0.4, 0.6],
    ]
)
MULTIMODAL = np.array(
    [
        [0.4, 0.0, 0.2, 0.2, 0.2],
        [0.4, 0.4, 0.0, 0.4, 0.0],
        [0.0, 0.0, 0.0, 0.4, 0.0],
        [1.0, 0.6, 0.8, 0.2, 0.2],
    ]
)


def largest_boxes(scoremap: np.ndarray, interval: float) -> list[list[int]]:
    u = F.quantize_maps(scoremap[None])[0]
    levels = (F.cam_thresholds(interval) * float(u.max())).astype(int)
    return [F.boxes_from_map(u, int(level), multi_contour=False)[0].tolist() for level in levels]


def test_iou_realistic_value_is_8_over_27() -> None:
    iou = F.box_iou_inclusive(np.array([[1, 2, 5, 6]]), np.array([[3, 1, 4, 5]]))
    assert iou.shape == (1, 1) and iou.dtype == np.float64
    assert iou[0, 0] == 8 / 27


def test_iou_degenerate_zero_boxes_and_eye() -> None:
    np.testing.assert_array_equal(
        F.box_iou_inclusive(np.zeros((3, 4), int), np.zeros((5, 4), int)), np.ones((3, 5))
    )
    boxes = np.array([[1, 1, 3, 3], [4, 4, 5, 5]])
    np.testing.assert_array_equal(F.box_iou_inclusive(boxes, boxes), np.eye(2))


def test_iou_rejects_wrong_convention() -> None:
    with pytest.raises(ValueError, match="x1 >= x0"):
        F.box_iou_inclusive(np.array([[1, 1, 0, 0]]), np.array([[1, 1, 2, 2]]))
    with pytest.raises(ValueError, match="non-negative"):
        F.box_iou_inclusive(np.array([[-1, 0, 2, 2]]), np.array([[1, 1, 2, 2]]))


def test_resize_bbox_cases() -> None:
    # image_size and resize_size are (width, height) in wsolevaluation's resize_bbox.
    assert F.scale_boxes_wsolevaluation(np.array([1, 2, 4, 3]), (10, 20), (35, 10)).tolist() == [3, 1, 14, 1]
    assert F.scale_boxes_wsolevaluation(np.array([1, 2, 1, 2]), (3, 3), (3, 3)).tolist() == [1, 2, 1, 2]
    two = F.scale_boxes_wsolevaluation(np.array([[0, 0, 499, 374], [10, 20, 30, 40]]), (500, 375), (224, 224))
    assert two.tolist() == [[0, 0, 223, 223], [4, 11, 13, 23]]


def test_unimodal_largest_contour_boxes() -> None:
    assert largest_boxes(UNIMODAL, 0.2) == [
        [1, 1, 4, 3],
        [1, 1, 4, 3],
        [2, 1, 4, 3],
        [2, 2, 4, 3],
        [2, 2, 3, 3],
    ]


def test_multimodal_largest_contour_boxes() -> None:
    assert largest_boxes(MULTIMODAL, 0.2) == [
        [0, 0, 4, 3],
        [0, 0, 2, 2],
        [0, 3, 3, 3],
        [2, 3, 3, 3],
        [0, 3, 1, 3],
    ]


def test_degenerate_zero_map_gives_zero_boxes() -> None:
    assert largest_boxes(np.zeros((3, 3)), 0.2) == [[0, 0, 0, 0]] * 5
    assert F.boxes_from_map(np.zeros((3, 3), np.uint8), 0).tolist() == [[0, 0, 0, 0]]


def test_fast_path_on_fixtures_matches_largest_and_all_contours() -> None:
    maps = np.stack([UNIMODAL, MULTIMODAL, np.zeros((4, 5))])
    gt = [np.array([[2, 2, 3, 3]]), np.array([[0, 3, 1, 3], [0, 0, 2, 2]]), np.array([[0, 0, 1, 1]])]
    thresholds = F.cam_thresholds(0.2)
    u = F.quantize_maps(maps)
    v1 = F.best_iou_per_threshold(u, gt, thresholds, multi_contour=False)
    expected_v1 = [
        [F.box_iou_inclusive(np.array([b]), g).max() for b in largest_boxes(m, 0.2)] for m, g in zip(maps, gt)
    ]
    np.testing.assert_array_equal(v1, expected_v1)
    np.testing.assert_array_equal(v1[0], [4 / 12, 4 / 12, 4 / 9, 4 / 6, 1.0])
    np.testing.assert_array_equal(v1[2], [0.25] * 5)  # empty map: the (0, 0, 0, 0) box vs a 2x2 box
    v2 = F.best_iou_per_threshold(u, gt, thresholds, multi_contour=True)
    expected_v2 = [
        [F.box_iou_inclusive(F.boxes_from_map(ui, int(t * ui.max())), g).max() for t in thresholds]
        for ui, g in zip(u, gt)
    ]
    np.testing.assert_array_equal(v2, expected_v2)
    assert (v2 >= v1).all()


def test_hole_contour_box_is_grown_hole() -> None:
    # A 6x6 square with a 2x2 hole: OpenCV gives (x, y, w, h) = (2, 2, 6, 6) and (3, 3, 4, 4).
    u = np.zeros((12, 12), np.uint8)
    u[2:8, 2:8] = 255
    u[4:6, 4:6] = 0
    assert sorted(F.boxes_from_map(u, 0).tolist()) == [[2, 2, 8, 8], [3, 3, 7, 7]]
    hole_only = F.best_iou_per_level(u[None], [np.array([[3, 3, 7, 7]])])[0]
    assert hole_only[0] == 1.0 and hole_only[254] == 1.0 and hole_only[255] == 0.0


def test_threshold_levels_float_quirks() -> None:
    levels = F.threshold_levels(0.01)
    assert len(levels) == 100 and levels[29] == 73 and levels[57] == 145 and levels[58] == 147
    assert len(F.cam_thresholds(0.001)) == 1000 and F.cam_thresholds(0.001)[-1] < 1
    assert len(np.unique(F.threshold_levels(0.001))) == 255
    assert F.threshold_levels(0.2, max_level=10).tolist() == [0, 2, 4, 6, 8]


def test_normalize_maps() -> None:
    maps = torch.tensor(
        [
            [[1.0, 3.0], [2.0, 5.0]],
            [[2.0, 2.0], [2.0, 2.0]],
            [[0.0, float("nan")], [1.0, 2.0]],
            [[0.0, float("inf")], [1.0, 2.0]],
        ],
        dtype=torch.float64,
    )
    out = F.normalize_maps(maps)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out[0], torch.tensor([[0.0, 0.5], [0.25, 1.0]], dtype=torch.float64))
    assert (out[1:] == 0).all()
    arr = F.normalize_maps(np.array([[0.5, 1.5]], np.float32))
    assert isinstance(arr, np.ndarray) and arr.tolist() == [[0.0, 1.0]]


def test_boxes_at_threshold_sorted_largest_first() -> None:
    m = np.zeros((20, 20))
    m[1:3, 1:3] = 1.0
    m[8:16, 5:15] = 0.9
    boxes = F.boxes_at_threshold(torch.from_numpy(m), 0.5)
    assert boxes.dtype == torch.int64 and boxes.tolist() == [[5, 8, 15, 16], [1, 1, 3, 3]]
    assert F.boxes_at_threshold(m, 0.5, multi_contour=False).tolist() == [[5, 8, 15, 16]]
    assert F.boxes_at_threshold(np.zeros((4, 4)), 0.5).tolist() == [[0, 0, 0, 0]]
    assert F.boxes_at_threshold(np.zeros((4, 4)), 0.5, keep_empty=False).shape == (0, 4)


def test_pixel_histograms_bins() -> None:
    maps = np.array([[[0.0, 0.0015, 0.5, 1.0]]])
    masks = np.array([[[1, 0, 255, 1]]], np.uint8)
    pos, neg = F.pixel_histograms(maps, masks, F.cam_thresholds(0.001))
    assert pos.shape == (1002,) and pos.sum() == 2 and neg.sum() == 1
    assert pos[0] == 1 and pos[1000] == 1 and neg[1] == 1


def test_pxap_perfect_and_constant_maps() -> None:
    rng = np.random.default_rng(0)
    mask = (rng.random((1, 30, 30)) < 0.3).astype(np.uint8)
    mask[0, :3] = 255
    thresholds = F.cam_thresholds(0.01)
    for ignore_score in (0.0, 1.0):
        perfect = mask.astype(np.float64)
        perfect[mask == 255] = ignore_score
        assert F.pxap_from_histograms(*F.pixel_histograms(perfect, mask, thresholds)) == 100.0
    n_pos, n_neg = int((mask == 1).sum()), int((mask == 0).sum())
    for value in (0.0, 0.5, 1.0):
        constant = np.full(mask.shape, value)
        pxap = F.pxap_from_histograms(*F.pixel_histograms(constant, mask, thresholds))
        assert abs(pxap - 100 * n_pos / (n_pos + n_neg)) < 1e-9


def test_pxap_and_piou_hand_computed() -> None:
    # Scores: positives 0.9, 0.4; negatives 0.6, 0.1. Thresholds 0, 0.5.
    pos, neg = F.pixel_histograms(
        np.array([[[0.9, 0.4, 0.6, 0.1]]]), np.array([[[1, 1, 0, 0]]], np.uint8), np.array([0.0, 0.5])
    )
    assert pos.tolist() == [1, 1, 0, 0] and neg.tolist() == [1, 1, 0, 0]
    # Operating points >=2, >=1, >=0.5, >=0: TP 0, 0, 1, 2; FP 0, 0, 1, 2; FN 2, 2, 1, 0.
    assert F.pxap_from_histograms(pos, neg) == pytest.approx(100 * (0.5 * 0.5 + 0.5 * 0.5))
    assert F.piou_from_histograms(pos, neg) == 50.0  # max(1 / (1 + 1 + 1), 2 / (2 + 2 + 0))


def rule_boxes(u: np.ndarray, level: int) -> list[list[int]]:
    """Boxes predicted by the rules the sweep relies on (8-connected components, 4-connected holes)."""
    ndimage = pytest.importorskip("scipy.ndimage")
    height, width = u.shape
    on = u > level
    out = []
    for structure, mask, grow in ((np.ones((3, 3)), on, 0), (None, ~on, 1)):
        labels, n = ndimage.label(mask, structure=structure)
        for sl in ndimage.find_objects(labels):
            y0, y1, x0, x1 = sl[0].start, sl[0].stop - 1, sl[1].start, sl[1].stop - 1
            if grow and (x0 == 0 or y0 == 0 or x1 == width - 1 or y1 == height - 1):
                continue  # background touching the border is not a hole
            x0, y0, x1, y1 = x0 - grow, y0 - grow, x1 + grow, y1 + grow
            out.append([x0, y0, min(x1 + 1, width - 1), min(y1 + 1, height - 1)])
    return sorted(out) if out else [[0, 0, 0, 0]]


@pytest.mark.parametrize("seed", range(4))
def test_contour_box_rules_match_opencv(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(25):
        height, width = rng.integers(2, 30, size=2)
        u = (rng.random((height, width)) * rng.choice([2, 4, 256])).astype(np.uint8)
        for level in np.unique(u).tolist() + [255]:
            level = min(int(level), 255)
            assert sorted(F.boxes_from_map(u, level).tolist()) == rule_boxes(u, level), (seed, u, level)


def test_sweep_threads_match_single_thread() -> None:
    rng = np.random.default_rng(5)
    u = (rng.random((7, 20, 24)) * 256).astype(np.uint8)
    boxes = [np.array([[i, 2, 10 + i, 15]]) for i in range(7)]
    one = F.best_iou_per_level(u, boxes, num_threads=1)
    np.testing.assert_array_equal(F.best_iou_per_level(u, boxes, num_threads=3), one)
    np.testing.assert_array_equal(F.best_iou_per_level(u, boxes, num_threads=16), one)
