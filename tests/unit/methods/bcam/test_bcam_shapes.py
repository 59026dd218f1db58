"""B-CAM's feature maps and heads per backbone at 224x224 (random weights, batch 1, no grad)."""

from __future__ import annotations

import pytest
import torch

from wsol_lightning.methods.bcam import BCAM

#: backbone -> (F channels, aggregator input channels, h = w, head-lr trunk stages, gradient layer)
EXPECTED = {
    "resnet50": (2048, 2048, 28, (4,), "identity (layer4)"),
    "vgg16": (1024, 512, 14, (), "conv6"),
    "inception_v3": (1024, 1024, 28, (), "SPG_A3_1b"),
    "mobilenetv1_100": (1024, 1024, 7, (), "identity (last tap)"),
}


@pytest.mark.parametrize("backbone", list(EXPECTED))
def test_shapes_at_224(backbone: str):
    channels, agg_channels, side, head_taps, _ = EXPECTED[backbone]
    model = BCAM(backbone=backbone, num_classes=7, num_heads=10).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 224, 224))
        assert out["features"].shape == (1, channels, side, side)
        assert out["aggregator_input"].shape == (1, agg_channels, side, side)
        assert model.net.head.aggregator_obj.weight.shape == (10, agg_channels, 1, 1)
        for key in ("logits", "logits_bg_on_obj", "logits_bg_on_bg", "logits_obj_on_bg"):
            assert out[key].shape == (1, 7)
        assert out["attention_obj"].shape == (1, side, side)
        classes = torch.tensor([3])
        for kind in ("plain", "gradient"):
            model.hparams.localization_map = kind
            obj, bg = model.score_maps(out, classes)
            assert obj.shape == bg.shape == (1, side, side)
            assert torch.isfinite(obj).all() and torch.isfinite(bg).all()
    # the gradient layer sits where the official code hooks it
    n_pre = sum(isinstance(m, torch.nn.Conv2d) for m in model.net.extra_pre.modules())
    assert n_pre == (0 if "identity" in EXPECTED[backbone][4] else 1)
    assert model.head_lr_taps == head_taps
    assert model.net.head.aggregator_obj.bias is not None if backbone == "vgg16" else \
        model.net.head.aggregator_obj.bias is None
