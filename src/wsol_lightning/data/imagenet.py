"""ImageNet-1K (ILSVRC 2012) localization: wsolevaluation metadata layout or the official layout.

Metadata layout (the standard protocol): ``data_dir`` = wsolevaluation's ``dataset/ILSVRC``
(``train/``, ``val2/`` = ImageNetV2 threshold0.7, ``val/`` = ILSVRC val) and ``metadata_dir`` =
``metadata/ILSVRC`` (found automatically under ``data_dir/metadata``). ``train`` = the 1.28M train
images (labels only; ``image_ids_proxy.txt`` with ``proxy=True``), ``val`` = ImageNetV2 (10k,
boxes), ``test`` = ILSVRC val (50k, several boxes per image). If ``metadata/ILSVRC/val/mapping.txt``
exists (wsolevaluation PR #53: ``0/0.jpeg,0/<hash>.jpeg`` lines) the ImageNetV2 ids are renamed to
the hash file names the current tarball ships; image sizes are checked against
``image_sizes.txt`` when read, so a mis-named image raises instead of scoring with wrong boxes.

Official layout: ``train/<synset>/*.JPEG``, ``val/*.JPEG`` and the val boxes as PASCAL-VOC-style
XML (``ILSVRC2012_bbox_val``: ``val/*.xml``, ``bbox_val/**.xml`` or ``ILSVRC2012_bbox_val/``) or
Kaggle's ``LOC_val_solution.csv``. Synset order: ``LOC_synset_mapping.txt`` when present, else the
sorted ``train/`` folder names. XML coordinates are used as 0-based inclusive pixels and clipped
to the image. Splits: ``train`` = ``train/``; ``val`` = a seeded class-stratified hold-out of
``val_per_class`` ILSVRC val images; ``test`` = the remaining ILSVRC val images (so official-layout
test numbers are NOT the 50k-image protocol; use the metadata layout for those).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from wsol_lightning.data.base import WSOLDataModule
from wsol_lightning.data.cub import find_metadata_dir
from wsol_lightning.data.index import DataError, DatasetIndex, boxes_to_csr, require_file
from wsol_lightning.data.metadata import class_names_from_labels, read_metadata
from wsol_lightning.data.parsing import check_inside, data_error, parse_float, read_lines
from wsol_lightning.data.sampling import stratified_holdout
from wsol_lightning.data.voc import BOX_TAGS, parse_voc_xml

IMAGE_EXTS = (".jpeg", ".jpg", ".png")


class ImageNetDataModule(WSOLDataModule):
    """ILSVRC 2012 (1000 classes, boxes on val/test).

    Args:
        data_dir: ``dataset/ILSVRC`` (metadata layout) or the ILSVRC2012 folder (official layout).
        metadata_dir: wsolevaluation ``metadata/ILSVRC`` (selects the metadata layout).
        proxy: metadata layout: train on ``train/image_ids_proxy.txt`` (fast HP search).
        val_per_class: official layout: ILSVRC val images per class held out for ``val``.
        **kwargs: :class:`~wsol_lightning.data.base.WSOLDataModule` arguments.

    """

    def __init__(
        self,
        data_dir: str | Path = "data/ILSVRC",
        metadata_dir: str | Path | None = None,
        proxy: bool = False,
        val_per_class: int = 2,
        **kwargs,
    ) -> None:
        super().__init__(data_dir, **kwargs)
        self.metadata_dir = Path(metadata_dir) if metadata_dir is not None else None
        self.proxy = proxy
        self.val_per_class = val_per_class
        self._official: dict[str, DatasetIndex] | None = None

    def _meta(self) -> Path | None:
        return self.metadata_dir or find_metadata_dir(self.data_dir, "ILSVRC")

    def read_class_names(self) -> list[str]:
        """Synsets from ``LOC_synset_mapping.txt``, else the train folder names / train ids."""
        for path in (
            self.data_dir / "LOC_synset_mapping.txt",
            self.data_dir.parent / "LOC_synset_mapping.txt",
        ):
            if path.is_file():
                return [ln.split()[0] for ln in read_lines(path, "synset mapping") if ln.strip()]
        meta = self._meta()
        if meta is not None:
            return class_names_from_labels(require_file(meta / "train" / "class_labels.txt"))
        train = self.data_dir / "train"
        if not train.is_dir():
            raise FileNotFoundError(f"missing ImageNet train folder or metadata: {train}")
        return sorted(e.name for e in os.scandir(train) if e.is_dir())

    def build_index(self, split: str) -> DatasetIndex:
        """Index of ``split``."""
        meta = self._meta()
        if meta is not None:
            index = read_metadata(
                meta / split, self.data_dir, num_classes=self.num_classes, class_names=self.class_names,
                require_localization=split != "train",
            )  # fmt: skip
            if split == "train" and self.proxy:
                wanted = set(read_lines(meta / "train" / "image_ids_proxy.txt", "proxy id list"))
                index = index.subset([i for i, k in enumerate(index.image_ids) if k in wanted])
            mapping = meta / split / "mapping.txt"
            if mapping.is_file():
                _apply_mapping(index, mapping, self.data_dir)
            return index
        if self._official is None:
            self._official = self._parse_official()
        return self._official[split]

    def _parse_official(self) -> dict[str, DatasetIndex]:
        root, synsets = self.data_dir, self.class_names
        lookup = {s: k for k, s in enumerate(synsets)}
        ids, labels = [], []
        for s in synsets:
            folder = root / "train" / s
            if not folder.is_dir():
                raise FileNotFoundError(f"missing ImageNet train folder: {folder}")
            names = sorted(e.name for e in os.scandir(folder) if e.name.lower().endswith(IMAGE_EXTS))
            ids += [f"train/{s}/{n}" for n in names]
            labels += [lookup[s]] * len(names)
        n = len(ids)
        train = DatasetIndex(
            root=root, image_ids=ids, labels=np.asarray(labels, dtype=np.int64),
            box_offsets=np.zeros(n + 1, dtype=np.int64), boxes=np.zeros((0, 4), dtype=np.int32),
            sizes=np.full((n, 2), -1, dtype=np.int32), class_names=synsets, source=str(root / "train"),
        )  # fmt: skip
        val = self._official_val(root, lookup)
        held = stratified_holdout(val.labels, self.val_per_class, self.seed)
        return {
            "train": train,
            "val": val.subset(np.flatnonzero(held)),
            "test": val.subset(np.flatnonzero(~held)),
        }

    def _official_val(self, root: Path, lookup: dict[str, int]) -> DatasetIndex:
        images = sorted(e.name for e in os.scandir(root / "val") if e.name.lower().endswith(IMAGE_EXTS))
        per_image: dict[str, tuple[int, list[list[int]]]] = {}
        where: dict[str, tuple[str, list[int] | None, tuple[int, int]]] = {}  # file, box lines, size
        csv = next(
            (p for p in (root / "LOC_val_solution.csv", root.parent / "LOC_val_solution.csv") if p.is_file()),
            None,
        )
        if csv is not None:
            for line_no, line in enumerate(read_lines(csv, "ImageNet CSV")[1:], start=2):
                if not line.strip():
                    continue
                image_id, _, pred = line.partition(",")
                tok = pred.split()
                if not tok or len(tok) % 5:
                    raise data_error(csv, line_no, "PredictionString", f"expected groups of 5 values, got {pred!r}")
                for k in range(0, len(tok), 5):
                    if tok[k] not in lookup:
                        raise data_error(csv, line_no, "PredictionString", f"unknown synset {tok[k]!r}")
                boxes = [
                    [int(parse_float(v, csv, line_no, f)) for v, f in zip(tok[k + 1 : k + 5], BOX_TAGS)]
                    for k in range(0, len(tok), 5)
                ]
                per_image[image_id] = (lookup[tok[0]], boxes)
                where[image_id] = (str(csv), [line_no] * len(boxes), (-1, -1))
        xml_dirs = [d for d in (root / "val", root / "bbox_val", root / "ILSVRC2012_bbox_val") if d.is_dir()]
        synsets = tuple(lookup)
        for name in images:
            stem = Path(name).stem
            if stem in per_image:
                continue
            xml = next((d / f"{stem}.xml" for d in xml_dirs if (d / f"{stem}.xml").is_file()), None)
            if xml is None:
                xml = next((p for d in xml_dirs for p in d.rglob(f"{stem}.xml")), None)
            if xml is None:
                raise DataError(f"missing annotation for {root / 'val' / name} (no {stem}.xml, no CSV line)")
            ann = parse_voc_xml(xml, synsets, one_based=False)
            if not ann.labels:
                raise DataError(f"{xml}: object: none (every val image needs at least one <object>)")
            per_image[stem] = (ann.labels[0], ann.boxes)
            where[stem] = (str(xml), None, ann.size)
        keys = [Path(n).stem for n in images]
        offsets, boxes = boxes_to_csr([per_image[k][1] for k in keys])
        lines = [where[k][1] for k in keys]
        return DatasetIndex(
            root=root, image_ids=[f"val/{n}" for n in images],
            labels=np.array([per_image[k][0] for k in keys], dtype=np.int64), box_offsets=offsets,
            boxes=boxes, sizes=np.array([where[k][2] for k in keys], dtype=np.int32).reshape(-1, 2),
            clip_boxes=True, class_names=list(synsets), source=str(csv or root / "val"),
            box_files=[where[k][0] for k in keys],
            box_lines=np.array([n for ls in lines for n in ls], dtype=np.int64) if all(lines) else None,
        )  # fmt: skip


def _apply_mapping(index: DatasetIndex, mapping: Path, root: Path) -> None:
    """Rename ImageNetV2 ids per ``mapping.txt`` (``old,new`` relative to ``val2/``) when needed."""
    pairs = {}
    for line_no, line in enumerate(read_lines(mapping, "ImageNetV2 mapping"), start=1):
        if line.strip():
            old, _, new = (v.strip() for v in line.partition(","))
            check_inside([new], mapping, "new id", [line_no])
            pairs[old] = new
    for i, image_id in enumerate(index.image_ids):
        prefix, _, rel = image_id.partition("/")
        if rel in pairs and not (root / image_id).exists():
            index.image_ids[i] = f"{prefix}/{pairs[rel]}"
