"""HaS's hiding on hand-computed cases, and the module's wiring."""

from __future__ import annotations

import pytest
import torch

from wsol_lightning.methods import HaS
from wsol_lightning.methods.cam.loss import classification_loss
from wsol_lightning.methods.has.model import grid_cells, hide_patches


def test_cells_hide_exactly_the_chosen_squares_including_a_short_last_row() -> None:
    images = torch.arange(1, 2 * 2 * 5 * 5 + 1, dtype=torch.float64).reshape(2, 2, 5, 5)
    assert grid_cells(5, 5, 2) == (3, 3)
    uniforms = torch.full((2, 3, 3), 0.9)
    uniforms[0, 0, 1] = 0.5  # == drop_rate: hidden (the reference hides when u <= drop_rate)
    uniforms[1, 2, 2] = 0.1  # the 1x1 corner cell
    out = hide_patches(images, grid_size=2, drop_rate=0.5, uniforms=uniforms)
    expected = images.clone()
    expected[0, :, 0:2, 2:4] = 0
    expected[1, :, 4:5, 4:5] = 0
    assert torch.equal(out, expected)
    assert images[0, 0, 0, 2] == 3  # the input is not modified


def test_drop_rate_extremes_and_grid_zero() -> None:
    images = torch.randn(2, 3, 8, 8)
    assert torch.equal(hide_patches(images, 4, 1.0), torch.zeros_like(images))
    assert torch.equal(hide_patches(images, 4, 0.0, uniforms=torch.rand(2, 2, 2) + 1e-6), images)
    assert hide_patches(images, 0, 0.5) is images


def test_bad_uniforms_shape_is_named() -> None:
    with pytest.raises(ValueError, match=r"expected \(2, 2, 2\)"):
        hide_patches(torch.zeros(2, 3, 8, 8), 4, 0.5, uniforms=torch.zeros(2, 3, 3))


def test_module_with_drop_rate_one_trains_on_blank_images() -> None:
    torch.manual_seed(0)
    model = HaS(backbone="resnet10t", num_classes=3, grid_size=8, drop_rate=1.0)
    images, labels = torch.randn(2, 3, 32, 32), torch.tensor([0, 2])
    hidden_all = model.training_losses({"image": images, "label": labels})["loss"]
    blank = model.losses(torch.zeros_like(images), labels)["loss"]
    assert torch.allclose(hidden_all, blank)
    model.hparams.drop_rate = 0.5
    shown = model.losses(images, labels, torch.full((2, 4, 4), 0.9))["loss"]  # no draw <= 0.5: nothing hidden
    assert torch.allclose(shown, classification_loss(model(images)["logits"], labels))
    assert not torch.allclose(shown, blank)
    with pytest.raises(ValueError, match="drop_rate"):
        HaS(backbone="resnet10t", num_classes=3, drop_rate=1.5)
