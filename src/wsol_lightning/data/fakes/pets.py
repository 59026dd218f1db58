"""Tiny Oxford-IIIT Pet copies in the official layout, quirks included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from wsol_lightning.data.fakes.cub import write_jpg, write_png

PET_BREEDS = (("Abyssinian", 1, 1), ("american_bulldog", 2, 2), ("Bengal", 6, 1), ("beagle", 7, 2))


def write_pets_layout(
    root: str | Path, num_classes: int = 3, images_per_class: int = 6, seed: int = 0, quirks: bool = True
) -> Path:
    """Write ``images/``, ``annotations/{trimaps,xmls,list.txt,trainval.txt,test.txt}`` under ``root``.

    Breeds keep their real, non-consecutive CLASS-IDs (1, 2, 6, 7). Each image has a rectangular pet
    (trimap 1) with a 1-pixel border ring (trimap 3) on background (2); half of each class is
    trainval. With ``quirks`` (as in the real data): ``<breed0>_900.jpg`` is a GIF and
    ``<breed0>_901.jpg`` an RGBA PNG, both absent from the lists, the GIF with an all-background
    trimap.

    Returns:
        ``root``.

    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    ann = root / "annotations"
    lines: dict[str, list[str]] = {"trainval": [], "test": []}
    for breed, cid, species in PET_BREEDS[:num_classes]:
        for k in range(images_per_class):
            name = f"{breed}_{k + 1}"
            w, h = (int(v) for v in rng.integers(40, 80, size=2))
            image = rng.integers(0, 80, size=(h, w, 3), dtype=np.uint8)
            x0, y0 = int(rng.integers(1, w // 2)), int(rng.integers(1, h // 2))
            x1, y1 = int(rng.integers(x0 + 5, w - 1)), int(rng.integers(y0 + 5, h - 1))
            trimap = np.full((h, w), 2, np.uint8)
            trimap[y0 - 1 : y1 + 2, x0 - 1 : x1 + 2] = 3
            trimap[y0 : y1 + 1, x0 : x1 + 1] = 1
            image[trimap == 1] = (40 * cid) % 256
            write_jpg(root / "images" / f"{name}.jpg", image)
            write_png(ann / "trimaps" / f"{name}.png", trimap)
            split = "trainval" if k < images_per_class // 2 else "test"
            lines[split].append(f"{name} {cid} {species} {k + 1}")
    if quirks:
        breed = PET_BREEDS[0][0]
        rgb = rng.integers(0, 255, size=(30, 40, 3), dtype=np.uint8)
        Image.fromarray(rgb).convert("P").save(root / "images" / f"{breed}_900.jpg", format="GIF")
        Image.fromarray(rgb).convert("RGBA").save(root / "images" / f"{breed}_901.jpg", format="PNG")
        write_png(ann / "trimaps" / f"{breed}_900.png", np.full((30, 40), 2, np.uint8))
        write_png(ann / "trimaps" / f"{breed}_901.png", np.full((30, 40), 1, np.uint8))
    header = "#Image CLASS-ID SPECIES BREED ID\n#ID: 1:37 Class ids\n"
    (ann / "list.txt").write_text(header + "\n".join(lines["trainval"] + lines["test"]) + "\n")
    (ann / "trainval.txt").write_text("\n".join(lines["trainval"]) + "\n")
    (ann / "test.txt").write_text("\n".join(lines["test"]) + "\n")
    return root
