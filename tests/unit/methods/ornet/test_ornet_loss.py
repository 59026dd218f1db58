"""ORNet's losses pinned on hand-computed values."""

import math

import pytest
import torch

from wsol_lightning.methods.ornet.loss import (
    area_loss,
    binary_entropy,
    class_area_term,
    entropy_weight,
    refinement_area_loss,
    weighted_entropy_loss,
)

# By hand (natural logs, mu 0.5, sigma 0.1, beta 0):
#   p = 0.5: w = exp(0) = 1;             H = ln 2 = 0.693147;                        w H = 0.693147
#   p = 0.4: w = exp(-0.01/0.02) = exp(-0.5) = 0.606531;
#            H = 0.4 * 0.916291 + 0.6 * 0.510826 = 0.366516 + 0.306495 = 0.673012;   w H = 0.408202
#   p = 0.2: w = exp(-0.09/0.02) = exp(-4.5) = 0.011109;
#            H = 0.2 * 1.609438 + 0.8 * 0.223144 = 0.321888 + 0.178515 = 0.500402;   w H = 0.005559
HAND = {0.5: (1.0, 0.693147, 0.693147), 0.4: (0.606531, 0.673012, 0.408202), 0.2: (0.011109, 0.500402, 0.005559)}


@pytest.mark.parametrize("p", sorted(HAND))
def test_weighted_entropy_hand_values(p):
    w, h, wh = HAND[p]
    maps = torch.full((1, 1, 2, 2), p)
    assert float(entropy_weight(maps)[0, 0, 0, 0]) == pytest.approx(w, abs=1e-6)
    assert float(binary_entropy(maps)[0, 0, 0, 0]) == pytest.approx(h, abs=1e-6)
    assert float(weighted_entropy_loss(maps)) == pytest.approx(wh, abs=1e-6)


def test_weighted_entropy_is_symmetric_and_averages_pixels():
    maps = torch.tensor([0.5, 0.4, 0.6, 0.2]).view(1, 1, 2, 2)
    assert float(weighted_entropy_loss(maps)) == pytest.approx((0.693147 + 2 * 0.408202 + 0.005559) / 4, abs=1e-6)


def test_binary_map_has_no_weighted_entropy_and_finite_gradient():
    maps = torch.tensor([0.0, 1.0, 0.0, 1.0]).view(1, 1, 2, 2).requires_grad_()
    loss = weighted_entropy_loss(maps)
    loss.backward()
    assert float(loss) == pytest.approx(0.0, abs=1e-9)
    assert torch.isfinite(maps.grad).all()


def test_weighted_entropy_gradient_pushes_away_from_half():
    maps = torch.tensor([0.45, 0.55]).view(1, 1, 1, 2).requires_grad_()
    weighted_entropy_loss(maps).backward()
    # descending the gradient moves 0.45 down and 0.55 up (towards a binary map)
    assert maps.grad[0, 0, 0, 0] > 0 and maps.grad[0, 0, 0, 1] < 0


def test_beta_and_sigma_change_the_weight():
    maps = torch.tensor([0.3])
    assert float(entropy_weight(maps)) == pytest.approx(math.exp(-2.0), abs=1e-7)
    assert float(entropy_weight(maps, beta=0.5)) == pytest.approx(math.exp(-2.0) + 0.5, abs=1e-7)
    assert float(entropy_weight(maps, sigma=0.2)) == pytest.approx(math.exp(-0.5), abs=1e-7)


def test_area_loss_is_mean_activation():
    maps = torch.tensor([[0.0, 1.0], [0.5, 0.5]]).view(1, 1, 2, 2)
    assert float(area_loss(maps)) == pytest.approx(0.5)
    assert float(refinement_area_loss(maps)) == pytest.approx(0.5)


def test_class_area_term_sums_ranked_channels():
    # B = 2, K = 5, 1x2 maps; channel c of sample b holds the constant value 10 b + c on both pixels.
    class_maps = (torch.arange(5.0)[None, :, None, None] + 10 * torch.arange(2.0)[:, None, None, None])
    class_maps = class_maps.expand(2, 5, 1, 2).clone()
    scores = torch.tensor([[0.5, 0.4, 0.3, 0.2, 0.1],   # ranks: 0, 1, 2, 3, 4
                           [0.1, 0.2, 0.3, 0.4, 0.5]])  # ranks: 4, 3, 2, 1, 0
    # ranks 2..3 (1-based): sample 0 -> classes 1, 2 (1 + 2 = 3); sample 1 -> classes 3, 2 (13 + 12 = 25)
    # term = (1 / (B h w)) sum_b sum_r sum_hw = (2 * 3 + 2 * 25) / (2 * 1 * 2) = 14
    assert float(class_area_term(class_maps, scores, rank_start=2, rank_end=3)) == pytest.approx(14.0)
    # ranks beyond K are ignored: 4..25 with K = 5 keeps ranks 4, 5
    # sample 0 -> classes 3, 4 (7); sample 1 -> classes 1, 0 (21); (2 * 7 + 2 * 21) / 4 = 14
    assert float(class_area_term(class_maps, scores)) == pytest.approx(14.0)
    maps = torch.full((2, 1, 1, 2), 0.25)
    total = refinement_area_loss(maps, class_maps, scores, rank_start=2, rank_end=3)
    assert float(total) == pytest.approx(14.25)


def test_class_area_term_empty_range_and_no_gradient_through_scores():
    class_maps = torch.ones(1, 3, 2, 2, requires_grad=True)
    scores = torch.randn(1, 3, requires_grad=True)
    assert float(class_area_term(class_maps, scores, rank_start=4, rank_end=25)) == 0.0
    class_area_term(class_maps, scores, rank_start=2, rank_end=3).backward()
    assert scores.grad is None
    # the two selected channels get d/dx = 1 / (B h w) = 1/4 per pixel, the top-1 channel nothing
    top = int(scores.argmax())
    assert torch.allclose(class_maps.grad.sum(dim=(2, 3)), torch.tensor([[1.0, 1.0, 1.0]]).index_fill(1,
                          torch.tensor([top]), 0.0))
