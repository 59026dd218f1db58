"""Read an ImageNet-scale wsolevaluation train index: wall time and peak memory against targets.

Writes ``image_ids.txt`` / ``class_labels.txt`` with ``--lines`` entries (1,281,167 = ILSVRC train) into a
temporary folder, then times :func:`wsol_lightning.data.metadata.read_metadata` on it and reads the
process's peak RSS growth from ``/proc/self`` (Linux; reported as n/a elsewhere).

    python benchmarks/index_scale.py                 # 1.28M lines
    python benchmarks/index_scale.py --lines 200000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import _common
import numpy as np

from wsol_lightning.data.metadata import read_metadata

TARGET_S = 20.0
TARGET_BYTES = 1e9


def _status(key: str) -> int | None:
    status = Path("/proc/self/status")
    if not status.is_file():
        return None
    for line in status.read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return None


def write_index(folder: Path, lines: int) -> None:
    """A train split of ``lines`` images over 1000 classes, in wsolevaluation's metadata format."""
    folder.mkdir(parents=True)
    syn = (np.arange(lines) % 1000).tolist()
    ids = [f"train/n{s:08d}/n{s:08d}_{i}.JPEG" for i, s in enumerate(syn)]
    (folder / "image_ids.txt").write_text("\n".join(ids))
    (folder / "class_labels.txt").write_text("\n".join(f"{i},{s}" for i, s in zip(ids, syn)))
    (folder / "image_sizes.txt").write_text("")
    (folder / "localization.txt").write_text("")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_281_167)
    args = parser.parse_args()
    print(_common.machine())
    with tempfile.TemporaryDirectory() as tmp:
        write_index(Path(tmp) / "train", args.lines)
        try:
            Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS counter
            base = _status("VmRSS")
        except OSError:
            base = None
        start = time.perf_counter()
        index = read_metadata(Path(tmp) / "train", Path(tmp), num_classes=1000)
        elapsed = time.perf_counter() - start
        peak = _status("VmHWM")
    assert len(index) == args.lines
    print(f"read_metadata, {args.lines:,} lines: {elapsed:.1f} s (target <= {TARGET_S:.0f} s)")
    if base is not None and peak is not None:
        print(f"peak RSS growth: {(peak - base) / 1e6:.0f} MB (target <= {TARGET_BYTES / 1e6:.0f} MB)")
    else:
        print("peak RSS growth: n/a on this platform")


if __name__ == "__main__":
    main()
