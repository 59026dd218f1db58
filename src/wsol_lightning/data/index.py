"""A compact, dataset-agnostic index of samples: image paths, labels, boxes, masks.

Every dataset module parses its own on-disk layout into a :class:`DatasetIndex`; the generic
:class:`~wsol_lightning.data.dataset.WSOLDataset` reads images through it. Storage is compact so
that ImageNet's 1.28M training lines fit in well under 1 GB: image ids are one Python list of
strings, labels and sizes are numpy arrays, and boxes are held in CSR form (one ``(M, 4)`` array
plus ``N + 1`` offsets) instead of one array per image.

Boxes are integer pixels ``x0, y0, x1, y1``, inclusive on both ends, in the ORIGINAL image frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: How mask files are decoded (see ``WSOLDataset._read_mask``).
#: ``"binary"``: grayscale instance masks, ``> 0`` = object (union over instances), plus an optional
#: ignore mask (``> 0`` = ignored unless object) -- the wsolevaluation semantics.
#: ``"trimap"``: one Oxford-Pets trimap: 1 = object, 2 = background, 3 = ignored.
#: ``"palette"``: one VOC-style indexed PNG: 0 = background, 255 = ignored, anything else = object.
#: ``"coco"``: no files; ``mask_data[i]`` holds COCO segmentations (polygons/RLE), unioned.
MASK_FORMATS = ("binary", "trimap", "palette", "coco")


class DataError(ValueError):
    """Bad or missing data; the message names the offending file (and line when known)."""


@dataclass
class DatasetIndex:
    """Samples of one split.

    Attributes:
        root: folder that image ids are relative to.
        image_ids: ``N`` relative image paths (also used as identifiers).
        labels: ``(N,)`` int64 class index; ``-1`` when unknown or multi-label (see ``multi_hot``).
        box_offsets: ``(N + 1,)`` int64 CSR offsets into ``boxes``; sample ``i`` owns
            ``boxes[box_offsets[i]:box_offsets[i + 1]]``.
        boxes: ``(M, 4)`` int32 boxes ``x0, y0, x1, y1`` inclusive, original pixels.
        sizes: ``(N, 2)`` int32 original ``(width, height)``; ``-1`` when unknown.
        multi_hot: optional ``(N, C)`` uint8 multi-hot labels.
        mask_paths: optional ``N`` tuples of mask paths relative to ``mask_root`` (empty: no mask).
        ignore_paths: optional ``N`` ignore-mask paths (``None``/``""``: no ignore region).
        mask_root: folder mask paths are relative to (defaults to ``root``).
        mask_format: one of :data:`MASK_FORMATS`.
        mask_data: optional ``N`` in-memory mask descriptions (COCO segmentations).
        boxes_from_mask: derive each sample's single box from its mask when read (the tight box
            around object + ignored pixels, e.g. Oxford-Pets trimaps); ``boxes`` is then unused.
        clip_boxes: clip boxes to the real image instead of raising when they overflow (for
            layouts whose float boxes round onto the border, e.g. CUB ``x + w == width``).
        class_names: names of the classes, index = label.
        source: file the annotations came from (named in error messages).
        box_lines: optional ``(M,)`` line of each box in its annotation file (named in errors).
        box_files: optional ``N`` annotation file of each sample's boxes when not ``source`` (one
            XML per image).

    """

    root: Path
    image_ids: list[str]
    labels: np.ndarray
    box_offsets: np.ndarray
    boxes: np.ndarray
    sizes: np.ndarray
    multi_hot: np.ndarray | None = None
    mask_paths: list[tuple[str, ...]] | None = None
    ignore_paths: list[str | None] | None = None
    mask_root: Path | None = None
    mask_format: str = "binary"
    mask_data: list | None = None
    clip_boxes: bool = False
    boxes_from_mask: bool = False
    class_names: list[str] = field(default_factory=list)
    source: str = ""
    box_lines: np.ndarray | None = None
    box_files: list[str] | None = None

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        if self.mask_root is None:
            self.mask_root = self.root
        if self.mask_format not in MASK_FORMATS:
            raise ValueError(f"mask_format must be one of {MASK_FORMATS}, got {self.mask_format!r}")
        n = len(self.image_ids)
        if len(self.labels) != n or len(self.box_offsets) != n + 1 or len(self.sizes) != n:
            raise ValueError("DatasetIndex arrays disagree in length")

    def __len__(self) -> int:
        return len(self.image_ids)

    def boxes_of(self, i: int) -> np.ndarray:
        """Return the ``(n_i, 4)`` int boxes of sample ``i`` (original pixels, inclusive)."""
        return self.boxes[self.box_offsets[i] : self.box_offsets[i + 1]]

    def box_location(self, k: int) -> str:
        """Where box ``k`` (row of ``boxes``) was read: ``file:line``, or the file, image and box number."""
        i = int(np.searchsorted(self.box_offsets, k, side="right")) - 1
        file = self.box_files[i] if self.box_files is not None else self.source
        if self.box_lines is not None:
            return f"{file}:{int(self.box_lines[k])}"
        return f"{file}: image {self.image_ids[i]!r}, box #{k - int(self.box_offsets[i])}"

    def has_masks(self, i: int) -> bool:
        """Whether sample ``i`` has at least one mask file."""
        if self.mask_data is not None:
            return len(self.mask_data[i]) > 0
        return self.mask_paths is not None and len(self.mask_paths[i]) > 0

    def subset(self, positions: Sequence[int] | np.ndarray) -> DatasetIndex:
        """Return a new index with the samples at ``positions`` (in that order)."""
        pos = np.asarray(positions, dtype=np.int64)
        counts = np.diff(self.box_offsets)[pos]
        offsets = np.zeros(len(pos) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        if len(pos) and counts.sum():
            rows = np.concatenate([np.arange(self.box_offsets[p], self.box_offsets[p + 1]) for p in pos])
            boxes = self.boxes[rows]
        else:
            rows = np.zeros(0, dtype=np.int64)
            boxes = np.zeros((0, 4), dtype=np.int32)
        return DatasetIndex(
            root=self.root,
            image_ids=[self.image_ids[p] for p in pos],
            labels=self.labels[pos],
            box_offsets=offsets,
            boxes=boxes,
            sizes=self.sizes[pos],
            multi_hot=None if self.multi_hot is None else self.multi_hot[pos],
            mask_paths=None if self.mask_paths is None else [self.mask_paths[p] for p in pos],
            ignore_paths=None if self.ignore_paths is None else [self.ignore_paths[p] for p in pos],
            mask_root=self.mask_root,
            mask_format=self.mask_format,
            mask_data=None if self.mask_data is None else [self.mask_data[p] for p in pos],
            clip_boxes=self.clip_boxes,
            boxes_from_mask=self.boxes_from_mask,
            class_names=list(self.class_names),
            source=self.source,
            box_lines=None if self.box_lines is None else self.box_lines[rows],
            box_files=None if self.box_files is None else [self.box_files[p] for p in pos],
        )


def boxes_to_csr(per_image: Sequence[Sequence[Sequence[int]]]) -> tuple[np.ndarray, np.ndarray]:
    """Pack per-image box lists into CSR ``(offsets, boxes)`` arrays."""
    counts = np.fromiter((len(b) for b in per_image), dtype=np.int64, count=len(per_image))
    offsets = np.zeros(len(per_image) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    flat = [box for boxes in per_image for box in boxes]
    arr = np.asarray(flat, dtype=np.int32).reshape(-1, 4) if flat else np.zeros((0, 4), dtype=np.int32)
    return offsets, arr


def check_unique(
    image_ids: Sequence[str], source: str | Path, lines: Sequence[int] | None = None, field: str = "image_id"
) -> None:
    """Raise :class:`DataError` naming the first duplicated id (and its line) in ``source``.

    ``lines``: line of each id in ``source`` (default: position + 1); ``field``: the column's name.
    """
    if len(set(image_ids)) == len(image_ids):
        return
    seen: dict[str, int] = {}
    numbers = lines if lines is not None else range(1, len(image_ids) + 1)
    for line, image_id in zip(numbers, image_ids):
        if image_id in seen:
            raise DataError(
                f"{source}:{line}: {field}: duplicate {image_id!r} (first on line {seen[image_id]})"
            )
        seen[image_id] = line


def check_labels(
    labels: np.ndarray, num_classes: int, source: str | Path, lines: Sequence[int] | None = None
) -> None:
    """Raise :class:`DataError` naming the first label outside ``[0, num_classes)`` and its line.

    ``lines``: line of each label in ``source`` (default: position + 1).
    """
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if len(bad):
        line = int(lines[bad[0]]) if lines is not None else int(bad[0]) + 1
        raise DataError(
            f"{source}:{line}: label: {int(labels[bad[0]])} is out of range [0, {num_classes}) "
            f"({len(bad)} bad labels in total)"
        )


def require_file(path: Path, what: str = "metadata file") -> Path:
    """Return ``path`` or raise :class:`FileNotFoundError` naming it."""
    if not path.is_file():
        raise FileNotFoundError(f"missing {what}: {path}")
    return path
