import numpy as np
import pytest

from wsol_lightning.data import DataError, WSOLDataset
from wsol_lightning.data.fakes import write_voc_layout
from wsol_lightning.data.voc import VOCDataModule


@pytest.fixture
def voc(tmp_path):
    return write_voc_layout(tmp_path, num_images=24)


def test_splits_labels_boxes_masks(voc):
    for data_dir in (voc, voc.parent, voc.parent.parent):
        dm = VOCDataModule(data_dir, val_size=3, image_size=32, batch_size=4, num_workers=0)
        assert dm.num_classes == 20
        ids = [set(dm.build_index(s).image_ids) for s in ("train", "val", "test")]
        assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
        assert len(ids[1]) == 3 and len(ids[2]) == 6
    test = dm.build_index("test")
    ds = WSOLDataset(test)
    s = ds[0]
    assert s["multi_hot"].shape == (20,) and s["multi_hot"][s["label"]] == 1
    assert ds[0]["label"] == s["label"]  # seeded choice is stable
    m = s["mask"].numpy()
    assert set(np.unique(m)) <= {0, 1, 255} and 255 in m
    for x0, y0, x1, y1 in s["boxes"].tolist():
        assert m[y0, x0] == 1 and m[y1, x1] == 1
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    assert batch["multi_hot"].shape == (4, 20) and batch["mask"].shape == (4, 32, 32)


def test_train_list_and_no_mask_images(voc):
    (voc / "train_aug.txt").write_text("\n".join(f"2008_{k:06d}" for k in range(24)))
    dm = VOCDataModule(voc, train_list="train_aug.txt", val_size=2)
    train = dm.build_index("train")
    assert len(train) == 24 - 6 - 2
    s = WSOLDataset(train)[train.image_ids.index("2008_000020.jpg")]
    assert "mask" not in s and s["boxes"].shape[1] == 4


def test_bad_annotations_named(voc):
    (voc / "Annotations" / "2008_000001.xml").unlink()
    with pytest.raises(DataError, match="missing annotation: .*2008_000001.xml"):
        VOCDataModule(voc).build_index("test")


def test_unknown_class_and_duplicate_id(voc):
    xml = voc / "Annotations" / "2008_000002.xml"
    xml.write_text(xml.read_text().replace("<name>", "<name>x", 1))
    with pytest.raises(DataError, match=r"2008_000002.xml: object #0 \(xbicycle\): name: unknown class"):
        VOCDataModule(voc).build_index("test")
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text("2008_000000\n2008_000000\n")
    with pytest.raises(DataError, match=r"val.txt:2: image_id: duplicate"):
        VOCDataModule(voc).build_index("test")
