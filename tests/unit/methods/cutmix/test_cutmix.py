"""CutMix's box, mixing and loss on hand-computed cases."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812

from wsol_lightning.methods import CutMix
from wsol_lightning.methods.cutmix.loss import mixed_cross_entropy
from wsol_lightning.methods.cutmix.model import CutMixDraws, cut_and_mix, cutmix_box, draw_cutmix


def test_box_is_centred_and_clipped_like_the_reference() -> None:
    # lam 0.75 on 10 x 20: sides int(10 * 0.5) = 5 and int(20 * 0.5) = 10, halves 2 and 5
    assert cutmix_box(10, 20, 0.75, (4, 7)) == (2, 2, 6, 12)
    assert cutmix_box(10, 20, 0.75, (0, 19)) == (0, 14, 2, 20)  # clipped at the borders
    assert cutmix_box(10, 20, 1.0, (3, 3)) == (3, 3, 3, 3)  # lam 1: empty box


def test_mixing_pastes_the_partner_and_recomputes_lambda() -> None:
    images = torch.stack([torch.zeros(1, 4, 4), torch.ones(1, 4, 4)])
    mixed, lam = cut_and_mix(images, torch.tensor([1, 0]), (1, 0, 3, 2))
    assert lam == 1 - 4 / 16
    assert mixed[0, 0, 1:3, 0:2].eq(1).all() and mixed[0].sum() == 4
    assert mixed[1, 0, 1:3, 0:2].eq(0).all() and mixed[1].sum() == 12
    assert images[0].sum() == 0  # the input is not modified


def test_mixed_loss_weights_both_labels() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    a, b = torch.tensor([0, 1]), torch.tensor([2, 0])
    expected = 0.3 * F.cross_entropy(logits, a) + 0.7 * F.cross_entropy(logits, b)
    assert torch.allclose(mixed_cross_entropy(logits, a, b, 0.3), expected)


def test_draws_are_reproducible_and_lambda_follows_beta() -> None:
    first = draw_cutmix(4, 8, 8, 1.0, torch.Generator().manual_seed(3))
    again = draw_cutmix(4, 8, 8, 1.0, torch.Generator().manual_seed(3))
    assert first.lam == again.lam and torch.equal(first.permutation, again.permutation)
    gen = torch.Generator().manual_seed(0)
    lams = torch.tensor([draw_cutmix(2, 8, 8, 2.0, gen).lam for _ in range(3000)])
    assert abs(float(lams.mean()) - 0.5) < 0.02  # Beta(2, 2): mean 1/2, variance 1/20
    assert abs(float(lams.var()) - 0.05) < 0.006


def test_module_falls_back_to_cam_when_the_coin_says_no() -> None:
    torch.manual_seed(0)
    model = CutMix(backbone="resnet10t", num_classes=3, prob=0.5)
    images, labels = torch.randn(2, 3, 32, 32), torch.tensor([0, 2])
    skip = CutMixDraws(coin=0.7, lam=0.5, permutation=torch.tensor([1, 0]), centre=(16, 16))
    plain = F.cross_entropy(model(images)["logits"], labels)
    assert torch.allclose(model.losses(images, labels, skip)["loss"], plain)
    mix = CutMixDraws(coin=0.2, lam=0.5, permutation=torch.tensor([1, 0]), centre=(16, 16))
    assert not math.isclose(float(model.losses(images, labels, mix)["loss"].detach()), float(plain.detach()))
