"""Eval-frame masks kept after their first read, so per-epoch validation decodes each mask file once.

An entry holds the mask already resized to the eval frame, bit-packed (values 0, 1 and 255: one bit plane for
the object, one for the ignored pixels, about 6 KB each at 224 px), and the tight box of the full-size mask. It
is keyed by the sample and checked on every read against the ``(mtime, size)`` of each of its mask files and the
image/target sizes: a replaced or edited file is read again. The cache stops growing at ``max_bytes``.

It lives in the dataset object, so in the process that loads: the main process (``num_workers=0``) or each
persistent DataLoader worker (each keeps the samples it loads; with an in-order sampler a worker gets the same
batches every epoch).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wsol_lightning.types import MASK_IGNORE, MASK_OBJECT


@dataclass(frozen=True)
class _Entry:
    key: tuple
    shape: tuple[int, int]
    objects: np.ndarray
    ignored: np.ndarray | None
    box: np.ndarray | None

    @property
    def nbytes(self) -> int:
        return self.objects.nbytes + (self.ignored.nbytes if self.ignored is not None else 0) + 64


def file_signature(paths: list[Path]) -> tuple[tuple[int, int], ...]:
    """``(mtime_ns, size)`` of each file (``(-1, -1)`` for a missing one, so it is never a hit)."""
    out = []
    for path in paths:
        try:
            st = os.stat(path)
            out.append((st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((-1, -1))
    return tuple(out)


class MaskCache:
    """Resized eval masks (and full-size mask boxes) of one split, by sample position.

    Args:
        max_bytes: stop adding entries once the packed masks take this many bytes (0: never cache).

    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.entries: dict[int, _Entry] = {}
        self.nbytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, i: int, key: tuple) -> tuple[np.ndarray, np.ndarray | None] | None:
        """The ``(mask, box)`` stored for sample ``i`` under ``key``, or ``None`` (never stored, or stale)."""
        entry = self.entries.get(i)
        if entry is None or entry.key != key:
            self.misses += 1
            return None
        self.hits += 1
        h, w = entry.shape
        mask = np.unpackbits(entry.objects, count=h * w).reshape(h, w)  # 0/1 = MASK_OBJECT
        if entry.ignored is not None:
            mask += np.unpackbits(entry.ignored, count=h * w).reshape(h, w) * np.uint8(MASK_IGNORE)
        return mask, entry.box

    def put(self, i: int, key: tuple, mask: np.ndarray, box: np.ndarray | None) -> None:
        """Store the eval-frame ``(H, W)`` uint8 ``mask`` and full-size ``box`` of sample ``i``.

        The mask holds only 0, 1 and 255 (what :func:`~wsol_lightning.data.masks.decode_mask` gives): the two
        bit planes keep 1 and 255, anything else reads back as 0.
        """
        old = self.entries.pop(i, None)
        if old is not None:
            self.nbytes -= old.nbytes
        ignored = mask == MASK_IGNORE
        entry = _Entry(key, (int(mask.shape[0]), int(mask.shape[1])), np.packbits(mask == MASK_OBJECT),
                       np.packbits(ignored) if ignored.any() else None, box)
        if self.nbytes + entry.nbytes <= self.max_bytes:
            self.entries[i] = entry
            self.nbytes += entry.nbytes
