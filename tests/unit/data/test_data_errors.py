"""Issue 14 case 5: every annotation parser names ``file:line: field: what is wrong`` (one error type)."""

from __future__ import annotations

import json

import pytest

from wsol_lightning.data import (
    COCODataModule,
    CUBDataModule,
    DataError,
    ImageNetDataModule,
    OpenImagesDataModule,
    OxfordPetsDataModule,
    VOCDataModule,
)
from wsol_lightning.data.fakes import (
    write_coco_layout,
    write_cub_metadata,
    write_imagenet_official_layout,
    write_openimages_layout,
    write_pets_layout,
    write_voc_layout,
)


def _edit_line(path, line, new):
    rows = path.read_text().splitlines()
    rows[line - 1] = new(rows[line - 1]) if callable(new) else new
    path.write_text("\n".join(rows) + "\n")


def _cub(path, **kw):
    return CUBDataModule(path, image_size=32, batch_size=4, num_workers=0, **kw)


@pytest.mark.parametrize(
    ("file", "line", "new", "match"),
    [
        ("bounding_boxes.txt", 2, "2 nan 5.0 10.0 10.0", r"bounding_boxes.txt:2: x: 'nan' is not a finite number"),
        ("bounding_boxes.txt", 3, "3 5.0 5.0 10.0 abc", r"bounding_boxes.txt:3: height: 'abc' is not a number"),
        ("bounding_boxes.txt", 4, "4 5.0 5.0 10.0 10.0 7.0",
         r"bounding_boxes.txt:4: columns: expected 5 \(image_id, x, y, width, height\), got 6"),
        ("image_class_labels.txt", 5, "5 bird", r"image_class_labels.txt:5: class_id: 'bird' is not an integer"),
        ("image_class_labels.txt", 5, "5 1 2", r"image_class_labels.txt:5: columns: expected 2"),
        ("train_test_split.txt", 6, "6 yes", r"train_test_split.txt:6: is_training_image: 'yes' is not 0 or 1"),
        ("bounding_boxes.txt", 7, "99 5.0 5.0 10.0 10.0", r"bounding_boxes.txt:7: image_id: '99' is not in images.txt"),
    ],
)
def test_cub_official_field_errors(cub_copy, file, line, new, match):
    _edit_line(cub_copy / file, line, new)
    with pytest.raises(DataError, match=match):
        _cub(cub_copy).setup("fit")


def test_non_utf8_line_named(cub_copy):
    data = (cub_copy / "images.txt").read_bytes().split(b"\n")
    data[3] = data[3].replace(b"img", b"im\xff", 1)
    (cub_copy / "images.txt").write_bytes(b"\n".join(data))
    with pytest.raises(DataError, match=r"images.txt:4: encoding: byte 0xff is not valid UTF-8"):
        _cub(cub_copy).setup("fit")


@pytest.mark.parametrize(
    ("file", "line", "new", "match"),
    [
        ("image_sizes.txt", 2, lambda r: r.rsplit(",", 2)[0] + ",ten,40",
         r"image_sizes.txt:2: width: 'ten' is not an integer"),
        ("image_sizes.txt", 2, lambda r: r.rsplit(",", 2)[0] + ",40,0",
         r"image_sizes.txt:2: height: '0' is not a positive size"),
        ("image_sizes.txt", 2, lambda r: r + ",3",
         r"image_sizes.txt:2: columns: expected 3 \(image_id, width, height\), got 4"),
        ("localization.txt", 3, lambda r: r.rsplit(",", 1)[0] + ",NaN",
         r"localization.txt:3: y1: 'NaN' is not a finite number"),
        ("localization.txt", 3, lambda r: r + ",1,2", r"localization.txt:3: columns: expected 5 .* got 7"),
        ("class_labels.txt", 1, lambda r: r.rsplit(",", 1)[0] + ",one",
         r"class_labels.txt:1: label: 'one' is not an integer"),
        ("class_labels.txt", 2, lambda r: r + ",9",
         r"class_labels.txt:2: columns: expected 2 \(image_id, label\), got 3"),
    ],
)
def test_metadata_field_errors(cub_parent, tmp_path, file, line, new, match):
    meta = write_cub_metadata(cub_parent / "CUB_200_2011", tmp_path / "meta")
    _edit_line(meta / "test" / file, line, new)
    with pytest.raises(DataError, match=match):
        _cub(cub_parent / "CUB_200_2011", metadata_dir=meta).setup("fit")


