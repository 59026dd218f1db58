"""Drawing helpers: exact pixel colours, grid geometry, curve figures."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from wsol_lightning.callbacks import render
from wsol_lightning.data.transforms import IMAGENET_MEAN, IMAGENET_STD


def test_denormalize_inverts_the_input_normalisation():
    rgb = np.random.default_rng(0).integers(0, 256, size=(2, 5, 6, 3), dtype=np.uint8)
    x = torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 255
    mean = torch.tensor(IMAGENET_MEAN)[None, :, None, None]
    std = torch.tensor(IMAGENET_STD)[None, :, None, None]
    x = (x - mean) / std
    np.testing.assert_array_equal(render.denormalize(x), rgb)


def test_overlay_blends_by_hand_and_draws_gt_green_pred_red():
    image = np.full((20, 30, 3), 100, np.uint8)
    scoremap = np.zeros((20, 30))
    out = render.overlay(image, scoremap, gt_boxes=np.array([[2, 3, 10, 12]]),
                         pred_boxes=torch.tensor([[15, 5, 25, 15]]), alpha=0.5)
    # jet(0) is RGB (0, 0, 128); 0.5 * 100 + 0.5 * (0, 0, 128) = (50, 50, 114)
    np.testing.assert_array_equal(out[0, 0], [50, 50, 114])
    np.testing.assert_array_equal(out[3, 2], render.GT_COLOUR)  # a GT corner
    np.testing.assert_array_equal(out[12, 10], render.GT_COLOUR)
    np.testing.assert_array_equal(out[5, 15], render.PRED_COLOUR)
    np.testing.assert_array_equal(out[8, 6], [50, 50, 114])  # inside the GT box: not drawn over


def test_placeholder_box_is_not_drawn_and_sizes_must_match():
    image = np.zeros((8, 8, 3), np.uint8)
    np.testing.assert_array_equal(render.draw_boxes(image, np.zeros((1, 4)), (255, 0, 0)), image)
    with pytest.raises(ValueError, match="differ"):
        render.overlay(image, np.zeros((4, 4)))


def test_grid_places_tiles_row_major_with_padding():
    tiles = [np.full((4, 5, 3), k, np.uint8) for k in range(5)]
    grid = render.make_grid(tiles, ncols=3, pad=2)
    assert grid.shape == (2 * 6 + 2, 3 * 7 + 2, 3)
    assert (grid[2:6, 2:7] == 0).all() and (grid[2:6, 9:14] == 1).all()
    assert (grid[8:12, 9:14] == 4).all()
    assert (grid[8:12, 16:21] == 255).all()  # the empty sixth cell keeps the fill


def test_upscale_uses_the_least_integer_factor():
    assert render.upscale(np.zeros((64, 80, 3), np.uint8), 128).shape == (128, 160, 3)
    assert render.upscale(np.zeros((50, 50, 3), np.uint8), 128).shape == (150, 150, 3)
    assert render.upscale(np.zeros((200, 200, 3), np.uint8), 128).shape == (200, 200, 3)


def test_curve_figures_render_the_curves():
    t = np.arange(0, 1, 0.1)
    curves = {"thresholds": t, "box_acc@50": 100 * (1 - np.abs(t - 0.4)), "top1_loc@50": np.full(10, np.nan)}
    box = render.figure_to_array(render.box_accuracy_figure(curves, threshold=0.4))
    pr = render.figure_to_array(render.pixel_pr_figure({"precision": np.array([np.nan, 1.0, 0.5]),
                                                        "recall": np.array([0.0, 0.2, 1.0])}, pxap=42.0))
    for fig in (box, pr):
        assert fig.dtype == np.uint8 and fig.ndim == 3 and fig.shape[2] == 3
        assert len(np.unique(fig.reshape(-1, 3), axis=0)) > 10  # drawn, not blank
    assert box.shape == (350, 500, 3)
    assert cv2.countNonZero(cv2.inRange(box, (0, 0, 0), (40, 40, 40))) > 0  # black text/lines


def test_draw_mask_tints_only_the_mask_by_alpha():
    image = np.full((6, 8, 3), 100, np.uint8)
    mask = np.zeros((6, 8), bool)
    mask[1:3, 2:5] = True
    out = render.draw_mask(image, mask, colour=(255, 255, 0), alpha=0.5)
    np.testing.assert_array_equal(out[1, 2], [177, 177, 50])  # 0.5 * 100 + 0.5 * (255, 255, 0), truncated
    np.testing.assert_array_equal(out[0, 0], [100, 100, 100])
    assert (out[~mask] == 100).all()
