"""Oxford-IIIT Pet in its official layout (``images/``, ``annotations/``).

- Classes: ``CLASS-ID`` of ``annotations/list.txt`` (``Image CLASS-ID SPECIES BREED-ID``), the
  classes present remapped in increasing ``CLASS-ID`` order to ``0..K-1`` (37 for the full set, 3
  for a subset); names are the image-name prefix (``Abyssinian``, ``american_bulldog``, ...).
- Splits: ``test`` = ``annotations/test.txt``; ``val`` = a seeded, class-stratified hold-out of
  ``val_per_class`` images of ``annotations/trainval.txt``; ``train`` = the rest of trainval.
- Masks: ``annotations/trimaps/<name>.png``: 1 = pet (object), 2 = background, 3 = border/
  unclassified (ignored, 255 in the batch mask).
- Boxes: the whole-object box, the tight box around the trimap's object + border pixels, computed
  when the sample is read (the XML head boxes are not used). An all-background trimap gives no box.

Images that are not really JPEG (a GIF, an RGBA PNG saved as ``.jpg``) are read through PIL and
converted to RGB.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wsol_lightning.data.base import WSOLDataModule, resolve_root
from wsol_lightning.data.download import PETS_RESOURCES, prepare_official
from wsol_lightning.data.index import DataError, DatasetIndex, check_unique
from wsol_lightning.data.parsing import check_inside, data_error, parse_int, read_lines, split_fields
from wsol_lightning.data.sampling import stratified_holdout


def read_pets_list(path: Path) -> list[tuple[str, int]]:
    """Parse ``list.txt``/``trainval.txt``/``test.txt`` into ``(name, class_id)`` pairs.

    Raises:
        DataError: a malformed line (file and line named) or a duplicate name.

    """
    rows: list[tuple[str, int]] = []
    lines: list[int] = []
    for line_no, line in enumerate(read_lines(path, "Oxford-IIIT Pet file"), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = split_fields(line, ("Image", "CLASS-ID", "SPECIES", "BREED-ID"), path, line_no)
        class_id = parse_int(parts[1], path, line_no, "CLASS-ID")
        if class_id < 1:
            raise data_error(path, line_no, "CLASS-ID", f"{parts[1]!r} is not a positive class id")
        rows.append((parts[0], class_id))
        lines.append(line_no)
    check_unique([r[0] for r in rows], path, lines)
    check_inside([r[0] for r in rows], path, "Image", lines)
    return rows


class OxfordPetsDataModule(WSOLDataModule):
    """Oxford-IIIT Pet breeds (boxes and masks from the trimaps).

    Args:
        data_dir: folder holding ``images/`` and ``annotations/`` (or its parent with
            ``oxford-iiit-pet/``).
        val_per_class: trainval images per class held out for ``val``.
        download: fetch the official archives in ``prepare_data`` when missing.
        url: override of the archive URL (one archive holding both folders); ``checksum`` its
            ``"md5:..."``/``"sha256:..."``.
        **kwargs: :class:`~wsol_lightning.data.base.WSOLDataModule` arguments.

    """

    def __init__(
        self,
        data_dir: str | Path = "data/oxford-iiit-pet",
        val_per_class: int = 5,
        download: bool = False,
        url: str | None = None,
        checksum: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(data_dir, **kwargs)
        if val_per_class < 1:
            raise ValueError("val_per_class must be >= 1")
        self.val_per_class = val_per_class
        self.download, self.url, self.checksum = download, url, checksum
        self._splits: dict[str, DatasetIndex] | None = None

    def prepare_data(self) -> None:
        """Download the official archives when ``download=True`` and the data is missing."""
        if self.download:
            prepare_official(
                self.data_dir, "", "annotations/list.txt", PETS_RESOURCES, self.url, self.checksum
            )

    def _root(self) -> Path:
        return resolve_root(self.data_dir, "annotations/list.txt", "oxford-iiit-pet")

    def _class_ids(self) -> tuple[list[int], list[str]]:
        root = self._root()
        rows = read_pets_list(root / "annotations" / "list.txt")
        for name in ("trainval.txt", "test.txt"):
            rows += read_pets_list(root / "annotations" / name)
        names: dict[int, str] = {}
        for image, cid in rows:
            names.setdefault(cid, image.rsplit("_", 1)[0])
        ids = sorted(names)
        return ids, [names[c] for c in ids]

    def read_class_names(self) -> list[str]:
        """Breed names, in increasing CLASS-ID order."""
        return self._class_ids()[1]

    def build_index(self, split: str) -> DatasetIndex:
        """Index of ``split``."""
        if self._splits is None:
            self._splits = self._parse()
        return self._splits[split]

    def _index(self, rows: list[tuple[str, int]], source: Path) -> DatasetIndex:
        root = self._root()
        ids, _ = self._class_ids()
        remap = {cid: k for k, cid in enumerate(ids)}
        n = len(rows)
        return DatasetIndex(
            root=root / "images",
            image_ids=[f"{name}.jpg" for name, _ in rows],
            labels=np.array([remap[c] for _, c in rows], dtype=np.int64),
            box_offsets=np.zeros(n + 1, dtype=np.int64),
            boxes=np.zeros((0, 4), dtype=np.int32),
            sizes=np.full((n, 2), -1, dtype=np.int32),
            mask_paths=[(f"{name}.png",) for name, _ in rows],
            mask_root=root / "annotations" / "trimaps",
            mask_format="trimap",
            boxes_from_mask=True,
            class_names=self.class_names,
            source=str(source),
        )

    def _parse(self) -> dict[str, DatasetIndex]:
        ann = self._root() / "annotations"
        trainval = read_pets_list(ann / "trainval.txt")
        test = read_pets_list(ann / "test.txt")
        overlap = {r[0] for r in trainval} & {r[0] for r in test}
        if overlap:
            raise DataError(f"{ann / 'test.txt'}: images also in trainval.txt, e.g. {sorted(overlap)[0]!r}")
        tv = self._index(trainval, ann / "trainval.txt")
        val = stratified_holdout(tv.labels, self.val_per_class, self.seed)
        return {
            "train": tv.subset(np.flatnonzero(~val)),
            "val": tv.subset(np.flatnonzero(val)),
            "test": self._index(test, ann / "test.txt"),
        }
