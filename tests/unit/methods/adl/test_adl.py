"""ADL's layer on hand-computed cases, its insertion points and the module's wiring."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

from wsol_lightning.backbones.trunk import Trunk
from wsol_lightning.methods import ADL
from wsol_lightning.methods.adl.model import ADL_POSITIONS, AttentionDropout, attention_dropout, insert_adl


def features() -> torch.Tensor:
    # channel means: [[1, 3], [9, 10]] (max 10); threshold 0.9 -> drop positions with mean >= 9
    return torch.tensor([[[[0.0, 2.0], [8.0, 10.0]], [[2.0, 4.0], [10.0, 10.0]]]])


def test_drop_mask_branch_zeroes_the_most_active_positions() -> None:
    out = attention_dropout(features(), drop_rate=0.75, threshold=0.9, uniform=0.25)  # 0.25 + 0.75 = 1 -> drop
    keep = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    assert torch.equal(out, features() * keep)


def test_importance_branch_multiplies_by_the_sigmoid_of_the_mean() -> None:
    out = attention_dropout(features(), drop_rate=0.75, threshold=0.9, uniform=0.2)
    mean = torch.tensor([[1.0, 3.0], [9.0, 10.0]])
    assert torch.allclose(out, features() * torch.sigmoid(mean))


def test_layer_is_identity_in_eval_and_uses_pending_draws_in_train() -> None:
    layer = AttentionDropout(0.75, 0.9)
    layer.eval()
    x = features()
    assert layer(x) is x
    layer.train()
    layer.pending = [0.9]
    assert torch.equal(layer(x), attention_dropout(x, 0.75, 0.9, 0.9))
    assert layer.pending == []


def test_reference_insertion_points() -> None:
    def names(backbone: str) -> list[str]:
        model = ADL(backbone=backbone, num_classes=3)
        return [n for n, m in model.named_modules() if isinstance(m, AttentionDropout)]

    assert names("resnet26") == ["net.trunk.stages.3.layer3.adl0", "net.trunk.stages.4.layer4.adl1",
                                 "net.trunk.stages.4.layer4.adl2"]
    resnet = ADL(backbone="resnet26", num_classes=3).net.trunk.stages[4].layer4
    assert list(resnet._modules) == ["0", "adl1", "1", "adl2"]  # after the first and the last block
    assert names("resnet10t") == ["net.trunk.stages.3.layer3.adl0", "net.trunk.stages.4.layer4.adl1"]
    with pytest.raises(ValueError, match="not a module of the trunk"):
        ADL(backbone="resnet10t", num_classes=3, adl_positions=["layer9.0"])


def test_vgg16_insertion_points_are_pool3_conv4_3_and_conv5_3() -> None:
    """On a stand-in of the VGG16 trunk's stages (timm's flattened names, taps at features.3/8/15/22/29)."""
    taps, stages, start = (3, 8, 15, 22, 29), [], 0
    for tap in taps:
        stages.append(nn.Sequential(OrderedDict((f"features_{i}", nn.Identity()) for i in range(start, tap + 1))))
        start = tap + 1
    trunk = Trunk(stages, [64, 128, 256, 512, 512], [1, 2, 4, 8, 16], [f"features.{t}" for t in taps])
    layers = insert_adl(trunk, ADL_POSITIONS["vgg"], 0.75, 0.9)
    assert len(layers) == 3
    assert list(trunk.stages[3]._modules) == ["features_16", "adl0", *[f"features_{i}" for i in range(17, 23)],
                                              "adl1"]
    assert list(trunk.stages[4]._modules)[-2:] == ["features_29", "adl2"]


def test_module_parameters_equal_cam_and_the_loss_uses_the_draws() -> None:
    torch.manual_seed(0)
    model = ADL(backbone="resnet10t", num_classes=3)
    images, labels = torch.randn(2, 3, 32, 32), torch.tensor([0, 2])
    a = model.losses(images, labels, [0.9, 0.9])["loss"]
    b = model.losses(images, labels, [0.0, 0.0])["loss"]
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="2 layers"):
        model.losses(images, labels, [0.1])
