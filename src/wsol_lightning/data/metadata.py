"""Reader (and writer, for tests) of the wsolevaluation metadata layout.

``metadata/<DS>/<split>/`` holds four comma-separated text files without header
(clovaai/wsolevaluation):

- ``image_ids.txt``: one image id per line (a path relative to the image root); the eval order.
- ``class_labels.txt``: ``image_id,label`` (0-based).
- ``image_sizes.txt``: ``image_id,width,height`` of the original image (empty for train splits).
- ``localization.txt``: ``image_id,x0,y0,x1,y1`` per box (inclusive, original pixels; repeated ids
  give several boxes) or ``image_id,mask_path,ignore_path`` per instance mask (OpenImages; only the
  first line of an image carries the ignore path; an empty/missing ignore path is tolerated).

Parsing uses plain string methods and numpy (no pandas): 1.28M lines take a few seconds. Every
error names ``file:line: field``; boxes are checked against ``image_sizes.txt`` (see
:mod:`~wsol_lightning.data.validation`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from wsol_lightning.data.index import DataError, DatasetIndex, boxes_to_csr, check_labels, check_unique
from wsol_lightning.data.parsing import (
    check_inside,
    data_error,
    gc_paused,
    parse_float,
    parse_int,
    read_lines,
    split_fields,
)
from wsol_lightning.data.validation import validate_index

SPLITS = ("train", "val", "test")
FILES = ("image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt")


def _numbered(path: Path) -> tuple[list[str], np.ndarray | None]:
    """Non-blank lines of ``path`` and their line numbers (``None``: no blank line, line = position + 1)."""
    lines = read_lines(path, "wsolevaluation metadata file")
    if "" not in lines and not any(map(str.isspace, lines)):  # C-speed fast path (1.28M lines)
        return lines, None
    blank = [not line.strip() for line in lines]
    numbers = np.flatnonzero(~np.asarray(blank, dtype=bool)) + 1
    return [lines[k - 1] for k in numbers.tolist()], numbers


def _line(numbers: np.ndarray | None, k: int) -> int:
    return int(numbers[k]) if numbers is not None else k + 1


def _fields(path: Path, lines: list[str], numbers: np.ndarray | None, names: tuple[str, ...]) -> list[list[str]]:
    """Split comma-separated lines into exactly ``len(names)`` fields (file, line and count in errors)."""
    rows = [line.split(",") for line in lines]
    bad = next((k for k, r in enumerate(rows) if len(r) != len(names)), None)
    if bad is not None:
        split_fields(lines[bad], names, path, _line(numbers, bad), ",")
    return rows


def _position_lookup(image_ids: list[str]) -> dict[str, int]:
    return {image_id: i for i, image_id in enumerate(image_ids)}


def _unknown_id(path: Path, line: int, key: str) -> DataError:
    return data_error(path, line, "image_id", f"{key!r} is not in image_ids.txt")


def _parse_labels(path: Path, image_ids: list[str]) -> np.ndarray:
    lines, numbers = _numbered(path)
    rows = _fields(path, lines, numbers, ("image_id", "label"))
    keys = [r[0].strip() for r in rows]
    try:
        values = np.array([r[1] for r in rows]).astype(np.int64)
    except ValueError:
        bad = next(k for k, r in enumerate(rows) if not r[1].strip().lstrip("-").isdigit())
        raise data_error(path, _line(numbers, bad), "label", f"{rows[bad][1].strip()!r} is not an integer") from None
    if keys == image_ids:  # fast path: same order as image_ids.txt
        return np.asarray(values, dtype=np.int64)
    labels = np.full(len(image_ids), -1, dtype=np.int64)
    lookup = _position_lookup(image_ids)
    for k, (key, value) in enumerate(zip(keys, values)):
        pos = lookup.get(key)
        if pos is None:
            raise _unknown_id(path, _line(numbers, k), key)
        labels[pos] = value
    missing = np.flatnonzero(labels < 0)
    if len(missing):
        raise DataError(f"{path}: no label for image {image_ids[missing[0]]!r} ({len(missing)} missing)")
    return labels


def _parse_sizes(path: Path, image_ids: list[str], lookup: dict[str, int]) -> np.ndarray:
    sizes = np.full((len(image_ids), 2), -1, dtype=np.int32)
    if not path.is_file():
        return sizes
    lines, numbers = _numbered(path)
    for k, (key, width, height) in enumerate(_fields(path, lines, numbers, ("image_id", "width", "height"))):
        line = _line(numbers, k)
        pos = lookup.get(key.strip())
        if pos is None:
            raise _unknown_id(path, line, key.strip())
        for name, text in (("width", width), ("height", height)):
            if parse_int(text, path, line, name) < 1:
                raise data_error(path, line, name, f"{text.strip()!r} is not a positive size")
        sizes[pos] = (int(width), int(height))
    return sizes


def class_names_from_labels(path: Path) -> list[str]:
    """Class names from a ``class_labels.txt``: the parent folder of each label's first image id."""
    lines, numbers = _numbered(path)
    names: dict[int, str] = {}
    for k, (image_id, label) in enumerate(_fields(path, lines, numbers, ("image_id", "label"))):
        value = parse_int(label, path, _line(numbers, k), "label")
        parts = image_id.strip().split("/")
        names.setdefault(value, parts[-2] if len(parts) > 1 else str(value))
    return [names.get(k, str(k)) for k in range(max(names) + 1)] if names else []


