"""COCO conversion: protocol binarisation, RLE round trips, original-frame boxes, COCOeval on known cases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from wsol_lightning import predict as P
from wsol_lightning.data import CUBDataModule
from wsol_lightning.data.fakes import write_cub_layout


def test_threshold_mask_is_the_metrics_binarisation():
    scoremap = np.array([[0.0, 0.5], [0.8, 1.0]])
    # U = uint8(map * 255) = [0, 127, 204, 255]; level = int(0.5 * 255) = 127; on iff U > 127
    np.testing.assert_array_equal(P.threshold_mask(scoremap, 0.5), [[False, False], [True, True]])
    # the level scales with the map's maximum: max U = 127 -> level int(0.5 * 127) = 63
    np.testing.assert_array_equal(P.threshold_mask(scoremap * 0.5, 0.5), [[False, False], [True, True]])
    assert not P.threshold_mask(np.zeros((3, 3)), 0.0).any()


def test_rle_round_trip_is_json_ready():
    mask = np.zeros((7, 9), bool)
    mask[2:5, 3:8] = True
    rle = P.encode_rle(mask)
    assert isinstance(rle["counts"], str) and rle["size"] == [7, 9]
    np.testing.assert_array_equal(P.decode_rle(json.loads(json.dumps(rle))), mask)
    assert P.mask_bbox(mask) == [3.0, 2.0, 5.0, 3.0]


def test_box_conversion_and_resizing():
    assert P.xyxy_to_xywh([2, 3, 5, 7]) == [2.0, 3.0, 4.0, 5.0]
    m = np.random.default_rng(0).random((16, 16)).astype(np.float32)
    assert P.to_original_frame(m, 16, 16) is not None and np.array_equal(P.to_original_frame(m, 16, 16), m)
    big = P.to_original_frame(m, width=40, height=24)
    assert big.shape == (24, 40) and big.min() >= 0 and big.max() <= 1


def test_image_predictions_boxes_mask_and_scores():
    scoremap = np.zeros((20, 30))
    scoremap[4:10, 5:15] = 1.0  # main blob
    scoremap[15:18, 25:28] = 0.6  # smaller blob, above 0.5
    boxes, mask = P.image_predictions(scoremap, 0.5, score=0.8, category_id=3, image_id=7)
    assert [b["bbox"] for b in boxes] == [[5.0, 4.0, 10.0, 6.0], [25.0, 15.0, 3.0, 3.0]]  # largest first
    assert boxes[0]["score"] == pytest.approx(0.8) and boxes[1]["score"] == pytest.approx(0.8 * 0.6)
    assert {b["category_id"] for b in boxes} == {3} and {b["image_id"] for b in boxes} == {7}
    assert mask["area"] == 60 + 9
    np.testing.assert_array_equal(P.decode_rle(mask["segmentation"]), scoremap > 0.5)
    ring = np.zeros((20, 20))
    ring[2:12, 2:12] = 1.0
    ring[5:8, 5:8] = 0.0  # a hole makes no box of its own
    assert P.mask_boxes(P.threshold_mask(ring, 0.5)) == [[2.0, 2.0, 10.0, 10.0]]
    only, _ = P.image_predictions(scoremap, 0.5, 1.0, 1, 0, max_boxes=1)
    assert len(only) == 1
    assert P.image_predictions(np.zeros((5, 5)), 0.5, 1.0, 1, 0) == ([], None)


def _gt() -> dict:
    mask = np.zeros((20, 30), bool)
    mask[4:10, 5:15] = True
    return {"images": [{"id": 1, "file_name": "a.jpg", "width": 30, "height": 20}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 2, "iscrowd": 0, "bbox": [5, 4, 10, 6],
                             "area": 60.0, "segmentation": P.encode_rle(mask)}],
            "categories": [{"id": 2, "name": "thing"}]}


def test_coco_evaluate_perfect_and_wrong_predictions():
    scoremap = np.zeros((20, 30))
    scoremap[4:10, 5:15] = 1.0
    boxes, mask = P.image_predictions(scoremap, 0.5, 0.9, category_id=2, image_id=1)
    assert P.coco_evaluate(_gt(), boxes, "bbox", verbose=False)["AP"] == pytest.approx(1.0)
    assert P.coco_evaluate(_gt(), [mask], "segm", verbose=False)["AP"] == pytest.approx(1.0)
    shifted = np.zeros((20, 30))
    shifted[10:16, 18:28] = 1.0  # no overlap with the GT box
    boxes, mask = P.image_predictions(shifted, 0.5, 0.9, category_id=2, image_id=1)
    assert P.coco_evaluate(_gt(), boxes, "bbox", verbose=False)["AP50"] == pytest.approx(0.0)
    assert P.coco_evaluate(_gt(), [mask], "segm", verbose=False)["AP50"] == pytest.approx(0.0)


def test_coco_dataset_attaches_the_mask_to_the_first_box():
    scoremap = np.zeros((20, 30))
    scoremap[4:10, 5:15] = 1.0
    scoremap[15:18, 25:28] = 1.0
    boxes, mask = P.image_predictions(scoremap, 0.5, 0.9, 2, 1)
    dataset = P.coco_dataset([{"id": 1, "file_name": "a.jpg", "width": 30, "height": 20}], boxes, [mask],
                             [{"id": 2, "name": "thing"}])
    anns = dataset["annotations"]
    assert [a["id"] for a in anns] == [1, 2]
    assert "segmentation" in anns[0] and "segmentation" not in anns[1]
    assert anns[1]["area"] == 9.0


def test_ground_truth_from_a_cub_layout_is_in_the_original_frame(tmp_path: Path):
    root = write_cub_layout(tmp_path, num_classes=2, images_per_class=3, seed=1)
    data = CUBDataModule(root, image_size=32, batch_size=2, num_workers=0, val_per_class=1)
    dataset = data.make_dataset("test")
    gt = P.ground_truth_from_dataset(dataset, range(len(dataset)), category_ids=[5, 6])
    assert len(gt["images"]) == len(dataset)
    index = dataset.index
    for ann in gt["annotations"]:
        i = ann["image_id"]
        x0, y0, x1, y1 = index.boxes_of(i)[0].tolist()
        assert ann["bbox"] == [x0, y0, x1 - x0 + 1, y1 - y0 + 1]
        assert ann["category_id"] == [5, 6][int(index.labels[i])]
        image = next(im for im in gt["images"] if im["id"] == i)
        assert x1 < image["width"] and y1 < image["height"]


def test_stored_map_caps_the_long_side_and_casts():
    huge = np.random.default_rng(0).random((4000, 6000)).astype(np.float32)
    stored = P.stored_map(huge)  # defaults: long side 1024, float16
    assert stored.shape == (683, 1024) and stored.dtype == np.float16
    assert stored.nbytes < 1.5e6 and 0.45 < float(stored.mean()) < 0.55  # area average of U(0, 1)
    small = np.array([[0.0, 0.5], [0.999, 1.0]], np.float32)
    np.testing.assert_array_equal(P.stored_map(small, None, "float32"), small)
    np.testing.assert_array_equal(P.stored_map(small, None, "uint8"), [[0, 127], [254, 255]])  # uint8(m*255)
    with pytest.raises(ValueError, match="map dtype"):
        P.stored_map(small, 8, "int16")
    with pytest.raises(ValueError, match="max_side"):
        P.stored_map(small, 0)


def test_records_survive_a_torn_last_line_and_name_a_corrupt_one(tmp_path: Path):
    from wsol_lightning.callbacks import prediction_records as R

    log = R.RecordLog(R.records_path(tmp_path, 0))
    log.append([{"kind": "header", "categories": [{"id": 1, "name": "a"}]},
                {"kind": "image", "image": {"id": 0, "file_name": "x.jpg", "width": 2, "height": 2},
                 "boxes": [], "mask": None},
                {"kind": "skipped", "index": 1, "file_name": "y.jpg", "reason": "unreadable"}])
    log.close()
    path = R.records_path(tmp_path, 0)
    path.write_text(path.read_text() + '{"kind": "ima')  # the process died while writing this line
    records = R.read_records([path])
    assert [im["file_name"] for im in records.images] == ["x.jpg"] and records.torn_lines == 1
    R.write_outputs(tmp_path, records, complete=False, stopped_by="kill")
    dataset = json.loads((tmp_path / "predictions.json").read_text())
    assert dataset["skipped"] == [{"index": 1, "file_name": "y.jpg", "reason": "unreadable"}]
    assert dataset["info"]["complete"] is False and dataset["categories"] == [{"id": 1, "name": "a"}]
    path.write_text('garbage\n{"kind": "header", "categories": []}\n')
    with pytest.raises(ValueError, match=r"corrupt record line 1 of .*records_rank0\.jsonl"):
        R.read_records([path])
