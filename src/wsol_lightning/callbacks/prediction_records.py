"""Prediction records on disk: JSON lines appended per batch, COCO files assembled atomically from them.

``COCOPredictionWriter`` appends one line per image (and per skipped file) to ``records_rank<r>.jsonl`` and
flushes + fsyncs it after every batch, so a crash or a kill keeps every finished image. At the end (or when the
run stops on an exception) the COCO files are built from these lines and each is written atomically (temporary
file + rename). After a hard kill (SIGKILL, power loss) rebuild them from what was kept with::

    python -m wsol_lightning.callbacks.prediction_records OUTPUT_DIR

Line kinds: ``{"kind": "header", "categories": [...]}``, ``{"kind": "image", "image": {...}, "boxes": [...],
"mask": {...} | null}`` and ``{"kind": "skipped", "index": i, "file_name": ..., "reason": ...}``.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wsol_lightning import predict as P
from wsol_lightning.atomic import atomic_write_text

#: The COCO files written in the output folder.
OUTPUT_FILES = ("predictions.json", "results_bbox.json", "results_segm.json")


def records_path(output_dir: Path, rank: int) -> Path:
    """The JSON-lines file of rank ``rank``."""
    return Path(output_dir) / f"records_rank{rank}.jsonl"


class RecordLog:
    """Append-only JSON-lines file of one rank's predictions, flushed and fsync-ed after every batch."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 (kept open across batches)

    def append(self, lines: list[dict[str, Any]]) -> None:
        """Write ``lines`` (one JSON object each) and make them durable."""
        if self._file.closed:
            raise RuntimeError(f"record log {self.path} is closed")
        self._file.write("".join(json.dumps(line) + "\n" for line in lines))
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        """Close the file (idempotent)."""
        if not self._file.closed:
            self._file.close()


@dataclass
class Records:
    """Everything read back from record files."""

    images: list[dict[str, Any]] = field(default_factory=list)
    boxes: list[dict[str, Any]] = field(default_factory=list)
    masks: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    categories: list[dict[str, Any]] = field(default_factory=list)
    torn_lines: int = 0

    def add(self, line: dict[str, Any]) -> None:
        """Add one parsed line."""
        kind = line.get("kind")
        if kind == "header":
            self.categories = self.categories or list(line["categories"])
        elif kind == "image":
            self.images.append(line["image"])
            self.boxes.extend(line["boxes"])
            if line.get("mask") is not None:
                self.masks.append(line["mask"])
        elif kind == "skipped":
            self.skipped.append({k: v for k, v in line.items() if k != "kind"})


def read_records(paths: list[Path]) -> Records:
    """Read record files; a torn last line (the process died while writing it) is counted and dropped."""
    records = Records()
    for path in paths:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        for k, text in enumerate(lines):
            try:
                records.add(json.loads(text))
            except json.JSONDecodeError as err:
                if k != len(lines) - 1:
                    raise ValueError(f"corrupt record line {k + 1} of {path}: {err}") from err
                records.torn_lines += 1
    return records


def write_outputs(output_dir: Path, records: Records, complete: bool, stopped_by: str | None = None) -> list[Path]:
    """Write the COCO files of ``records`` atomically; return their paths.

    ``predictions.json`` is a COCO dataset plus ``skipped`` (``file_name``, ``index``, ``reason`` of every input
    that could not be read) and ``info`` (``complete``: False when the run stopped early, ``stopped_by``, counts).
    Skipped inputs are not in ``images``: a detector would take them for images without objects.
    """
    output_dir = Path(output_dir)
    records.images.sort(key=lambda im: im["id"])
    records.skipped.sort(key=lambda s: (s.get("index", -1), s.get("file_name", "")))
    dataset = P.coco_dataset(records.images, records.boxes, records.masks, records.categories)
    dataset["info"].update(complete=complete, num_images=len(records.images), num_skipped=len(records.skipped))
    if stopped_by:
        dataset["info"]["stopped_by"] = stopped_by
    dataset["skipped"] = records.skipped
    segm = [{k: v for k, v in m.items() if k != "bbox"} for m in records.masks]
    written = []
    for name, payload in zip(OUTPUT_FILES, (dataset, records.boxes, segm)):
        written.append(atomic_write_text(output_dir / name, json.dumps(payload)))
    return written


def summary(output_dir: Path, records: Records, complete: bool, maps: str | None = None) -> str:
    """One message saying what was written where (absolute path)."""
    where = Path(output_dir).resolve()
    state = "" if complete else "INCOMPLETE (run stopped early) "
    text = (f"predictions {state}written to {where}: {len(records.images)} images, {len(records.boxes)} boxes, "
            f"{len(records.masks)} masks in {', '.join(OUTPUT_FILES)}")
    if maps:
        text += f"; {maps}"
    if records.skipped:
        first = records.skipped[0]
        text += (f"; {len(records.skipped)} unreadable input(s) skipped, listed with the reason under 'skipped' "
                 f"in predictions.json (first: {first.get('file_name')}: {first.get('reason')})")
    return text


def finalize(output_dir: str | Path) -> list[Path]:
    """Rebuild the COCO files of ``output_dir`` from its record files (after a kill); marked incomplete."""
    output_dir = Path(output_dir)
    paths = sorted(output_dir.glob("records_rank*.jsonl"))
    if not paths:
        raise FileNotFoundError(f"no records_rank*.jsonl in {output_dir}: nothing to rebuild")
    records = read_records(paths)
    written = write_outputs(output_dir, records, complete=False, stopped_by="rebuilt from records after a kill")
    print(summary(output_dir, records, complete=False))
    return written


def main(argv: list[str] | None = None) -> None:
    """``python -m wsol_lightning.callbacks.prediction_records OUTPUT_DIR``: rebuild the COCO files."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output_dir", help="the COCOPredictionWriter output folder")
    finalize(parser.parse_args(argv).output_dir)


if __name__ == "__main__":  # pragma: no cover
    main()
