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
from numba import njit

NUM_LEVELS = 256


@njit(cache=True, nogil=True)
def fill_holes_uint8(u: np.ndarray, out: np.ndarray, head: np.ndarray, nxt: np.ndarray) -> None:
    """Write the hole-filled map of ``u`` into ``out`` (both ``(H, W)`` uint8).

    ``head`` ``(256,)`` and ``nxt`` ``(H * W,)`` int32 are work arrays (overwritten). Each pixel enters
    the queue once, when first reached; it takes ``max(current level, U(p))``, and the border pixels
    start at their own value (their path to the zero frame is themselves).
    """
    height, width = u.shape
    head[:] = -1
    seen = np.zeros(height * width, np.bool_)
    for y in range(height):
        for x in range(width):
            if y == 0 or x == 0 or y == height - 1 or x == width - 1:
                p = y * width + x
                seen[p] = True
                k = u[y, x]
                nxt[p] = head[k]
                head[k] = p
    for k in range(NUM_LEVELS):
        while head[k] != -1:
            p = head[k]
            head[k] = nxt[p]
            y, x = p // width, p % width
            out[y, x] = k
            for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                qy, qx = y + dy, x + dx
                if qy < 0 or qx < 0 or qy >= height or qx >= width:
                    continue
                q = qy * width + qx
                if seen[q]:
                    continue
                seen[q] = True
                key = max(k, u[qy, qx])
                nxt[q] = head[key]
                head[key] = q


def fill_holes(maps_uint8: np.ndarray) -> np.ndarray:
    """Hole-filled copies of ``(B, H, W)`` uint8 maps (see the module docstring); for tests and tools."""
    u = np.ascontiguousarray(maps_uint8, dtype=np.uint8)
    out = np.empty_like(u)
    if u.shape[1] == 0 or u.shape[2] == 0:
        return out
    head = np.empty(NUM_LEVELS, np.int32)
    nxt = np.empty(u.shape[1] * u.shape[2], np.int32)
    for b in range(u.shape[0]):
        fill_holes_uint8(u[b], out[b], head, nxt)
    return out
