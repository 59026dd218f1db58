"""ACoL: erasing, test maps, loss and lr groups on hand-computed cases and a tiny trunk."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from wsol_lightning.methods import ACoL
from wsol_lightning.methods.acol.loss import acol_losses
from wsol_lightning.methods.acol.model import erase
from wsol_lightning.methods.wsoleval import minmax_per_map


def test_minmax_per_map_by_hand_and_constant_map_is_nan() -> None:
    maps = torch.tensor([[[1.0, 3.0], [5.0, 2.0]], [[4.0, 4.0], [4.0, 4.0]]])
    out = minmax_per_map(maps)
    assert torch.equal(out[0], torch.tensor([[0.0, 0.5], [1.0, 0.25]]))
    assert torch.isnan(out[1]).all()  # the reference divides by max - min with no guard


def test_erase_zeroes_where_attention_reaches_threshold_and_keeps_nan() -> None:
    features = torch.ones(1, 2, 2, 2)
    attention = torch.tensor([[[0.2, 0.7], [0.9, math.nan]]])
    out = erase(features, attention, 0.7)
    expected = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert torch.equal(out[0, 0], expected) and torch.equal(out[0, 1], expected)


def test_acol_losses_are_two_cross_entropies_of_the_pooled_maps() -> None:
    maps_a = torch.zeros(1, 3, 2, 2)
    maps_a[0, 1] = 2.0
    maps_b = torch.zeros(1, 3, 2, 2)
    labels = torch.tensor([1])
    losses = acol_losses(maps_a, maps_b, labels)
    assert losses["loss_cls"].item() == pytest.approx(-math.log(math.exp(2) / (math.exp(2) + 2)))
    assert losses["loss_erased"].item() == pytest.approx(math.log(3))
    assert losses["loss"].item() == pytest.approx(losses["loss_cls"].item() + losses["loss_erased"].item())


@pytest.fixture(scope="module")
def acol() -> ACoL:
    torch.manual_seed(0)
    return ACoL(backbone="resnet10t", num_classes=3, head_width=16).eval()


def test_test_map_is_max_of_normalised_maps_with_erasing_by_the_asked_class(acol: ACoL) -> None:
    images = torch.randn(2, 3, 32, 32)
    classes = torch.tensor([2, 0])
    with torch.no_grad():
        out = acol(images)
        rows = torch.arange(2)
        map_a = minmax_per_map(out["maps_a"][rows, classes])
        erased = out["features"] * (map_a < acol.erase_threshold).unsqueeze(1)
        map_b = minmax_per_map(acol.net.classifier_b(erased)[rows, classes])
        maps = acol.localization_maps(out, classes)
    assert maps.shape == (2, 2, 2)  # resnet10t with layer4 at stride 1: 32 px / 16
    assert torch.equal(maps, torch.maximum(map_a, map_b))
    assert torch.equal(out["logits"], out["maps_a"].mean(dim=(2, 3)))


def test_training_losses_use_the_label_for_erasing_and_reach_both_classifiers(acol: ACoL) -> None:
    batch = {"image": torch.randn(2, 3, 32, 32), "label": torch.tensor([0, 1])}
    acol.train()
    losses = acol.training_losses(batch)
    losses["loss"].backward()
    out = acol(batch["image"])
    expected = F.cross_entropy(out["maps_a"].mean(dim=(2, 3)), batch["label"])
    assert losses["loss_cls"].item() == pytest.approx(expected.item(), rel=1e-5)
    for head in (acol.net.classifier_a, acol.net.classifier_b):
        assert head[0].weight.grad is not None and head[0].weight.grad.abs().sum() > 0
    acol.zero_grad()
    acol.eval()


def test_lr_groups_follow_the_reference_patterns() -> None:
    resnet = ACoL(backbone="resnet10t", num_classes=3, head_width=8)
    assert list(resnet.head_modules()) == [resnet.net.trunk.stages[-1]]  # layer4 at 10x, not the heads
    new = ACoL(backbone="resnet10t", num_classes=3, head_width=8, lr_groups="new_layers")
    assert list(new.head_modules()) == [new.net.classifier_a, new.net.classifier_b]
    with pytest.raises(ValueError, match="lr_groups"):
        ACoL(backbone="resnet10t", num_classes=3, lr_groups="all")
