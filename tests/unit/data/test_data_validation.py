"""Issue 14 cases 4, 8 and 10 (data): every split and box is checked in ``setup``, before any training."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from wsol_lightning.data import CUBDataModule, DataError, SyntheticDataModule
from wsol_lightning.data.fakes import write_cub_metadata, write_voc_layout
from wsol_lightning.data.metadata import write_metadata
from wsol_lightning.data.validation import (
    BOX_CLIPPED,
    BOX_INVERTED,
    BOX_OK,
    BOX_OUTSIDE,
    BOX_OVERFLOW,
    classify_boxes,
)
from wsol_lightning.data.voc import VOCDataModule


def _dm(path, **kw):
    kw.setdefault("image_size", 32)
    return CUBDataModule(path, batch_size=4, num_workers=0, **kw)


def _test_image_line(cub):
    """Line (1-based) of bounding_boxes.txt of the first official *test* image, and its size."""
    split = (cub / "train_test_split.txt").read_text().splitlines()
    line = next(k for k, row in enumerate(split, start=1) if row.split()[1] == "0")
    rel = (cub / "images.txt").read_text().splitlines()[line - 1].split()[1]
    with Image.open(cub / "images" / rel) as im:
        return line, im.size


def _set_box_line(cub, line, text):
    rows = (cub / "bounding_boxes.txt").read_text().splitlines()
    rows[line - 1] = f"{rows[line - 1].split()[0]} {text}"
    (cub / "bounding_boxes.txt").write_text("\n".join(rows) + "\n")


def test_classify_boxes_hand_computed():
    boxes = np.array([[0, 0, 9, 9], [0, 0, 10, 9], [-1, 2, 5, 5], [5, 0, 4, 3], [12, 0, 15, 3], [0, 0, 20, 5]])
    w, h = np.full(6, 10), np.full(6, 10)
    fixed, status = classify_boxes(boxes, w, h, clip=True)
    assert status.tolist() == [BOX_OK, BOX_CLIPPED, BOX_CLIPPED, BOX_INVERTED, BOX_OUTSIDE, BOX_OVERFLOW]
    assert fixed[1].tolist() == [0, 0, 9, 9] and fixed[2].tolist() == [0, 2, 5, 5]
    _, strict = classify_boxes(boxes, w, h, clip=False)  # integer layouts: no rounding to forgive
    assert strict[1] == BOX_OVERFLOW and strict[2] == BOX_OVERFLOW
    _, unknown = classify_boxes(np.array([[0, 0, 500, 500], [3, 0, 1, 2]]), np.full(2, -1), np.full(2, -1), clip=True)
    assert unknown.tolist() == [BOX_OK, BOX_INVERTED]


def test_cub_box_wholly_outside_refused_in_setup_before_fit(cub_copy):
    """Case 4: a test image's box beyond the image is named (file:line) by setup('fit'), not clipped to a corner."""
    line, (w, h) = _test_image_line(cub_copy)
    _set_box_line(cub_copy, line, f"{w + 50}.0 5.0 10.0 10.0")
    with pytest.raises(DataError, match=rf"bounding_boxes.txt:{line}: box: \({w + 50}, 5, {w + 60}, 15\) lies "
                                        rf"wholly outside its {w}x{h} image"):
        _dm(cub_copy).setup("fit")


def test_cub_inverted_box_refused_in_setup_before_fit(cub_copy):
    """Case 4: x2 < x1 (negative width) on a test line is found by setup('fit'), with its line."""
    line, _ = _test_image_line(cub_copy)
    _set_box_line(cub_copy, line, "20.0 5.0 -10.0 4.0")
    with pytest.raises(DataError, match=rf"bounding_boxes.txt:{line}: box: \(20, 5, 10, 9\) is inverted"):
        _dm(cub_copy).setup("fit")


def test_cub_box_far_past_the_border_refused(cub_copy):
    line, (w, h) = _test_image_line(cub_copy)
    _set_box_line(cub_copy, line, f"5.0 5.0 {w + 30}.0 4.0")
    with pytest.raises(DataError, match=rf"bounding_boxes.txt:{line}: box: .* extends outside its {w}x{h} image"):
        _dm(cub_copy).setup("test")


def test_cub_rounding_overflow_clipped_and_counted(cub_parent):
    """x + w == W (CUB's float boxes) is clipped to W - 1 with one warning giving the count and first line."""
    dm = _dm(cub_parent)
    with pytest.warns(UserWarning, match=r"test: clipped 3 box\(es\) overflowing their image by <= 1 px .*"
                                         r"bounding_boxes.txt:\d+"):
        dm.setup("test")
    index = dm.index("test")
    counts = np.diff(index.box_offsets)
    w, h = np.repeat(index.sizes[:, 0], counts), np.repeat(index.sizes[:, 1], counts)
    assert (index.sizes > 0).all()  # learned from the image headers
    assert (index.boxes[:, 2] <= w - 1).all() and (index.boxes[:, 3] <= h - 1).all()
    assert ((index.boxes[:, 2] == w - 1) | (index.boxes[:, 3] == h - 1)).sum() >= 3


def test_metadata_box_outside_named_in_setup(cub_parent, tmp_path):
    meta = write_cub_metadata(cub_parent / "CUB_200_2011", tmp_path / "meta")
    loc = meta / "test" / "localization.txt"
    rows = loc.read_text().splitlines()
    image_id = rows[3].split(",")[0]
    rows[3] = f"{image_id},10,10,5,12"
    loc.write_text("\n".join(rows))
    with pytest.raises(DataError, match=r"test/localization.txt:4: box: \(10, 10, 5, 12\) is inverted"):
        _dm(cub_parent / "CUB_200_2011", metadata_dir=meta).setup("fit")


