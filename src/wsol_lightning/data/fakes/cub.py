"""Tiny CUB_200_2011 copies (official layout) and their wsolevaluation metadata."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from wsol_lightning.data.metadata import write_metadata


@dataclass
class FakeSample:
    """One generated image with its annotation.

    Attributes:
        label: 0-based class.
        name: file stem (unique within its class).
        image: ``(H, W, 3)`` uint8 RGB.
        box: CUB-style float box ``x, y, w, h``.
        mask: ``(H, W)`` uint8 segmentation (0/255) or ``None``.
        is_train: official train split membership.

    """

    label: int
    name: str
    image: np.ndarray
    box: tuple[float, float, float, float]
    mask: np.ndarray | None
    is_train: bool


def write_png(path: Path, array: np.ndarray) -> None:
    """Write an RGB or grayscale uint8 array as PNG (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = array[..., ::-1] if array.ndim == 3 else array
    if not cv2.imwrite(str(path), np.ascontiguousarray(data)):
        raise OSError(f"could not write {path}")


def write_jpg(path: Path, rgb: np.ndarray, quality: int = 95) -> None:
    """Write an RGB uint8 array as JPEG (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality]):
        raise OSError(f"could not write {path}")


def write_cub_files(root: Path, class_names: Sequence[str], samples: Sequence[FakeSample]) -> Path:
    """Write ``samples`` in the official CUB_200_2011 layout under ``root`` (``root`` = CUB_200_2011).

    Returns:
        ``root``.

    """
    root.mkdir(parents=True, exist_ok=True)
    folders = [f"{k + 1:03d}.{name}" for k, name in enumerate(class_names)]
    (root / "classes.txt").write_text("".join(f"{k + 1} {f}\n" for k, f in enumerate(folders)))
    images, labels, split, boxes = [], [], [], []
    for i, s in enumerate(samples, start=1):
        rel = f"{folders[s.label]}/{s.name}.jpg"
        write_jpg(root / "images" / rel, s.image)
        if s.mask is not None:
            write_png(root / "segmentations" / rel.replace(".jpg", ".png"), s.mask)
        images.append(f"{i} {rel}\n")
        labels.append(f"{i} {s.label + 1}\n")
        split.append(f"{i} {int(s.is_train)}\n")
        boxes.append(f"{i} {s.box[0]:.1f} {s.box[1]:.1f} {s.box[2]:.1f} {s.box[3]:.1f}\n")
    (root / "images.txt").write_text("".join(images))
    (root / "image_class_labels.txt").write_text("".join(labels))
    (root / "train_test_split.txt").write_text("".join(split))
    (root / "bounding_boxes.txt").write_text("".join(boxes))
    return root


def write_cub_layout(
    root: str | Path,
    num_classes: int = 3,
    images_per_class: int = 8,
    with_segmentations: bool = True,
    seed: int = 0,
    size_range: tuple[int, int] = (40, 72),
) -> Path:
    """Write a tiny CUB_200_2011 copy: coloured rectangles on noise, half train, half test.

    Each image has a random size in ``size_range``; the object is a filled rectangle whose
    segmentation equals its box (``x1 = x + w`` pixels wide, inclusive), so tests can compare boxes
    and masks exactly. Some boxes touch the right/bottom border to exercise clipping.

    Args:
        root: parent folder; the dataset goes to ``root/CUB_200_2011``.
        num_classes: number of classes.
        images_per_class: images per class (first half train, second half test).
        with_segmentations: also write ``segmentations/``.
        seed: RNG seed.
        size_range: min/max image side.

    Returns:
        The ``CUB_200_2011`` folder.

    """
    rng = np.random.default_rng(seed)
    samples = []
    for c in range(num_classes):
        colour = np.array([(37 * c) % 256, (91 * c + 80) % 256, (53 * c + 160) % 256], dtype=np.uint8)
        for k in range(images_per_class):
            w, h = (int(v) for v in rng.integers(size_range[0], size_range[1] + 1, size=2))
            image = rng.integers(0, 60, size=(h, w, 3), dtype=np.uint8)
            bw, bh = int(rng.integers(w // 4, w // 2)), int(rng.integers(h // 4, h // 2))
            x = int(rng.integers(0, w - bw)) if k % 3 else w - 1 - bw  # every 3rd touches the border
            y = int(rng.integers(0, h - bh)) if k % 3 else h - 1 - bh
            image[y : y + bh + 1, x : x + bw + 1] = colour
            mask = None
            if with_segmentations:
                mask = np.zeros((h, w), dtype=np.uint8)
                mask[y : y + bh + 1, x : x + bw + 1] = 255
            samples.append(
                # border boxes get w + 1 so that x + w == width: exercises the clipping to W - 1
                FakeSample(
                    c,
                    f"img_{c}_{k}",
                    image,
                    (x, y, bw + (k % 3 == 0), bh + (k % 3 == 0)),
                    mask,
                    is_train=k < images_per_class // 2,
                )
            )
    return write_cub_files(Path(root) / "CUB_200_2011", [f"class_{c}" for c in range(num_classes)], samples)


def write_cub_metadata(cub_root: str | Path, out_dir: str | Path, val_per_class: int = 1) -> Path:
    """Write wsolevaluation metadata (``train/ val/ test/``) for an official-layout CUB copy.

    Image ids are relative to ``cub_root/images``; ``val`` takes the first ``val_per_class`` train
    images of each class, ``train`` the rest. Boxes are clipped with the real image sizes.

    Returns:
        ``out_dir``.

    """
    from PIL import Image

    cub_root, out_dir = Path(cub_root), Path(out_dir)
    ids = [ln.split()[1] for ln in (cub_root / "images.txt").read_text().splitlines()]
    labels = [int(ln.split()[1]) - 1 for ln in (cub_root / "image_class_labels.txt").read_text().splitlines()]
    train = [ln.split()[1] == "1" for ln in (cub_root / "train_test_split.txt").read_text().splitlines()]
    raw = [
        [float(v) for v in ln.split()[1:]]
        for ln in (cub_root / "bounding_boxes.txt").read_text().splitlines()
    ]
    sizes = []
    for i in ids:
        with Image.open(cub_root / "images" / i) as im:
            sizes.append(im.size)
    boxes = [
        [[int(x), int(y), min(int(x + w), W - 1), min(int(y + h), H - 1)]]
        for (x, y, w, h), (W, H) in zip(raw, sizes)
    ]
    taken: dict[int, int] = {}
    split_of = []
    for lab, is_train in zip(labels, train):
        if not is_train:
            split_of.append("test")
        elif taken.get(lab, 0) < val_per_class:
            taken[lab] = taken.get(lab, 0) + 1
            split_of.append("val")
        else:
            split_of.append("train")
    for split in ("train", "val", "test"):
        sel = [k for k, s in enumerate(split_of) if s == split]
        write_metadata(
            out_dir / split,
            [ids[k] for k in sel],
            [labels[k] for k in sel],
            sizes=None if split == "train" else [sizes[k] for k in sel],
            boxes=None if split == "train" else [boxes[k] for k in sel],
        )
    return out_dir
