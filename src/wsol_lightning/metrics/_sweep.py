"""Numba kernels: exact wsolevaluation box mining (V1 and V2) at every uint8 level in one sweep.

wsolevaluation binarises ``U = uint8(map * 255)`` at an integer level ``L`` (a pixel is on iff
``U > L``), runs ``cv2.findContours(RETR_TREE)`` and boxes the contours. With OpenCV's zero frame around
the image, the contours of a binary image are exactly:

* one outer contour per 8-connected foreground component; its ``boundingRect`` is the component's
  tight box ``(x0, y0, x1, y1)`` (inclusive), so the wsolevaluation box is
  ``(x0, y0, min(x1 + 1, W - 1), min(y1 + 1, H - 1))``;
* one hole contour per 4-connected background component that does not touch the image border; its
  ``boundingRect`` is the hole's tight box grown by one pixel on each side, then the same rule.

Foreground components only merge as the level falls, background components only merge as it rises, so a
union-find sweep over the pixels sorted by value (255 down to 1 for the foreground, 0 up to 254 for the
background) meets every component of every level, keeping each root's box (V2: all 256 levels for about
two labelling passes). A sweep stops after its last wanted level; V2's hole sweep runs only when, and only
up to where, the foreground sweep saw a hole at a wanted level (the Euler number summed over all live
sets is below 4 per set). Scoring helpers live in :mod:`._scoring`.

**V1** keeps only ``max(contours, key=cv2.contourArea)``. ``contourArea`` is the shoelace area of the
traced polygon through boundary-pixel centres: for an outer contour it is the area of the component
*with its holes filled*, counted on 2x2 pixel windows (four pixels on: 1, three on: 1/2, fewer: 0). A
hole's contour, and anything nested in a hole, encloses strictly less, or the same area as its parent's
outer contour (a one-pixel-thin ring); OpenCV lists a parent before its children, so the first largest
contour is always a top-level outer contour. Ties: OpenCV lists the top-level contours in *reverse*
raster order of their start point (a component's first pixel in raster order), and ``max`` keeps the
first, so among equal areas the component whose first pixel comes last wins.

So the V1 sweep keeps, per root, the window area of its own pixels and Gray's bit-quad Euler number
(components minus holes, also a 2x2-window sum): a root without a hole knows its ``contourArea`` exactly;
a root with holes lies between its own area (or its last traced area: a set and its filled area only grow
as the level falls) and its box's ``(w - 1)(h - 1)``. Where these bounds leave more than one candidate,
:func:`._scoring.largest_root` traces the outer contour of each candidate with holes, as OpenCV does, from
its first pixel (:func:`._scoring.outer_contour_area2`: the walk costs the perimeter, not the map), so V1
needs no OpenCV call. ``mode="largest_filled"`` is the same sweep over the hole-filled map ``F`` of
:mod:`._fill` (``F > L`` has the top-level components of ``U > L``, filled: every area exact), kept as a
second, independent V1 for the tests. The unit tests check all of this against OpenCV on adversarial maps
(ties, holes, nesting, lines, diagonals).

``mode="external"`` gives OpenCV ``RETR_EXTERNAL`` for V2: the sweep over ``F`` boxing every root.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from wsol_lightning.metrics._fill import fill_holes_uint8
from wsol_lightning.metrics._jit import njit
from wsol_lightning.metrics._scoring import best_of_active, box_best_iou, largest_root, score_of, touch
from wsol_lightning.metrics._unionfind import (
    AREA2,
    EULER4,
    NUM_LEVELS,
    REPS4,
    REPS8,
    find,
    link,
    prepare,
    remove_active,
    ring_offsets,
)

NO_AREA = np.zeros(NUM_LEVELS, np.int64)
# V2 (RETR_TREE), V2 outer only (RETR_EXTERNAL), V1; "one_pass" is the foreground sweep alone (the floor the
# benchmark compares with: with ``want`` all False it labels every level and scores nothing).
MODES = {"tree": 0, "external": 1, "largest": 2, "one_pass": 3, "largest_filled": 4}


@njit(cache=True, nogil=True)
def _steps(want: np.ndarray, holes: bool) -> int:
    """How many values a sweep must switch on to reach its last wanted level (0 when none is wanted)."""
    for step in range(NUM_LEVELS - 2, -1, -1):
        if want[step if holes else NUM_LEVELS - 2 - step]:
            return step + 1
    return 0


@njit(cache=True, nogil=True)
def pad_uint8(u: np.ndarray, value: np.ndarray) -> None:
    """Copy ``u`` ``(H, W)`` into ``value`` ``((H + 2) * (W + 2),)`` on the padded grid, the frame 0."""
    height, width = u.shape
    wp = width + 2
    value[:wp] = 0
    value[(height + 1) * wp:] = 0
    for y in range(height):
        row = (y + 1) * wp
        value[row] = 0
        value[row + wp - 1] = 0
        for x in range(width):
            value[row + 1 + x] = u[y, x]


@njit(cache=True, nogil=True)
def _sweep_levels(order: np.ndarray, ox: np.ndarray, oy: np.ndarray, starts: np.ndarray, mask: np.ndarray,
                  holes: bool, largest: bool, steps: int, want: np.ndarray, gt: np.ndarray, height: int, width: int,
                  label: np.ndarray, parent: np.ndarray, box: np.ndarray, area: np.ndarray,
                  first: np.ndarray, euler: np.ndarray, score: np.ndarray, dirty: np.ndarray, active: np.ndarray,
                  pos: np.ndarray, touched: np.ndarray, out: np.ndarray, holed: np.ndarray, traced: np.ndarray,
                  value: np.ndarray) -> None:
    """One union-find sweep, scoring each wanted level's components into ``out`` ``(256,)``.

    Foreground (``holes=False``): values 255 down to 1, 8-connected; after value ``v`` the sets are the
    components of ``U > v - 1``; ``out[v - 1]`` is the best IoU over them (``largest``: of the contour
    :func:`.largest_root` picks; ``traced`` holds its per-set traced areas, ``value`` is the padded map), left
    untouched where nothing is on; unless ``largest``, ``holed[level]`` says whether a component has a hole
    there (else the hole sweep has nothing to add at that level). The sweep stops after ``steps`` values
    (:func:`_steps`). Holes: values 0 up to 254, 4-connected, the frame one set (id 0: the oldest, so it stays
    root; never active); ``out[v]`` is the best IoU over the other sets' hole boxes (grown by one pixel). The
    union-find runs on set ids numbered by birth (``label`` ``(n,)`` holds each padded pixel's id at its
    arrival; the per-set arrays are indexed by id). V2 scores incrementally (:func:`.best_of_active`) and tells
    holes from the summed Euler number of all live sets (it has holes iff the sum is below 4 per set). Arrays
    are passed one by one (a tuple of arrays costs a reference count per call in numba).
    """
    wp = width + 2
    offs = ring_offsets(wp)
    reps = REPS4 if holes else REPS8
    area2 = NO_AREA if holes else AREA2
    euler4 = NO_AREA if holes else EULER4
    grow = 1 if holes else 0
    n_ids = 0
    if holes:  # the frame is set 0, so large it stays a root and is never active
        n = (height + 2) * wp
        for x in range(wp):
            label[x] = 0
            label[n - 1 - x] = 0
        for y in range(height + 2):
            label[y * wp] = 0
            label[y * wp + wp - 1] = 0
        parent[0] = 0
        pos[0] = -1  # the frame may be touched (merges, boxes) but is never scored
        n_ids = 1
    n_active, n_touched, euler_sum, held, held_by = 0, 0, 0, 0.0, -1
    for step in range(steps):
        v = step if holes else NUM_LEVELS - 1 - step
        for k in range(starts[v], starts[v + 1]):
            p = order[k]
            m = mask[p]
            px, py = ox[k], oy[k]
            groups = reps[m, 0]
            if groups == 0:  # a new component (or hole): the next set id
                r = n_ids
                n_ids += 1
                label[p] = r
                parent[r] = r
                area[r] = 0
                euler[r] = 4
                traced[r] = 0
                first[r] = p
                box[r, 0], box[r, 1], box[r, 2], box[r, 3] = px, py, px, py
                dirty[r] = False
                n_touched = touch(r, dirty, touched, n_touched)
                euler_sum += 4
                active[n_active] = r
                pos[r] = n_active
                n_active += 1
                continue
            root = find(parent, label[p + offs[reps[m, 1]]])
            for j in range(2, groups + 1):
                r = find(parent, label[p + offs[reps[m, j]]])
                if r != root:
                    root, gone = link(parent, box, area, first, euler, root, r)
                    n_touched = touch(root, dirty, touched, n_touched)
                    n_active = remove_active(active, pos, n_active, gone)  # never the frame (set 0)
            label[p] = root
            if not holes:  # the hole sweep needs boxes only; the tree sweep needs the summed Euler number only
                e = euler4[m]
                euler_sum += e
                if largest and e != 0:
                    euler[root] += e
                if largest:
                    a = area2[m]
                    if a != 0:
                        area[root] += a
            # Compare first, store rarely: a pixel seldom widens its set's box (no store-to-load chain).
            if px < box[root, 0]:
                box[root, 0] = px
                n_touched = touch(root, dirty, touched, n_touched)
            elif px > box[root, 2]:
                box[root, 2] = px
                n_touched = touch(root, dirty, touched, n_touched)
            if py < box[root, 1]:
                box[root, 1] = py
                n_touched = touch(root, dirty, touched, n_touched)
            elif py > box[root, 3]:
                box[root, 3] = py
                n_touched = touch(root, dirty, touched, n_touched)
        level = v if holes else v - 1
        if not want[level] or n_active == 0:
            continue
        if largest:
            best = largest_root(active, n_active, area, euler, first, box, traced, value, wp, label, parent,
                                level)
            out[level] = score_of(best, grow, box, dirty, score, height, width, gt)
        else:
            held, held_by = best_of_active(active, n_active, touched, n_touched, pos, held_by, held, grow, box, dirty,
                                           score, height, width, gt)
            out[level] = held
            if not holes:
                holed[level] = euler_sum < 4 * n_active
        n_touched = 0


@njit(cache=True, nogil=True)
def _sweep_batch(maps: np.ndarray, gt: np.ndarray, gt_offsets: np.ndarray, want: np.ndarray, mode: int,
                 first_image: int, step: int, out: np.ndarray) -> None:
    """Fill ``out[b]`` ``(256,)`` for images ``first_image, first_image + step, ...`` of ``maps`` ``(B, H, W)``."""
    height, width = maps.shape[1], maps.shape[2]
    n = (height + 2) * (width + 2)
    label, parent = np.empty(n, np.int32), np.empty(n, np.int32)
    box = np.zeros((n, 4), np.int32)
    area, first, score = np.zeros(n, np.int64), np.zeros(n, np.int32), np.zeros(n, np.float64)
    euler, traced = np.zeros(n, np.int64), np.zeros(n, np.int64)
    dirty, active, pos = np.zeros(n, np.bool_), np.empty(n, np.int32), np.full(n, -1, np.int32)
    touched = np.empty(n, np.int32)
    order = np.empty(height * width, np.int32)
    ox, oy = np.empty(height * width, np.int16), np.empty(height * width, np.int16)
    starts = np.zeros(NUM_LEVELS + 1, np.int64)
    mask_fg, mask_bg = np.zeros(n, np.uint8), np.zeros(n, np.uint8)
    filled, head = np.empty((height, width), np.uint8), np.empty(NUM_LEVELS, np.int32)
    seen, value = np.empty(n, np.bool_), np.empty(n, np.uint8)
    fg, holes, holed = np.empty(NUM_LEVELS), np.empty(NUM_LEVELS), np.zeros(NUM_LEVELS, np.bool_)
    for b in range(first_image, maps.shape[0], step):
        u = maps[b]
        boxes = gt[gt_offsets[b]:gt_offsets[b + 1]]
        if mode == 1 or mode == 4:  # the top-level components are those of the hole-filled map
            fill_holes_uint8(u, filled, head, label, seen, value)  # label: a work array here
            u = filled
        prepare(u, order, ox, oy, starts, mask_fg, mask_bg, mode == 0)
        if mode == 2 or mode == 4:  # V1 traces outer contours on the padded map
            pad_uint8(u, value)
        fg[:] = -1.0
        holed[:] = False
        steps = NUM_LEVELS - 1 if mode == 3 else _steps(want[b], False)  # the floor labels every level
        _sweep_levels(order, ox, oy, starts, mask_fg, False, mode == 2 or mode == 4, steps, want[b], boxes, height,
                      width, label, parent, box, area, first, euler, score, dirty, active, pos, touched, fg, holed,
                      traced, value)
        holes[:] = 0.0
        if mode == 0 and holed.any():  # only the levels with a hole, and only up to the last of them
            _sweep_levels(order, ox, oy, starts, mask_bg, True, False, _steps(holed, True), holed, boxes, height,
                          width, label, parent, box, area, first, euler, score, dirty, active, pos, touched, holes,
                          holed, traced, value)
        empty = box_best_iou(0, 0, 0, 0, boxes)
        for level in range(NUM_LEVELS):
            if want[b, level]:
                out[b, level] = empty if fg[level] < 0.0 else max(fg[level], holes[level])


def best_iou_per_level_sweep(maps: np.ndarray, gt: np.ndarray, gt_offsets: np.ndarray, mode: str = "tree",
                             want: np.ndarray | None = None, num_threads: int | None = None) -> np.ndarray:
    """Best IoU at every uint8 level for a batch: V2 (``"tree"``), V2 outer only (``"external"``) or V1.

    The kernel releases the GIL; images are spread over ``num_threads`` short-lived Python threads
    (default ``torch.get_num_threads()``), so nothing stays alive to upset a later ``fork``.

    Args:
        maps: ``(B, H, W)`` uint8 quantised maps (``uint8(map * 255)``).
        gt: ``(M, 4)`` int64 GT boxes of the whole batch, ``x0, y0, x1, y1`` inclusive.
        gt_offsets: ``(B + 1,)`` int64; image ``b`` owns ``gt[gt_offsets[b]:gt_offsets[b + 1]]``.
        mode: ``"tree"`` (every RETR_TREE contour, holes included), ``"external"`` (RETR_EXTERNAL),
            ``"largest"`` (the first largest contour by ``cv2.contourArea``, V1), ``"largest_filled"`` (V1
            on the hole-filled map: one more pass) or ``"one_pass"`` (outer contours of ``U > L`` without
            the hole sweep: one labelling pass, for benchmarks).
        want: optional ``(B, 256)`` bool, the levels to score (the others are left at 0); default all.
        num_threads: worker threads (1 = run in the calling thread).

    Returns:
        ``(B, 256)`` float64: entry ``[b, L]`` is the best IoU of image ``b``'s boxes at level ``L`` against
        its GT boxes (the box ``(0, 0, 0, 0)`` when nothing is on).

    """
    maps = np.ascontiguousarray(maps, dtype=np.uint8)
    gt = np.ascontiguousarray(gt, dtype=np.int64)
    gt_offsets = np.ascontiguousarray(gt_offsets, dtype=np.int64)
    batch = maps.shape[0]
    want = np.ones((batch, NUM_LEVELS), np.bool_) if want is None else np.ascontiguousarray(want, np.bool_)
    out = np.zeros((batch, NUM_LEVELS))
    code = MODES[mode]
    threads = max(1, min(int(torch.get_num_threads() if num_threads is None else num_threads), batch))
    if threads == 1:
        _sweep_batch(maps, gt, gt_offsets, want, code, 0, 1, out)
        return out
    with ThreadPoolExecutor(max_workers=threads) as pool:
        jobs = [pool.submit(_sweep_batch, maps, gt, gt_offsets, want, code, k, threads, out)
                for k in range(threads)]
        for job in jobs:
            job.result()
    return out
