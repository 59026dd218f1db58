"""Folders of rendered synthetic photos for prediction tests (one object of class ``k % 4`` each)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from wsol_lightning.data.synthetic import render_sample


def write_photo_folder(root: Path, sizes: list[tuple[int, int]], name: str = "img_{k}.png", seed: int = 3) -> Path:
    """Write one rendered image per ``(width, height)`` in ``sizes`` to the new folder ``root``, named ``name``."""
    rng = np.random.default_rng(seed)
    root.mkdir()
    for k, size in enumerate(sizes):
        image, _ = render_sample(rng, k % 4, 4, size, 0.0, (0.3, 0.5))
        Image.fromarray(image).save(root / name.format(k=k))
    return root
