"""Reader (and writer, for tests) of the wsolevaluation metadata layout.

``metadata/<DS>/<split>/`` holds four comma-separated text files without header
(clovaai/wsolevaluation):

- ``image_ids.txt``: one image id per line (a path relative to the image root); the eval order.
- ``class_labels.txt``: ``image_id,label`` (0-based).
- ``image_sizes.txt``: ``image_id,width,height`` of the original image (empty for train splits).
- ``localization.txt``: ``image_id,x0,y0,x1,y1`` per box (inclusive, original pixels; repeated ids
  give several boxes) or ``image_id,mask_path,ignore_path`` per instance mask (OpenImages; only the
  first line of an image carries the ignore path; an empty/missing ignore path is tolerated).

Parsing uses plain string methods and numpy (no pandas): 1.28M lines take a few seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from wsol_lightning.data.index import DataError, DatasetIndex, boxes_to_csr, check_labels, check_unique

SPLITS = ("train", "val", "test")
FILES = ("image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt")


def _lines(path: Path) -> list[str]:
    lines = path.read_text().splitlines()
    if any(not line.strip() for line in lines[-2:]) or "\n\n" in "\n".join(lines[:-2]):
        lines = [line for line in lines if line.strip()]
    return lines


def _position_lookup(image_ids: list[str]) -> dict[str, int]:
    return {image_id: i for i, image_id in enumerate(image_ids)}


def _parse_labels(path: Path, image_ids: list[str]) -> np.ndarray:
    lines = _lines(path)
    split = [line.rpartition(",") for line in lines]
    keys = [parts[0] for parts in split]
    try:
        values = np.array([parts[2] for parts in split]).astype(np.int64)
    except ValueError as err:
        bad = next(i for i, ln in enumerate(lines) if not ln.rpartition(",")[2].strip().lstrip("-").isdigit())
        raise DataError(f"{path}:{bad + 1}: cannot parse label in {lines[bad]!r}") from err
    if keys == image_ids:  # fast path: same order as image_ids.txt
        return np.asarray(values, dtype=np.int64)
    labels = np.full(len(image_ids), -1, dtype=np.int64)
    lookup = _position_lookup(image_ids)
    for line_no, (key, value) in enumerate(zip(keys, values), start=1):
        pos = lookup.get(key)
        if pos is None:
            raise DataError(f"{path}:{line_no}: image id {key!r} is not in image_ids.txt")
        labels[pos] = value
    missing = np.flatnonzero(labels < 0)
    if len(missing):
        raise DataError(f"{path}: no label for image {image_ids[missing[0]]!r} ({len(missing)} missing)")
    return labels


def _parse_sizes(path: Path, image_ids: list[str], lookup: dict[str, int]) -> np.ndarray:
    sizes = np.full((len(image_ids), 2), -1, dtype=np.int32)
    if not path.is_file():
        return sizes
    for line_no, line in enumerate(_lines(path), start=1):
        parts = line.rsplit(",", 2)
        pos = lookup.get(parts[0])
        if pos is None or len(parts) != 3:
            raise DataError(f"{path}:{line_no}: bad line or unknown image id: {line!r}")
        sizes[pos] = (int(parts[1]), int(parts[2]))
    return sizes


def read_metadata(
    split_dir: str | Path,
    root: str | Path,
    *,
    mask_root: str | Path | None = None,
    num_classes: int | None = None,
    class_names: Sequence[str] = (),
    require_localization: bool = False,
) -> DatasetIndex:
    """Parse one ``metadata/<DS>/<split>/`` folder into a :class:`DatasetIndex`.

    Args:
        split_dir: folder holding the four metadata files.
        root: image root the ids are relative to.
        mask_root: root of mask paths (OpenImages); defaults to ``root``.
        num_classes: when given, labels outside ``[0, num_classes)`` raise.
        class_names: names stored on the index.
        require_localization: raise when ``localization.txt`` is missing (val/test splits).

    Returns:
        The index; boxes/masks empty when ``localization.txt`` is empty.

    Raises:
        FileNotFoundError: a required file is missing (named in the message).
        DataError: malformed line, unknown or duplicate id, label out of range, box outside the
            image (file and line named).

    """
    split_dir = Path(split_dir)
    for name in FILES[:2] + ((FILES[3],) if require_localization else ()):
        if not (split_dir / name).is_file():
            raise FileNotFoundError(f"missing wsolevaluation metadata file: {split_dir / name}")
    ids_path = split_dir / "image_ids.txt"
    image_ids = [line.strip() for line in _lines(ids_path)]
    check_unique(image_ids, ids_path)
    labels = _parse_labels(split_dir / "class_labels.txt", image_ids)
    if num_classes is not None:
        check_labels(labels, num_classes, split_dir / "class_labels.txt")
    loc_path = split_dir / "localization.txt"
    loc_lines = _lines(loc_path) if loc_path.is_file() else []
    lookup = _position_lookup(image_ids) if loc_lines or (split_dir / "image_sizes.txt").is_file() else {}
    sizes = (
        _parse_sizes(split_dir / "image_sizes.txt", image_ids, lookup)
        if lookup
        else np.full((len(image_ids), 2), -1, dtype=np.int32)
    )
    per_boxes: list[list[list[int]]] = [[] for _ in image_ids] if loc_lines else []
    masks: list[list[str]] | None = None
    ignores: list[str | None] | None = None
    for line_no, line in enumerate(loc_lines, start=1):
        parts = line.split(",")
        pos = lookup.get(parts[0])
        if pos is None:
            raise DataError(f"{loc_path}:{line_no}: image id {parts[0]!r} is not in image_ids.txt")
        if len(parts) == 5:
            try:
                x0, y0, x1, y1 = (int(float(v)) for v in parts[1:])
            except ValueError as err:
                raise DataError(f"{loc_path}:{line_no}: cannot parse box {line!r}") from err
            w, h = sizes[pos]
            if x0 < 0 or y0 < 0 or x1 < x0 or y1 < y0 or (w > 0 and (x1 > w - 1 or y1 > h - 1)):
                raise DataError(
                    f"{loc_path}:{line_no}: box {(x0, y0, x1, y1)} of {parts[0]!r} is outside the image "
                    f"(size {w}x{h}) or has x1 < x0 / y1 < y0"
                )
            per_boxes[pos].append([x0, y0, x1, y1])
        elif len(parts) in (2, 3):
            if masks is None:
                masks, ignores = [[] for _ in image_ids], [None] * len(image_ids)
            masks[pos].append(parts[1].strip())
            if len(parts) == 3 and parts[2].strip():
                ignores[pos] = parts[2].strip()  # type: ignore[index]
        else:
            raise DataError(f"{loc_path}:{line_no}: expected 5 (box) or 3 (mask) fields, got {line!r}")
    if per_boxes:
        offsets, boxes = boxes_to_csr(per_boxes)
    else:
        offsets, boxes = np.zeros(len(image_ids) + 1, dtype=np.int64), np.zeros((0, 4), dtype=np.int32)
    return DatasetIndex(
        root=Path(root),
        image_ids=image_ids,
        labels=labels,
        box_offsets=offsets,
        boxes=boxes,
        sizes=sizes,
        mask_paths=None if masks is None else [tuple(m) for m in masks],
        ignore_paths=ignores,
        mask_root=Path(mask_root) if mask_root is not None else None,
        class_names=list(class_names),
        source=str(split_dir),
    )


def write_metadata(
    split_dir: str | Path,
    image_ids: Sequence[str],
    labels: Sequence[int],
    sizes: Sequence[tuple[int, int]] | None = None,
    boxes: Sequence[Sequence[Sequence[int]]] | None = None,
    masks: Sequence[tuple[Sequence[str], str | None]] | None = None,
) -> Path:
    """Write a metadata split folder in the wsolevaluation format (no trailing newline).

    Args:
        split_dir: output folder (created).
        image_ids: ids in evaluation order.
        labels: one label per id.
        sizes: optional ``(width, height)`` per id.
        boxes: optional per-id box lists ``x0, y0, x1, y1``.
        masks: optional per-id ``(instance_mask_paths, ignore_path)``.

    Returns:
        ``split_dir``.

    """
    split_dir = Path(split_dir)
    split_dir.mkdir(parents=True, exist_ok=True)
    (split_dir / "image_ids.txt").write_text("\n".join(image_ids))
    (split_dir / "class_labels.txt").write_text("\n".join(f"{i},{c}" for i, c in zip(image_ids, labels)))
    lines = [f"{i},{w},{h}" for i, (w, h) in zip(image_ids, sizes)] if sizes is not None else []
    (split_dir / "image_sizes.txt").write_text("\n".join(lines))
    loc: list[str] = []
    if boxes is not None:
        loc = [f"{i},{b[0]},{b[1]},{b[2]},{b[3]}" for i, bs in zip(image_ids, boxes) for b in bs]
    elif masks is not None:
        for image_id, (paths, ignore) in zip(image_ids, masks):
            for k, path in enumerate(paths):
                loc.append(f"{image_id},{path},{(ignore or '') if k == 0 else ''}")
    (split_dir / "localization.txt").write_text("\n".join(loc))
    return split_dir
