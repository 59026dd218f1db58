"""Prediction-test helpers: folders of rendered synthetic photos (one object of class ``k % 4`` each), and a
spy on the overlay labels drawn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wsol_lightning.callbacks import render
from wsol_lightning.data.synthetic import render_sample


def write_photo_folder(root: Path, sizes: list[tuple[int, int]], name: str = "img_{k}.png", seed: int = 3) -> Path:
    """Write one rendered image per ``(width, height)`` in ``sizes`` to the new folder ``root``, named ``name``."""
    rng = np.random.default_rng(seed)
    root.mkdir()
    for k, size in enumerate(sizes):
        image, _ = render_sample(rng, k % 4, 4, size, 0.0, (0.3, 0.5))
        Image.fromarray(image).save(root / name.format(k=k))
    return root


def record_overlay_labels(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Spy on ``render.prediction_overlay``: the returned list receives every overlay label drawn."""
    labels: list[str] = []
    draw = render.prediction_overlay

    def spy(image, scoremap, threshold, label, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        labels.append(label)
        return draw(image, scoremap, threshold, label, *args, **kwargs)

    monkeypatch.setattr(render, "prediction_overlay", spy)
    return labels
