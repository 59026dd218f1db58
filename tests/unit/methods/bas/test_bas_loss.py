"""BAS loss terms pinned on hand-computed tensors."""

import math

import pytest
import torch

from wsol_lightning.methods.bas.loss import (
    area_loss,
    background_activation_loss,
    classification_loss,
    foreground_guidance_loss,
    gather_class,
    multilabel_classification_loss,
)


def test_classification_loss_is_softmax_ce():
    logits = torch.tensor([[0.0, math.log(3.0)]])
    assert classification_loss(logits, torch.tensor([1])).item() == pytest.approx(math.log(4 / 3))


def test_multilabel_loss_each_positive_against_negatives():
    # image 0: positives {0, 1}, negative {2}; image 1: every class positive (no negative -> 0)
    logits = torch.tensor([[0.0, math.log(2.0), 0.0], [5.0, -1.0, 2.0]])
    multi_hot = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    # p=0: CE over [0, 0] = ln 2 ; p=1: CE over [ln 2, 0] = ln(3/2) ; sum = ln 3 ; batch mean = ln 3 / 2
    expected = math.log(3.0) / 2
    assert multilabel_classification_loss(logits, multi_hot).item() == pytest.approx(expected, rel=1e-6)


def test_multilabel_single_positive_equals_softmax_ce():
    logits = torch.randn(4, 6)
    labels = torch.tensor([0, 3, 5, 2])
    multi_hot = torch.nn.functional.one_hot(labels, 6).float()
    ce = torch.nn.functional.cross_entropy(logits, labels)
    assert multilabel_classification_loss(logits, multi_hot).item() == pytest.approx(ce.item(), rel=1e-5)


def test_foreground_guidance_pools_map_and_weights_cams():
    cams = torch.zeros(1, 2, 2, 2)
    cams[0, 0] = 1.0
    cams[0, 1, 0, 0] = 4.0
    fpm = torch.zeros(1, 4, 4)
    fpm[0, 0, 0] = fpm[0, 0, 1] = 1.0  # top-left 2x2 block averages to 0.5, the rest to 0
    # weighted logits: class 0 -> 0.5 / 4 = 0.125, class 1 -> 4 * 0.5 / 4 = 0.5
    expected = math.log(1 + math.exp(0.5 - 0.125))
    loss = foreground_guidance_loss(cams, fpm, torch.tensor([0]))
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_bas_ratio_and_clip_constant():
    background = torch.tensor([1.0, 3.0, 2.0, -1.0, 2.0])
    foreground = torch.tensor([2.0, 2.0, 4.0, 2.0, 2.0])
    # ratios: 0.5, clipped (3 >= 2), 0.5, relu(-1)/2 = 0, clipped (2 >= 2: equality clips)
    assert background_activation_loss(background, foreground, 0.0).item() == pytest.approx(1.0 / 5, rel=1e-6)
    assert background_activation_loss(background, foreground, 1.0).item() == pytest.approx(3.0 / 5, rel=1e-6)


def test_bas_gradient_only_through_background_and_not_clipped_samples():
    background = torch.tensor([1.0, 3.0, 2.0], requires_grad=True)
    foreground = torch.tensor([2.0, 2.0, 4.0], requires_grad=True)
    background_activation_loss(background, foreground, 1.0).backward()
    assert foreground.grad is None  # the denominator is a stop-gradient
    # d/d bg of mean(bg / fg) = 1 / (3 fg); the clipped sample gets none
    assert torch.allclose(background.grad, torch.tensor([1 / 6, 0.0, 1 / 12]), atol=1e-6)


def test_area_loss_is_mean_activation():
    fpm = torch.tensor([[[1.0, 0.0], [0.5, 0.5]], [[0.0, 0.0], [0.0, 1.0]]])
    assert area_loss(fpm).item() == pytest.approx(3.0 / 8)


def test_gather_class_picks_one_class_per_sample():
    values = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).view(2, 3, 2, 2)
    picked = gather_class(values, torch.tensor([2, 0]))
    assert torch.equal(picked, torch.stack([values[0, 2], values[1, 0]]))
    logits = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert torch.equal(gather_class(logits, torch.tensor([1, 2])), torch.tensor([2.0, 6.0]))
