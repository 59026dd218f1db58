"""CUB-200-2011: the official layout and the wsolevaluation metadata layout.

Official layout (``CUB_200_2011/``): ``images.txt`` (``id path``), ``image_class_labels.txt``
(``id class`` 1-based), ``train_test_split.txt`` (``id is_train``), ``bounding_boxes.txt``
(``id x y w h`` floats), ``classes.txt`` (``class name``), ``images/<class>/<name>.jpg`` and, when
present, ``segmentations/<class>/<name>.png`` (inside ``CUB_200_2011/`` or next to it) used as
masks for PxAP.

Boxes: ``x0 = int(x)``, ``y0 = int(y)``, ``x1 = int(x + w)``, ``y1 = int(y + h)`` (the convention of
wsolevaluation's CUB metadata, e.g. ``60 27 325 304`` -> ``60,27,385,331``), checked in ``setup``
against the image sizes read from the JPEG headers: a 1 px rounding overflow (``x + w == W``) is
clipped to ``W - 1``/``H - 1`` and counted in a warning; an inverted box or one outside its image
is an error naming ``bounding_boxes.txt:<line>``.

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
from wsol_lightning.data.metadata import class_names_from_labels, read_metadata
from wsol_lightning.data.parsing import check_inside, data_error, parse_float, parse_int, read_lines, split_fields

OFFICIAL_FILES = ("images.txt", "image_class_labels.txt", "train_test_split.txt", "bounding_boxes.txt")
BOX_FIELDS = ("image_id", "x", "y", "width", "height")


def _table(path: Path, names: tuple[str, ...], last_has_spaces: bool = False) -> list[tuple[int, list[str]]]:
    """Read a whitespace-separated CUB table as ``(line, fields)`` rows (file, line, field in errors).

    ``last_has_spaces``: the last column may hold spaces (a path or a name); otherwise a line with
    more or fewer columns than ``names`` is refused.
    """
    rows = []
    for line_no, line in enumerate(read_lines(path, "CUB file"), start=1):
        if not line.strip():
            continue
        if last_has_spaces:
            parts = line.split(maxsplit=len(names) - 1)
            if len(parts) != len(names):
                raise data_error(path, line_no, "columns", f"expected {len(names)} ({', '.join(names)}), got {line!r}")
        else:
            parts = split_fields(line, names, path, line_no)
        rows.append((line_no, parts))
    if not rows:
        raise DataError(f"{path}: the file is empty (expected one line per image: {' '.join(names)})")
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
            path = self._root() / "classes.txt"
            rows = [(parse_int(r[0], path, n, "class id"), r[1]) for n, r in _table(path, ("id", "name"), True)]
            return [name for _, name in sorted(rows)]
        return class_names_from_labels(require_file(meta / "train" / "class_labels.txt"))

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

    def split_source(self, split: str) -> str:
        """``train_test_split.txt`` for the official layout, the split's ``image_ids.txt`` for metadata."""
        meta = self._meta()
        if meta is not None:
            return str(meta / split / "image_ids.txt")
        return str(self._root() / "train_test_split.txt")

    # -- official layout -----------------------------------------------------------------------
    def _parse_official(self) -> dict[str, DatasetIndex]:
        root = self._root()
        for name in OFFICIAL_FILES + ("classes.txt",):
            require_file(root / name, "CUB file")
        images = _table(root / "images.txt", ("image_id", "path"), last_has_spaces=True)
        ids = [r[0] for _, r in images]
        check_unique(ids, root / "images.txt", [n for n, _ in images])
        check_inside([r[1].strip() for _, r in images], root / "images.txt", "path", [n for n, _ in images])
        pos = {k: i for i, k in enumerate(ids)}
        n = len(ids)

        def column(name: str, names: tuple[str, ...]) -> list[tuple[int, list[str]]]:
            rows = _table(root / name, names)
            seen = set()
            for line_no, r in rows:
                if r[0] not in pos:
                    raise data_error(root / name, line_no, "image_id", f"{r[0]!r} is not in images.txt")
                if r[0] in seen:
                    raise data_error(root / name, line_no, "image_id", f"duplicate {r[0]!r}")
                seen.add(r[0])
            if len(rows) != n:
                missing = next(k for k in ids if k not in seen)
                raise DataError(f"{root / name}: no line for image id {missing!r} (listed in images.txt)")
            return sorted(rows, key=lambda r: pos[r[1][0]])

        label_path = root / "image_class_labels.txt"
        label_rows = column("image_class_labels.txt", ("image_id", "class_id"))
        labels = np.array([parse_int(r[1], label_path, ln, "class_id") - 1 for ln, r in label_rows], dtype=np.int64)
        check_labels(labels, self.num_classes, label_path, [ln for ln, _ in label_rows])
        split_path = root / "train_test_split.txt"
        split_rows = column("train_test_split.txt", ("image_id", "is_training_image"))
        is_train = np.zeros(n, dtype=bool)
        for i, (ln, r) in enumerate(split_rows):
            if r[1] not in ("0", "1"):
                raise data_error(split_path, ln, "is_training_image", f"{r[1]!r} is not 0 or 1")
            is_train[i] = r[1] == "1"
        box_path = root / "bounding_boxes.txt"
        box_rows = column("bounding_boxes.txt", BOX_FIELDS)
        boxes = np.zeros((n, 4), dtype=np.int32)
        for i, (ln, r) in enumerate(box_rows):
            x, y, w, h = (parse_float(v, box_path, ln, f) for v, f in zip(r[1:], BOX_FIELDS[1:]))
            boxes[i] = (int(x), int(y), int(x + w), int(y + h))
        box_lines = np.array([ln for ln, _ in box_rows], dtype=np.int64)
        paths = [r[1].strip() for _, r in images]
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
            source=str(box_path),
            box_lines=box_lines,
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
