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
from typing import NamedTuple

import numpy as np

from wsol_lightning.data.base import WSOLDataModule, resolve_root
from wsol_lightning.data.download import VOC_RESOURCES, prepare_official
from wsol_lightning.data.index import DataError, DatasetIndex, boxes_to_csr, check_unique
from wsol_lightning.data.parsing import check_inside, data_error, parse_float, parse_int, read_lines

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)  # fmt: skip
BOX_TAGS = ("xmin", "ymin", "xmax", "ymax")


def read_ids(path: Path) -> list[str]:
    """Read an id list (first column of each line); duplicates and paths outside the root are refused."""
    rows = [(n, line.split()[0]) for n, line in enumerate(read_lines(path, "VOC split file"), 1) if line.strip()]
    ids, lines = [r[1] for r in rows], [r[0] for r in rows]
    check_unique(ids, path, lines)
    check_inside(ids, path, "image id", lines)
    return ids


class VOCAnnotation(NamedTuple):
    """One parsed annotation file: class indices, 0-based inclusive boxes, image ``(width, height)``."""

    labels: list[int]
    boxes: list[list[int]]
    size: tuple[int, int]


def parse_voc_xml(path: Path, classes: tuple[str, ...] = VOC_CLASSES, one_based: bool = True) -> VOCAnnotation:
    """Parse a VOC-style annotation file (boxes 0-based inclusive; ``(-1, -1)`` when no ``<size>``).

    ``one_based``: the file's coordinates start at 1 (VOC) and are shifted by -1. Boxes are checked
    against the image later (:mod:`~wsol_lightning.data.validation`); here each field is parsed.

    Raises:
        DataError: missing/unparsable file (with its line), unknown class, missing or non-numeric
            field -- ``file: object #k (name): field: ...``.

    """
    if not path.is_file():
        raise DataError(f"missing annotation: {path}")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise data_error(path, err.position[0], "xml", str(err)) from err
    size = root.find("size")
    width = height = -1
    if size is not None and (size.findtext("width") or "").strip():
        width = parse_int(size.findtext("width") or "", path, None, "size/width")
        height = parse_int(size.findtext("height") or "", path, None, "size/height")
    labels, boxes = [], []
    for k, obj in enumerate(root.iter("object")):
        name = (obj.findtext("name") or "").strip()
        where = f"{path}: object #{k} ({name})"
        if name not in classes:
            raise DataError(f"{where}: name: unknown class {name!r}")
        bb = obj.find("bndbox")
        if bb is None:
            raise DataError(f"{where}: bndbox: missing")
        coords = [int(parse_float(bb.findtext(f) or "", where, None, f"bndbox/{f}")) - int(one_based) for f in BOX_TAGS]
        labels.append(classes.index(name))
        boxes.append(coords)
    return VOCAnnotation(labels, boxes, (width, height) if width > 0 and height > 0 else (-1, -1))


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
        per_boxes, sizes, files = [], np.full((n, 2), -1, dtype=np.int32), []
        for i, image_id in enumerate(ids):
            files.append(str(root / "Annotations" / f"{image_id}.xml"))
            ann = parse_voc_xml(Path(files[-1]))
            multi_hot[i, ann.labels] = 1
            per_boxes.append(ann.boxes)
            sizes[i] = ann.size
        offsets, boxes = boxes_to_csr(per_boxes)
        seg = root / "SegmentationClass"
        masks = [(f"{i}.png",) if (seg / f"{i}.png").is_file() else () for i in ids]
        return DatasetIndex(
            root=root / "JPEGImages", image_ids=[f"{i}.jpg" for i in ids],
            labels=np.full(n, -1, dtype=np.int64), box_offsets=offsets, boxes=boxes,
            sizes=sizes, multi_hot=multi_hot, mask_paths=masks, mask_root=seg, mask_format="palette",
            class_names=self.class_names, source=str(source), box_files=files,
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
