import json

import numpy as np
import pytest

from wsol_lightning.data import DataError, WSOLDataset
from wsol_lightning.data.coco import COCODataModule
from wsol_lightning.data.fakes import write_coco_layout


def _dm(root, **kw):
    return COCODataModule(
        root, train_ann="annotations/train.json", train_images="images/train",
        test_ann="annotations/test.json", test_images="images/test", image_size=32, batch_size=4,
        num_workers=0, **kw,
    )  # fmt: skip


def test_labels_boxes_masks(tmp_path):
    root = write_coco_layout(tmp_path, num_images=12, num_classes=3)
    dm = _dm(root, val_fraction=0.2)
    assert dm.num_classes == 3 and dm.class_names == ["thing0", "thing1", "thing2"]
    ids = [set(dm.build_index(s).image_ids) for s in ("train", "val", "test")]
    assert not (ids[0] & ids[1]) and len(ids[0] | ids[1]) == 11  # the unannotated image is dropped
    test = dm.build_index("test")
    data = json.loads((root / "annotations" / "test.json").read_text())
    ann = data["annotations"][0]
    x, y, w, h = ann["bbox"]
    assert test.boxes_of(0)[0].tolist() == [x, y, x + w - 1, y + h - 1]
    s = WSOLDataset(test)[1]  # two instances: polygon + RLE
    m = s["mask"].numpy()
    assert s["multi_hot"].sum() >= 1 and m.dtype == np.uint8 and set(np.unique(m)) == {0, 1}
    for x0, y0, x1, y1 in s["boxes"].tolist():
        assert m[(y0 + y1) // 2, (x0 + x1) // 2] == 1
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    assert batch["mask"].shape == (4, 32, 32) and batch["multi_hot"].shape == (4, 3)


def test_bad_json_named(tmp_path):
    root = write_coco_layout(tmp_path, num_images=4)
    path = root / "annotations" / "test.json"
    data = json.loads(path.read_text())
    data["annotations"][0]["category_id"] = 999
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="test.json: annotation #0 .* unknown category 999"):
        _dm(root).build_index("test")
    data["images"].append(dict(data["images"][0]))
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"test.json: images\[4\]: id: duplicate 1000"):
        _dm(root).build_index("test")
