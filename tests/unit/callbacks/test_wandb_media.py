"""Per-image records and their W&B form: IoU by hand, inclusive -> W&B pixel boxes, masks, table rows."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wsol_lightning.callbacks import wandb_media
from wsol_lightning.callbacks.tiles import tiles_from_batch


def one_tile(with_boxes: bool = True, with_mask: bool = True):
    scoremap = np.zeros((1, 20, 20))
    scoremap[0, 4:10, 4:12] = 1.0  # on at any threshold: pixels x 4..11, y 4..9
    gt = [torch.tensor([[4, 4, 13, 9]])] if with_boxes else None  # 10 x 6 box; the map's box is 8 x 6
    masks = torch.zeros(1, 20, 20, dtype=torch.uint8) if with_mask else None
    logits = torch.tensor([[0.0, 2.0, 0.0]])
    return tiles_from_batch(np.zeros((1, 20, 20, 3), np.uint8), torch.from_numpy(scoremap), logits,
                            torch.tensor([0]), gt, masks, 0.5, ["cat", "dog", "owl"], ["a/b.jpg"])[0]


def test_tile_iou_hit_class_and_score_by_hand():
    tile = one_tile()
    # the protocol's box of pixels x 4..11, y 4..9 is one pixel wider (x1 = x + w): 9 x 7
    np.testing.assert_array_equal(tile.pred_boxes, [[4, 4, 12, 10]])
    assert tile.iou == pytest.approx(54 / (63 + 60 - 54))  # intersection 9 x 6, +1 pixel convention
    assert tile.hit() is True and tile.hit(0.8) is False
    assert (tile.class_name, tile.pred_name, tile.pred_class) == ("cat", "dog", 1)
    assert tile.score == pytest.approx(math.exp(2) / (math.exp(2) + 2))
    assert tile.pred_mask.sum() == 48 and tile.image_id == "a/b.jpg"


def test_without_gt_boxes_iou_is_undefined_not_zero():
    tile = one_tile(with_boxes=False)
    assert math.isnan(tile.iou) and tile.hit() is None
    assert wandb_media.tile_boxes(tile, {0: "cat"})["ground_truth"]["box_data"] == []


def test_wandb_boxes_are_exclusive_pixel_boxes_with_iou_captions():
    tile = one_tile()
    boxes = wandb_media.tile_boxes(tile, {0: "cat", 1: "dog", 2: "owl"})
    (gt,) = boxes["ground_truth"]["box_data"]
    (pred,) = boxes["predictions"]["box_data"]
    assert gt["position"] == {"minX": 4, "minY": 4, "maxX": 14, "maxY": 10} and gt["domain"] == "pixel"
    assert pred["position"] == {"minX": 4, "minY": 4, "maxX": 13, "maxY": 11}
    assert pred["box_caption"] == "cat IoU 0.78" and pred["scores"]["iou"] == pytest.approx(54 / 69)
    assert boxes["predictions"]["class_labels"][2] == "owl"


def test_masks_caption_and_table_row():
    tile = one_tile()
    masks = wandb_media.tile_masks(tile)
    assert set(masks) == {"prediction", "ground_truth"}
    assert masks["prediction"]["mask_data"].dtype == np.uint8 and masks["prediction"]["mask_data"].sum() == 48
    assert set(wandb_media.tile_masks(one_tile(with_mask=False))) == {"prediction"}
    assert wandb_media.tile_caption(tile) == "a/b.jpg: cat (pred dog 0.79), IoU 0.78"
    table = wandb_media.results_table([wandb_media.result_row(tile, "img"), wandb_media.result_row(tile)])
    assert table.columns == wandb_media.TABLE_COLUMNS
    assert table.data[0] == ["img", "a/b.jpg", "cat", "dog", pytest.approx(tile.score), pytest.approx(54 / 69), True,
                             0.5]
    assert table.data[1][0] is None and table.data[1][1:] == table.data[0][1:]  # a row without its picture


def test_native_charts_carry_every_curve():
    curves = {"thresholds": np.array([0.0, 0.5]), "box_acc@30": np.array([10.0, 20.0]),
              "box_acc@50": np.array([5.0, np.nan])}
    chart = wandb_media.box_accuracy_chart(curves, "val")
    assert sorted({row[1] for row in chart.table.data}) == ["BoxAcc IoU>=30%", "BoxAcc IoU>=50%"]
    assert [0.5, "BoxAcc IoU>=50%", 0.0] in chart.table.data  # NaN (undefined) plotted as 0
    pr = wandb_media.pixel_pr_chart({"recall": np.array([0.0, 0.5, np.nan]),
                                     "precision": np.array([1.0, 0.8, 0.7])}, "val")
    assert pr.table.data == [[0.0, 1.0], [0.5, 0.8]]


def test_results_rows_cover_every_image_in_dataset_order_and_drawn_ones_keep_their_picture():
    from wsol_lightning.callbacks.results import table_rows

    tile = one_tile()
    drawn = one_tile(with_mask=False)
    rows = table_rows(iter([(5, tile), (2, tile), (9, tile)]), {5: (drawn, "picture")}, wandb_media.result_row)
    assert [r[0] for r in rows] == [None, "picture", None]  # positions 2, 5, 9
    assert rows[1] == wandb_media.result_row(drawn, "picture")
    assert table_rows(iter(()), {3: (drawn, "p")}, wandb_media.result_row) == [wandb_media.result_row(drawn, "p")]