@gc_paused()
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
    id_lines, id_numbers = _numbered(ids_path)
    image_ids = [line.strip() for line in id_lines]
    line_list = id_numbers.tolist() if id_numbers is not None else None
    check_unique(image_ids, ids_path, line_list)
    check_inside(image_ids, ids_path, "image_id", line_list)
    labels = _parse_labels(split_dir / "class_labels.txt", image_ids)
    if num_classes is not None:
        check_labels(labels, num_classes, split_dir / "class_labels.txt")
    loc_path = split_dir / "localization.txt"
    loc_lines, loc_numbers = _numbered(loc_path) if loc_path.is_file() else ([], None)
    sizes_path = split_dir / "image_sizes.txt"
    has_sizes = sizes_path.is_file() and sizes_path.stat().st_size > 0
    lookup = _position_lookup(image_ids) if loc_lines or has_sizes else {}
    sizes = (
        _parse_sizes(sizes_path, image_ids, lookup)
        if lookup
        else np.full((len(image_ids), 2), -1, dtype=np.int32)
    )
    per_boxes: list[list[list[int]]] = [[] for _ in image_ids] if loc_lines else []
    per_lines: list[list[int]] = [[] for _ in image_ids] if loc_lines else []
    masks: list[list[str]] | None = None
    ignores: list[str | None] | None = None
    for k, line in enumerate(loc_lines):
        line_no = _line(loc_numbers, k)
        parts = line.split(",")
        pos = lookup.get(parts[0].strip())
        if pos is None:
            raise _unknown_id(loc_path, line_no, parts[0].strip())
        if len(parts) == 5:
            box = [int(parse_float(v, loc_path, line_no, f)) for v, f in zip(parts[1:], ("x0", "y0", "x1", "y1"))]
            per_boxes[pos].append(box)
            per_lines[pos].append(line_no)
        elif len(parts) in (2, 3):
            if masks is None:
                masks, ignores = [[] for _ in image_ids], [None] * len(image_ids)
            check_inside([p.strip() for p in parts[1:]], loc_path, "mask_path", [line_no] * (len(parts) - 1))
            masks[pos].append(parts[1].strip())
            if len(parts) == 3 and parts[2].strip():
                ignores[pos] = parts[2].strip()  # type: ignore[index]
        else:
            raise data_error(
                loc_path, line_no, "columns",
                f"expected 5 (image_id, x0, y0, x1, y1) or 3 (image_id, mask_path, ignore_path), got "
                f"{len(parts)} in {line!r}",
            )  # fmt: skip
    if per_boxes:
        offsets, boxes = boxes_to_csr(per_boxes)
    else:
        offsets, boxes = np.zeros(len(image_ids) + 1, dtype=np.int64), np.zeros((0, 4), dtype=np.int32)
    index = DatasetIndex(
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
        source=str(loc_path if per_boxes else ids_path),
        box_lines=np.fromiter((n for ls in per_lines for n in ls), dtype=np.int64) if per_boxes else None,
    )
    validate_index(index, read_sizes=False)  # inverted / outside boxes, named by line (sizes given here)
    return index


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
