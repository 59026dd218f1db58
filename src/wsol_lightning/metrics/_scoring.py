"""Numba helpers of the sweeps' scoring: a box's best IoU, the V1 choice, the best over the live sets.

Sets are numbered by birth (see :mod:`._sweep`); each keeps its tight box in padded coordinates
``box[r] = (x0, y0, x1, y1)`` and a cached best IoU ``score[r]``, valid unless ``dirty[r]`` (the box widened or
the set absorbed another since it was scored).
"""

from __future__ import annotations

import numpy as np

from wsol_lightning.metrics._jit import njit
from wsol_lightning.metrics._unionfind import find


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


# Chain codes 0-7 (OpenCV's order): right, up-right, up, up-left, left, down-left, down, down-right; twice,
# so that a counterclockwise search from any code runs on without wrapping.
_DX = np.array([1, 1, 0, -1, -1, -1, 0, 1] * 2, np.int64)
_DY = np.array([0, -1, -1, -1, 0, 1, 1, 1] * 2, np.int64)


@njit(cache=True, nogil=True)
def outer_contour_area2(value: np.ndarray, wp: int, start: int, level: int) -> int:
    """Twice ``cv2.contourArea`` of the outer contour of a component of ``U > level``.

    ``value`` is ``U`` on the padded grid (``(H + 2) * (W + 2)`` uint8, pixel ``(y, x)`` at
    ``(y + 1) * wp + x + 1``, ``wp = W + 2``, the frame 0: OpenCV's zero frame); the component is given by
    its first pixel in raster order, ``start`` (padded). The walk is OpenCV's border following
    (Suzuki-Abe, as in ``findContours``): the first neighbour met clockwise from the left is the contour's
    last pixel ``i1``; then from each pixel the next one is met counterclockwise, starting just past the
    direction it came from, until the walk is back at the start coming from ``i1``. The shoelace sum of
    that closed walk through pixel centres is ``2 contourArea`` (``CHAIN_APPROX_SIMPLE`` only drops
    collinear points). The walk sees only the component's own pixels and off pixels, so it costs the
    perimeter.
    """
    step = _DX + _DY * wp
    s = 4
    while True:
        s = (s - 1) & 7
        if s == 4 or value[start + step[s]] > level:
            break
    if s == 4:  # nothing on around the start (its left neighbour is off): a single pixel
        return 0
    last = start + step[s]
    p, x, y, twice = start, 0, 0, 0  # coordinates relative to the start: the shoelace sum does not change
    while True:
        t = s + 1
        while value[p + step[t]] <= level:  # stops by s + 8 at the latest: the pixel it came from is on
            t += 1
        t &= 7
        q = p + step[t]
        nx, ny = x + _DX[t], y + _DY[t]
        twice += x * ny - nx * y
        if q == start and p == last:
            break
        p, x, y, s = q, nx, ny, (t + 4) & 7
    return abs(twice)


@njit(cache=True, nogil=True, inline="always")
def _upper_area2(r: int, area: np.ndarray, euler: np.ndarray, box: np.ndarray) -> int:
    """Upper bound of root ``r``'s filled area (half pixels): exact without hole, else its box's area."""
    return area[r] if euler[r] == 4 else 2 * (box[r, 2] - box[r, 0]) * (box[r, 3] - box[r, 1])


@njit(cache=True, nogil=True)
def first_pixel(r: int, box: np.ndarray, value: np.ndarray, wp: int, label: np.ndarray, parent: np.ndarray,
                level: int) -> int:
    """Root ``r``'s first pixel in raster order (padded index): its leftmost pixel on its box's top row.

    ``value`` is the padded map; a pixel above ``level`` has arrived, so ``label`` and ``parent`` give its set.
    """
    row = box[r, 1] * wp
    for x in range(box[r, 0], box[r, 2] + 1):
        q = row + x
        if value[q] > level and find(parent, label[q]) == r:
            return q
    return -1


@njit(cache=True, nogil=True, inline="always")
def _beats(a: int, r: int, b: int, b_area: int, first: np.ndarray) -> bool:
    """Whether area ``a`` of root ``r`` wins over area ``b_area`` of root ``b`` (-1: none) in OpenCV's order."""
    return a > b_area or (a == b_area and b >= 0 and first[r] > first[b])


@njit(cache=True, nogil=True)
def largest_root(active: np.ndarray, n_active: int, area: np.ndarray, euler: np.ndarray, first: np.ndarray,
                 box: np.ndarray, traced: np.ndarray, value: np.ndarray, wp: int, label: np.ndarray,
                 parent: np.ndarray, level: int) -> int:
    """The root whose outer contour OpenCV's ``max(contours, key=contourArea)`` returns at ``U > level``.

    Areas are in half pixels. A root without hole (``euler == 4``) has filled area ``area`` exactly; a root
    with holes lies between ``max(area, traced)`` and its box's area ``2 (w - 1) (h - 1)``, where ``traced``
    is its exact filled area when it was last traced (0 at birth): a set only grows as the level falls, and
    so does its filled area. With ``top`` the largest lower bound, held by root ``t``, the roots whose upper
    bound reaches ``top`` are the candidates. One candidate wins outright. Otherwise the hole-free
    candidates are ranked first, then each other candidate with holes, largest upper bound first, is
    traced (:func:`outer_contour_area2` from its first pixel, which :func:`first_pixel` writes into
    ``first`` for every candidate: the sweep does not keep it per pixel) if its upper
    bound can still beat both the best so far and ``t`` (at least ``top``); ``t`` itself is traced last,
    only if its lower bound does not already win. Among equal areas the root whose first pixel comes last
    wins (OpenCV lists top-level contours in reverse raster order). ``value`` is the padded map, ``wp``
    its row length; -1 only when nothing is active.
    """
    top, t = -1, -1
    for i in range(n_active):
        r = active[i]
        low = area[r] if euler[r] == 4 else max(area[r], traced[r])
        if low > top:
            top, t = low, r
    best, candidates, holed = -1, 0, 0
    for i in range(n_active):
        r = active[i]
        if _upper_area2(r, area, euler, box) >= top:
            candidates += 1
            holed += euler[r] != 4
            best = r
    if candidates <= 1:
        return best
    best, best_area = -1, -1
    queue, upper = np.empty(holed, np.int64), np.empty(holed, np.int64)
    n_queue = 0
    for i in range(n_active):
        r = active[i]
        high = _upper_area2(r, area, euler, box)
        if high < top:
            continue
        first[r] = first_pixel(r, box, value, wp, label, parent, level)
        if r == t and euler[r] != 4:
            continue
        if euler[r] != 4:
            queue[n_queue], upper[n_queue] = r, high
            n_queue += 1
        elif _beats(high, r, best, best_area, first):
            best, best_area = r, high
    while n_queue > 0:
        k = 0
        for j in range(1, n_queue):
            if upper[j] > upper[k]:
                k = j
        r, high = queue[k], upper[k]
        n_queue -= 1
        queue[k], upper[k] = queue[n_queue], upper[n_queue]
        if not (_beats(high, r, best, best_area, first) and _beats(high, r, t, top, first)):
            continue
        exact = outer_contour_area2(value, wp, first[r], level)
        traced[r] = exact
        if _beats(exact, r, best, best_area, first):
            best, best_area = r, exact
    if euler[t] == 4 or not _beats(_upper_area2(t, area, euler, box), t, best, best_area, first):
        return best
    if _beats(top, t, best, best_area, first):
        return t
    exact = outer_contour_area2(value, wp, first[t], level)
    traced[t] = exact
    return t if _beats(exact, t, best, best_area, first) else best


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
