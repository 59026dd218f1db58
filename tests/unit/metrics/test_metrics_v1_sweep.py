"""V1 (largest contour by cv2.contourArea, OpenCV's tie order) from the sweep, against OpenCV itself.

The sweep takes the top-level component of largest 2x2-window area (holes filled) and, among equal
areas, the one whose first raster pixel comes last; where a component with holes could be the largest it
traces that component's outer contour as OpenCV does (no OpenCV call). Each map below is scored at all 256
levels against GT boxes that are exactly the boxes of the competing contours, so a different choice
between tied contours changes the IoU.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from wsol_lightning.metrics import functional as F
from wsol_lightning.metrics._scoring import outer_contour_area2
from wsol_lightning.metrics._sweep import best_iou_per_level_sweep


def opencv_v1(u: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """wsolevaluation's V1 at every level: ``max(contours, key=cv2.contourArea)``, then the IoU."""
    return np.array([F.iou_matrix(F.boxes_from_map(u, level, multi_contour=False), gt).max()
                     for level in range(256)])


def candidate_gts(u: np.ndarray) -> list[np.ndarray]:
    """One GT per distinct contour box at a few levels (every contour's box, holes included)."""
    boxes = set()
    for level in sorted(set(np.unique(u).tolist()) | {0}):
        if level < 255:
            boxes.update(map(tuple, F.boxes_from_map(u, int(level)).tolist()))
    return [np.array([b]) for b in sorted(boxes)][:12]


def assert_v1_matches_opencv(u: np.ndarray) -> None:
    for gt in candidate_gts(u):
        sweep = F.best_iou_per_level(u[None], [gt], multi_contour=False, num_threads=1)[0]
        np.testing.assert_array_equal(sweep, opencv_v1(u, gt), err_msg=str((u.tolist(), gt.tolist())))


def paint(shape: tuple[int, int], cells: list[tuple[int, int]], value: int = 200) -> np.ndarray:
    u = np.zeros(shape, np.uint8)
    for y, x in cells:
        u[y, x] = value
    return u


def test_window_area_not_pixel_count_decides() -> None:
    # A 9-pixel line (contourArea 0) against a 2x2 square (area 1): OpenCV keeps the square.
    u = np.zeros((6, 12), np.uint8)
    u[1, 1:10] = 200
    u[3:5, 3:5] = 100
    gt_square = np.array([[3, 3, 5, 5]])  # wsolevaluation box of the square: x1 = x + w
    sweep = F.best_iou_per_level(u[None], [gt_square], multi_contour=False, num_threads=1)[0]
    assert sweep[99] == 1.0  # level 99: both on, the square wins on area
    assert sweep[100] == 0.0  # level 100: only the line is on
    np.testing.assert_array_equal(sweep, opencv_v1(u, gt_square))


def test_equal_areas_go_to_the_last_start_point() -> None:
    # Three 3x3 squares (area 4 each): OpenCV lists top-level contours in reverse raster order of their first
    # pixel and max() keeps the first, so the square starting last (lowest, then rightmost) is chosen.
    u = np.zeros((12, 14), np.uint8)
    u[1:4, 8:11] = 50
    u[1:4, 1:4] = 50
    u[6:9, 4:7] = 50
    last = np.array([[4, 6, 7, 9]])
    sweep = F.best_iou_per_level(u[None], [last], multi_contour=False, num_threads=1)[0]
    assert sweep[0] == 1.0
    assert_v1_matches_opencv(u)


@pytest.mark.parametrize("cells", [
    [(1, 1), (1, 4), (3, 2), (3, 6)],  # single pixels, all area 0
    [(1, 1), (2, 2), (3, 3), (1, 6), (2, 6), (3, 6)],  # a diagonal line (8-connected) and a vertical one
    [(2, 5), (1, 1), (2, 2), (1, 3), (5, 5), (4, 6), (5, 7)],  # diagonal touching merges components
])
def test_zero_area_ties(cells: list[tuple[int, int]]) -> None:
    assert_v1_matches_opencv(paint((7, 9), cells))


def test_thin_ring_ties_its_own_hole_and_tail() -> None:
    # A one-pixel diamond ring: outer and hole contours have the same area; a tail widens the outer box only.
    cells = [(2, 0), (1, 1), (0, 2), (1, 3), (2, 4), (3, 3), (4, 2), (3, 1), (5, 2), (6, 2)]
    u = paint((8, 6), cells)
    assert_v1_matches_opencv(u)
    assert_v1_matches_opencv(np.pad(u, 1))  # away from the border too