def test_metadata_blank_lines_keep_true_line_numbers(cub_parent, tmp_path):
    meta = write_cub_metadata(cub_parent / "CUB_200_2011", tmp_path / "meta")
    path = meta / "test" / "class_labels.txt"
    rows = path.read_text().splitlines()
    rows[2] = rows[2].rsplit(",", 1)[0] + ",x"
    path.write_text("\n\n".join(rows))  # a blank line between every line: the bad one is on line 5
    with pytest.raises(DataError, match=r"class_labels.txt:5: label: 'x' is not an integer"):
        _cub(cub_parent / "CUB_200_2011", metadata_dir=meta).setup("test")


def test_imagenet_xml_field_and_syntax_errors(tmp_path):
    root = write_imagenet_official_layout(tmp_path / "ILSVRC", num_classes=2, per_class=2)
    xml = root / "bbox_val" / "ILSVRC2012_val_00000001.xml"
    text = xml.read_text()
    xml.write_text(text.replace("<ymin>", "<ymin>oops", 1))
    dm = ImageNetDataModule(root, image_size=32, num_workers=0, val_per_class=1)
    match = r"ILSVRC2012_val_00000001.xml: object #0 \(n01440764\): bndbox/ymin: 'oops\d+' is not a number"
    with pytest.raises(DataError, match=match):
        dm.setup("fit")
    xml.write_text(text.replace("</annotation>", ""))
    with pytest.raises(DataError, match=r"ILSVRC2012_val_00000001.xml:1: xml: no element found"):
        ImageNetDataModule(root, image_size=32, num_workers=0, val_per_class=1).setup("fit")


def test_imagenet_csv_field_error(tmp_path):
    root = write_imagenet_official_layout(tmp_path / "ILSVRC", num_classes=2, per_class=2)
    (root / "LOC_val_solution.csv").write_text(
        "ImageId,PredictionString\nILSVRC2012_val_00000001,n01440764 1 2 inf 9 \n")
    with pytest.raises(DataError, match=r"LOC_val_solution.csv:2: xmax: 'inf' is not a finite number"):
        ImageNetDataModule(root, image_size=32, num_workers=0, val_per_class=1).setup("fit")


def test_voc_xml_size_field_error(tmp_path):
    voc = write_voc_layout(tmp_path / "voc", num_images=12)
    test_id = (voc / "ImageSets" / "Segmentation" / "val.txt").read_text().split()[0]
    xml = voc / "Annotations" / f"{test_id}.xml"
    xml.write_text(xml.read_text().replace("<width>", "<width>w", 1))
    with pytest.raises(DataError, match=rf"{test_id}.xml: size/width: 'w\d+' is not an integer"):
        VOCDataModule(voc, image_size=32, num_workers=0).setup("test")


def test_openimages_mask_path_outside_root(tmp_path):
    root = write_openimages_layout(tmp_path / "OI", num_classes=2, per_class=2)
    loc = root / "metadata" / "OpenImages" / "test" / "localization.txt"
    _edit_line(loc, 1, lambda r: r.split(",")[0] + ",../../../etc/shadow,")
    with pytest.raises(DataError, match=r"test/localization.txt:1: mask_path: '../../../etc/shadow' points outside"):
        OpenImagesDataModule(root, image_size=32, num_workers=0).setup("test")


def test_coco_json_errors(tmp_path):
    root = write_coco_layout(tmp_path, num_images=4)
    path = root / "annotations" / "test.json"
    good = path.read_text()
    dm_args = dict(image_size=32, num_workers=0, train_ann="annotations/train.json", train_images="images/train",
                   test_ann="annotations/test.json", test_images="images/test")
    path.write_text(good[:-5])
    with pytest.raises(DataError, match=r"test.json:\d+: json: "):
        COCODataModule(root, **dm_args).setup("test")
    data = json.loads(good)
    data["annotations"][0]["bbox"][0] = float("nan")
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"test.json: annotation id \S+: bbox.x: 'nan' is not a finite number"):
        COCODataModule(root, **dm_args).setup("test")
    data = json.loads(good)
    data["images"][1]["file_name"] = "/etc/passwd"
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"test.json: images\[1\] \(id \S+\): file_name: '/etc/passwd' points outside"):
        COCODataModule(root, **dm_args).setup("test")
    data = json.loads(good)
    data["images"][0]["width"] = "wide"
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"test.json: image id \S+: width: 'wide' is not an integer"):
        COCODataModule(root, **dm_args).setup("test")


def test_pets_class_id_field_error(tmp_path):
    pets = write_pets_layout(tmp_path / "pets")
    _edit_line(pets / "annotations" / "test.txt", 2, lambda r: " ".join([r.split()[0], "x", "1", "1"]))
    with pytest.raises(DataError, match=r"test.txt:2: CLASS-ID: 'x' is not an integer"):
        OxfordPetsDataModule(pets, image_size=32, num_workers=0).setup("test")
