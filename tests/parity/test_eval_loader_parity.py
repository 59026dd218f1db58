"""The eval input equals wsolevaluation's own loader (issue 12, deviation 12).

Fixture: ``tests/fixtures/parity/common/wsoleval_loader.pt``, written by ``tools/parity/wsoleval_loader.py`` from a
local clone of clovaai/wsolevaluation (its ``data_loaders.get_data_loader`` test transform on real Pets photos,
and ``evaluation.resize_bbox`` on 3,000 seeded boxes).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import shared_dir
from wsol_lightning.data.dataset import read_image
from wsol_lightning.data.transforms import eval_transform, scale_boxes
from wsol_lightning.testing import load_fixture

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "parity" / "common" / "wsoleval_loader.pt"


@pytest.fixture(scope="module")
def fixture() -> dict:
    return load_fixture(FIXTURE)


def test_box_scaling_equals_resize_bbox(fixture: dict):
    boxes = fixture["boxes"]
    sizes, originals, expected = (boxes[k].numpy().astype(np.int64) for k in ("sizes", "boxes", "scaled"))
    ours = np.concatenate([scale_boxes(b[None], tuple(s), (224, 224)) for b, s in zip(originals, sizes)])
    assert np.array_equal(ours, expected)
    # the old x * (new / old) is off by one on 3 of these 3,000 boxes
    old = np.trunc(originals * (224 / np.repeat(sizes, 2, axis=1)[:, [0, 2, 1, 3]])).astype(np.int64)
    assert (old != expected).any(axis=1).sum() == 3


def test_box_scaling_where_the_two_orders_differ():
    # 55 * (224 / 110) = 111.99999999999999 -> 111, but 55 * 224 / 110 = 112.0 -> 112 (wsolevaluation)
    assert scale_boxes(np.array([[55, 45, 55, 85]]), (110, 160), (224, 224)).tolist() == [[112, 63, 112, 119]]


def test_eval_tensor_equals_wsolevaluation_loader(fixture: dict):
    shared = shared_dir()
    images = shared / "data" / "oxford_pets_3class" / "images" if shared else None
    if images is None or not images.is_dir():
        pytest.skip("the shared Pets photos (../shared/data/oxford_pets_3class) are not here")
    transform = eval_transform(fixture["image_size"])
    for photo in fixture["photos"]:
        expected = torch.stack([table[code.long()] for table, code in zip(photo["tables"], photo["codes"])])
        ours = transform(image=read_image(images / photo["name"]))["image"]
        assert ours.dtype == torch.float32 and ours.shape == expected.shape
        assert torch.equal(ours, expected), f"{photo['name']}: max diff {(ours - expected).abs().max():.3g}"