def test_nested_and_equal_ring_components() -> None:
    u = np.zeros((16, 20), np.uint8)
    u[1:10, 1:10] = 120
    u[3:8, 3:8] = 0
    u[4:7, 4:7] = 250  # a blob inside the ring's hole
    u[1:10, 11:20] = 120  # an equal solid square: its area beats the ring's (holes are filled, so tie)
    u[12:15, 2:5] = 60
    assert_v1_matches_opencv(u)


@pytest.mark.parametrize("seed", range(3))
def test_random_adversarial_maps(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(20):
        height, width = (int(v) for v in rng.integers(2, 14, size=2))
        kind = rng.integers(3)
        if kind == 0:  # few levels: many equal-area ties
            u = (rng.integers(0, 3, (height, width)) * 120).astype(np.uint8)
        elif kind == 1:  # tiles of equal squares
            u = np.kron(rng.integers(0, 2, ((height + 1) // 2, (width + 1) // 2)), np.ones((2, 2)))
            u = (u[:height, :width] * 90).astype(np.uint8)
        else:
            u = (rng.random((height, width)) * rng.choice([2, 4, 256])).astype(np.uint8)
        assert_v1_matches_opencv(u)


@pytest.mark.parametrize("seed", range(2))
def test_both_v1_kernels_agree_with_opencv(seed: int) -> None:
    # "largest" traces the outer contour of candidates with holes; "largest_filled" (the sweep on the
    # hole-filled map) needs no trace. Rings with blobs inside make both paths work.
    rng = np.random.default_rng(10 + seed)
    for _ in range(8):
        height, width = (int(v) for v in rng.integers(8, 24, size=2))
        u = (rng.random((height, width)) * 256).astype(np.uint8)
        for _ in range(2):
            cy, cx, r = int(rng.integers(height)), int(rng.integers(width)), int(rng.integers(2, 7))
            cv2.circle(u, (cx, cy), r, int(rng.integers(150, 256)), 1)
            cv2.circle(u, (cx, cy), r // 3, int(rng.integers(0, 256)), -1)
        gt = np.array([[int(rng.integers(width // 2)), int(rng.integers(height // 2)), width - 2, height - 1]])
        expected = opencv_v1(u, gt)
        offsets = np.array([0, 1])
        np.testing.assert_array_equal(best_iou_per_level_sweep(u[None], gt, offsets, "largest", None, 1)[0], expected)
        filled = best_iou_per_level_sweep(u[None], gt, offsets, "largest_filled", None, 1)[0]
        np.testing.assert_array_equal(filled, expected)
        np.testing.assert_array_equal(F.best_iou_per_level(u[None], [gt], multi_contour=False)[0], expected)


def outer_areas_by_opencv(u: np.ndarray, level: int) -> list[tuple[int, int, float]]:
    """``(x, y, contourArea)`` of every outer contour of ``u > level`` (any depth), keyed by its first pixel."""
    binary = (u > level).astype(np.uint8)
    count, labels = cv2.connectedComponents(binary, connectivity=8)
    out = []
    for comp in range(1, count):
        ys, xs = np.nonzero(labels == comp)
        y, x = int(ys[0]), int(xs[0])  # np.nonzero is row-major: the first pixel in raster order
        alone = (labels == comp).astype(np.uint8)  # an outer contour sees only its own component
        contour = cv2.findContours(alone, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[-2][0]
        out.append((x, y, cv2.contourArea(contour)))
    return out


def trace(u: np.ndarray, x: int, y: int, level: int) -> int:
    """Twice the traced area of the component of ``u > level`` whose first pixel is ``(x, y)``."""
    return outer_contour_area2(np.pad(u, 1).ravel(), u.shape[1] + 2, (y + 1) * (u.shape[1] + 2) + x + 1, level)


def test_outer_contour_area_by_hand() -> None:
    u = np.zeros((9, 16), np.uint8)
    u[1:4, 1:4] = 9  # 3x3 square: area 4
    u[1:6, 5:10] = 9  # 5x5 ring around a 3x3 hole: the filled 5x5 square, area 16
    u[2:5, 6:9] = 0
    u[0, 11:16] = 9  # a line on the border: area 0
    u[7, 2] = 9  # a single pixel: area 0
    u[5:9, 12:16] = 9  # 4x4 square in the corner with a one-pixel hole: area 9
    u[6, 13] = 0
    for x, y, want in [(1, 1, 8), (5, 1, 32), (11, 0, 0), (2, 7, 0), (12, 5, 18)]:
        assert trace(u, x, y, 0) == want


@pytest.mark.parametrize("seed", range(2))
def test_outer_contour_area_equals_opencv(seed: int) -> None:
    # Random binary maps (lines, diagonals, holes at the border), rings with blobs and nested rings.
    rng = np.random.default_rng(40 + seed)
    for _ in range(60):
        height, width = (int(v) for v in rng.integers(2, 20, size=2))
        if rng.integers(2):
            u = (rng.random((height, width)) < rng.uniform(0.3, 0.8)).astype(np.uint8) * 200
        else:
            u = np.zeros((height, width), np.uint8)
            for _ in range(3):
                center = (int(rng.integers(width)), int(rng.integers(height)))
                cv2.circle(u, center, int(rng.integers(1, 8)), int(rng.integers(100, 256)), 1)
                cv2.circle(u, center, int(rng.integers(0, 3)), int(rng.integers(0, 256)), -1)
        for level in np.unique(u)[:-1]:
            for x, y, area in outer_areas_by_opencv(u, int(level)):
                assert trace(u, x, y, int(level)) == 2 * area, (u.tolist(), level, x, y)


def ring(u: np.ndarray, y0: int, x0: int, size: int, value: int = 200, thickness: int = 1) -> None:
    u[y0:y0 + size, x0:x0 + size] = value
    u[y0 + thickness:y0 + size - thickness, x0 + thickness:x0 + size - thickness] = 0


def test_ties_between_equal_rings_and_squares() -> None:
    u = np.zeros((14, 22), np.uint8)
    ring(u, 1, 1, 5)  # filled 5x5: area 16
    ring(u, 1, 8, 5)  # the same ring, starting later in raster order
    u[7:12, 3:8] = 150  # an equal solid square at a lower level, starting last
    ring(u, 7, 12, 6, 100)  # a larger ring at the lowest level (area 25)
    u[9:11, 14:16] = 250  # a blob in its hole
    assert_v1_matches_opencv(u)


def test_nested_rings_and_boxes_holding_other_components() -> None:
    u = np.zeros((20, 20), np.uint8)
    ring(u, 0, 0, 20, 90)  # a ring along the image border (holes touch nothing outside)
    ring(u, 2, 2, 16, 150, 2)  # nested rings
    ring(u, 6, 6, 8, 220)
    u[9:11, 9:11] = 250
    u[3:17, 17] = 0  # cut the middle ring into a C: its box holds the inner rings, not its hole
    assert_v1_matches_opencv(u)
    v = np.zeros((12, 16), np.uint8)
    v[1:10, 1:3] = v[1:3, 1:14] = v[8:10, 1:14] = 120  # a U on its side, a square in its concavity
    v[4:7, 5:12] = 200
    ring(v, 0, 13, 3, 60)  # a one-pixel ring touching the border
    assert_v1_matches_opencv(v)


@pytest.mark.parametrize("values", [(200, 180), (180, 200), (200, 200)])
def test_equal_rings_on_one_row_go_to_the_right_one(values: tuple[int, int]) -> None:
    # Both rings start on the same row; the right one starts last, so it wins the tie at every level where
    # both are on, whichever was born first in the sweep.
    u = np.zeros((9, 20), np.uint8)
    ring(u, 1, 1, 6, values[0])
    ring(u, 1, 12, 6, values[1])
    u[1:3, 8:10] = 90
    u[3, 3] = 250
    assert_v1_matches_opencv(u)
    assert_v1_matches_opencv(np.ascontiguousarray(u[:, ::-1]))


@pytest.mark.parametrize("square", [4, 5, 6])
def test_first_pixel_is_the_components_own(square: int) -> None:
    # The ring's box holds a foreign pixel on its top row, left of the ring's own first pixel; a solid
    # square of about the ring's filled area forces the ring's contour to be traced.
    u = np.zeros((12, 20), np.uint8)
    u[1:3, 6:10] = 200  # the ring's top: its first pixel is (6, 1)
    ring(u, 3, 1, 7, 200)  # the ring's body: x from 1, so its box starts left of (6, 1)
    u[1, 2] = 220  # a foreign pixel on the ring's top row, inside its box
    u[3:3 + square, 12:12 + square] = 150
    assert_v1_matches_opencv(u)
