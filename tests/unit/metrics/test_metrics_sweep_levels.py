"""The sweeps' shortcuts, against OpenCV level by level.

* A sweep stops after its last wanted level; the hole sweep runs only up to the last level where the
  foreground sweep saw a hole, and scores only such levels.
* V2 rescans only the sets touched since the last scored level while the set holding the best IoU is
  unchanged (not merged away, box not widened).
* The hole-filled map (``_fill``) is a padded priority flood.
* V1's first largest contour is a top-level outer one: ``RETR_EXTERNAL``'s is ``RETR_TREE``'s (the sweep
  and its contour walk rely on it).

Every expected value comes from OpenCV (``functional.boxes_from_map``: ``findContours`` at one level) or, for
the fill, from ``cv2.floodFill`` of each binary level.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from wsol_lightning.metrics import functional as F
from wsol_lightning.metrics._fill import fill_holes
from wsol_lightning.metrics._sweep import best_iou_per_level_sweep


def opencv_best(u: np.ndarray, gt: np.ndarray, levels: list[int], multi: bool = True,
                outer_only: bool = False) -> np.ndarray:
    """Best IoU of OpenCV's boxes (wsolevaluation's rule) at each of ``levels``."""
    return np.array([F.iou_matrix(F.boxes_from_map(u, level, multi, outer_only), gt).max() for level in levels])


def sweep_at(u: np.ndarray, gt: np.ndarray, levels: list[int], mode: str) -> np.ndarray:
    want = np.zeros((1, 256), np.bool_)
    want[0, levels] = True
    offsets = np.array([0, len(gt)])
    return best_iou_per_level_sweep(u[None], gt, offsets, mode, want, 1)[0, levels]


def ring_with_hole() -> tuple[np.ndarray, np.ndarray]:
    """A ring at 200 around a hole at 50 on a zero background: the hole exists at levels 50..199 only."""
    u = np.zeros((12, 14), np.uint8)
    u[2:10, 3:12] = 200
    u[4:8, 5:10] = 50
    hole_box = np.array([[4, 3, 11, 9]])  # the hole grown by one pixel (x 4..10, y 3..8), then x1 = x + w
    return u, hole_box


@pytest.mark.parametrize("levels", [[10, 120], [10, 30], [199], [49, 50], [200, 254], [0, 199, 200]])
def test_hole_sweep_reaches_exactly_the_last_holed_level(levels: list[int]) -> None:
    u, hole_box = ring_with_hole()
    np.testing.assert_array_equal(sweep_at(u, hole_box, levels, "tree"), opencv_best(u, hole_box, levels))
    expected_hole_hits = [1.0 if 50 <= level < 200 else None for level in levels]
    for got, hit in zip(sweep_at(u, hole_box, levels, "tree"), expected_hole_hits):
        if hit is not None:
            assert got == hit  # the hole's own contour matches its GT exactly


def test_no_hole_at_the_wanted_levels_skips_nothing_that_counts() -> None:
    # Holes only above the last wanted level: the hole sweep is skipped and the outer boxes still match.
    u, hole_box = ring_with_hole()
    outer = np.array([[3, 2, 12, 10]])  # the ring: x 3..11, y 2..9
    for gt in (hole_box, outer):
        levels = [0, 20, 49]
        np.testing.assert_array_equal(sweep_at(u, gt, levels, "tree"), opencv_best(u, gt, levels))


def merging_blobs() -> np.ndarray:
    """Blob A (250) matches the GT; it widens at 180, then merges with blob B (240) through a bridge at 100."""
    u = np.zeros((16, 24), np.uint8)
    u[3:7, 3:7] = 250  # A
    u[7, 3:7] = 180  # A widens downwards at level < 180
    u[3:9, 15:21] = 240  # B, larger, never the GT
    u[5, 7:15] = 100  # the bridge
    u[12:14, 2:4] = 230  # C, a small distractor that stays apart
    return u


@pytest.mark.parametrize("gt", [np.array([[3, 3, 7, 7]]), np.array([[3, 3, 7, 8]]), np.array([[15, 3, 21, 9]]),
                                np.array([[3, 3, 21, 9]]), np.array([[2, 12, 4, 14], [3, 3, 7, 8]])])
def test_best_set_widening_or_merging_is_rescored(gt: np.ndarray) -> None:
    u = merging_blobs()
    every = list(range(256))
    for mode, outer in (("tree", False), ("external", True)):
        np.testing.assert_array_equal(sweep_at(u, gt, every, mode), opencv_best(u, gt, every, True, outer))
    sparse = [0, 99, 100, 179, 180, 229, 239, 249]
    np.testing.assert_array_equal(sweep_at(u, gt, sparse, "tree"), opencv_best(u, gt, sparse))


@pytest.mark.parametrize("seed", range(4))
def test_sparse_levels_equal_opencv_on_noisy_maps(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(6):
        height, width = (int(v) for v in rng.integers(4, 24, size=2))
        u = (rng.random((height, width)) * rng.choice([3, 8, 256])).astype(np.uint8)
        cv2.circle(u, (int(rng.integers(width)), int(rng.integers(height))), int(rng.integers(2, 6)),
                   int(rng.integers(100, 256)), 1)
        x0, y0 = int(rng.integers(width)), int(rng.integers(height))
        gt = np.array([[x0, y0, int(rng.integers(x0, width)), int(rng.integers(y0, height))]])
        levels = sorted(rng.choice(256, size=int(rng.integers(1, 12)), replace=False).tolist())
        for mode, multi, outer in (("tree", True, False), ("external", True, True)):
            np.testing.assert_array_equal(sweep_at(u, gt, levels, mode), opencv_best(u, gt, levels, multi, outer),
                                          err_msg=str((mode, u.tolist(), gt.tolist(), levels)))
        v1 = F.best_iou_per_level(u[None], [gt], multi_contour=False, num_threads=1)[0, levels]
        np.testing.assert_array_equal(v1, opencv_best(u, gt, levels, multi=False))


def flood_filled(binary: np.ndarray) -> np.ndarray:
    """``binary`` with every background region not 4-connected to the border filled (cv2.floodFill)."""
    height, width = binary.shape
    padded = np.zeros((height + 2, width + 2), np.uint8)
    padded[1:-1, 1:-1] = binary
    mask = np.zeros((height + 4, width + 4), np.uint8)
    cv2.floodFill(padded, mask, (0, 0), 2, flags=4)  # the outer background becomes 2
    return padded[1:-1, 1:-1] != 2


@pytest.mark.parametrize("seed", range(3))
def test_fill_holes_equals_per_level_flood_fill(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(5):
        height, width = (int(v) for v in rng.integers(1, 30, size=2))
        u = (rng.random((height, width)) * rng.choice([2, 5, 256])).astype(np.uint8)
        if min(height, width) > 6:
            cv2.rectangle(u, (1, 1), (width - 2, height - 2), int(rng.integers(50, 256)), 1)
        filled = fill_holes(u[None])[0]
        for level in range(256):
            np.testing.assert_array_equal(filled > level, flood_filled((u > level).astype(np.uint8)),
                                          err_msg=str((u.tolist(), level)))


def test_external_and_tree_pick_the_same_largest_contour() -> None:
    # Equal squares, one-pixel rings (hole contour tying the outer one), single pixels: many ties.
    rng = np.random.default_rng(0)
    for _ in range(400):
        height, width = (int(v) for v in rng.integers(4, 20, size=2))
        u = np.zeros((height, width), np.uint8)
        for _ in range(int(rng.integers(1, 6))):
            y, x, side = int(rng.integers(height)), int(rng.integers(width)), int(rng.integers(1, 4))
            kind = int(rng.integers(3))
            if kind == 0:
                u[y:y + side, x:x + side] = 200
            elif kind == 1:
                cv2.rectangle(u, (x, y), (x + side + 1, y + side + 1), 200, 1)
            else:
                u[y, x] = 200
        np.testing.assert_array_equal(F.boxes_from_map(u, 100, multi_contour=False, outer_only=True),
                                      F.boxes_from_map(u, 100, multi_contour=False), err_msg=str(u.tolist()))
