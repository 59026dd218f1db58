import os
from pathlib import Path

import numpy as np
import pytest

from wsol_lightning.data import DataError, WSOLDataset
from wsol_lightning.data.dataset import read_image
from wsol_lightning.data.fakes import write_pets_layout
from wsol_lightning.data.pets import OxfordPetsDataModule


def _shared_pets() -> Path | None:
    base = os.environ.get("WSOL_SHARED_DIR")
    shared = Path(base) if base else Path(__file__).resolve().parents[4] / "shared"
    path = shared / "data" / "oxford_pets_3class"
    return path if (path / "annotations" / "list.txt").is_file() else None


@pytest.fixture
def pets(tmp_path):
    return write_pets_layout(tmp_path / "oxford-iiit-pet", num_classes=3, images_per_class=6)


def _ids(dm):
    return [set(dm.build_index(s).image_ids) for s in ("train", "val", "test")]


def test_fake_layout_labels_boxes_masks(pets):
    dm = OxfordPetsDataModule(pets.parent, val_per_class=1, image_size=32)
    assert dm.num_classes == 3 and dm.class_names == ["Abyssinian", "american_bulldog", "Bengal"]
    tr, va, te = _ids(dm)
    assert not (tr & va or tr & te or va & te) and len(tr | va | te) == 18
    test = dm.build_index("test")
    assert sorted(set(test.labels.tolist())) == [0, 1, 2]  # CLASS-IDs 1, 2, 6 remapped
    s = WSOLDataset(test)[0]
    m = s["mask"].numpy()
    assert set(np.unique(m)) == {0, 1, 255}
    ys, xs = np.nonzero(m != 0)  # object + border ring
    assert s["boxes"].tolist() == [[xs.min(), ys.min(), xs.max(), ys.max()]]


def test_quirky_files_read_as_rgb(pets):
    assert read_image(pets / "images" / "Abyssinian_900.jpg").shape == (30, 40, 3)
    assert read_image(pets / "images" / "Abyssinian_901.jpg").shape == (30, 40, 3)


def test_all_background_trimap_has_no_box(pets):
    dm = OxfordPetsDataModule(pets)
    index = dm.build_index("test").subset([0])
    index.image_ids, index.mask_paths = ["Abyssinian_900.jpg"], [("Abyssinian_900.png",)]
    s = WSOLDataset(index)[0]
    assert s["boxes"].shape == (0, 4) and not s["mask"].any()


def test_bad_list_line_and_missing_trimap_named(pets):
    (pets / "annotations" / "trimaps" / "Bengal_6.png").unlink()
    dm = OxfordPetsDataModule(pets)
    test = dm.build_index("test")
    i = test.image_ids.index("Bengal_6.jpg")
    with pytest.raises(DataError, match="missing mask: .*Bengal_6.png"):
        WSOLDataset(test)[i]
    with open(pets / "annotations" / "test.txt", "a") as f:
        f.write("Bengal_99 x 1\n")
    with pytest.raises(DataError, match=r"test.txt:10: columns: expected 4"):
        OxfordPetsDataModule(pets).build_index("test")


@pytest.mark.skipif(_shared_pets() is None, reason="shared oxford_pets_3class subset not available")
def test_real_subset():
    dm = OxfordPetsDataModule(_shared_pets(), image_size=48, batch_size=16, num_workers=0)
    assert dm.class_names == ["Abyssinian", "american_bulldog", "Bengal"]
    tr, va, te = _ids(dm)
    assert not (tr & va or tr & te or va & te)
    assert len(tr) + len(va) == 300 and len(te) == 298
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    assert batch["image"].shape == (16, 3, 48, 48) and batch["mask"].shape == (16, 48, 48)
    assert all(b.shape == (1, 4) for b in batch["boxes"])
    images = _shared_pets() / "images"
    assert read_image(images / "Abyssinian_34.jpg").ndim == 3  # a GIF
    assert read_image(images / "Abyssinian_5.jpg").shape[2] == 3  # an RGBA PNG
