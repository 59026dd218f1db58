import numpy as np
import pytest
import torch
from PIL import Image

from wsol_lightning.data import CUBDataModule, DataError, WSOLDataset
from wsol_lightning.data.collate import wsol_collate
from wsol_lightning.data.fakes import write_cub_metadata


def _dm(path, **kw):
    kw.setdefault("image_size", 32)
    return CUBDataModule(path, batch_size=4, num_workers=0, **kw)


def test_num_classes_right_after_init(cub_parent):
    dm = _dm(cub_parent)
    assert dm.num_classes == 3
    assert dm.class_names == ["001.class_0", "002.class_1", "003.class_2"]


def test_parent_and_dataset_dir_agree(cub_parent):
    a, b = _dm(cub_parent), _dm(cub_parent / "CUB_200_2011")
    assert a.build_index("test").image_ids == b.build_index("test").image_ids


def test_splits_disjoint_and_complete(cub_parent):
    dm = _dm(cub_parent, val_per_class=1)
    ids = {s: set(dm.build_index(s).image_ids) for s in ("train", "val", "test")}
    assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"] and not ids["val"] & ids["test"]
    assert sum(map(len, ids.values())) == 3 * 8
    assert len(ids["val"]) == 3  # one per class
    val = dm.build_index("val")
    assert sorted(val.labels.tolist()) == [0, 1, 2]
    # seeded: the same val split twice, another seed may differ but stays disjoint
    assert set(_dm(cub_parent, val_per_class=1).build_index("val").image_ids) == ids["val"]


def test_labels_boxes_and_masks_exact(cub_parent):
    dm = _dm(cub_parent)
    index = dm.build_index("test")
    ds = WSOLDataset(index)  # no transform: original frame
    for i in range(len(ds)):
        s = ds[i]
        assert int(s["label"]) == int(s["image_id"].split(".")[0]) - 1
        mask = s["mask"].numpy()
        ys, xs = np.nonzero(mask == 1)
        box = s["boxes"][0].tolist()
        assert box == [xs.min(), ys.min(), xs.max(), ys.max()], s["image_id"]
        w, h = s["orig_size"].tolist()
        assert box[2] <= w - 1 and box[3] <= h - 1


def test_eval_pipeline_scales_like_wsolevaluation(cub_parent):
    dm = _dm(cub_parent, image_size=32)
    dm.setup("test")
    ds = dm.datasets["test"]
    s = ds[0]
    raw = ds.index.boxes_of(0)[0]
    w, h = s["orig_size"].tolist()
    raw = np.minimum(raw, [w - 1, h - 1, w - 1, h - 1])
    expect = [int(raw[0] * 32 / w), int(raw[1] * 32 / h), int(raw[2] * 32 / w), int(raw[3] * 32 / h)]
    assert s["boxes"][0].tolist() == expect
    assert s["image"].shape == (3, 32, 32) and s["mask"].shape == (32, 32)
    batch = next(iter(dm.test_dataloader()))
    assert batch["image"].shape == (4, 3, 32, 32) and batch["mask"].dtype == torch.uint8
    assert isinstance(batch["boxes"], list) and batch["boxes"][0].shape == (1, 4)


def test_metadata_layout(cub_parent, tmp_path):
    root = cub_parent / "CUB_200_2011"
    meta = write_cub_metadata(root, tmp_path / "metadata" / "CUB", val_per_class=1)
    dm = _dm(root, metadata_dir=meta)
    assert dm.num_classes == 3 and dm.class_names[1] == "002.class_1"
    test = dm.build_index("test")
    official = _dm(root).build_index("test")
    assert test.image_ids == official.image_ids
    ds = WSOLDataset(test)
    assert ds[0]["boxes"].tolist() == WSOLDataset(official)[0]["boxes"].tolist()
    ids = [set(dm.build_index(s).image_ids) for s in ("train", "val", "test")]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])


