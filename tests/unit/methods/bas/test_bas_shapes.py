"""BAS cuts per backbone at 224x224: FPMs at 28x28 on the mid tap, class maps at 14x14."""

import pytest
import torch

from wsol_lightning.methods.bas.model import BASNet

CASES = [  # backbone, mid channels, high channels
    ("resnet50", 1024, 2048),
    ("vgg16", 512, 512),
    ("inception_v3", 768, 2048),
    ("mobilenetv1_100", 512, 1024),
]


@pytest.mark.parametrize(("backbone", "mid_channels", "high_channels"), CASES)
@torch.no_grad()
def test_shapes_at_224(backbone, mid_channels, high_channels):
    net = BASNet(backbone, num_classes=7, pretrained=False, head_channels=32).eval()
    assert (net.mid_channels, net.high_channels) == (mid_channels, high_channels)
    mid = net.extractor(torch.zeros(1, 3, 224, 224))
    assert mid.shape == (1, mid_channels, 28, 28)
    high = net.tail.features(mid)
    assert high.shape == (1, high_channels, 14, 14)
    fpm = torch.sigmoid(net.generator(mid))
    cams = net.tail.classifier(high)
    assert fpm.shape == (1, 7, 28, 28) and cams.shape == (1, 7, 14, 14)
    assert 0 <= float(fpm.min()) and float(fpm.max()) <= 1
    first = net.tail.features[0]
    if backbone == "resnet50":  # 2x2 max-pool between layer3 and layer4
        assert isinstance(first, torch.nn.MaxPool2d)
    else:
        assert isinstance(first, torch.nn.Identity)
    if backbone == "vgg16":  # pool5 is gone: F2 ends with the ReLU after conv5_3
        assert isinstance(list(net.tail.features.modules())[-1], torch.nn.ReLU)
