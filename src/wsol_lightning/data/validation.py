"""Up-front checks of a split's index: paths inside the data root, every box against its image.

``WSOLDataModule.setup`` runs :func:`validate_index` on every split before training starts, so a bad
annotation line costs seconds instead of a training run. The box convention is wsolevaluation's:
integer pixels ``x0, y0, x1, y1``, inclusive, within ``[0, W - 1] x [0, H - 1]``.

- An inverted box (``x1 < x0`` or ``y1 < y0``) or one wholly outside its image is an error naming
  the file and line it came from.
- A box that overflows the image by at most :data:`ROUNDING_TOLERANCE` pixel(s) on layouts whose
  boxes are rounded from floats (``DatasetIndex.clip_boxes``, e.g. CUB's ``x + w == W``) is clipped
  and counted (the datamodule warns with the count); a larger overflow, or any overflow on integer
  layouts (wsolevaluation metadata), is an error.

Image sizes not given by the annotations are read from the image headers (cheap: nothing is
decoded), only for images that have boxes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from wsol_lightning.data.index import DataError, DatasetIndex
from wsol_lightning.data.parsing import is_outside

#: Pixels a rounded float box may overflow its image and still be clipped (instead of refused).
ROUNDING_TOLERANCE = 1

#: Status codes of :func:`classify_boxes`.
BOX_OK, BOX_CLIPPED, BOX_INVERTED, BOX_OUTSIDE, BOX_OVERFLOW = range(5)


@dataclass
class ValidationReport:
    """What :func:`validate_index` found (errors raise; these are the tolerated cases).

    Attributes:
        clipped: boxes clipped to the image (rounding overflow).
        first_clipped: location of the first clipped box (``file:line``).
        unreadable: images whose header could not be read (``skip_bad``: skipped when loaded).
        sizes_read: image headers read to learn sizes.

    """

    clipped: int = 0
    first_clipped: str = ""
    unreadable: list[str] = field(default_factory=list)
    sizes_read: int = 0


def classify_boxes(
    boxes: np.ndarray, widths: np.ndarray, heights: np.ndarray, clip: bool, tolerance: int = ROUNDING_TOLERANCE
) -> tuple[np.ndarray, np.ndarray]:
    """Check inclusive boxes against their images (pure).

    Args:
        boxes: ``(M, 4)`` int ``x0, y0, x1, y1``.
        widths: ``(M,)`` width of each box's image (``<= 0``: unknown, only the origin side checked).
        heights: ``(M,)`` heights, likewise.
        clip: whether an overflow of at most ``tolerance`` pixels is clipped (else an error).
        tolerance: largest overflow (pixels) that counts as rounding.

    Returns:
        ``(boxes, status)``: ``(M, 4)`` int64 boxes (clipped where status is ``BOX_CLIPPED``) and ``(M,)``
        status codes ``BOX_OK``, ``BOX_CLIPPED``, ``BOX_INVERTED``, ``BOX_OUTSIDE``, ``BOX_OVERFLOW``.

    """
    b = np.asarray(boxes, dtype=np.int64).reshape(-1, 4).copy()
    w = np.asarray(widths, dtype=np.int64)
    h = np.asarray(heights, dtype=np.int64)
    known = (w > 0) & (h > 0)
    big = np.iinfo(np.int64).max // 4
    wmax, hmax = np.where(known, w - 1, big), np.where(known, h - 1, big)
    status = np.zeros(len(b), dtype=np.int64)
    overflow = np.maximum.reduce([-b[:, 0], -b[:, 1], b[:, 2] - wmax, b[:, 3] - hmax, np.zeros(len(b), np.int64)])
    clippable = (overflow > 0) & (overflow <= tolerance) & clip
    status[overflow > 0] = BOX_OVERFLOW
    status[clippable] = BOX_CLIPPED
    status[(b[:, 0] > wmax) | (b[:, 1] > hmax) | (b[:, 2] < 0) | (b[:, 3] < 0)] = BOX_OUTSIDE
    status[(b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1])] = BOX_INVERTED
    fix = status == BOX_CLIPPED
    if fix.any():
        b[fix, 0::2] = np.clip(b[fix, 0::2], 0, wmax[fix, None])
        b[fix, 1::2] = np.clip(b[fix, 1::2], 0, hmax[fix, None])
    return b, status


def describe_box(box: np.ndarray, status: int, width: int, height: int) -> str:
    """Human-readable reason for a refused box."""
    coords = tuple(int(v) for v in box)
    size = f"{width}x{height}" if width > 0 else "unknown size"
    if status == BOX_INVERTED:
        return f"{coords} is inverted (x1 < x0 or y1 < y0)"
    if status == BOX_OUTSIDE:
        return f"{coords} lies wholly outside its {size} image"
    return (
        f"{coords} extends outside its {size} image (boxes are inclusive pixels within "
        f"[0, W-1] x [0, H-1]; more than {ROUNDING_TOLERANCE} px of overflow is not rounding)"
    )


def image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` from the image header (nothing decoded).

    Raises:
        DataError: missing or unreadable file (named).

    """
    if not path.is_file():
        raise DataError(f"missing image: {path}")
    try:
        with Image.open(path) as im:
            return int(im.size[0]), int(im.size[1])
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:
        raise DataError(f"unreadable image: {path} ({err})") from err


