"""Numba kernels: exact MaxBoxAccV2 box mining for all 256 uint8 levels in one sweep.

wsolevaluation binarises ``U = uint8(map * 255)`` at an integer level ``L`` (a pixel is on iff
``U > L``), runs ``cv2.findContours(RETR_TREE)`` and turns every contour into a box. With OpenCV's
zero padding around the image, the contours of a binary image are exactly:

* one outer contour per 8-connected foreground component; its ``boundingRect`` is the component's
  tight box ``(x0, y0, x1, y1)`` (inclusive), so the wsolevaluation box is
  ``(x0, y0, min(x1 + 1, W - 1), min(y1 + 1, H - 1))``;
* one hole contour per 4-connected background component that does not touch the image border; the
  hole contour runs over the foreground pixels around the hole, so its ``boundingRect`` is the hole's
  tight box grown by one pixel on each side, then the same ``+1``/clip rule applies.

Foreground components only merge as the level falls, background components only merge as it rises.
So two union-find sweeps over the pixels sorted by value (255 down to 1 for the foreground, 0 up to
254 for the background) visit every component of every level, keep each root's box and its best IoU
against the ground-truth boxes, and give the best IoU at each of the 256 levels at the cost of about
two labelling passes. The unit tests check these rules against OpenCV on many random maps.

``outer_only=True`` gives OpenCV ``RETR_EXTERNAL`` instead (outer contours of the top-level components,
no hole contours, nothing nested inside a hole): the foreground sweep runs on the hole-filled map of
:mod:`._fill` and the hole sweep is skipped.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from numba import njit

from wsol_lightning.metrics._fill import fill_holes_uint8

NUM_LEVELS = 256


@njit(cache=True)
def _find(parent: np.ndarray, x: int) -> int:
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


@njit(cache=True)
def box_best_iou(x0: int, y0: int, x1: int, y1: int, gt: np.ndarray) -> float:
    """Best inclusive (+1) IoU of one box against ``gt`` ``(n, 4)`` int64 boxes (0.0 when n = 0)."""
    best = 0.0
    area_a = (x1 - x0 + 1) * (y1 - y0 + 1)
    for g in range(gt.shape[0]):
        iw = min(x1, gt[g, 2]) - max(x0, gt[g, 0]) + 1
        ih = min(y1, gt[g, 3]) - max(y0, gt[g, 1]) + 1
        iw = max(iw, 0)
        ih = max(ih, 0)
        inter = iw * ih
        denom = area_a + (gt[g, 2] - gt[g, 0] + 1) * (gt[g, 3] - gt[g, 1] + 1) - inter
        iou = 0.0
        if denom > 0:
            iou = inter / denom
        if iou > best:
            best = iou
    return best


@njit(cache=True)
def _remove(active: np.ndarray, pos: np.ndarray, n_active: int, r: int) -> int:
    i = pos[r]
    last = active[n_active - 1]
    active[i] = last
    pos[last] = i
    pos[r] = -1
    return n_active - 1


@njit(cache=True)
def _union(parent: np.ndarray, size: np.ndarray, box: np.ndarray, ra: int, rb: int) -> tuple[int, int]:
    """Merge the sets of roots ``ra != rb``; return (new root, absorbed root)."""
    if size[ra] < size[rb]:
        ra, rb = rb, ra
    parent[rb] = ra
    size[ra] += size[rb]
    box[ra, 0] = min(box[ra, 0], box[rb, 0])
    box[ra, 1] = min(box[ra, 1], box[rb, 1])
    box[ra, 2] = max(box[ra, 2], box[rb, 2])
    box[ra, 3] = max(box[ra, 3], box[rb, 3])
    return ra, rb


@njit(cache=True)
def _grow(box: np.ndarray, r: int, x: int, y: int) -> None:
    box[r, 0] = min(box[r, 0], x)
    box[r, 1] = min(box[r, 1], y)
    box[r, 2] = max(box[r, 2], x)
    box[r, 3] = max(box[r, 3], y)


@njit(cache=True)
def _add_pixel(p: int, wp: int, offsets: np.ndarray, parent: np.ndarray, size: np.ndarray, box: np.ndarray,
               active: np.ndarray, pos: np.ndarray, n_active: int) -> tuple[int, int]:
    """Switch pixel ``p`` on: join it to its on neighbours (``offsets``), merging their sets.

    Returns the root of ``p``'s set and the new number of active roots. A merged-away root leaves the
    active list when it is on it (the border frame of the hole sweep never is).
    """
    py, px = p // wp, p % wp
    root = -1
    for j in range(offsets.shape[0]):
        q = p + offsets[j]
        pq = parent[q]
        if pq < 0 or pq == root:
            continue
        rq = _find(parent, q)
        if rq == root:
            continue
        if root < 0:
            root = rq
            parent[p] = rq
            size[rq] += 1
            _grow(box, rq, px, py)
        else:
            root, gone = _union(parent, size, box, root, rq)
            if pos[gone] >= 0:
                n_active = _remove(active, pos, n_active, gone)
    if root < 0:
        root = p
        parent[p] = p
        size[p] = 1
        box[p, 0], box[p, 1], box[p, 2], box[p, 3] = px, py, px, py
        active[n_active] = p
        pos[p] = n_active
        n_active += 1
    return root, n_active


@njit(cache=True)
def _level_best(active: np.ndarray, n_active: int, dirty: np.ndarray, score: np.ndarray, box: np.ndarray,
                grow: int, height: int, width: int, gt: np.ndarray) -> float:
    """Best cached IoU over the active roots, rescoring the changed ones.

    ``box`` holds padded coordinates (pixel ``x`` at ``x + 1``); ``grow`` is 0 for components, 1 for holes.
    """
    best = 0.0
    for i in range(n_active):
        r = active[i]
        if dirty[r]:
            x0 = box[r, 0] - 1 - grow
            y0 = box[r, 1] - 1 - grow
            x1 = min(box[r, 2] + grow, width - 1)  # (x_max + grow) + 1, back from padded: + 1 - 1
            y1 = min(box[r, 3] + grow, height - 1)
            score[r] = box_best_iou(x0, y0, x1, y1, gt)
            dirty[r] = False
        best = max(best, score[r])
    return best


@njit(cache=True)
def _sweep_image(u: np.ndarray, height: int, width: int, gt: np.ndarray, out: np.ndarray,
                 parent: np.ndarray, size: np.ndarray, box: np.ndarray, score: np.ndarray, dirty: np.ndarray,
                 active: np.ndarray, pos: np.ndarray, order: np.ndarray, holes: bool) -> None:
    """Fill ``out`` ``(256,)`` with the best V2 IoU at each level of one ``(H, W)`` uint8 map.

    ``holes=False`` skips the hole contours (only the 8-connected components' outer contours count).

    Work arrays are sized for the padded ``(H + 2) * (W + 2)`` grid: the one-pixel frame is never
    foreground and, for the background sweep, is one set that touches the border, so no bounds checks.
    """
    wp = width + 2
    n = (height + 2) * wp
    counts = np.zeros(NUM_LEVELS + 1, np.int64)
    for y in range(height):
        for x in range(width):
            counts[u[y, x] + 1] += 1
    for v in range(NUM_LEVELS):
        counts[v + 1] += counts[v]
    starts = counts.copy()
    for y in range(height):
        for x in range(width):
            v = u[y, x]
            order[counts[v]] = (y + 1) * wp + x + 1
            counts[v] += 1
    fg_best = np.full(NUM_LEVELS, -1.0)
    hole_best = np.zeros(NUM_LEVELS)
    offsets8 = np.array([-wp - 1, -wp, -wp + 1, -1, 1, wp - 1, wp, wp + 1])
    offsets4 = np.array([-wp, -1, 1, wp])

    # Foreground: value v joins at level v - 1 (on iff U > L); 8-connectivity.
    parent[:n] = -1
    pos[:n] = -1
    n_active = 0
    for v in range(NUM_LEVELS - 1, 0, -1):
        for k in range(starts[v], starts[v + 1]):
            root, n_active = _add_pixel(order[k], wp, offsets8, parent, size, box, active, pos, n_active)
            dirty[root] = True
        if n_active > 0:
            fg_best[v - 1] = _level_best(active, n_active, dirty, score, box, 0, height, width, gt)
    if not holes:
        empty = box_best_iou(0, 0, 0, 0, gt)
        for level in range(NUM_LEVELS):
            out[level] = empty if fg_best[level] < 0.0 else fg_best[level]
        return

    # Holes: value v joins the background at level v (off iff U <= L); 4-connectivity. The frame is one
    # set (root 0, huge size so it stays root) marked as touching the border; holes are the other roots.
    parent[:n] = -1
    pos[:n] = -1
    for x in range(wp):
        parent[x] = 0
        parent[n - 1 - x] = 0
    for y in range(height + 2):
        parent[y * wp] = 0
        parent[y * wp + wp - 1] = 0
    size[0] = n + 1
    n_active = 0
    for v in range(0, NUM_LEVELS - 1):
        for k in range(starts[v], starts[v + 1]):
            root, n_active = _add_pixel(order[k], wp, offsets4, parent, size, box, active, pos, n_active)
            dirty[root] = True
        hole_best[v] = _level_best(active, n_active, dirty, score, box, 1, height, width, gt)

    empty = box_best_iou(0, 0, 0, 0, gt)
    for level in range(NUM_LEVELS):
        if fg_best[level] < 0.0:
            out[level] = empty
        else:
            out[level] = max(fg_best[level], hole_best[level])


@njit(cache=True, nogil=True)
def _sweep_batch(maps: np.ndarray, gt: np.ndarray, gt_offsets: np.ndarray, first: int, step: int,
                 out: np.ndarray, outer_only: bool) -> None:
    height, width = maps.shape[1], maps.shape[2]
    n = (height + 2) * (width + 2)
    parent = np.empty(n, np.int32)
    size = np.zeros(n, np.int32)
    box = np.zeros((n, 4), np.int32)
    score = np.zeros(n, np.float64)
    dirty = np.zeros(n, np.bool_)
    active = np.empty(n, np.int32)
    pos = np.full(n, -1, np.int32)
    order = np.empty(height * width, np.int32)
    filled = np.empty((height, width), np.uint8)
    head = np.empty(NUM_LEVELS, np.int32)
    for b in range(first, maps.shape[0], step):
        u = maps[b]
        if outer_only:
            fill_holes_uint8(u, filled, head, order)
            u = filled
        _sweep_image(u, height, width, gt[gt_offsets[b]:gt_offsets[b + 1]], out[b],
                     parent, size, box, score, dirty, active, pos, order, not outer_only)


def best_iou_per_level_v2(maps: np.ndarray, gt: np.ndarray, gt_offsets: np.ndarray,
                          num_threads: int | None = None, outer_only: bool = False) -> np.ndarray:
    """Best MaxBoxAccV2 IoU at every uint8 level for a batch.

    The kernel releases the GIL; images are spread over ``num_threads`` short-lived Python threads
    (default ``torch.get_num_threads()``), so nothing stays alive to upset a later ``fork``.

    Args:
        maps: ``(B, H, W)`` uint8 quantised maps (``uint8(map * 255)``).
        gt: ``(M, 4)`` int64 GT boxes of the whole batch, ``x0, y0, x1, y1`` inclusive.
        gt_offsets: ``(B + 1,)`` int64; image ``b`` owns ``gt[gt_offsets[b]:gt_offsets[b + 1]]``.
        num_threads: worker threads (1 = run in the calling thread).
        outer_only: OpenCV ``RETR_EXTERNAL`` contours only (no holes, nothing nested in a hole).

    Returns:
        ``(B, 256)`` float64: entry ``[b, L]`` is the best IoU over every contour box of image ``b``
        binarised at level ``L`` against its GT boxes (the box ``(0, 0, 0, 0)`` when nothing is on).

    """
    maps = np.ascontiguousarray(maps, dtype=np.uint8)
    gt = np.ascontiguousarray(gt, dtype=np.int64)
    gt_offsets = np.ascontiguousarray(gt_offsets, dtype=np.int64)
    out = np.zeros((maps.shape[0], NUM_LEVELS))
    if num_threads is None:
        num_threads = torch.get_num_threads()
    num_threads = max(1, min(int(num_threads), maps.shape[0]))
    if num_threads == 1:
        _sweep_batch(maps, gt, gt_offsets, 0, 1, out, outer_only)
        return out
    with ThreadPoolExecutor(max_workers=num_threads) as pool:
        jobs = [pool.submit(_sweep_batch, maps, gt, gt_offsets, k, num_threads, out, outer_only)
                for k in range(num_threads)]
        for job in jobs:
            job.result()
    return out
