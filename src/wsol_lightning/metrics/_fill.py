"""Numba kernel: grey-level hole filling, the map whose level sets are OpenCV's outer contours.

OpenCV ``findContours(RETR_EXTERNAL)`` keeps only the outermost contours of a binary image: one per
8-connected foreground component that touches the *outer* background (the 4-connected background
component reaching the image border, OpenCV's zero frame included). Its ``boundingRect`` is the box
of that component with its holes filled, and components lying inside a hole are dropped. Filling the
holes of every level set at once gives the grey-level map

    F(p) = min over 4-paths from p to the frame of max(U(q) for q on the path)

(the minimax "reconstruction by erosion from the border"): ``F > L`` is exactly ``U > L`` with every
hole filled, so the 8-connected components of ``F > L`` are the RETR_EXTERNAL contours of ``U > L``,
with the same boxes. Computed by a priority flood from the border over a 256-bucket queue, ``O(H W)``.
"""

from __future__ import annotations

import numpy as np

from wsol_lightning.metrics._jit import njit

NUM_LEVELS = 256


@njit(cache=True, nogil=True)
def fill_holes_uint8(u: np.ndarray, out: np.ndarray, head: np.ndarray, nxt: np.ndarray, seen: np.ndarray,
                     val: np.ndarray) -> None:
    """Write the hole-filled map of ``u`` into ``out`` (both ``(H, W)`` uint8).

    Work arrays (overwritten): ``head`` ``(256,)`` int32 and, on the padded grid (pixel ``(y, x)`` at
    ``(y + 1) * (W + 2) + x + 1``; the frame starts seen, so there are no bounds checks), ``nxt`` int32,
    ``seen`` bool and ``val`` uint8, each ``((H + 2) * (W + 2),)``. Each pixel is reached once and takes
    ``max(current level, U(p))``; the border pixels start at their own value (their path to the zero frame
    is themselves). A reached pixel at or below the current level is flooded at once from a stack; a
    higher one waits in its level's bucket.
    """
    height, width = u.shape
    wp = width + 2
    head[:] = -1
    seen[:] = True
    for y in range(height):
        row = (y + 1) * wp + 1
        for x in range(width):
            val[row + x] = u[y, x]
            seen[row + x] = False
    for y in range(height):
        for x in range(width):
            if y == 0 or x == 0 or y == height - 1 or x == width - 1:
                q = (y + 1) * wp + x + 1
                seen[q] = True
                nxt[q] = head[val[q]]
                head[val[q]] = q
    stack = np.empty(height * width, np.int32)
    for k in range(NUM_LEVELS):
        while head[k] != -1:
            stack[0] = head[k]
            head[k] = nxt[head[k]]
            top = 1
            while top > 0:
                top -= 1
                p = stack[top]
                val[p] = k
                for d in (-wp, wp, -1, 1):
                    q = p + d
                    if not seen[q]:
                        seen[q] = True
                        if val[q] <= k:
                            stack[top] = q
                            top += 1
                        else:
                            nxt[q] = head[val[q]]
                            head[val[q]] = q
    for y in range(height):
        row = (y + 1) * wp + 1
        for x in range(width):
            out[y, x] = val[row + x]


def fill_holes(maps_uint8: np.ndarray) -> np.ndarray:
    """Hole-filled copies of ``(B, H, W)`` uint8 maps (see the module docstring); for tests and tools."""
    u = np.ascontiguousarray(maps_uint8, dtype=np.uint8)
    out = np.empty_like(u)
    if u.shape[1] == 0 or u.shape[2] == 0:
        return out
    head = np.empty(NUM_LEVELS, np.int32)
    nxt = np.empty((u.shape[1] + 2) * (u.shape[2] + 2), np.int32)
    seen = np.empty(nxt.shape[0], np.bool_)
    val = np.empty(nxt.shape[0], np.uint8)
    for b in range(u.shape[0]):
        fill_holes_uint8(u[b], out[b], head, nxt, seen, val)
    return out
