"""Tiny PASCAL VOC 2012 copies in the official ``VOCdevkit/VOC2012`` layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from wsol_lightning.data.fakes.cub import write_jpg

VOC_NAMES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)  # fmt: skip


def _xml(name: str, w: int, h: int, objects: list[tuple[str, list[int]]]) -> str:
    objs = "".join(
        f"<object><name>{c}</name><difficult>0</difficult><bndbox><xmin>{b[0] + 1}</xmin>"
        f"<ymin>{b[1] + 1}</ymin><xmax>{b[2] + 1}</xmax><ymax>{b[3] + 1}</ymax></bndbox></object>"
        for c, b in objects
    )
    return (
        f"<annotation><folder>VOC2012</folder><filename>{name}.jpg</filename><size><width>{w}</width>"
        f"<height>{h}</height><depth>3</depth></size>{objs}</annotation>"
    )


def write_voc_layout(root: str | Path, num_images: int = 24, seed: int = 0) -> Path:
    """Write ``root/VOCdevkit/VOC2012`` with 1-3 rectangular objects per image.

    Split files: ``Segmentation/val.txt`` (a quarter, with masks), ``Segmentation/train.txt`` (a
    quarter, with masks), ``Main/train.txt`` (everything not in Segmentation/val, so it overlaps
    Segmentation/train as in the real data). Masks are indexed PNGs with a 255 border ring.

    Returns:
        The ``VOC2012`` folder.

    """
    rng = np.random.default_rng(seed)
    voc = Path(root) / "VOCdevkit" / "VOC2012"
    for sub in ("Annotations", "SegmentationClass", "ImageSets/Main", "ImageSets/Segmentation"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    palette = np.random.default_rng(1).integers(0, 255, size=768).astype(np.uint8).tolist()
    ids = [f"2008_{k:06d}" for k in range(num_images)]
    q = max(num_images // 4, 1)
    seg_val, seg_train = ids[:q], ids[q : 2 * q]
    for image_id in ids:
        w, h = (int(v) for v in rng.integers(48, 80, size=2))
        image = rng.integers(0, 60, size=(h, w, 3), dtype=np.uint8)
        label = np.zeros((h, w), np.uint8)
        objects = []
        for _ in range(int(rng.integers(1, 4))):
            c = int(rng.integers(20))
            x0, y0 = int(rng.integers(1, w - 12)), int(rng.integers(1, h - 12))
            x1, y1 = (
                int(rng.integers(x0 + 4, min(x0 + w // 2, w - 1))),
                int(rng.integers(y0 + 4, min(y0 + h // 2, h - 1))),
            )
            image[y0 : y1 + 1, x0 : x1 + 1] = (12 * c, 255 - 12 * c, 100)
            label[y0 - 1 : y1 + 2, x0 - 1 : x1 + 2] = np.where(
                label[y0 - 1 : y1 + 2, x0 - 1 : x1 + 2] == 0, 255, label[y0 - 1 : y1 + 2, x0 - 1 : x1 + 2]
            )
            label[y0 : y1 + 1, x0 : x1 + 1] = c + 1
            objects.append((VOC_NAMES[c], [x0, y0, x1, y1]))
        write_jpg(voc / "JPEGImages" / f"{image_id}.jpg", image)
        (voc / "Annotations" / f"{image_id}.xml").write_text(_xml(image_id, w, h, objects))
        if image_id in seg_val or image_id in seg_train:
            png = Image.fromarray(label, mode="P")
            png.putpalette(palette)
            png.save(voc / "SegmentationClass" / f"{image_id}.png")
    sets = voc / "ImageSets"
    (sets / "Segmentation" / "val.txt").write_text("\n".join(seg_val) + "\n")
    (sets / "Segmentation" / "train.txt").write_text("\n".join(seg_train) + "\n")
    (sets / "Main" / "train.txt").write_text("\n".join(i for i in ids if i not in seg_val) + "\n")
    return voc
