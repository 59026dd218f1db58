"""Trunk taps: channels and strides at 224x224 after each paper's stride surgery."""

from pathlib import Path

import pytest
import timm
import torch

from wsol_lightning.backbones import build_trunk, load_weights_file
from wsol_lightning.backbones.trunk import tap_shapes

CASES = [
    # (name, kwargs, expected (C, H, W) per tap at 224x224)
    ("resnet50", {}, [(64, 112, 112), (256, 56, 56), (512, 28, 28), (1024, 14, 14), (2048, 7, 7)]),
    # wsolevaluation CAM: layer4 stride 1 (no dilation)
    ("resnet50", {"stride_one_taps": (4,)},
     [(64, 112, 112), (256, 56, 56), (512, 28, 28), (1024, 14, 14), (2048, 14, 14)]),
    # BAS/B-CAM: layer3 and layer4 stride 1
    ("resnet50", {"stride_one_taps": (3, 4)},
     [(64, 112, 112), (256, 56, 56), (512, 28, 28), (1024, 28, 28), (2048, 28, 28)]),
    # VGG16 without pool5: conv5_3 at 14x14
    ("vgg16", {"num_taps": 5}, [(64, 224, 224), (128, 112, 112), (256, 56, 56), (512, 28, 28), (512, 14, 14)]),
    # InceptionV3 SPG/BAS/B-CAM variant: only Conv2d_1a padded (Conv2d_2a/4a unpadded: 110, 54),
    # ceil-mode pad-1 stem pools, Mixed_6e at 28x28
    ("inception_v3", {"stride_one_taps": (3,), "num_taps": 4},
     [(64, 110, 110), (192, 54, 54), (288, 28, 28), (768, 28, 28)]),
    # MobileNetV1: the 256->512 block at stride 1
    ("mobilenetv1_100", {"stride_one_taps": (3,)},
     [(64, 112, 112), (128, 56, 56), (256, 28, 28), (512, 28, 28), (1024, 14, 14)]),
]


@pytest.mark.parametrize(("name", "kwargs", "expected"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_tap_shapes_at_224(name, kwargs, expected):
    trunk = build_trunk(name, pretrained=False, **kwargs)
    shapes = tap_shapes(trunk, 224)
    assert shapes == expected
    assert trunk.channels == [c for c, _, _ in expected]
    assert trunk.reductions == [224 // h for _, h, _ in expected]


def test_surgery_keeps_weights_count_and_adds_no_dilation():
    plain = build_trunk("resnet50")
    wide = build_trunk("resnet50", stride_one_taps=(3, 4))
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(plain) == count(wide)
    dilations = {m.dilation for m in wide.modules() if isinstance(m, torch.nn.Conv2d)}
    assert dilations == {(1, 1)}


def test_run_matches_forward_taps():
    trunk = build_trunk("test_resnet").eval()
    x = torch.randn(2, 3, 64, 64)
    taps = trunk(x)
    assert torch.equal(trunk.run(x), taps[-1])
    assert torch.equal(trunk.run(taps[1], start=2, end=4), taps[3])


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="stride_one_taps"):
        build_trunk("test_resnet", stride_one_taps=(7,))
    with pytest.raises(ValueError, match="num_taps"):
        build_trunk("test_resnet", num_taps=9)


def test_pretrained_from_local_file(tmp_path: Path):
    source = timm.create_model("test_resnet", num_classes=0)
    path = tmp_path / "w.pth"
    torch.save(source.state_dict(), path)
    trunk = build_trunk("test_resnet", pretrained=str(path))
    trunk_params = dict(trunk.named_parameters())
    loaded = [k for k, v in source.state_dict().items() if f"stages.0.{k}" in trunk_params]
    assert loaded, "no stage-0 parameter to compare"
    for key in loaded:
        assert torch.equal(trunk_params[f"stages.0.{key}"], source.state_dict()[key])
    fresh = build_trunk("test_resnet", pretrained=False)
    assert not torch.equal(dict(fresh.named_parameters())[f"stages.0.{loaded[0]}"], source.state_dict()[loaded[0]])


def test_pretrained_missing_file_is_named(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        build_trunk("test_resnet", pretrained=str(tmp_path / "nope.pth"))


def test_weights_file_mismatch_names_keys(tmp_path: Path):
    path = tmp_path / "other.pth"
    torch.save({"not_a_key": torch.zeros(3)}, path)
    model = timm.create_model("test_resnet", num_classes=0)
    with pytest.raises(RuntimeError, match="not_a_key"):
        load_weights_file(model, path, strict=True)
    with pytest.raises(RuntimeError, match="none of its keys"):
        load_weights_file(model, path, strict=False)


def test_weights_file_never_unpickles_code(tmp_path: Path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": Evil()}, path)
    model = timm.create_model("test_resnet", num_classes=0)
    with pytest.raises(ValueError, match=r"(?s)evil\.pth: refused to load as weights.*GLOBAL"):  # names the file
        load_weights_file(model, path)


def test_pretrained_true_offline_says_how_to_pass_a_file(monkeypatch):
    def offline(*args, **kwargs):
        if kwargs.get("pretrained"):
            raise OSError("network unreachable")
        return timm.create_model.__wrapped__(*args, **kwargs)  # pragma: no cover

    monkeypatch.setattr("wsol_lightning.backbones.weights.timm.create_model", offline)
    with pytest.raises(RuntimeError, match="pretrained: /path/to/w.pth"):
        build_trunk("test_resnet", pretrained=True)
