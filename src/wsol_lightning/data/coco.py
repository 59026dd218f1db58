"""Your own data in COCO "instances" JSON: image-level labels, boxes and masks for WSOL.

Recipe (practitioners):

1. Put images and COCO instance annotations anywhere under ``data_dir``, e.g.::

       data_dir/images/train/*.jpg   data_dir/annotations/train.json
       data_dir/images/test/*.jpg    data_dir/annotations/test.json

   Only the test (and val) JSONs need boxes/segmentations for the metrics; for training, the
   categories present per image are all that is used (WSOL trains on image labels only).
2. ``wsol fit --data COCODataModule --data.data_dir data_dir --data.train_ann annotations/train.json
   --data.train_images images/train --data.test_ann annotations/test.json --data.test_images
   images/test`` (or the same keys in a YAML). Give ``class_names`` to avoid parsing a large
   train JSON just to count classes.
3. ``val``: ``val_ann``/``val_images`` if given, else a seeded ``val_fraction`` of the train images
   (removed from train).

Semantics: classes = the JSON's categories sorted by id, remapped to ``0..K-1``; ``multi_hot`` =
categories present; ``label`` = the category with the largest total annotated area in the image;
boxes from ``bbox`` ``[x, y, w, h]`` (floats) -> inclusive ints ``x0 = floor(x)``,
``x1 = ceil(x + w) - 1`` (clipped to the image); mask = union of ``annToMask`` of every instance
(polygons or RLE; crowd regions count as object). Images without annotations are dropped.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from wsol_lightning.data.base import WSOLDataModule
from wsol_lightning.data.index import DataError, DatasetIndex, boxes_to_csr
from wsol_lightning.data.parsing import (  # noqa: F401  (decode_segmentations: re-exported, its old home)
    decode_segmentations,
    is_outside,
    parse_float,
    parse_int,
    read_json,
)
from wsol_lightning.data.sampling import stratified_holdout

log = logging.getLogger(__name__)


def _dim(image: dict, key: str, ann_path: Path) -> int:
    """``width``/``height`` of a COCO image entry (-1 when absent; non-positive or text refused)."""
    if image.get(key) is None:
        return -1
    value = parse_int(str(image[key]), f"{ann_path}: image id {image['id']}", None, key)
    if value < 1:
        raise DataError(f"{ann_path}: image id {image['id']}: {key}: {value} is not a positive size")
    return value


def read_coco(ann_path: Path, image_dir: Path, categories: list[int] | None = None) -> DatasetIndex:
    """Parse a COCO instances JSON into an index (masks decoded lazily from ``mask_data``).

    Raises:
        DataError: duplicate image id, annotation of an unknown image or category, bad bbox.

    """
    data = read_json(ann_path, "COCO annotation file")
    if not isinstance(data, dict):
        raise DataError(f"{ann_path}: top level: expected a JSON object with 'images', got {type(data).__name__}")
    for key, kind in (("images", "id"), ("categories", "id")):
        for k, item in enumerate(data.get(key, [])):
            if not isinstance(item, dict) or kind not in item:
                raise DataError(f"{ann_path}: {key}[{k}]: missing '{kind}'")
    cats = categories or sorted(c["id"] for c in data.get("categories", []))
    cat_index = {c: k for k, c in enumerate(cats)}
    images = data.get("images", [])
    first: dict[Any, int] = {}
    for k, im in enumerate(images):
        if first.setdefault(im["id"], k) != k:
            raise DataError(f"{ann_path}: images[{k}]: id: duplicate {im['id']!r} (first at images[{first[im['id']]}])")
        if not isinstance(im.get("file_name"), str) or not im["file_name"]:
            raise DataError(f"{ann_path}: images[{k}] (id {im['id']}): file_name: missing")
        if is_outside(im["file_name"]):
            raise DataError(f"{ann_path}: images[{k}] (id {im['id']}): file_name: {im['file_name']!r} points "
                            "outside the image folder (absolute path or '..')")
    pos = {im["id"]: i for i, im in enumerate(images)}
    anns: list[list[dict]] = [[] for _ in images]
    for k, ann in enumerate(data.get("annotations", [])):
        if ann.get("image_id") not in pos:
            raise DataError(f"{ann_path}: annotation #{k} refers to unknown image {ann.get('image_id')}")
        if ann.get("category_id") not in cat_index:
            raise DataError(f"{ann_path}: annotation #{k} has unknown category {ann.get('category_id')}")
        anns[pos[ann["image_id"]]].append(ann)
    keep = [i for i in range(len(images)) if anns[i]]
    if len(keep) < len(images):
        log.info("%s: dropped %d images without annotations", ann_path, len(images) - len(keep))
    n, k_cls = len(keep), len(cats)
    multi_hot = np.zeros((n, k_cls), dtype=np.uint8)
    labels = np.zeros(n, dtype=np.int64)
    per_boxes, mask_data = [], []
    for j, i in enumerate(keep):
        area = np.zeros(k_cls)
        boxes, segs = [], []
        for ann in anns[i]:
            c = cat_index[ann["category_id"]]
            multi_hot[j, c] = 1
            area[c] += float(ann.get("area", 0.0))
            where = f"{ann_path}: annotation id {ann.get('id')}"
            bbox = ann.get("bbox")
            if not isinstance(bbox, list) or len(bbox) != 4:
                raise DataError(f"{where}: bbox: expected [x, y, width, height], got {bbox!r}")
            x, y, w, h = (parse_float(str(v), where, None, f"bbox.{f}") for v, f in zip(bbox, "xywh"))
            if w < 0 or h < 0:
                raise DataError(f"{where}: bbox: negative width or height in {bbox}")
            x0, y0 = int(math.floor(x)), int(math.floor(y))
            boxes.append([x0, y0, max(x0, math.ceil(x + w) - 1), max(y0, math.ceil(y + h) - 1)])
            if ann.get("segmentation"):
                segs.append(ann["segmentation"])
        labels[j] = int(np.argmax(area)) if area.any() else int(np.flatnonzero(multi_hot[j])[0])
        per_boxes.append(boxes)
        mask_data.append(segs)
    offsets, boxes_arr = boxes_to_csr(per_boxes)
    sizes = np.array(
        [[_dim(images[i], "width", ann_path), _dim(images[i], "height", ann_path)] for i in keep], dtype=np.int32
    )
    return DatasetIndex(
        root=image_dir, image_ids=[images[i]["file_name"] for i in keep], labels=labels,
        box_offsets=offsets, boxes=boxes_arr, sizes=sizes.reshape(-1, 2), multi_hot=multi_hot,
        mask_data=mask_data, mask_format="coco", clip_boxes=True,
        class_names=[next(c["name"] for c in data["categories"] if c["id"] == cid) for cid in cats],
        source=str(ann_path),
    )  # fmt: skip


class COCODataModule(WSOLDataModule):
    """COCO-format data (see the module docstring for the recipe).

    Args:
        data_dir: folder the annotation and image paths are relative to.
        train_ann / train_images: train JSON and image folder.
        test_ann / test_images: test JSON and image folder.
        val_ann / val_images: optional val JSON and folder (default: a hold-out of train).
        val_fraction: share of train images held out for val when ``val_ann`` is not given.
        class_names: optional class names (skips parsing the train JSON for ``num_classes``).
        **kwargs: :class:`~wsol_lightning.data.base.WSOLDataModule` arguments.

    """

    def __init__(
        self,
        data_dir: str | Path = "data/coco",
        train_ann: str = "annotations/instances_train2017.json",
        train_images: str = "train2017",
        test_ann: str = "annotations/instances_val2017.json",
        test_images: str = "val2017",
        val_ann: str | None = None,
        val_images: str | None = None,
        val_fraction: float = 0.05,
        class_names: list[str] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(data_dir, **kwargs)
        self.anns = {"train": (train_ann, train_images), "test": (test_ann, test_images)}
        if val_ann is not None:
            self.anns["val"] = (val_ann, val_images or train_images)
        self.val_fraction = val_fraction
        self._given_names = class_names
        self._cats: list[int] | None = None
        self._splits: dict[str, DatasetIndex] = {}

    def _categories(self) -> list[int]:
        if self._cats is None:
            data = read_json(self.data_dir / self.anns["train"][0], "COCO annotation file")
            self._cats = sorted(c["id"] for c in data.get("categories", []))
            self._names = {c["id"]: c["name"] for c in data.get("categories", [])}
        return self._cats

    @property
    def category_ids(self) -> list[int]:
        """The COCO category id of each class index (predictions keep the original ids)."""
        return list(self._categories())

    def read_class_names(self) -> list[str]:
        """``class_names`` if given, else the train JSON's category names (sorted by id)."""
        if self._given_names is not None:
            return list(self._given_names)
        return [self._names[c] for c in self._categories()]

    def build_index(self, split: str) -> DatasetIndex:
        """Index of ``split``."""
        if split not in self._splits:
            cats = self._categories()
            if split == "val" and "val" not in self.anns or split == "train" and "val" not in self.anns:
                full = read_coco(
                    self.data_dir / self.anns["train"][0], self.data_dir / self.anns["train"][1], cats
                )
                per = max(1, round(self.val_fraction * len(full) / max(len(cats), 1)))
                held = stratified_holdout(full.labels, per, self.seed)
                self._splits["train"] = full.subset(np.flatnonzero(~held))
                self._splits["val"] = full.subset(np.flatnonzero(held))
            else:
                ann, images = self.anns[split]
                self._splits[split] = read_coco(self.data_dir / ann, self.data_dir / images, cats)
        return self._splits[split]
