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
from wsol_lightning.data.mask_cache import MaskCache, file_signature
from wsol_lightning.data.masks import decode_mask, mask_box, mask_files, read_gray
from wsol_lightning.data.validation import BOX_INVERTED, classify_boxes, describe_box

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


class WSOLDataset(Dataset):
    """Images, labels, boxes and masks of one split.

    Samples are dicts with keys ``image`` (``(3, H, W)`` float), ``label`` (int64 scalar),
    ``multi_hot`` (multi-label data), ``boxes`` (``(n, 4)`` int64, inclusive, in the frame of
    ``image``), ``mask`` (``(H, W)`` uint8: 1 object, 0 background, 255 ignored; when the sample has
    masks), ``index``, ``image_id``, ``orig_size`` (``(2,)`` int64 ``width, height``). Without
    ``targets`` there is no ``boxes``, ``mask`` nor ``semantic`` key.

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
        targets: read boxes and masks. ``False`` (what the datamodules give the train split: WSOL trains on
            image labels only) never opens a mask file; ``transform`` then gets the image alone.
        mask_cache_bytes: evaluation only: keep each sample's resized mask after its first read, up to this
            many bytes (:class:`~wsol_lightning.data.mask_cache.MaskCache`; 0: decode every time).

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
        targets: bool = True,
        mask_cache_bytes: int = 0,
    ) -> None:
        self.index = index
        self.draft_size = draft_size
        self.transform = transform
        self.train = train
        self.skip_bad = skip_bad
        self.seed = seed
        self.targets = targets
        self.mask_cache = MaskCache(mask_cache_bytes) if mask_cache_bytes > 0 and not train else None
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
        return decode_mask(self.index, i, width, height)

    def _read_semantic(self, i: int) -> np.ndarray | None:
        """Class-indexed mask of a palette annotation (0 background, c + 1 class c, 255 ignored)."""
        idx = self.index
        if idx.mask_format != "palette" or not idx.has_masks(i):
            return None
        return read_gray(Path(idx.mask_root) / idx.mask_paths[i][0], palette=True)  # type: ignore[index]

    def _read_image(self, i: int) -> tuple[Any, int, int]:
        """The decoded image (PIL for the eval pipeline, else an array) and the file's full size, checked."""
        idx = self.index
        path = idx.root / idx.image_ids[i]
        if not self.train and isinstance(self.transform, T.EvalTransform):
            image, (width, height) = open_rgb(path)  # the eval pipeline starts from PIL: no array round trip
        else:
            draft = self.draft_size if self.train and self.transform is not None else None
            image, (width, height) = read_image_reduced(path, draft)
        known_w, known_h = (int(v) for v in idx.sizes[i])
        if known_w > 0 and (known_w, known_h) != (width, height):
            raise DataError(
                f"image {path} is {width}x{height} but {idx.source} says {known_w}x{known_h} "
                "(renamed or replaced file?)"
            )
        return image, width, height

    def _boxes(self, i: int, mask: np.ndarray | None, width: int, height: int) -> np.ndarray:
        if self.index.boxes_from_mask:
            return mask_box(mask)
        return self._checked_boxes(i, self.index.root / self.index.image_ids[i], width, height)

    def _train_view(self, i: int, image: np.ndarray, width: int, height: int) -> tuple[Any, dict[str, Any]]:
        """The augmented image tensor and, with ``targets``, its boxes and mask in the crop's frame."""
        if not self.targets:
            if "bboxes" in getattr(self.transform, "processors", {}):  # a box-aware pipeline wants its fields
                return self.transform(image=image, bboxes=np.zeros((0, 4), np.float32),
                                      **{T.BOX_FIELD: np.zeros(0, np.int64)})["image"], {}
            return self.transform(image=image)["image"], {}
        mask = decode_mask(self.index, i, width, height)
        boxes = self._boxes(i, mask, width, height)
        albu_boxes = T.to_albu_boxes(boxes)
        if image.shape[:2] != (height, width):  # decoded at reduced size: boxes into its frame
            albu_boxes *= np.array([image.shape[1] / width, image.shape[0] / height] * 2, dtype=np.float32)
        kwargs: dict[str, Any] = {"image": image, "bboxes": albu_boxes, T.BOX_FIELD: np.zeros(len(boxes), np.int64)}
        if mask is not None:
            kwargs["mask"] = mask
        out = self.transform(**kwargs)
        tensor = out["image"]
        targets = {"boxes": T.from_albu_boxes(out["bboxes"], tensor.shape[-1], tensor.shape[-2])}
        if mask is not None:
            targets["mask"] = np.asarray(out["mask"], dtype=np.uint8)
        return tensor, targets

    def _eval_targets(self, i: int, width: int, height: int, new_size: tuple[int, int]) -> dict[str, Any]:
        """Boxes (wsolevaluation's scaling) and mask (nearest) of sample ``i`` in the ``new_size`` frame."""
        idx = self.index
        cache, key = self.mask_cache, ()
        cached = None
        if cache is not None and idx.has_masks(i):
            key = (width, height, new_size, file_signature([p for p, _ in mask_files(idx, i)]))
            cached = cache.get(i, key)
        if cached is not None:
            mask, box = cached
        else:
            full = decode_mask(idx, i, width, height)
            box = mask_box(full) if idx.boxes_from_mask else None
            mask = None if full is None else T.resize_mask(full, new_size)
            if cache is not None and mask is not None:
                cache.put(i, key, mask, box)
        boxes = box if idx.boxes_from_mask else self._checked_boxes(i, idx.root / idx.image_ids[i], width, height)
        targets: dict[str, Any] = {"boxes": T.scale_boxes(boxes, (width, height), new_size)}
        if mask is not None:
            targets["mask"] = mask
        semantic = self._read_semantic(i)
        if semantic is not None:
            targets["semantic"] = T.resize_mask(semantic, new_size)
        return targets

    def _load(self, i: int, step_seed: int | None = None) -> dict[str, Any]:
        idx = self.index
        image, width, height = self._read_image(i)
        targets: dict[str, Any] = {}
        if self.transform is None:
            tensor = torch.from_numpy(image).permute(2, 0, 1).float().div_(255)
            if self.targets:
                mask = decode_mask(idx, i, width, height)
                targets = {"boxes": self._boxes(i, mask, width, height), "mask": mask}
        elif self.train:
            tensor, targets = self._train_view(i, image, width, height)
        else:
            tensor = self.transform(image=image)["image"]
            if self.targets:
                targets = self._eval_targets(i, width, height, (int(tensor.shape[-1]), int(tensor.shape[-2])))
        sample: dict[str, Any] = {
            "image": tensor,
            "label": torch.from_numpy(np.array(self._label(i, step_seed), dtype=np.int64)),
            "index": torch.from_numpy(np.array(i, dtype=np.int64)),
            "image_id": idx.image_ids[i],
            "orig_size": torch.from_numpy(np.array([width, height], dtype=np.int64)),
        }
        if "boxes" in targets:
            sample["boxes"] = torch.from_numpy(np.asarray(targets["boxes"], dtype=np.int64).reshape(-1, 4))
        if idx.multi_hot is not None:
            sample["multi_hot"] = torch.as_tensor(idx.multi_hot[i], dtype=torch.float32)
        for key in ("mask", "semantic"):
            if targets.get(key) is not None:
                sample[key] = torch.from_numpy(np.ascontiguousarray(targets[key]))
        return sample
