import numpy as np
import pytest

from wsol_lightning.data.dataset import WSOLDataset
from wsol_lightning.data.index import DatasetIndex
from wsol_lightning.data.transforms import (
    default_resize,
    eval_transform,
    from_albu_boxes,
    resize_mask,
    scale_boxes,
    to_albu_boxes,
    train_transform,
)


def test_default_resize():
    assert default_resize(224) == 256 and default_resize(64) == 73


def test_scale_boxes_matches_wsolevaluation_fixture():
    # wsolevaluation evaluation_test: (1,2,4,3) on a 10x20 image resized to 35x10 -> (3,1,14,1)
    assert scale_boxes(np.array([[1, 2, 4, 3]]), (10, 20), (35, 10)).tolist() == [[3, 1, 14, 1]]


def test_albu_box_conversion_roundtrip():
    boxes = np.array([[0, 0, 9, 9], [3, 4, 5, 6]])
    assert from_albu_boxes(to_albu_boxes(boxes), 10, 10).tolist() == boxes.tolist()


def test_resize_mask_keeps_values():
    m = np.zeros((10, 20), np.uint8)
    m[2:5, 3:9] = 1
    m[7:, :] = 255
    out = resize_mask(m, (7, 13))
    assert out.shape == (13, 7) and set(np.unique(out)) == {0, 1, 255}


@pytest.mark.parametrize("seed", range(12))
def test_train_transform_keeps_box_and_mask_aligned(seed):
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(60, 120)), int(rng.integers(60, 120))
    image = np.zeros((h, w, 3), np.uint8)
    x0, y0 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
    x1, y1 = int(rng.integers(x0 + 10, w)), int(rng.integers(y0 + 10, h))
    mask = np.zeros((h, w), np.uint8)
    mask[y0 : y1 + 1, x0 : x1 + 1] = 1
    image[mask == 1] = 255
    t = train_transform(48, 64)
    t.set_random_seed(seed)  # deterministic crops and flips
    out = t(image=image, mask=mask, bboxes=to_albu_boxes(np.array([[x0, y0, x1, y1]])), box_labels=[0])
    m = np.asarray(out["mask"])
    assert out["image"].shape == (3, 48, 48) and m.shape == (48, 48)
    if not out["bboxes"].__len__() or not m.any():
        return  # cropped away entirely
    box = from_albu_boxes(out["bboxes"], 48, 48)[0]
    ys, xs = np.nonzero(m)
    # the box and the mask's extent coincide up to one pixel of resampling
    assert np.abs(box - [xs.min(), ys.min(), xs.max(), ys.max()]).max() <= 1
    # the image content moved with them: disagreements only on the 1-px band around the edge
    import cv2

    bright = out["image"][0].numpy() > 0
    k = np.ones((3, 3), np.uint8)
    band = cv2.dilate(m, k).astype(bool) & ~cv2.erode(m, k).astype(bool)
    # the crop may cut just outside the object, whose resampled edge then shows on the crop's border
    band[[0, -1], :] = True
    band[:, [0, -1]] = True
    assert not ((bright != (m == 1)) & ~band).any()


def test_eval_dataset_is_deterministic_and_exact(tmp_path):
    from PIL import Image

    image = np.zeros((20, 10, 3), np.uint8)
    Image.fromarray(image).save(tmp_path / "a.png")
    mask = np.zeros((20, 10), np.uint8)
    mask[2:4, 1:5] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    ignore = np.zeros((20, 10), np.uint8)
    ignore[0:10, 0:10] = 255
    Image.fromarray(ignore).save(tmp_path / "i.png")
    index = DatasetIndex(
        root=tmp_path,
        image_ids=["a.png"],
        labels=np.array([0]),
        box_offsets=np.array([0, 1]),
        boxes=np.array([[1, 2, 4, 3]], np.int32),
        sizes=np.array([[10, 20]]),
        mask_paths=[("m.png",)],
        ignore_paths=["i.png"],
    )
    ds = WSOLDataset(index, eval_transform(16))
    s = ds[0]
    assert s["boxes"].tolist() == scale_boxes(np.array([[1, 2, 4, 3]]), (10, 20), (16, 16)).tolist()
    m = s["mask"].numpy()
    full = np.where(mask > 0, 1, np.where(ignore > 0, 255, 0)).astype(np.uint8)
    assert (m == resize_mask(full, (16, 16))).all()
    assert set(np.unique(m)) == {0, 1, 255}
    assert (ds[0]["image"] == s["image"]).all()
