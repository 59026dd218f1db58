"""CUB-200-2011: the official layout and the wsolevaluation metadata layout.

Official layout (``CUB_200_2011/``): ``images.txt`` (``id path``), ``image_class_labels.txt``
(``id class`` 1-based), ``train_test_split.txt`` (``id is_train``), ``bounding_boxes.txt``
(``id x y w h`` floats), ``classes.txt`` (``class name``), ``images/<class>/<name>.jpg`` and, when
present, ``segmentations/<class>/<name>.png`` (inside ``CUB_200_2011/`` or next to it) used as
masks for PxAP.

Boxes: ``x0 = int(x)``, ``y0 = int(y)``, ``x1 = int(x + w)``, ``y1 = int(y + h)``, clipped to
``W - 1``/``H - 1`` against the real image when read (the convention of wsolevaluation's CUB
metadata, e.g. ``60 27 325 304`` -> ``60,27,385,331``).

Splits (official layout): ``test`` = the official test split; ``val`` = a seeded, class-stratified
hold-out of ``val_per_class`` images per class (default 5, CUBV2's size) from the official train
split; ``train`` = the rest of the official train split. The three are disjoint.

Metadata layout: pass ``metadata_dir`` (holding ``train/ val/ test/``) or keep it under
``data_dir/metadata/CUB`` (or ``data_dir/metadata``) to have it picked up automatically; images
are read from ``data_dir`` (wsolevaluation's ``dataset/CUB``) or ``data_dir/images``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wsol_lightning.data.base import WSOLDataModule, resolve_root
from wsol_lightning.data.download import CUB_RESOURCES, prepare_official
from wsol_lightning.data.index import DataError, DatasetIndex, check_labels, check_unique, require_file
from wsol_lightning.data.metadata import read_metadata

OFFICIAL_FILES = ("images.txt", "image_class_labels.txt", "train_test_split.txt", "bounding_boxes.txt")


def _table(path: Path, ncols: int) -> list[list[str]]:
    """Read a whitespace-separated CUB table, checking the column count (file and line in errors)."""
    rows = []
    for line_no, line in enumerate(require_file(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=ncols - 1)
        if len(parts) != ncols:
            raise DataError(f"{path}:{line_no}: expected {ncols} columns, got {line!r}")
        rows.append(parts)
    return rows


def find_metadata_dir(data_dir: Path, name: str) -> Path | None:
    """Return ``data_dir/metadata/<name>`` or ``data_dir/metadata`` if it holds ``train/image_ids.txt``."""
    for candidate in (
        data_dir / "metadata" / name,
        data_dir / "metadata",
        data_dir.parent / "metadata" / name,
    ):
        if (candidate / "train" / "image_ids.txt").is_file():
            return candidate
    return None


def image_root_for(data_dir: Path, first_id: str) -> Path:
    """Return the folder the metadata ids are relative to (``data_dir`` or ``data_dir/images``)."""
    for candidate in (data_dir, data_dir / "images", data_dir / "CUB_200_2011" / "images"):
        if (candidate / first_id).exists():
            return candidate
    return data_dir


class CUBDataModule(WSOLDataModule):
    """CUB-200-2011 (200 bird species; boxes; masks when the segmentations are present).

    Args:
        data_dir: ``CUB_200_2011/`` (with ``images.txt``) or its parent; for the metadata layout the
            image root (wsolevaluation's ``dataset/CUB``).
        metadata_dir: wsolevaluation ``metadata/CUB`` folder (selects the metadata layout).
        val_per_class: official layout: images per class held out of train for ``val``.
        use_segmentations: attach ``segmentations/`` masks when present.
        download: fetch the official archive in ``prepare_data`` when ``images.txt`` is missing
            (checksum-verified, extracted once into ``data_dir``'s parent or ``data_dir``).
        url: override of the archive URL (a mirror); ``checksum``: its ``"md5:..."``/``"sha256:..."``.
        **kwargs: :class:`~wsol_lightning.data.base.WSOLDataModule` arguments (``batch_size``,
            ``num_workers``, ``image_size``, ``resize_size``, ``skip_bad``, ``seed``, ...).

    """

    def __init__(
        self,
        data_dir: str | Path = "data/CUB_200_2011",
        metadata_dir: str | Path | None = None,
        val_per_class: int = 5,
        use_segmentations: bool = True,
        download: bool = False,
        url: str | None = None,
        checksum: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(data_dir, **kwargs)
        if val_per_class < 1:
            raise ValueError("val_per_class must be >= 1 (val must stay disjoint from test)")
        self.val_per_class = val_per_class
        self.use_segmentations = use_segmentations
        self.metadata_dir = Path(metadata_dir) if metadata_dir is not None else None
        self._official: dict[str, DatasetIndex] | None = None
        self.download, self.url, self.checksum = download, url, checksum

    def prepare_data(self) -> None:
        """Download the official archive when ``download=True`` and the data is missing."""
        if self.download and self.metadata_dir is None:
            prepare_official(
                self.data_dir, "CUB_200_2011", "images.txt", CUB_RESOURCES, self.url, self.checksum
            )

    # -- layout detection ----------------------------------------------------------------------
    def _meta(self) -> Path | None:
        if self.metadata_dir is not None:
            if not (self.metadata_dir / "train" / "image_ids.txt").is_file():
                raise FileNotFoundError(
                    f"missing wsolevaluation metadata file: {self.metadata_dir}/train/image_ids.txt"
                )
            return self.metadata_dir
        return find_metadata_dir(self.data_dir, "CUB")

    def _root(self) -> Path:
        return resolve_root(self.data_dir, "images.txt", "CUB_200_2011")

    def read_class_names(self) -> list[str]:
        """Names from ``classes.txt`` (official) or from the train ids' class folders (metadata)."""
        meta = self._meta()
        if meta is None:
            rows = _table(self._root() / "classes.txt", 2)
            return [name for _, name in sorted(rows, key=lambda r: int(r[0]))]
        lines = require_file(meta / "train" / "class_labels.txt").read_text().split()
        names: dict[int, str] = {}
        for line in lines:
            image_id, _, label = line.rpartition(",")
            names.setdefault(int(label), image_id.split("/")[0])
        return [names.get(k, str(k)) for k in range(max(names) + 1)] if names else []

    def build_index(self, split: str) -> DatasetIndex:
        """Index of ``split`` in whichever layout ``data_dir``/``metadata_dir`` holds."""
        meta = self._meta()
        if meta is not None:
            first = require_file(meta / split / "image_ids.txt").read_text().split("\n", 1)[0].strip()
            root = image_root_for(self.data_dir, first)
            index = read_metadata(
                meta / split,
                root,
                num_classes=self.num_classes,
                class_names=self.class_names,
                require_localization=split != "train",
            )
            index.clip_boxes = False
            return index
        if self._official is None:
            self._official = self._parse_official()
        return self._official[split]

    # -- official layout -----------------------------------------------------------------------
    def _parse_official(self) -> dict[str, DatasetIndex]:
        root = self._root()
        for name in OFFICIAL_FILES + ("classes.txt",):
            require_file(root / name, "CUB file")
        images = _table(root / "images.txt", 2)
        ids = [r[0] for r in images]
        check_unique(ids, root / "images.txt")
        pos = {k: i for i, k in enumerate(ids)}
        n = len(ids)

        def column(name: str, ncols: int) -> list[list[str]]:
            rows = _table(root / name, ncols)
            seen = set()
            for line_no, r in enumerate(rows, start=1):
                if r[0] not in pos:
                    raise DataError(f"{root / name}:{line_no}: unknown image id {r[0]!r}")
                if r[0] in seen:
                    raise DataError(f"{root / name}:{line_no}: duplicate image id {r[0]!r}")
                seen.add(r[0])
            if len(rows) != n:
                missing = next(k for k in ids if k not in seen)
                raise DataError(f"{root / name}: no line for image id {missing!r}")
            return sorted(rows, key=lambda r: pos[r[0]])

        labels = np.array([int(r[1]) - 1 for r in column("image_class_labels.txt", 2)], dtype=np.int64)
        check_labels(labels, self.num_classes, root / "image_class_labels.txt")
        is_train = np.array([r[1].strip() == "1" for r in column("train_test_split.txt", 2)])
        boxes = np.zeros((n, 4), dtype=np.int32)
        for i, r in enumerate(column("bounding_boxes.txt", 5)):
            x, y, w, h = (float(v) for v in r[1:])
            boxes[i] = (int(x), int(y), int(x + w), int(y + h))
        paths = [r[1].strip() for r in images]
        seg_dir = next(
            (d for d in (root / "segmentations", root.parent / "segmentations") if d.is_dir()), None
        )
        masks = None
        if self.use_segmentations and seg_dir is not None:
            masks = []
            for p in paths:
                png = str(Path(p).with_suffix(".png"))
                masks.append((png,) if (seg_dir / png).is_file() else ())
        full = DatasetIndex(
            root=root / "images",
            image_ids=paths,
            labels=labels,
            box_offsets=np.arange(n + 1, dtype=np.int64),
            boxes=boxes,
            sizes=np.full((n, 2), -1, dtype=np.int32),
            mask_paths=masks,
            mask_root=seg_dir,
            clip_boxes=True,
            class_names=self.class_names,
            source=str(root / "bounding_boxes.txt"),
        )
        rng = np.random.default_rng(self.seed)
        train_pos = np.flatnonzero(is_train)
        val_mask = np.zeros(n, dtype=bool)
        for c in np.unique(labels[train_pos]):
            members = train_pos[labels[train_pos] == c]
            k = min(self.val_per_class, len(members) - 1) if len(members) > 1 else 0
            val_mask[rng.choice(members, size=k, replace=False)] = True
        return {
            "train": full.subset(np.flatnonzero(is_train & ~val_mask)),
            "val": full.subset(np.flatnonzero(val_mask)),
            "test": full.subset(np.flatnonzero(~is_train)),
        }
