"""Tiny COCO-format datasets (instances JSON with polygons and RLE)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from wsol_lightning.data.fakes.cub import write_jpg


def write_coco_layout(root: str | Path, num_images: int = 12, num_classes: int = 3, seed: int = 0) -> Path:
    """Write ``root/images/{train,test}/`` and ``root/annotations/{train,test}.json``.

    Each image has 1-2 rectangular instances given as polygons (the first) or uncompressed RLE
    (the second); category ids are non-consecutive (10, 20, ...); one train image is unannotated.

    Returns:
        ``root``.

    """
    root, rng = Path(root), np.random.default_rng(seed)
    cats = [{"id": 10 * (c + 1), "name": f"thing{c}"} for c in range(num_classes)]
    for split in ("train", "test"):
        images, anns = [], []
        for i in range(num_images):
            w, h = (int(v) for v in rng.integers(40, 70, size=2))
            image = rng.integers(0, 60, size=(h, w, 3), dtype=np.uint8)
            name = f"{split}_{i:03d}.jpg"
            images.append({"id": 1000 + i, "file_name": name, "width": w, "height": h})
            for j in range(0 if (split == "train" and i == 0) else 1 + i % 2):
                x0, y0 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
                x1, y1 = int(rng.integers(x0 + 4, w)), int(rng.integers(y0 + 4, h))
                image[y0:y1, x0:x1] = 220
                if j == 0:
                    seg: object = [[x0, y0, x1, y0, x1, y1, x0, y1]]
                else:
                    m = np.zeros((h, w), np.uint8)
                    m[y0:y1, x0:x1] = 1
                    flat = m.flatten(order="F")
                    change = np.flatnonzero(np.diff(np.concatenate([[0], flat, [2]])) != 0)
                    seg = {
                        "size": [h, w],
                        "counts": np.diff(np.concatenate([[0], change])).tolist()[: len(change)],
                    }
                cat = cats[int(rng.integers(num_classes))]["id"]
                anns.append(
                    {
                        "id": len(anns) + 1,
                        "image_id": 1000 + i,
                        "category_id": cat,
                        "iscrowd": int(j == 1),
                        "bbox": [x0, y0, x1 - x0, y1 - y0],
                        "area": float((x1 - x0) * (y1 - y0)),
                        "segmentation": seg,
                    }
                )
            write_jpg(root / "images" / split / name, image)
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        payload = {"images": images, "annotations": anns, "categories": cats}
        (root / "annotations" / f"{split}.json").write_text(json.dumps(payload))
    return root
