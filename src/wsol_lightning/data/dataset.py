"""One generic Dataset over a :class:`~wsol_lightning.data.index.DatasetIndex`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from wsol_lightning.data import transforms as T
from wsol_lightning.data.index import DataError, DatasetIndex
from wsol_lightning.data.parsing import decode_segmentations
from wsol_lightning.data.validation import BOX_INVERTED, classify_boxes, describe_box
from wsol_lightning.types import MASK_IGNORE, MASK_OBJECT

log = logging.getLogger(__name__)


#: Background that transparent pixels (RGBA, LA, palette with transparency) are composited onto.
ALPHA_BACKGROUND = (255, 255, 255)


def _to_rgb(im: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB without saturating or dropping what a viewer shows.

    * 16/32-bit integer grayscale (``I;16*``, ``I``): scaled to 8 bits by ``v / 257`` (65535 -> 255), as
      OpenCV does; an ``I`` image whose values all fit in 8 bits is kept as is. Pillow's own ``convert``
      clips these at 255 (a 16-bit PNG read 96% white).
    * float (``F``): values in [0, 1] are scaled by 255, others clipped to [0, 255].
    * transparency (``RGBA``, ``LA``, ``PA``, ``P``/``L``/``RGB`` with a ``transparency`` entry): composited onto
      :data:`ALPHA_BACKGROUND` (dropping alpha shows whatever colour hides under transparent pixels).
    * palette (``P``), CMYK, YCbCr, LAB, 1-bit: Pillow's conversion (the palette's colours; Adobe CMYK JPEGs are
      un-inverted by Pillow's decoder).
    """
    mode = im.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        values = np.asarray(im, dtype=np.float64)
        if mode == "F":
            values = values * 255.0 if values.size and np.nanmax(values) <= 1.0 else values
        elif mode.startswith("I;16") or (values.size and values.max() > 255):
            values = values / 257.0
        gray = np.clip(np.nan_to_num(np.rint(values)), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB")
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*ALPHA_BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im if mode == "RGB" else im.convert("RGB")


def read_image(path: Path) -> np.ndarray:
    """Read an image as ``(H, W, 3)`` uint8 RGB, whatever its real format (GIF, RGBA PNG, ...).

    16-bit grayscale is scaled to 8 bits (not clipped), transparency is composited onto white, palette and
    CMYK images are converted to their colours (see :func:`_to_rgb`).

    Raises:
        DataError: missing, unreadable or truncated file (named in the message).

    """
    return read_image_reduced(path, None)[0]


def read_image_reduced(path: Path, min_size: tuple[int, int] | None) -> tuple[np.ndarray, tuple[int, int]]:
    """Like :func:`read_image`, a JPEG decoded at reduced size when that still covers ``min_size``.

    libjpeg scales by 1/2, 1/4 or 1/8 while decoding (PIL ``Image.draft``): the largest reduction whose
    result is at least ``min_size = (width, height)`` on both sides is used, so an image later resized to
    ``min_size`` is never upsampled. Other formats, and ``min_size=None``, decode at full size.

    Returns:
        The ``(h, w, 3)`` uint8 RGB array and the file's full ``(width, height)``.

    Raises:
        DataError: missing, unreadable or truncated file (named in the message).

    """
    image, size = open_rgb(path, min_size)
    return np.array(image), size


def open_rgb(path: Path, min_size: tuple[int, int] | None = None) -> tuple[Image.Image, tuple[int, int]]:
    """The decoded RGB PIL image of :func:`read_image_reduced` (no numpy copy) and the file's full size."""
    if not path.is_file():
        raise DataError(f"missing image: {path}")
    try:
        with Image.open(path) as im:
            size = im.size
            if min_size is not None and im.format == "JPEG":
                im.draft(im.mode, min_size)
            image = _to_rgb(im)
            image.load()  # decoded while the file is open
            return image, size
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(f"unreadable or truncated image: {path} ({err})") from err


def read_gray(path: Path, palette: bool = False) -> np.ndarray:
    """Read a mask PNG as ``(H, W)`` uint8 (palette indices kept when ``palette``)."""
    if not path.is_file():
        raise DataError(f"missing mask: {path}")
    try:
        with Image.open(path) as im:
            if palette and im.mode == "P":
                return np.array(im)
            return np.array(im if im.mode == "L" else im.convert("L"))
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:
        raise DataError(f"unreadable or truncated mask: {path} ({err})") from err


def mask_box(mask: np.ndarray | None) -> np.ndarray:
    """Tight inclusive box ``(1, 4)`` around the non-background pixels of a mask (``(0, 4)`` if none)."""
    if mask is None or not mask.any():
        return np.zeros((0, 4), dtype=np.int64)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return np.array([[cols[0], rows[0], cols[-1], rows[-1]]], dtype=np.int64)


class WSOLDataset(Dataset):
    """Images, labels, boxes and masks of one split.

    Samples are dicts with keys ``image`` (``(3, H, W)`` float), ``label`` (int64 scalar),
    ``multi_hot`` (multi-label data), ``boxes`` (``(n, 4)`` int64, inclusive, in the frame of
    ``image``), ``mask`` (``(H, W)`` uint8: 1 object, 0 background, 255 ignored; when the sample has
    masks), ``index``, ``image_id``, ``orig_size`` (``(2,)`` int64 ``width, height``).

    Args:
        index: the samples.
        transform: an albumentations pipeline (``None``: the image stays at its original size,
            un-normalised, as float in [0, 1]).
        train: ``True``: boxes and masks go through ``transform`` (see
            :func:`~wsol_lightning.data.transforms.train_transform`). ``False``: ``transform`` sees
            the image only and boxes/masks are rescaled exactly as wsolevaluation does.
        skip_bad: count and log bad samples and return ``None`` (dropped by the collate) instead of
            raising.
        seed: seed of the choice of ``label`` among the positives of multi-label samples: a new,
            reproducible draw at every step in training (from the sampler's per-epoch sample seed, as the
            official BAS WSSS code draws one positive class per step), a fixed one in evaluation.
        draft_size: training only: decode JPEGs at reduced size while they still cover this
            ``(width, height)`` (the train resize; :func:`read_image_reduced`); boxes follow the decoded
            frame, masks stay at full size (the train pipeline resizes them straight to the resize side).
            ``None``: full-size decoding. Evaluation always decodes at full size.

    """

    def __init__(
        self,
        index: DatasetIndex,
        transform: Any | None = None,
        *,
        train: bool = False,
        skip_bad: bool = False,
        seed: int = 0,
        draft_size: tuple[int, int] | None = None,
    ) -> None:
        self.index = index
        self.draft_size = draft_size
        self.transform = transform
        self.train = train
        self.skip_bad = skip_bad
        self.seed = seed
        self.num_skipped = 0

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any] | None:
        """Load sample ``key``: an index, or ``(index, augmentation_seed)`` from the train sampler."""
        i, seed = (key, None) if isinstance(key, (int, np.integer)) else (int(key[0]), int(key[1]))
        if seed is not None and self.train and hasattr(self.transform, "set_random_seed"):
            self.transform.set_random_seed(seed)
        try:
            return self._load(i, seed)
        except DataError as err:
            if not self.skip_bad:
                raise
            self.num_skipped += 1
            log.warning("skipping sample %d (%d skipped so far): %s", i, self.num_skipped, err)
            return None

    def _label(self, i: int, step_seed: int | None = None) -> int:
        idx = self.index
        if idx.multi_hot is None or idx.labels[i] >= 0:
            return int(idx.labels[i])
        positives = np.flatnonzero(idx.multi_hot[i])
        if not len(positives):
            return -1
        key = (self.seed, i) if step_seed is None or not self.train else (self.seed, i, step_seed)
        return int(np.random.default_rng(key).choice(positives))

    def _checked_boxes(self, i: int, path: Path, width: int, height: int) -> np.ndarray:
        boxes = self.index.boxes_of(i).astype(np.int64)
        n = len(boxes)
        boxes, status = classify_boxes(boxes, np.full(n, width), np.full(n, height), clip=self.index.clip_boxes)
        bad = np.flatnonzero(status >= BOX_INVERTED)
        if len(bad):
            k = int(self.index.box_offsets[i]) + int(bad[0])
            reason = describe_box(self.index.boxes[k], int(status[bad[0]]), width, height)
            raise DataError(f"{self.index.box_location(k)}: box: {reason} (image {path})")
        return boxes

    def read_mask(self, i: int, width: int, height: int) -> np.ndarray | None:
        """Object mask ``(height, width)`` uint8 of sample ``i`` at its original size, or ``None``.

        1 = object, 0 = background, 255 = ignored.
        """
        return self._read_mask(i, width, height)

    def _read_mask(self, i: int, width: int, height: int) -> np.ndarray | None:
        idx = self.index
        if not idx.has_masks(i):
            return None
        if idx.mask_format == "coco":
            return decode_segmentations(idx.mask_data[i], width, height).astype(np.uint8) * MASK_OBJECT
        root = Path(idx.mask_root)  # type: ignore[arg-type]
        obj = np.zeros((height, width), dtype=bool)
        ignore = np.zeros((height, width), dtype=bool)
        paths = [(root / p, False) for p in idx.mask_paths[i]]  # type: ignore[index]
        ign = idx.ignore_paths[i] if idx.ignore_paths is not None else None
        if ign:
            paths.append((root / ign, True))
        for path, is_ignore in paths:
            m = read_gray(path, palette=idx.mask_format == "palette")
            if m.shape != (height, width):
                raise DataError(
                    f"mask size mismatch: {path} is {m.shape[1]}x{m.shape[0]}, image "
                    f"{idx.image_ids[i]} is {width}x{height}"
                )
            if idx.mask_format == "trimap":
                obj |= m == 1
                ignore |= m == 3
            elif idx.mask_format == "palette":
                obj |= (m > 0) & (m != MASK_IGNORE)
                ignore |= m == MASK_IGNORE
            elif is_ignore:
                ignore |= m > 0
            else:
                obj |= m > 0
        mask = obj.astype(np.uint8) * MASK_OBJECT
        mask[ignore & ~obj] = MASK_IGNORE
        return mask

    def _read_semantic(self, i: int) -> np.ndarray | None:
        """Class-indexed mask of a palette annotation (0 background, c + 1 class c, 255 ignored)."""
        idx = self.index
        if idx.mask_format != "palette" or not idx.has_masks(i):
            return None
        return read_gray(Path(idx.mask_root) / idx.mask_paths[i][0], palette=True)  # type: ignore[index]

    def _load(self, i: int, step_seed: int | None = None) -> dict[str, Any]:
        idx = self.index
        path = idx.root / idx.image_ids[i]
        draft = self.draft_size if self.train and self.transform is not None else None
        image: Any
        if not self.train and isinstance(self.transform, T.EvalTransform):
            image, (width, height) = open_rgb(path)  # the eval pipeline starts from PIL: no array round trip
        else:
            image, (width, height) = read_image_reduced(path, draft)
        known_w, known_h = (int(v) for v in idx.sizes[i])
        if known_w > 0 and (known_w, known_h) != (width, height):
            raise DataError(
                f"image {path} is {width}x{height} but {idx.source} says {known_w}x{known_h} "
                "(renamed or replaced file?)"
            )
        mask = self._read_mask(i, width, height)
        semantic = self._read_semantic(i) if not self.train else None
        if idx.boxes_from_mask:
            boxes = mask_box(mask)
        else:
            boxes = self._checked_boxes(i, path, width, height)
        if self.transform is None:
            tensor = torch.from_numpy(image).permute(2, 0, 1).float().div_(255)
        elif self.train:
            albu_boxes = T.to_albu_boxes(boxes)
            if image.shape[:2] != (height, width):  # decoded at reduced size: boxes into its frame
                albu_boxes *= np.array([image.shape[1] / width, image.shape[0] / height] * 2, dtype=np.float32)
            kwargs: dict[str, Any] = {"image": image, "bboxes": albu_boxes}
            kwargs[T.BOX_FIELD] = np.zeros(len(boxes), dtype=np.int64)
            if mask is not None:
                kwargs["mask"] = mask
            out = self.transform(**kwargs)
            tensor = out["image"]
            boxes = T.from_albu_boxes(out["bboxes"], tensor.shape[-1], tensor.shape[-2])
            if mask is not None:
                mask = np.asarray(out["mask"], dtype=np.uint8)
        else:
            tensor = self.transform(image=image)["image"]
            new_size = (int(tensor.shape[-1]), int(tensor.shape[-2]))
            boxes = T.scale_boxes(boxes, (width, height), new_size)
            if mask is not None:
                mask = T.resize_mask(mask, new_size)
            if semantic is not None:
                semantic = T.resize_mask(semantic, new_size)
        sample: dict[str, Any] = {
            "image": tensor,
            "label": torch.tensor(self._label(i, step_seed), dtype=torch.int64),
            "boxes": torch.as_tensor(boxes, dtype=torch.int64).reshape(-1, 4),
            "index": torch.tensor(i, dtype=torch.int64),
            "image_id": idx.image_ids[i],
            "orig_size": torch.tensor([width, height], dtype=torch.int64),
        }
        if idx.multi_hot is not None:
            sample["multi_hot"] = torch.as_tensor(idx.multi_hot[i], dtype=torch.float32)
        if mask is not None:
            sample["mask"] = torch.from_numpy(np.ascontiguousarray(mask))
        if semantic is not None and self.transform is not None:
            sample["semantic"] = torch.from_numpy(np.ascontiguousarray(semantic))
        return sample
