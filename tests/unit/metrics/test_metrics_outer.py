"""The object-contours-only MaxBoxAccV2 variant: OpenCV RETR_EXTERNAL boxes, no hole contours."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from wsol_lightning.metrics import MaxBoxAcc
from wsol_lightning.metrics import functional as F
from wsol_lightning.metrics._fill import fill_holes


def random_maps_with_holes(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A uint8 map mixing noise, rings (holes) and blobs nested inside the rings' holes."""
    u = (rng.random((height, width)) * rng.choice([2, 4, 256])).astype(np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        cy, cx = int(rng.integers(height)), int(rng.integers(width))
        r = int(rng.integers(2, max(3, min(height, width) // 2)))
        cv2.circle(u, (cx, cy), r, int(rng.integers(100, 256)), int(rng.integers(1, 3)))
        cv2.circle(u, (cx, cy), max(r // 3, 0), int(rng.integers(0, 256)), -1)  # something inside the hole
    return u


def external_best_iou(u: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Best IoU per level of OpenCV RETR_EXTERNAL boxes (wsolevaluation's box rule), ``(256,)``."""
    out = np.empty(256)
    for level in range(256):
        boxes = F.boxes_from_map(u, level, outer_only=True)
        out[level] = F.iou_matrix(boxes, gt).max()
    return out


@pytest.mark.parametrize("seed", range(3))
def test_outer_sweep_matches_opencv_retr_external(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(12):
        height, width = (int(v) for v in rng.integers(3, 28, size=2))
        u = random_maps_with_holes(rng, height, width)
        x0, y0 = int(rng.integers(width)), int(rng.integers(height))
        gt = np.array([[x0, y0, int(rng.integers(x0, width)), int(rng.integers(y0, height))],
                       [0, 0, width - 1, height - 1]])[: int(rng.integers(1, 3))]
        sweep = F.best_iou_per_level(u[None], [gt], outer_only=True, num_threads=1)[0]
        np.testing.assert_allclose(sweep, external_best_iou(u, gt), err_msg=str((seed, u.tolist(), gt)))


def test_fill_holes_fills_a_ring_and_drops_what_is_nested() -> None:
    u = np.zeros((9, 9), np.uint8)
    u[1:8, 1:8] = 200
    u[3:6, 3:6] = 10  # the hole
    u[4, 4] = 250  # an island inside the hole: RETR_TREE sees it, RETR_EXTERNAL does not
    filled = fill_holes(u[None])[0]
    expected = u.copy()
    expected[3:6, 3:6] = 200
    expected[4, 4] = 250
    np.testing.assert_array_equal(filled, expected)
    # At level 220 only the island is on: it is then top-level, so RETR_EXTERNAL keeps it.
    assert F.boxes_from_map(u, 220, outer_only=True).tolist() == [[4, 4, 5, 5]]
    assert F.boxes_from_map(u, 100, outer_only=True).tolist() == [[1, 1, 8, 8]]
    assert len(F.boxes_from_map(u, 100)) == 3  # RETR_TREE: ring, hole, island


def test_inverted_map_scores_through_the_hole_only_under_v2() -> None:
    """1 - (object map): V2 boxes the hole and scores; the outer variant cannot."""
    good = torch.zeros(1, 32, 32, dtype=torch.float64)
    good[0, 10:20, 12:22] = 1.0
    inverted = 1.0 - good
    gt = [torch.tensor([[12, 10, 21, 19]])]
    v2, outer = MaxBoxAcc(cam_curve_interval=0.01), MaxBoxAcc(cam_curve_interval=0.01, outer_contours_only=True)
    v2.update(inverted, gt)
    outer.update(inverted, gt)
    # Hole box: the hole grown by one pixel, then wsolevaluation's +1: (11, 9, 23, 21), IoU 100 / 169 = 0.59,
    # a hit at IoU 30 and 50, not 70.
    assert float(v2.compute()["maxboxacc_v2"]) == pytest.approx(200 / 3)
    # The only outer box is the whole image: IoU (10 * 10) / (32 * 32) < 0.3 at every level.
    assert float(outer.compute()["maxboxacc_v2"]) == 0.0
    good_outer = MaxBoxAcc(cam_curve_interval=0.01, outer_contours_only=True)
    good_outer.update(good, gt)
    assert float(good_outer.compute()["maxboxacc_v2"]) == pytest.approx(100.0)
