"""ImageFolderDataModule: a plain folder of images, no labels, for ``wsol predict`` (pseudo-labels)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from wsol_lightning.data import transforms as T
from wsol_lightning.data.base import UnpaddedDistributedSampler, WSOLDataModule
from wsol_lightning.data.collate import wsol_collate
from wsol_lightning.data.dataset import WSOLDataset
from wsol_lightning.data.index import DataError, DatasetIndex
from wsol_lightning.data.transforms import IMAGENET_MEAN, IMAGENET_STD

log = logging.getLogger(__name__)

#: File extensions read as images (case-insensitive).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class FolderDataset(WSOLDataset):
    """A :class:`WSOLDataset` whose bad files become ``{"skipped": {file_name, index, reason}}`` records.

    With ``skip_bad`` an unreadable file (any error while loading it) is not dropped silently: its record
    travels with the batch (see :func:`predict_collate`) so a prediction writer can list it. Without
    ``skip_bad`` the first bad file raises a :class:`DataError` naming it.
    """

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any] | None:  # noqa: D105
        i = int(key if isinstance(key, (int, np.integer)) else key[0])
        try:
            return self._load(i)
        except Exception as err:  # noqa: BLE001 (any failure of one file is that file's: named or skipped)
            path = self.index.root / self.index.image_ids[i]
            reason = str(err) if isinstance(err, DataError) else f"{type(err).__name__}: {err}"
            if not self.skip_bad:
                if isinstance(err, DataError):
                    raise
                raise DataError(f"could not load image {path}: {reason}") from err
            self.num_skipped += 1
            log.warning("skipping %s (%d skipped so far in this process): %s", path, self.num_skipped, reason)
            return {"skipped": {"file_name": self.index.image_ids[i], "index": i, "reason": reason}}


def predict_collate(samples: Sequence[dict[str, Any] | None], image_size: int = 224) -> dict[str, Any]:
    """Collate like :func:`wsol_collate`, carrying skipped files as ``batch["skipped"]`` (a list of dicts).

    A batch whose files were all skipped is still a batch: zero images (``image`` of shape
    ``(0, 3, image_size, image_size)``) and its ``skipped`` list, so the prediction loop and the writer see
    every file.
    """
    skipped = [s["skipped"] for s in samples if s is not None and "skipped" in s]
    kept = [s for s in samples if s is not None and "skipped" not in s]
    batch = wsol_collate(kept) if kept else None
    if batch is None:
        batch = {"image": torch.zeros(0, 3, image_size, image_size), "label": torch.zeros(0, dtype=torch.int64),
                 "boxes": [], "index": torch.zeros(0, dtype=torch.int64), "image_id": [],
                 "orig_size": torch.zeros(0, 2, dtype=torch.int64)}
    batch["skipped"] = skipped
    return batch


class ImageFolderDataModule(WSOLDataModule):
    """Every image under ``data_dir`` (recursively, sorted), or the one image ``data_dir`` names, for prediction.

    Samples carry ``image`` (eval transform: resize to ``image_size``, normalise), ``label`` = -1, no
    boxes, ``index``, ``image_id`` (the path relative to ``data_dir``) and ``orig_size``, so prediction
    writers can map outputs back to the original frame.

    Args:
        data_dir: the folder of images, or one image file (``photo.jpg``).
        image_size: side of the square network input (the model's eval size).
        batch_size: images per batch.
        num_workers: DataLoader workers.
        num_classes: classes of the model that will predict (the CLI links it into the model, so it must
            match the checkpoint).
        class_names: optional class names (default ``class_0``, ...); their number overrides
            ``num_classes``.
        mean: per-channel normalisation mean of the eval transform (default ImageNet's).
        std: per-channel normalisation std of the eval transform (default ImageNet's).
        skip_bad: ``True`` (default for prediction): an unreadable file (corrupt, truncated, not an image) is
            skipped and listed with the reason in ``batch["skipped"]`` (``COCOPredictionWriter`` writes the list
            under ``skipped`` in ``predictions.json``); ``False``: stop at the first bad file, naming it.

    """

    def __init__(
        self,
        data_dir: str | Path,
        image_size: int = 224,
        batch_size: int = 32,
        num_workers: int = 4,
        num_classes: int = 1,
        class_names: list[str] | None = None,
        skip_bad: bool = True,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
    ) -> None:
        super().__init__(
            data_dir,
            batch_size=batch_size,
            num_workers=num_workers,
            image_size=image_size,
            skip_bad=skip_bad,
            predict_split="predict",
        )
        self._names = list(class_names) if class_names else [f"class_{k}" for k in range(num_classes)]
        self.mean, self.std = tuple(mean), tuple(std)
        self._single: str | None = None
        if self.data_dir is not None and self.data_dir.is_file():  # one image: its folder, that file only
            if self.data_dir.suffix.lower() not in IMAGE_EXTENSIONS:
                raise DataError(f"{self.data_dir}: not an image ({', '.join(IMAGE_EXTENSIONS)}) nor a folder")
            self._single, self.data_dir = self.data_dir.name, self.data_dir.parent

    def eval_transform(self) -> Any:
        """Resize to ``image_size`` and normalise with ``mean``/``std``."""
        return T.eval_transform(self.image_size, self.mean, self.std)

    def read_class_names(self) -> list[str]:
        """Return the given class names (or ``class_k`` placeholders)."""
        return self._names

    def image_paths(self) -> list[str]:
        """Sorted image paths relative to ``data_dir`` (the one file when ``data_dir`` named an image)."""
        root = self.data_dir
        if self._single is not None:
            return [self._single]
        if root is None or not root.is_dir():
            raise FileNotFoundError(f"image folder not found: {root}")
        paths = sorted(
            p.relative_to(root).as_posix()
            for p in root.rglob("*")
            if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
        )
        if not paths:
            raise DataError(f"no image ({', '.join(IMAGE_EXTENSIONS)}) found under {root}")
        return paths

    def build_index(self, split: str) -> DatasetIndex:
        """One index of every image (labels -1, no boxes) whatever the split."""
        paths = self.image_paths()
        n = len(paths)
        return DatasetIndex(
            root=self.data_dir,
            image_ids=paths,
            labels=np.full(n, -1, dtype=np.int64),
            box_offsets=np.zeros(n + 1, dtype=np.int64),
            boxes=np.zeros((0, 4), dtype=np.int32),
            sizes=np.full((n, 2), -1, dtype=np.int32),
            class_names=list(self._names),
            source=str(self.data_dir),
        )

    def make_dataset(self, split: str) -> WSOLDataset:
        """The :class:`FolderDataset` of every image (eval transform), cached."""
        if split not in self.datasets:
            self.datasets[split] = FolderDataset(self.build_index(split), self.eval_transform(),
                                                 skip_bad=self.skip_bad, seed=self.seed)
        return self.datasets[split]

    def setup(self, stage: str | None = None) -> None:
        """Only prediction is possible: the folder has no labels."""
        if stage not in ("predict", None):
            raise ValueError(f"ImageFolderDataModule has no labels: it serves `predict`, not `{stage}`")
        self.make_dataset(self.predict_split)

    def predict_dataloader(self) -> DataLoader:
        """In-order loader whose batches carry the skipped files (:func:`predict_collate`)."""
        dataset = self.make_dataset(self.predict_split)
        sampler = None
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            sampler = UnpaddedDistributedSampler(dataset)
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=False, sampler=sampler,
                          num_workers=self.num_workers, pin_memory=self.pin_memory, drop_last=False,
                          collate_fn=functools.partial(predict_collate, image_size=self.image_size))
