"""CAM.from_timm: a pretrained timm classifier's own head makes the maps; its logits are timm's."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import timm
import torch

from wsol_lightning.methods import CAM


def write_weights(name: str, path: Path, seed: int = 0) -> timm.models.ResNet:
    """A timm classifier with seeded random weights (BN statistics too), saved as a local 'pretrained' file."""
    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    torch.save(model.state_dict(), path)
    return model


@pytest.mark.parametrize("name", ["resnet10t", "convnext_atto"])
def test_logits_equal_the_timm_models_and_maps_average_to_them(name: str, tmp_path: Path):
    reference = write_weights(name, tmp_path / "w.pth")
    cam = CAM.from_timm(name, pretrained=str(tmp_path / "w.pth")).eval()
    assert cam.num_classes == 1000  # timm's head kept (num_classes=None)
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference(images)
        outputs = cam(images)
        torch.testing.assert_close(outputs["logits"], expected, rtol=1e-5, atol=1e-5)
        top = expected.argmax(dim=1)
        maps = cam.localization_maps(outputs, top)
    assert maps.shape == (2, 2, 2)  # 64 / 32: timm's own stride, no surgery
    torch.testing.assert_close(maps.mean(dim=(1, 2)), expected[torch.arange(2), top], rtol=1e-4, atol=1e-4)


def test_a_map_without_training_from_predict_step(tmp_path: Path):
    write_weights("resnet10t", tmp_path / "w.pth")
    cam = CAM.from_timm("resnet10t", pretrained=str(tmp_path / "w.pth"), operating_threshold=0.3).eval()
    with torch.no_grad():
        out = cam.predict_step({"image": torch.randn(2, 3, 96, 96)}, 0)
    assert out["maps"].shape == (2, 96, 96)
    assert float(out["maps"].min()) == 0.0 and float(out["maps"].max()) == 1.0
    assert out["threshold"] == pytest.approx(0.3) and len(out["boxes"]) == 2
    assert list(cam.head_modules()) == []  # the kept head is pretrained, trained at the backbone lr


def test_another_class_count_gives_a_new_head_on_the_pretrained_features(tmp_path: Path):
    reference = write_weights("resnet10t", tmp_path / "w.pth")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the dropped 1000-class head is expected: no "does not match" warning
        cam = CAM.from_timm("resnet10t", pretrained=str(tmp_path / "w.pth"), num_classes=3)
    assert cam.net.classifier.out_features == 3
    torch.testing.assert_close(cam.net.model.conv1[0].weight, reference.conv1[0].weight)
    assert list(cam.head_modules()) == [cam.net.classifier]


def test_a_head_with_layers_after_pooling_is_refused_by_name():
    with pytest.raises(ValueError, match="mobilenetv3_small_050.*global average pooling"):
        CAM.from_timm("mobilenetv3_small_050", pretrained=False)


def test_preprocess_resizes_straight_and_normalises_with_the_models_stats():
    import numpy as np

    cam = CAM.from_timm("resnet10t", pretrained=False)
    image = np.full((30, 50, 3), 255, dtype=np.uint8)
    batch = cam.preprocess(image, size=32)
    assert batch.shape == (1, 3, 32, 32)
    mean, std = cam.net.model.pretrained_cfg["mean"], cam.net.model.pretrained_cfg["std"]
    torch.testing.assert_close(batch[0, :, 0, 0], torch.tensor([(1 - m) / s for m, s in zip(mean, std)]))
