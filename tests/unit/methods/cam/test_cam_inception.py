"""CAM (and ADL) on InceptionV3 is wsolevaluation's ``InceptionCam`` / ``InceptionAdl``; ``large_feature_map``."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from wsol_lightning.methods import ADL, CAM
from wsol_lightning.methods.adl.model import AttentionDropout

SIZE = 96  # Conv2d_1a 48, Pool1 24, Pool2 12, pool after Mixed_5d 6


@pytest.fixture(scope="module")
def cam() -> CAM:
    torch.manual_seed(0)
    return CAM(backbone="inception_v3", num_classes=5).eval()


def test_inception_head_is_the_references(cam: CAM) -> None:
    head = cam.net.extra
    assert list(head._modules) == ["drop_in", "conv_a", "relu_a", "drop_a", "conv_b", "relu_b", "drop_b"]
    assert [m.p for m in head.modules() if isinstance(m, nn.Dropout)] == [0.5, 0.5, 0.5]
    assert (head.conv_a.in_channels, head.conv_a.out_channels, head.conv_a.kernel_size) == (768, 1024, (3, 3))
    assert (head.conv_b.in_channels, head.conv_b.out_channels, head.conv_b.kernel_size) == (1024, 1024, (3, 3))
    assert isinstance(cam.net.classifier, nn.Conv2d) and cam.net.classifier.kernel_size == (1, 1)
    for conv in (head.conv_a, head.conv_b, cam.net.classifier):  # initialize_weights(init_mode='xavier')
        bound = math.sqrt(6.0 / (conv.weight[0].numel() + conv.weight[:, 0].numel()))
        assert 0.95 * bound < conv.weight.abs().max().item() <= bound * (1 + 1e-6)  # float32 rounding
        assert torch.count_nonzero(conv.bias) == 0
    assert list(cam.net.trunk.stages[3]._modules)[0] == "pool_5d"


def test_maps_are_the_class_conv_output_whose_mean_is_the_logit(cam: CAM) -> None:
    images = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    classes = torch.tensor([3, 1])
    with torch.no_grad():
        outputs = cam(images)
        maps = cam.localization_maps(outputs, classes)
    assert outputs["features"].shape == (2, 1024, 6, 6) and maps.shape == (2, 6, 6)
    scale = outputs["logits"].abs().max().item()  # random BN statistics: large activations, float32
    torch.testing.assert_close(maps.mean(dim=(1, 2)), outputs["logits"][torch.arange(2), classes], rtol=1e-5,
                               atol=1e-5 * scale)
    with torch.no_grad():
        conv_out = cam.net.classifier(outputs["features"])[torch.arange(2), classes]
    torch.testing.assert_close(maps, conv_out, rtol=1e-5, atol=1e-5 * conv_out.abs().max().item())


def test_large_feature_map_drops_the_pool_after_mixed_5d() -> None:
    large = CAM(backbone="inception_v3", num_classes=5, large_feature_map=True).eval()
    assert isinstance(large.net.trunk.stages[3].pool_5d, nn.Identity)
    with torch.no_grad():
        assert large(torch.zeros(1, 3, SIZE, SIZE))["features"].shape[-2:] == (12, 12)
    resnet = CAM(backbone="resnet18", num_classes=5, large_feature_map=True).eval()
    with torch.no_grad():
        assert resnet(torch.zeros(1, 3, 64, 64))["features"].shape[-2:] == (8, 8)  # layer3 at stride 1 too
    vgg = CAM(backbone="vgg11", num_classes=5, large_feature_map=True).eval()
    assert sum(isinstance(m, nn.MaxPool2d) for m in vgg.net.trunk.modules()) == 3  # no pool4 (nor pool5)
    with torch.no_grad():
        assert vgg(torch.zeros(1, 3, 64, 64))["features"].shape[-2:] == (8, 8)


def test_adl_is_inception_adl(cam: CAM) -> None:
    adl = ADL(backbone="inception_v3", num_classes=5)
    stages = [list(stage._modules) for stage in adl.net.trunk.stages]
    assert stages[2][-2:] == ["Mixed_5d", "adl0"] and stages[3][0] == "pool_5d"
    assert stages[3][-2:] == ["Mixed_6e", "adl1"]
    assert list(adl.net.extra._modules)[-3:] == ["relu_b", "adl2", "drop_b"]
    assert len([m for m in adl.modules() if isinstance(m, AttentionDropout)]) == 3
    assert not any(isinstance(m, nn.Dropout) for m in adl.modules())  # InceptionAdl has no dropout
    adl.load_state_dict(cam.state_dict())  # same parameter keys as CAM's network
    adl.eval()
    images = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(adl(images)["logits"], cam(images)["logits"])


def test_bad_head_dropout_is_refused() -> None:
    with pytest.raises(ValueError, match="head_dropout"):
        CAM(backbone="inception_v3", num_classes=5, head_dropout=1.0)
