"""Tiny ILSVRC copies: the wsolevaluation layout and the official ILSVRC2012 layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wsol_lightning.data.fakes.cub import write_jpg, write_png
from wsol_lightning.data.metadata import write_metadata


def _image(rng: np.random.Generator, n_boxes: int) -> tuple[np.ndarray, list[list[int]]]:
    w, h = (int(v) for v in rng.integers(40, 72, size=2))
    image = rng.integers(0, 80, size=(h, w, 3), dtype=np.uint8)
    boxes = []
    for _ in range(n_boxes):
        x0, y0 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
        x1, y1 = int(rng.integers(x0 + 3, w)), int(rng.integers(y0 + 3, h))
        image[y0 : y1 + 1, x0 : x1 + 1] = 200
        boxes.append([x0, y0, x1, y1])
    return image, boxes


def write_imagenet_metadata_layout(
    root: str | Path, num_classes: int = 3, per_class: int = 4, seed: int = 0
) -> Path:
    """Write ``root/{train,val2,val}`` images and ``root/metadata/ILSVRC/{train,val,test}``.

    Val (ImageNetV2) ids are ``val2/<cls>/<k>.jpeg``; test images carry 1-3 boxes each.

    Returns:
        ``root``.

    """
    root, rng = Path(root), np.random.default_rng(seed)
    synsets = [f"n{1440764 + c:08d}" for c in range(num_classes)]
    meta = root / "metadata" / "ILSVRC"
    tr_ids, tr_lab = [], []
    split_data: dict[str, tuple[list, list, list, list]] = {"val": ([], [], [], []), "test": ([], [], [], [])}
    for c, syn in enumerate(synsets):
        for k in range(per_class):
            rel = f"train/{syn}/{syn}_{k}.JPEG"
            write_jpg(root / rel, _image(rng, 0)[0])
            tr_ids.append(rel)
            tr_lab.append(c)
            for split, rel in (
                ("val", f"val2/{c}/{k}.jpeg"),
                ("test", f"val/ILSVRC2012_val_{c * per_class + k + 1:08d}.JPEG"),
            ):
                image, boxes = _image(rng, 1 if split == "val" else 1 + k % 3)
                write_jpg(root / rel, image)
                ids, labels, sizes, bxs = split_data[split]
                ids.append(rel)
                labels.append(c)
                sizes.append((image.shape[1], image.shape[0]))
                bxs.append(boxes)
    write_metadata(meta / "train", tr_ids, tr_lab)
    (meta / "train" / "image_ids_proxy.txt").write_text("\n".join(tr_ids[::2]))
    for split, (ids, labels, sizes, bxs) in split_data.items():
        write_metadata(meta / split, ids, labels, sizes=sizes, boxes=bxs)
    return root


def write_imagenet_official_layout(
    root: str | Path, num_classes: int = 3, per_class: int = 4, seed: int = 0
) -> Path:
    """Write the official layout: ``train/<synset>/``, ``val/`` + ``bbox_val/*.xml``, synset mapping.

    XML boxes hold raw 0-based pixel values.

    Returns:
        ``root``.

    """
    root, rng = Path(root), np.random.default_rng(seed)
    synsets = [f"n{1440764 + c:08d}" for c in range(num_classes)]
    root.mkdir(parents=True, exist_ok=True)
    (root / "LOC_synset_mapping.txt").write_text("".join(f"{s} class {k}\n" for k, s in enumerate(synsets)))
    (root / "bbox_val").mkdir(parents=True, exist_ok=True)
    n = 0
    for syn in synsets:
        for k in range(per_class):
            write_jpg(root / "train" / syn / f"{syn}_{k}.JPEG", _image(rng, 0)[0])
            n += 1
            stem = f"ILSVRC2012_val_{n:08d}"
            image, boxes = _image(rng, 1 + k % 2)
            write_jpg(root / "val" / f"{stem}.JPEG", image)
            objs = "".join(
                f"<object><name>{syn}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
                f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
                for b in boxes
            )
            (root / "bbox_val" / f"{stem}.xml").write_text(
                f"<annotation><filename>{stem}</filename>{objs}</annotation>"
            )
    return root


def write_openimages_layout(
    root: str | Path, num_classes: int = 3, per_class: int = 4, seed: int = 0
) -> Path:
    """Write wsolevaluation OpenImages: ``root/{train,val,test}/<mid>/`` images + masks and metadata.

    Val/test images get 1-2 instance masks; every other image has an ignore mask, the rest leave
    the ignore column empty (the case of wsolevaluation issue #33).

    Returns:
        ``root``.

    """
    root, rng = Path(root), np.random.default_rng(seed)
    mids = [f"0{c}abc" for c in range(num_classes)]
    for split in ("train", "val", "test"):
        ids, labels, masks = [], [], []
        for c, mid in enumerate(mids):
            for k in range(per_class):
                stem = f"{split}/{mid}/{c:02d}{k:02d}beef"
                image, boxes = _image(rng, 0 if split == "train" else 1 + k % 2)
                write_jpg(root / f"{stem}.jpg", image)
                ids.append(f"{stem}.jpg")
                labels.append(c)
                paths = []
                for j, (x0, y0, x1, y1) in enumerate(boxes):
                    m = np.zeros(image.shape[:2], np.uint8)
                    m[y0 : y1 + 1, x0 : x1 + 1] = 255
                    write_png(root / f"{stem}_m{mid}_{j}.png", m)
                    paths.append(f"{stem}_m{mid}_{j}.png")
                ignore = None
                if paths and k % 2 == 0:
                    ig = np.zeros(image.shape[:2], np.uint8)
                    ig[: image.shape[0] // 3] = 255
                    write_png(root / f"{stem}_ignore.png", ig)
                    ignore = f"{stem}_ignore.png"
                masks.append((paths, ignore))
        write_metadata(
            root / "metadata" / "OpenImages" / split, ids, labels, masks=None if split == "train" else masks
        )
    return root
