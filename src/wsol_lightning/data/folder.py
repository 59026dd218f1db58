"""ImageFolderDataModule: a plain folder of images, no labels, for ``wsol predict`` (pseudo-labels)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wsol_lightning.data.base import WSOLDataModule
from wsol_lightning.data.index import DataError, DatasetIndex

#: File extensions read as images (case-insensitive).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class ImageFolderDataModule(WSOLDataModule):
    """Every image under ``data_dir`` (recursively, sorted), for prediction only.

    Samples carry ``image`` (eval transform: resize to ``image_size``, normalise), ``label`` = -1, no
    boxes, ``index``, ``image_id`` (the path relative to ``data_dir``) and ``orig_size``, so prediction
    writers can map outputs back to the original frame.

    Args:
        data_dir: the folder of images.
        image_size: side of the square network input (the model's eval size).
        batch_size: images per batch.
        num_workers: DataLoader workers.
        num_classes: classes of the model that will predict (the CLI links it into the model, so it must
            match the checkpoint).
        class_names: optional class names (default ``class_0``, ...); their number overrides
            ``num_classes``.

    """

    def __init__(
        self,
        data_dir: str | Path,
        image_size: int = 224,
        batch_size: int = 32,
        num_workers: int = 4,
        num_classes: int = 1,
        class_names: list[str] | None = None,
    ) -> None:
        super().__init__(
            data_dir,
            batch_size=batch_size,
            num_workers=num_workers,
            image_size=image_size,
            predict_split="predict",
        )
        self._names = list(class_names) if class_names else [f"class_{k}" for k in range(num_classes)]

    def read_class_names(self) -> list[str]:
        """Return the given class names (or ``class_k`` placeholders)."""
        return self._names

    def image_paths(self) -> list[str]:
        """Sorted image paths relative to ``data_dir``."""
        root = self.data_dir
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

    def setup(self, stage: str | None = None) -> None:
        """Only prediction is possible: the folder has no labels."""
        if stage not in ("predict", None):
            raise ValueError(f"ImageFolderDataModule has no labels: it serves `predict`, not `{stage}`")
        self.make_dataset(self.predict_split)
