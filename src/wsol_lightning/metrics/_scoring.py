"""Numba helpers of the sweeps' scoring: a box's best IoU, the V1 choice, the best over the live sets.

Sets are numbered by birth (see :mod:`._sweep`); each keeps its tight box in padded coordinates
``box[r] = (x0, y0, x1, y1)`` and a cached best IoU ``score[r]``, valid unless ``dirty[r]`` (the box widened or
the set absorbed another since it was scored).
"""

from __future__ import annotations

import numpy as np

from wsol_lightning.metrics._jit import njit


@njit(cache=True, nogil=True)
def box_best_iou(x0: int, y0: int, x1: int, y1: int, gt: np.ndarray) -> float:
    """Best inclusive (+1) IoU of one box against ``gt`` ``(n, 4)`` int64 boxes (0.0 when n = 0)."""
    best = 0.0
    area_a = (x1 - x0 + 1) * (y1 - y0 + 1)
    for g in range(gt.shape[0]):
        iw = max(min(x1, gt[g, 2]) - max(x0, gt[g, 0]) + 1, 0)
        ih = max(min(y1, gt[g, 3]) - max(y0, gt[g, 1]) + 1, 0)
        inter = iw * ih
        denom = area_a + (gt[g, 2] - gt[g, 0] + 1) * (gt[g, 3] - gt[g, 1] + 1) - inter
        iou = inter / denom if denom > 0 else 0.0
        if iou > best:
            best = iou
    return best


@njit(cache=True, nogil=True)
def score_of(r: int, grow: int, box: np.ndarray, dirty: np.ndarray, score: np.ndarray, height: int, width: int,
           gt: np.ndarray) -> float:
    """Cached best IoU of root ``r``'s wsolevaluation box (padded box; ``grow`` 1 for a hole)."""
    if dirty[r]:
        x0, y0 = box[r, 0] - 1 - grow, box[r, 1] - 1 - grow
        x1 = min(box[r, 2] + grow, width - 1)  # (x_max - 1 + grow) + 1 back from padded coordinates
        y1 = min(box[r, 3] + grow, height - 1)
        score[r] = box_best_iou(x0, y0, x1, y1, gt)
        dirty[r] = False
    return score[r]


@njit(cache=True, nogil=True)
def largest_root(active: np.ndarray, n_active: int, area: np.ndarray, euler: np.ndarray, first: np.ndarray,
             box: np.ndarray) -> int:
    """The root whose outer contour OpenCV's ``max(contours, key=contourArea)`` returns, or -1 if unsure.

    A root without hole (``euler == 4``) has filled area ``area`` exactly; a root with holes lies between
    ``area`` and its box's area ``2 (w - 1) (h - 1)`` (half pixels). With ``top`` the largest lower bound,
    the roots whose upper bound reaches ``top`` are the candidates: one candidate wins; several hole-free
    candidates of area ``top`` tie and the one whose first pixel comes last wins; otherwise -1 (an
    OpenCV call decides that level).
    """
    top = 0
    for i in range(n_active):
        top = max(top, area[active[i]])
    best, candidates, exact = -1, 0, True
    for i in range(n_active):
        r = active[i]
        hole_free = euler[r] == 4
        high = area[r] if hole_free else 2 * (box[r, 2] - box[r, 0]) * (box[r, 3] - box[r, 1])
        if high < top:
            continue
        candidates += 1
        exact = exact and hole_free and area[r] == top
        if best < 0 or first[r] > first[best]:
            best = r
    return best if candidates == 1 or exact else -1


@njit(cache=True, nogil=True)
def touch(r: int, dirty: np.ndarray, touched: np.ndarray, n_touched: int) -> int:
    """Mark set ``r`` dirty; list it in ``touched`` the first time since it was scored. Returns the new length."""
    if not dirty[r]:
        dirty[r] = True
        touched[n_touched] = r
        n_touched += 1
    return n_touched


@njit(cache=True, nogil=True)
def best_of_active(active: np.ndarray, n_active: int, touched: np.ndarray, n_touched: int, pos: np.ndarray,
                   held_by: int, held: float, grow: int, box: np.ndarray, dirty: np.ndarray, score: np.ndarray,
                   height: int, width: int, gt: np.ndarray) -> tuple[float, int]:
    """The best IoU over the ``n_active`` live sets (``n_active >= 1``) and a set that holds it.

    ``held`` was the best at the previous scored level, held by set ``held_by`` (-1: none). If that set is
    still live (``pos >= 0``) and unchanged, every other unchanged set still scores at most ``held``, so only
    the sets touched since (``touched[:n_touched]``, dead ones skipped) are scored; otherwise all live sets.
    """
    if held_by < 0 or pos[held_by] < 0 or dirty[held_by]:
        held, held_by = -1.0, -1
        for i in range(n_active):
            r = active[i]
            s = score_of(r, grow, box, dirty, score, height, width, gt)
            if s > held:
                held, held_by = s, r
        return held, held_by
    for i in range(n_touched):
        r = touched[i]
        if pos[r] >= 0 and dirty[r]:
            s = score_of(r, grow, box, dirty, score, height, width, gt)
            if s > held:
                held, held_by = s, r
    return held, held_by