def test_voc_xml_box_outside_names_the_xml(tmp_path):
    voc = write_voc_layout(tmp_path / "voc", num_images=12)
    test_id = (voc / "ImageSets" / "Segmentation" / "val.txt").read_text().split()[0]
    xml = voc / "Annotations" / f"{test_id}.xml"
    text = xml.read_text()
    start = text.index("<xmax>") + len("<xmax>")
    xml.write_text(text[:start] + "900" + text[text.index("</xmax>"):])
    with pytest.raises(DataError, match=rf"{test_id}.xml: image '{test_id}.jpg', box #0: box: .* extends outside"):
        VOCDataModule(voc, image_size=32, num_workers=0, val_size=2).setup("fit")


@pytest.mark.parametrize("split", ["test", "val"])
def test_empty_split_is_an_error_naming_split_and_file(cub_parent, tmp_path, split):
    """Case 8: an empty split a stage needs is refused in setup (test) / when the threshold needs val."""
    meta = write_cub_metadata(cub_parent / "CUB_200_2011", tmp_path / "meta")
    write_metadata(meta / split, [], [], sizes=[], boxes=[])
    dm = _dm(cub_parent / "CUB_200_2011", metadata_dir=meta)
    stage = "test" if split == "test" else "fit"
    with pytest.raises(DataError, match=rf"the {split} split is empty: .*{split}/image_ids.txt lists no image, and the "
                                        rf"'{stage}' stage needs it"):
        dm.setup(stage)
    if split == "val":  # `wsol test` without a chosen threshold asks val_dataloader for one
        dm.setup("test")
        with pytest.raises(DataError, match=r"the val split is empty: .* the operating threshold is chosen on it"):
            dm.val_dataloader()


def test_empty_cub_images_txt_is_named(cub_copy):
    (cub_copy / "images.txt").write_text("")
    with pytest.raises(DataError, match=r"images.txt: the file is empty"):
        _dm(cub_copy).setup("fit")


@pytest.mark.parametrize("size", [0, 7, 31, -224, 32.5, True, "224"])
def test_image_size_below_minimum_is_named(cub_parent, size):
    """Case 10: image_size 0 / 7 is refused at construction, naming image_size and the minimum."""
    with pytest.raises(ValueError, match=rf"image_size must be an integer >= 32 .*got {size!r}"):
        _dm(cub_parent, image_size=size)


def test_image_size_minimum_accepted_and_synthetic_checked(cub_parent, tmp_path):
    assert _dm(cub_parent, image_size=32).image_size == 32
    with pytest.raises(ValueError, match="image_size must be an integer >= 32"):
        SyntheticDataModule(data_dir=tmp_path, image_size=7)
    with pytest.raises(ValueError, match=r"resize_size must be an integer >= image_size \(64\), got 48"):
        _dm(cub_parent, image_size=64, resize_size=48)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        CUBDataModule(cub_parent, batch_size=0)


def test_image_id_outside_root_refused_metadata(cub_parent, tmp_path):
    """Case 10: an id like ../../x.jpg is refused with file:line before anything is read."""
    meta = write_cub_metadata(cub_parent / "CUB_200_2011", tmp_path / "meta")
    ids = (meta / "val" / "image_ids.txt").read_text().splitlines()
    ids[1] = "../../x.jpg"
    (meta / "val" / "image_ids.txt").write_text("\n".join(ids))
    with pytest.raises(DataError, match=r"val/image_ids.txt:2: image_id: '../../x.jpg' points outside the data root"):
        _dm(cub_parent / "CUB_200_2011", metadata_dir=meta).setup("fit")


@pytest.mark.parametrize("bad", ["../../secret.jpg", "/etc/passwd", "a/../../b.jpg", "C:\\x.jpg"])
def test_image_path_outside_root_refused_cub(cub_copy, bad):
    rows = (cub_copy / "images.txt").read_text().splitlines()
    rows[2] = f"3 {bad}"
    (cub_copy / "images.txt").write_text("\n".join(rows))
    with pytest.raises(DataError, match=r"images.txt:3: path: .* points outside the data root"):
        _dm(cub_copy).setup("fit")


def test_voc_split_file_id_outside_root_refused(tmp_path):
    voc = write_voc_layout(tmp_path / "voc", num_images=12)
    path = voc / "ImageSets" / "Segmentation" / "val.txt"
    path.write_text(path.read_text() + "../../../etc/x\n")
    with pytest.raises(DataError, match=r"val.txt:\d+: image id: '../../../etc/x' points outside"):
        VOCDataModule(voc, image_size=32, num_workers=0).setup("test")


def test_unreadable_image_with_boxes_found_in_setup_or_skipped(cub_copy):
    dm = _dm(cub_copy)
    test = dm.build_index("test")
    (test.root / test.image_ids[2]).unlink()
    with pytest.raises(DataError, match=rf"missing image: .*{test.image_ids[2]} \(listed in .*bounding_boxes.txt; "
                                        r"pass skip_bad=True to skip it\)"):
        _dm(cub_copy).setup("test")
    with pytest.warns(UserWarning, match=r"test: 1 image\(s\) with boxes could not be opened and will be skipped"):
        _dm(cub_copy, skip_bad=True).setup("test")


def test_empty_official_cub_test_split_names_the_split_file(cub_copy):
    rows = (cub_copy / "train_test_split.txt").read_text().split()
    (cub_copy / "train_test_split.txt").write_text("".join(f"{k} 1\n" for k in rows[::2]))  # every image in train
    with pytest.raises(DataError, match=r"the test split is empty: .*CUB_200_2011/train_test_split.txt lists no "
                                        r"image, and the 'test' stage needs it"):
        _dm(cub_copy).setup("test")