def check_paths(index: DatasetIndex) -> None:
    """Refuse image ids and mask paths that leave their root (a safety net behind the parsers)."""
    named = [("image id", index.image_ids)]
    if index.mask_paths is not None:
        named.append(("mask path", [p for paths in index.mask_paths for p in paths]))
    if index.ignore_paths is not None:
        named.append(("ignore path", [p or "" for p in index.ignore_paths]))
    for what, paths in named:
        bad = next((p for p in paths if p and (".." in p or p[0] in "/\\~" or ":" in p) and is_outside(p)), None)
        if bad is not None:
            raise DataError(
                f"{index.source}: {what}: {bad!r} points outside the data root (absolute path or '..')"
            )


def fill_sizes(index: DatasetIndex, skip_bad: bool, report: ValidationReport) -> None:
    """Read the header size of every image that has boxes but no known size (in place)."""
    counts = np.diff(index.box_offsets)
    for i in np.flatnonzero((counts > 0) & (index.sizes[:, 0] <= 0)).tolist():
        path = index.root / index.image_ids[i]
        try:
            index.sizes[i] = image_size(path)
            report.sizes_read += 1
        except DataError as err:
            if not skip_bad:
                raise DataError(f"{err} (listed in {index.source}; pass skip_bad=True to skip it)") from err
            report.unreadable.append(str(path))


def validate_index(index: DatasetIndex, skip_bad: bool = False, read_sizes: bool = True) -> ValidationReport:
    """Check every path and box of ``index``; clip rounding overflows in place.

    ``read_sizes``: read the header of images with boxes but no known size (else those boxes are
    checked on their origin side only).

    Raises:
        DataError: a path outside the root, an unreadable image with boxes (unless ``skip_bad``), an
            inverted box, a box outside its image -- named ``file:line: box: ...`` with the count of
            further bad boxes.

    """
    report = ValidationReport()
    check_paths(index)
    if index.boxes_from_mask or not len(index.boxes):
        return report
    if read_sizes:
        fill_sizes(index, skip_bad, report)
    counts = np.diff(index.box_offsets)
    widths, heights = np.repeat(index.sizes[:, 0], counts), np.repeat(index.sizes[:, 1], counts)
    boxes, status = classify_boxes(index.boxes, widths, heights, clip=index.clip_boxes)
    bad = np.flatnonzero(status >= BOX_INVERTED)
    if len(bad):
        k = int(bad[0])
        more = f" ({len(bad) - 1} more bad boxes in this split)" if len(bad) > 1 else ""
        reason = describe_box(index.boxes[k], int(status[k]), int(widths[k]), int(heights[k]))
        raise DataError(f"{index.box_location(k)}: box: {reason}{more}")
    clipped = np.flatnonzero(status == BOX_CLIPPED)
    if len(clipped):
        report.clipped, report.first_clipped = len(clipped), index.box_location(int(clipped[0]))
        index.boxes = boxes.astype(index.boxes.dtype)
    return report
