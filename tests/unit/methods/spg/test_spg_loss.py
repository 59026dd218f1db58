"""SPG: guidance masks, masked BCE and the four terms on hand-computed cases; the module on a tiny trunk."""

from __future__ import annotations

import math

import pytest
import torch

from wsol_lightning.methods import SPG
from wsol_lightning.methods.spg.loss import IGNORE, guidance_mask, masked_bce, spg_losses


def test_guidance_mask_three_values() -> None:
    attention = torch.tensor([[[0.9, 0.8, 0.5], [0.3, 0.04, 0.0]]])
    mask = guidance_mask(attention, high=0.7, low=0.05, min_foreground=2)
    assert torch.equal(mask, torch.tensor([[[1.0, 1.0, IGNORE], [IGNORE, 0.0, 0.0]]]))


def test_guidance_mask_falls_back_to_a_fraction_of_the_peak_when_too_few_object_pixels() -> None:
    attention = torch.tensor([[[0.6, 0.5, 0.3, 0.0]], [[0.9, 0.8, 0.1, 0.0]]])
    mask = guidance_mask(attention, high=0.7, low=0.01, min_foreground=2, fallback_ratio=0.7)
    # image 0: nothing above 0.7 -> object above 0.7 * 0.6 = 0.42; image 1 keeps its two pixels above 0.7
    assert torch.equal(mask[0], torch.tensor([[1.0, 1.0, IGNORE, 0.0]]))
    assert torch.equal(mask[1], torch.tensor([[1.0, 1.0, IGNORE, 0.0]]))


def test_background_wins_where_both_rules_hold() -> None:
    mask = guidance_mask(torch.tensor([[[0.3, 0.1]]]), high=0.2, low=0.5, min_foreground=1)
    assert torch.equal(mask, torch.zeros(1, 1, 2))


def test_masked_bce_by_hand_and_empty_mask_is_zero() -> None:
    logits = torch.tensor([[[0.0, 2.0, 5.0]]], requires_grad=True)
    mask = torch.tensor([[[1.0, 0.0, IGNORE]]])
    expected = (math.log(2.0) + math.log(1.0 + math.exp(2.0))) / 2
    assert masked_bce(logits, mask).item() == pytest.approx(expected)
    empty = masked_bce(logits, torch.full_like(mask, IGNORE))
    empty.backward()
    assert empty.item() == 0.0 and logits.grad is not None


def test_spg_losses_sum_and_first_guidance_from_the_label_attention() -> None:
    torch.manual_seed(0)
    maps = torch.zeros(1, 2, 2, 2)
    maps[0, 1] = torch.tensor([[1.0, 0.0], [0.0, 0.0]])  # label 1: one hot corner
    outputs = {"logits": maps.mean(dim=(2, 3)), "maps": maps, "logits_b1": torch.zeros(1, 1, 2, 2),
               "logits_b2": torch.zeros(1, 1, 2, 2), "logits_c": torch.zeros(1, 1, 2, 2)}
    losses = spg_losses(outputs, torch.tensor([1]), (0.7, 0.01, 0.5, 0.05, 0.7, 0.1), size=2, min_foreground=1)
    # upsampling 2 -> 2 is the identity: mask of B2 = [[1, 0], [0, 0]], every pixel decided, logits 0 -> log 2
    assert losses["loss_b2"].item() == pytest.approx(math.log(2.0))
    # sigmoid(0) = 0.5 everywhere: B1's mask (0.5, 0.05) has no pixel > 0.5, falls back to > 0.35: all object
    assert losses["loss_b1"].item() == pytest.approx(math.log(2.0))
    total = sum(v for k, v in losses.items() if k != "loss")
    assert losses["loss"].item() == pytest.approx(total.item())


def test_spg_module_shapes_maps_and_lr_groups() -> None:
    torch.manual_seed(0)
    spg = SPG(backbone="resnet10t", num_classes=3, attention_size=32)
    images = torch.randn(2, 3, 32, 32)
    out = spg(images)
    assert out["maps"].shape == (2, 3, 2, 2) and out["logits_b1"].shape == (2, 1, 2, 2)
    classes = torch.tensor([2, 1])
    assert torch.equal(spg.localization_maps(out, classes), out["maps"][torch.arange(2), classes])
    losses = spg.training_losses({"image": images, "label": torch.tensor([0, 1])})
    assert set(losses) == {"loss_cls", "loss_b2", "loss_b1", "loss_c", "loss"}
    losses["loss"].backward()
    for conv in (spg.net.b1_in[0], spg.net.b2_in[0], spg.net.b_shared[0], spg.net.c_head[0], spg.net.classifier):
        assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
    assert list(spg.head_modules()) == [spg.net.trunk.stages[4]]
    with pytest.raises(ValueError, match="ResNet, VGG and InceptionV3"):
        SPG(backbone="mobilenetv3_small_050", num_classes=3)
