import numpy as np
import pytest

from wsol_lightning.data import DataError, WSOLDataset
from wsol_lightning.data.fakes import (
    write_imagenet_metadata_layout,
    write_imagenet_official_layout,
    write_openimages_layout,
)
from wsol_lightning.data.imagenet import ImageNetDataModule
from wsol_lightning.data.openimages import OpenImagesDataModule


def _disjoint(dm):
    ids = [set(dm.build_index(s).image_ids) for s in ("train", "val", "test")]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    return ids


def test_imagenet_metadata_layout(tmp_path):
    root = write_imagenet_metadata_layout(tmp_path / "ILSVRC", num_classes=3, per_class=4)
    dm = ImageNetDataModule(root, image_size=32, batch_size=4, num_workers=0)
    assert dm.num_classes == 3 and dm.class_names[0] == "n01440764"
    _disjoint(dm)
    test = dm.build_index("test")
    assert max(len(test.boxes_of(i)) for i in range(len(test))) == 3  # several boxes per image
    s = WSOLDataset(test)[2]
    assert s["boxes"].shape == (3, 4)
    assert len(ImageNetDataModule(root, proxy=True).build_index("train")) == 6
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    assert batch["image"].shape == (4, 3, 32, 32) and len(batch["boxes"]) == 4


def test_imagenetv2_mapping_and_size_check(tmp_path):
    root = write_imagenet_metadata_layout(tmp_path / "ILSVRC", num_classes=2, per_class=2)
    (root / "val2" / "0" / "0.jpeg").rename(root / "val2" / "0" / "abc123.jpeg")
    (root / "metadata" / "ILSVRC" / "val" / "mapping.txt").write_text("0/0.jpeg,0/abc123.jpeg")
    index = ImageNetDataModule(root).build_index("val")
    assert index.image_ids[0] == "val2/0/abc123.jpeg"
    WSOLDataset(index)[0]
    # a mis-named file (other size) is caught against image_sizes.txt
    (root / "val2" / "0" / "abc123.jpeg").write_bytes((root / "val2" / "1" / "1.jpeg").read_bytes())
    w, h = index.sizes[0]
    if tuple(WSOLDataset(index)[3]["orig_size"].tolist()) != (w, h):
        with pytest.raises(DataError, match="abc123.jpeg is .* says"):
            WSOLDataset(index)[0]


def test_imagenet_official_layout(tmp_path):
    root = write_imagenet_official_layout(tmp_path / "ILSVRC2012", num_classes=3, per_class=4)
    dm = ImageNetDataModule(root, val_per_class=1)
    assert dm.class_names == ["n01440764", "n01440765", "n01440766"]
    train, val, test = _disjoint(dm)
    assert len(train) == 12 and len(val) == 3 and len(test) == 9
    index = dm.build_index("test")
    assert sorted(set(index.labels.tolist())) == [0, 1, 2]
    assert WSOLDataset(index)[0]["boxes"].shape[1] == 4
    (root / "bbox_val" / "ILSVRC2012_val_00000002.xml").unlink()
    with pytest.raises(DataError, match="ILSVRC2012_val_00000002"):
        ImageNetDataModule(root).build_index("test")


def test_openimages_masks_and_missing_ignore(tmp_path):
    root = write_openimages_layout(tmp_path / "OpenImages", num_classes=3, per_class=4)
    dm = OpenImagesDataModule(root, image_size=32, batch_size=4, num_workers=0)
    assert dm.num_classes == 3 and dm.class_names == ["00abc", "01abc", "02abc"]
    _disjoint(dm)
    test = dm.build_index("test")
    assert test.ignore_paths[1] is None and test.ignore_paths[0] is not None
    ds = WSOLDataset(test)
    m0, m1 = ds[0]["mask"].numpy(), ds[1]["mask"].numpy()
    assert 255 in m0 and 1 in m0 and 255 not in m1 and len(test.mask_paths[1]) == 2
    dm.setup("validate")
    assert next(iter(dm.val_dataloader()))["mask"].shape == (4, 32, 32)


def test_openimages_missing_mask_and_metadata_named(tmp_path):
    root = write_openimages_layout(tmp_path / "OpenImages", num_classes=2, per_class=2)
    test = OpenImagesDataModule(root).build_index("test")
    (root / test.mask_paths[0][0]).unlink()
    with pytest.raises(DataError, match=f"missing mask: .*{test.mask_paths[0][0]}"):
        WSOLDataset(test)[0]
    (root / "metadata" / "OpenImages" / "test" / "localization.txt").unlink()
    with pytest.raises(FileNotFoundError, match="localization.txt"):
        OpenImagesDataModule(root).build_index("test")
    with pytest.raises(FileNotFoundError, match="metadata"):
        _ = OpenImagesDataModule(tmp_path / "nowhere").num_classes
    assert np.all(test.labels < 2)
