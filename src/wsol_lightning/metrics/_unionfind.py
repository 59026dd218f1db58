"""Numba primitives of the threshold sweeps: pixel order, neighbour masks, lookup tables, union-find.

A sweep switches the pixels of a uint8 map ``U`` on one value at a time (foreground: 255 down to 1, on
iff ``U > L``; background: 0 up to 254, off iff ``U <= L``) and, inside a value, in raster order. So
whether a neighbour ``q`` of ``p`` is already on when ``p`` arrives is known before the sweep from the
values alone: a neighbour that comes earlier in raster order (N, NE, NW, W) is on when
``U(q) >= U(p)`` (``<=`` for the background), a later one when ``U(q) > U(p)`` (``<``). One raster pass
(:func:`prepare`) writes that 8-bit neighbour mask for every pixel; the sweep then only reads it.

Two on-neighbours that touch each other are already in the same set, so :data:`REPS8` (8-connected
foreground) and :data:`REPS4` (4-connected background, where two 4-neighbours touch through the
diagonal pixel between them) give one representative per group of the mask: usually one ``find``
per pixel. :data:`AREA2` is the change, in half pixels, of the summed 2x2-window area (a window whose
four pixels are on counts 1, three on 1/2) when ``p`` switches on: ``cv2.contourArea`` of an outer
contour is that sum over the filled component (see :mod:`._sweep`). :data:`EULER4` is the change of
Gray's bit-quad sum ``n(1 on) - n(3 on) - 2 n(diagonal pair)``, four times the Euler number (components
minus holes) of an 8-connected set: a component has no hole iff its sum is 4.

Coordinates are padded: pixel ``(y, x)`` is ``(y + 1) * (W + 2) + x + 1``, so the one-pixel frame
needs no bounds checks.
"""

from __future__ import annotations

import numpy as np

from wsol_lightning.metrics._jit import njit

NUM_LEVELS = 256
RING = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))  # N NE E SE S SW W NW


def _groups(mask: int, members: tuple[int, ...], touching: dict[tuple[int, int], int]) -> list[int]:
    """One representative (the first) per connected group of the on ``members`` of an 8-bit ``mask``.

    ``touching[(a, b)] = c`` says ``a`` and ``b`` are connected when bit ``c`` is on (-1: always).
    """
    on = [i for i in members if mask >> i & 1]
    reps, seen = [], set()
    for start in on:
        if start in seen:
            continue
        reps.append(start)
        stack = [start]
        seen.add(start)
        while stack:
            a = stack.pop()
            for b in on:
                bridge = touching.get((a, b), touching.get((b, a)))
                if b not in seen and bridge is not None and (bridge < 0 or mask >> bridge & 1):
                    seen.add(b)
                    stack.append(b)
    return reps


def _quad_euler(a: int, d: int, b: int, p: int) -> int:
    """Gray's bit-quad term of a 2x2 window (8-connected foreground): 1 pixel on 1, 3 on -1, diagonal pair -2."""
    count = a + d + b + p
    if count == 1:
        return 1
    if count == 3:
        return -1
    return -2 if count == 2 and a == b else 0  # two on and a == b: the pair is (a, b) or (d, p), a diagonal