def test_metadata_autodetected(cub_parent, tmp_path):
    root = cub_parent / "CUB_200_2011"
    write_cub_metadata(root, tmp_path / "metadata" / "CUB")
    # wsolevaluation layout: dataset root with class folders + metadata/CUB next to it
    import shutil

    shutil.copytree(root / "images", tmp_path / "images")
    dm = _dm(tmp_path)
    assert len(dm.build_index("val")) == 3
    assert dm.build_index("test").root == tmp_path / "images"


def test_missing_metadata_file_named(cub_copy):
    (cub_copy / "train_test_split.txt").unlink()
    with pytest.raises(FileNotFoundError, match="train_test_split.txt"):
        _dm(cub_copy).build_index("train")


def test_missing_dataset_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="images.txt"):
        _ = _dm(tmp_path).num_classes


def test_missing_image_named(cub_copy):
    index = _dm(cub_copy).build_index("test")
    (index.root / index.image_ids[0]).unlink()
    with pytest.raises(DataError, match=f"missing image: .*{index.image_ids[0]}"):
        WSOLDataset(index)[0]


def test_truncated_image_named_and_skippable(cub_copy):
    index = _dm(cub_copy).build_index("test")
    path = index.root / index.image_ids[1]
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match=f"unreadable or truncated image: .*{index.image_ids[1]}"):
        WSOLDataset(index)[1]
    from wsol_lightning.data.transforms import eval_transform

    ds = WSOLDataset(index, eval_transform(32), skip_bad=True)
    assert ds[1] is None and ds.num_skipped == 1
    batch = wsol_collate([ds[0], ds[1], ds[2]])
    assert batch["image"].shape[0] == 2 and batch["index"].tolist() == [0, 2]


def test_box_outside_image_named(cub_copy):
    lines = (cub_copy / "bounding_boxes.txt").read_text().splitlines()
    lines[0] = "1 5.0 5.0 5000.0 4.0"
    (cub_copy / "bounding_boxes.txt").write_text("\n".join(lines))
    dm = _dm(cub_copy)
    dm.build_index("train")
    full = dm._official
    where = next(s for s in full if "img_0_0.jpg" in " ".join(full[s].image_ids))
    index = full[where]
    i = next(k for k, p in enumerate(index.image_ids) if p.endswith("img_0_0.jpg"))
    index.clip_boxes = False
    with pytest.raises(DataError, match=r"bounding_boxes.txt:1: box: .* extends outside .*img_0_0.jpg"):
        WSOLDataset(index)[i]


def test_bad_label_and_duplicate_named(cub_copy):
    labels = (cub_copy / "image_class_labels.txt").read_text().splitlines()
    labels[3] = "4 9"
    (cub_copy / "image_class_labels.txt").write_text("\n".join(labels))
    with pytest.raises(DataError, match=r"image_class_labels.txt:4: label: 8 is out of range"):
        _dm(cub_copy).build_index("train")
    images = (cub_copy / "images.txt").read_text().splitlines()
    images[2] = "1 " + images[2].split()[1]
    (cub_copy / "images.txt").write_text("\n".join(images))
    with pytest.raises(DataError, match=r"images.txt:3: image_id: duplicate"):
        _dm(cub_copy).build_index("train")


def test_mask_size_mismatch_named(cub_copy):
    index = _dm(cub_copy).build_index("test")
    seg = index.mask_root / index.mask_paths[0][0]
    Image.fromarray(np.zeros((5, 5), dtype=np.uint8)).save(seg)
    with pytest.raises(DataError, match="mask size mismatch: .*png"):
        WSOLDataset(index)[0]


def test_gif_and_rgba_images_read_as_rgb(cub_copy):
    index = _dm(cub_copy).build_index("test")
    for k, mode in ((0, "P"), (1, "RGBA")):
        path = index.root / index.image_ids[k]
        im = Image.open(path).convert(mode)
        im.save(path, format="GIF" if mode == "P" else "PNG")  # wrong content for a .jpg, as in the wild
        assert WSOLDataset(index)[k]["image"].shape[0] == 3
