"""Mask files to the ``(H, W)`` uint8 object mask of a sample (1 object, 0 background, 255 ignored).

The decoding rules (one per :data:`~wsol_lightning.data.index.MASK_FORMATS` entry) and the tight box of a mask.
8-bit grayscale PNGs, the common case (Oxford-Pets trimaps, wsolevaluation's CUB and OpenImages masks), are
decoded by OpenCV, which gives the same array as Pillow for that format and is faster; every other file
(palette, 1/2/4/16-bit, transparency, not a PNG) goes through Pillow.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from wsol_lightning.data.index import DataError
from wsol_lightning.data.parsing import decode_segmentations
from wsol_lightning.types import MASK_IGNORE, MASK_OBJECT

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_gray8(data: bytes) -> bool:
    """Whether ``data`` is a PNG of 8-bit grayscale (colour type 0) without a transparency chunk."""
    if len(data) < 33 or data[:8] != PNG_SIGNATURE or data[12:16] != b"IHDR":
        return False
    bit_depth, colour_type, _, _, interlace = struct.unpack(">BBBBB", data[24:29])
    if bit_depth != 8 or colour_type != 0 or interlace:
        return False
    idat = data.find(b"IDAT")
    return data.find(b"tRNS", 0, idat if idat > 0 else len(data)) < 0


def read_gray(path: Path, palette: bool = False) -> np.ndarray:
    """Read a mask file as ``(H, W)`` uint8 (palette indices kept when ``palette``).

    Any other mode is converted to 8-bit luminance by Pillow (``convert("L")``).

    Raises:
        DataError: missing, unreadable or truncated file (named in the message).

    """
    if not path.is_file():
        raise DataError(f"missing mask: {path}")
    data = path.read_bytes()
    if _png_gray8(data):
        mask = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if mask is not None and mask.ndim == 2 and mask.dtype == np.uint8:
            return mask
    try:
        with Image.open(io.BytesIO(data)) as im:  # the bytes already read: no second read of the file
            if palette and im.mode == "P":
                return np.array(im)
            return np.array(im if im.mode == "L" else im.convert("L"))
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:
        raise DataError(f"unreadable or truncated mask: {path} ({err})") from err


def mask_box(mask: np.ndarray | None) -> np.ndarray:
    """Tight inclusive box ``(1, 4)`` around the non-zero pixels of a uint8 mask (``(0, 4)`` if none)."""
    if mask is None:
        return np.zeros((0, 4), dtype=np.int64)
    x, y, w, h = cv2.boundingRect(np.ascontiguousarray(mask, dtype=np.uint8))
    if not w:
        return np.zeros((0, 4), dtype=np.int64)
    return np.array([[x, y, x + w - 1, y + h - 1]], dtype=np.int64)


def _lut(pairs: dict[int, int]) -> np.ndarray:
    table = np.zeros(256, dtype=np.uint8)
    for value, label in pairs.items():
        table[value] = label
    return table


#: Trimap values -> mask values: 1 object, 2 background, 3 ignored, anything else background.
TRIMAP_LUT = _lut({1: MASK_OBJECT, 3: MASK_IGNORE})
#: Palette indices -> mask values: 0 background, 255 ignored, anything else object.
PALETTE_LUT = _lut({v: MASK_OBJECT for v in range(1, 255)} | {255: MASK_IGNORE})


def mask_files(index: Any, i: int) -> list[tuple[Path, bool]]:
    """The ``(path, is_ignore_mask)`` files of sample ``i`` of a :class:`DatasetIndex` (empty: no mask)."""
    if not index.has_masks(i) or index.mask_format == "coco":
        return []
    root = Path(index.mask_root)
    files = [(root / p, False) for p in index.mask_paths[i]]
    ignore = index.ignore_paths[i] if index.ignore_paths is not None else None
    if ignore:
        files.append((root / ignore, True))
    return files


def decode_mask(index: Any, i: int, width: int, height: int) -> np.ndarray | None:
    """Object mask ``(height, width)`` uint8 of sample ``i`` at its original size, or ``None`` (no mask).

    ``binary``: union of ``> 0`` over the files, minus the ignore file's ``> 0`` (ignored unless object);
    ``trimap``: 1 object, 3 ignored; ``palette``: 255 ignored, other non-zero indices object; ``coco``: the
    union of the segmentations.

    Raises:
        DataError: a missing or unreadable file, or one whose size differs from the image's (both named).

    """
    if not index.has_masks(i):
        return None
    if index.mask_format == "coco":
        return decode_segmentations(index.mask_data[i], width, height).astype(np.uint8) * MASK_OBJECT
    files = mask_files(index, i)
    table = {"trimap": TRIMAP_LUT, "palette": PALETTE_LUT}.get(index.mask_format)
    obj: np.ndarray | None = None
    ignore: np.ndarray | None = None
    for path, is_ignore in files:
        m = read_gray(path, palette=index.mask_format == "palette")
        if m.shape != (height, width):
            raise DataError(
                f"mask size mismatch: {path} is {m.shape[1]}x{m.shape[0]}, image "
                f"{index.image_ids[i]} is {width}x{height}"
            )
        if table is not None and len(files) == 1:
            return cv2.LUT(m, table)  # one file: straight to mask values
        if table is not None:
            mapped = cv2.LUT(m, table)
            part_obj, part_ignore = mapped == MASK_OBJECT, mapped == MASK_IGNORE
        elif is_ignore:
            part_obj, part_ignore = None, m > 0
        else:
            part_obj, part_ignore = m > 0, None
        if part_obj is not None:
            obj = part_obj if obj is None else obj | part_obj
        if part_ignore is not None:
            ignore = part_ignore if ignore is None else ignore | part_ignore
    mask = np.zeros((height, width), dtype=np.uint8)
    if ignore is not None:
        mask[ignore] = MASK_IGNORE
    if obj is not None:
        mask[obj] = MASK_OBJECT
    return mask