def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The lookup tables, indexed by the 8-bit neighbour mask.

    ``REPS8``, ``REPS4`` ``(256, 5)`` int64 (column 0 = group count, then neighbour indices), ``AREA2`` and
    ``EULER4`` (the change of 4 x the Euler number of the pixel's component when it switches on).
    """
    eight = {(a, b): -1 for a in range(8) for b in range(a + 1, 8)
             if max(abs(RING[a][0] - RING[b][0]), abs(RING[a][1] - RING[b][1])) == 1}
    four = {(0, 2): 1, (2, 4): 3, (4, 6): 5, (6, 0): 7}  # N~E through NE, E~S through SE, ...
    reps8 = np.zeros((256, 5), np.int64)
    reps4 = np.zeros((256, 5), np.int64)
    area2 = np.zeros(256, np.int64)
    euler4 = np.zeros(256, np.int64)
    windows = ((0, 7, 6), (0, 1, 2), (2, 3, 4), (4, 5, 6))  # p's 2x2 windows: (side, corner, side) neighbours
    for mask in range(256):
        for table, members, touching in ((reps8, tuple(range(8)), eight), (reps4, (0, 2, 4, 6), four)):
            reps = _groups(mask, members, touching)
            table[mask, 0] = len(reps)
            table[mask, 1:1 + len(reps)] = reps
        area2[mask] = sum(sum(mask >> i & 1 for i in w) >= 2 for w in windows)
        bits = [[mask >> i & 1 for i in w] for w in windows]
        euler4[mask] = sum(_quad_euler(*w, 1) - _quad_euler(*w, 0) for w in bits)
    return reps8, reps4, area2, euler4


REPS8, REPS4, AREA2, EULER4 = _tables()


@njit(cache=True, nogil=True)
def ring_offsets(wp: int) -> np.ndarray:
    """Padded index offsets of the 8 neighbours in :data:`RING` order for a padded row length ``wp``."""
    return np.array([-wp, -wp + 1, 1, wp + 1, wp, wp - 1, -1, -wp - 1], np.int64)


@njit(cache=True, nogil=True)
def prepare(u: np.ndarray, order: np.ndarray, ox: np.ndarray, oy: np.ndarray, starts: np.ndarray,
            mask_fg: np.ndarray, mask_bg: np.ndarray, background: bool) -> None:
    """Sort the pixels of ``u`` ``(H, W)`` uint8 by value and write their neighbour masks.

    Writes ``order`` / ``ox`` / ``oy`` ``(H * W,)`` (padded index, padded x and y, by increasing value,
    raster order inside a value), ``starts`` ``(257,)`` (value ``v`` owns ``order[starts[v]:starts[v+1]]``),
    ``mask_fg`` (padded, bit ``i`` = the :data:`RING` neighbour ``i`` is on when the pixel switches on in the
    descending sweep; the frame is never on) and, when ``background``, ``mask_bg`` (the same for the
    ascending sweep; the frame is always on).
    """
    height, width = u.shape
    wp = width + 2
    counts = np.zeros(NUM_LEVELS + 1, np.int64)
    for y in range(height):
        for x in range(width):
            counts[u[y, x] + 1] += 1
    for v in range(NUM_LEVELS):
        counts[v + 1] += counts[v]
    starts[:] = counts
    pad = np.full((height + 2, wp), -1, np.int16)
    for y in range(height):
        for x in range(width):
            v = u[y, x]
            k = counts[v]
            counts[v] = k + 1
            order[k] = (y + 1) * wp + x + 1
            ox[k] = x + 1
            oy[k] = y + 1
            pad[y + 1, x + 1] = v
    for y in range(1, height + 1):
        up, row, down = pad[y - 1], pad[y], pad[y + 1]
        for x in range(1, width + 1):
            v = row[x]
            mask_fg[y * wp + x] = (int(up[x] >= v) | int(up[x + 1] >= v) << 1 | int(row[x + 1] > v) << 2
                                   | int(down[x + 1] > v) << 3 | int(down[x] > v) << 4
                                   | int(down[x - 1] > v) << 5 | int(row[x - 1] >= v) << 6
                                   | int(up[x - 1] >= v) << 7)
    if not background:
        return
    for y in range(1, height + 1):
        up, row, down = pad[y - 1], pad[y], pad[y + 1]
        for x in range(1, width + 1):
            v = row[x]
            mask_bg[y * wp + x] = (int(up[x] <= v) | int(up[x + 1] <= v) << 1 | int(row[x + 1] < v) << 2
                                   | int(down[x + 1] < v) << 3 | int(down[x] < v) << 4
                                   | int(down[x - 1] < v) << 5 | int(row[x - 1] <= v) << 6
                                   | int(up[x - 1] <= v) << 7)


@njit(cache=True, nogil=True)
def find(parent: np.ndarray, x: int) -> int:
    """Root of ``x``'s set, compressing the path."""
    root = x
    while parent[root] != root:
        root = parent[root]
    while parent[x] != root:
        nxt = parent[x]
        parent[x] = root
        x = nxt
    return root


@njit(cache=True, nogil=True)
def link(parent: np.ndarray, box: np.ndarray, area: np.ndarray, first: np.ndarray, euler: np.ndarray, ra: int,
         rb: int) -> tuple[int, int]:
    """Merge the sets of roots ``ra != rb``; return (new root, absorbed root).

    The older set (smaller id) stays root: no size to keep per pixel, the hole sweep's frame (id 0) always
    wins, and path compression keeps the trees flat.
    """
    if ra > rb:
        ra, rb = rb, ra
    parent[rb] = ra
    area[ra] += area[rb]
    euler[ra] += euler[rb]
    first[ra] = min(first[ra], first[rb])
    box[ra, 0] = min(box[ra, 0], box[rb, 0])
    box[ra, 1] = min(box[ra, 1], box[rb, 1])
    box[ra, 2] = max(box[ra, 2], box[rb, 2])
    box[ra, 3] = max(box[ra, 3], box[rb, 3])
    return ra, rb


@njit(cache=True, nogil=True)
def remove_active(active: np.ndarray, pos: np.ndarray, n_active: int, r: int) -> int:
    """Drop root ``r`` from the active list (swap with the last); return the new length."""
    i = pos[r]
    last = active[n_active - 1]
    active[i] = last
    pos[last] = i
    pos[r] = -1
    return n_active - 1
