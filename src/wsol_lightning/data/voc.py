"""PASCAL VOC 2012 (multi-label) in its official layout (``VOCdevkit/VOC2012``).

- Labels: the classes of every ``<object>`` of ``Annotations/<id>.xml`` -> ``multi_hot`` (20
  classes, standard order); ``label`` is one positive class, drawn anew at every training step
  (reproducibly, from the step's sample seed) and fixed per item in evaluation.
- Boxes: every object's ``<bndbox>`` (1-based inclusive pixels) -> 0-based inclusive.
- Masks: ``SegmentationClass/<id>.png`` (indexed PNG) when present: any class = object, 0 =
  background, 255 (the border) = ignored.
- Splits: ``test`` = ``ImageSets/Segmentation/val.txt`` (1,449 images with masks); ``val`` = a
  seeded hold-out of ``val_size`` images of ``ImageSets/Segmentation/train.txt``; ``train`` =
  ``ImageSets/Main/train.txt`` (or the ``train_list`` file, e.g. SBD's ``train_aug.txt``, one id
  per line) minus every val/test id. The three are disjoint.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from wsol_lightning.data.base import WSOLDataModule, resolve_root
from wsol_lightning.data.download import VOC_RESOURCES, prepare_official
from wsol_lightning.data.index import DataError, DatasetIndex, boxes_to_csr, check_unique, require_file

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)  # fmt: skip


def read_ids(path: Path) -> list[str]:
    """Read an id list (first column of each line); duplicates raise naming file and line."""
    ids = [
        line.split()[0]
        for line in require_file(path, "VOC split file").read_text().splitlines()
        if line.strip()
    ]
    check_unique(ids, path)
    return ids


def parse_voc_xml(
    path: Path, classes: tuple[str, ...] = VOC_CLASSES, one_based: bool = True
) -> tuple[list[int], list[list[int]]]:
    """Return ``(class indices, boxes)`` of a VOC annotation file (boxes 0-based inclusive).

    ``one_based``: the file's coordinates start at 1 (VOC) and are shifted by -1.

    Raises:
        DataError: missing/unparsable file, unknown class, bad box (file named).

    """
    if not path.is_file():
        raise DataError(f"missing annotation: {path}")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise DataError(f"unparsable annotation {path}: {err}") from err
    labels, boxes = [], []
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        if name not in classes:
            raise DataError(f"{path}: unknown class {name!r}")
        bb = obj.find("bndbox")
        if bb is None:
            raise DataError(f"{path}: object {name!r} without <bndbox>")
        try:
            x0, y0, x1, y1 = (
                int(float(bb.findtext(k) or "nan")) - int(one_based) for k in ("xmin", "ymin", "xmax", "ymax")
            )
        except ValueError as err:
            raise DataError(f"{path}: bad <bndbox> for {name!r}") from err
        if x0 < 0 or y0 < 0 or x1 < x0 or y1 < y0:
            raise DataError(f"{path}: box {(x0, y0, x1, y1)} of {name!r} is invalid")
        labels.append(classes.index(name))
        boxes.append([x0, y0, x1, y1])
    return labels, boxes


class VOCDataModule(WSOLDataModule):
    """PASCAL VOC 2012, multi-label, boxes for every image, masks where segmented.

    Args:
        data_dir: ``VOC2012/`` (with ``JPEGImages/``), or ``VOCdevkit/`` or its parent.
        train_list: optional id list replacing ``ImageSets/Main/train.txt`` (e.g. SBD train_aug);
            relative paths are taken from the VOC2012 folder.
        val_size: images of ``ImageSets/Segmentation/train.txt`` held out for ``val``.
        download: fetch ``VOCtrainval_11-May-2012.tar`` in ``prepare_data`` when missing.
        url: override of the archive URL; ``checksum`` its ``"md5:..."``/``"sha256:..."``.
        **kwargs: :class:`~wsol_lightning.data.base.WSOLDataModule` arguments.

    """

    def __init__(
        self,
        data_dir: str | Path = "data/VOCdevkit/VOC2012",
        train_list: str | Path | None = None,
        val_size: int = 200,
        download: bool = False,
        url: str | None = None,
        checksum: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(data_dir, **kwargs)
        if val_size < 1:
            raise ValueError("val_size must be >= 1")
        self.train_list = train_list
        self.val_size = val_size
        self.download, self.url, self.checksum = download, url, checksum
        self._splits: dict[str, DatasetIndex] | None = None

    def prepare_data(self) -> None:
        """Download the official archive when ``download=True`` and the data is missing."""
        if self.download:
            prepare_official(
                self.data_dir, "VOCdevkit/VOC2012", "JPEGImages", VOC_RESOURCES, self.url, self.checksum
            )

    def read_class_names(self) -> list[str]:
        """Return the 20 VOC classes."""
        return list(VOC_CLASSES)

    def _root(self) -> Path:
        return resolve_root(self.data_dir, "ImageSets", "VOC2012", "VOCdevkit/VOC2012")

    def build_index(self, split: str) -> DatasetIndex:
        """Index of ``split``."""
        if self._splits is None:
            self._splits = self._parse()
        return self._splits[split]

    def _index(self, ids: list[str], source: Path) -> DatasetIndex:
        root = self._root()
        n = len(ids)
        multi_hot = np.zeros((n, len(VOC_CLASSES)), dtype=np.uint8)
        per_boxes = []
        for i, image_id in enumerate(ids):
            labels, boxes = parse_voc_xml(root / "Annotations" / f"{image_id}.xml")
            multi_hot[i, labels] = 1
            per_boxes.append(boxes)
        offsets, boxes = boxes_to_csr(per_boxes)
        seg = root / "SegmentationClass"
        masks = [(f"{i}.png",) if (seg / f"{i}.png").is_file() else () for i in ids]
        return DatasetIndex(
            root=root / "JPEGImages", image_ids=[f"{i}.jpg" for i in ids],
            labels=np.full(n, -1, dtype=np.int64), box_offsets=offsets, boxes=boxes,
            sizes=np.full((n, 2), -1, dtype=np.int32), multi_hot=multi_hot, mask_paths=masks,
            mask_root=seg, mask_format="palette", class_names=self.class_names, source=str(source),
        )  # fmt: skip

    def _parse(self) -> dict[str, DatasetIndex]:
        root = self._root()
        sets = root / "ImageSets"
        test_ids = read_ids(sets / "Segmentation" / "val.txt")
        seg_train = read_ids(sets / "Segmentation" / "train.txt")
        rng = np.random.default_rng(self.seed)
        k = min(self.val_size, max(len(seg_train) - 1, 0))
        val_ids = [seg_train[j] for j in sorted(rng.choice(len(seg_train), size=k, replace=False))]
        if self.train_list is not None:
            train_path = Path(self.train_list)
            train_path = train_path if train_path.is_absolute() else root / train_path
        else:
            train_path = sets / "Main" / "train.txt"
        held = set(test_ids) | set(val_ids)
        if set(val_ids) & set(test_ids):
            raise DataError(f"{sets}: Segmentation/train.txt and val.txt overlap")
        train_ids = [i for i in read_ids(train_path) if i not in held]
        return {
            "train": self._index(train_ids, train_path),
            "val": self._index(val_ids, sets / "Segmentation" / "train.txt"),
            "test": self._index(test_ids, sets / "Segmentation" / "val.txt"),
        }
