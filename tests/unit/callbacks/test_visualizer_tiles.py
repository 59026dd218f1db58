"""MapVisualizer's grid tiles: enlarged before drawing, boxes scaled with the pixels, the largest box labelled."""

from __future__ import annotations

import numpy as np
import torch

from wsol_lightning.callbacks import MapVisualizer, render
from wsol_lightning.callbacks.tiles import tiles_from_batch


def test_grid_tile_scales_boxes_with_the_pixels_and_labels_class_and_iou():
    scoremap = np.zeros((1, 20, 20))
    scoremap[0, 4:10, 4:12] = 1.0  # protocol box [4, 4, 12, 10]
    tile = tiles_from_batch(np.full((1, 20, 20, 3), 255, np.uint8), torch.from_numpy(scoremap),
                            torch.tensor([[1.0, 0.0]]), torch.tensor([0]), [torch.tensor([[4, 4, 13, 9]])], None,
                            0.5, ["square", "disc"])[0]
    out = MapVisualizer(min_tile_size=60, alpha=0.5).grid_tile(tile)
    assert out.shape == (60, 60, 3)  # 20 x 20 enlarged 3 times
    assert render.upscale_boxes(np.array([[4, 4, 12, 10]]), 3).tolist() == [[12, 12, 38, 32]]
    assert out[32, 38].tolist() == list(render.PRED_COLOUR)  # the predicted box's corner, at 3x
    assert out[29, 41].tolist() == list(render.GT_COLOUR)  # GT [4, 4, 13, 9] -> [12, 12, 41, 29]
    assert out[50, 50].tolist() == [128, 128, 192]  # (white + jet(0) = (0, 0, 128)) / 2, half to even
    label = out[12:32, 12:39].min(axis=-1) > 200  # "square IoU 0.78" in white on the red label background
    assert label.sum() > 10 and (out[12:32, 12:39] == render.PRED_COLOUR).all(axis=-1).sum() > 50
