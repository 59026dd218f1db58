"""A timm ``name.tag`` (``resnet50.tv_in1k``) builds the same trunk, surgery and presets as the bare name."""

from __future__ import annotations

import pytest
import torch

from wsol_lightning.backbones import architecture_name, build_trunk
from wsol_lightning.backbones.trunk import tap_shapes
from wsol_lightning.methods.bas.model import bas_preset
from wsol_lightning.methods.bas.module import default_clip_value
from wsol_lightning.methods.bcam.model import bcam_preset
from wsol_lightning.methods.bcam.module import official_loss_weights
from wsol_lightning.methods.cam.model import cam_preset
from wsol_lightning.methods.ornet.model import low_level_tap


def test_architecture_name():
    assert architecture_name("resnet50.tv_in1k") == "resnet50"
    assert architecture_name("mobilenetv1_100.ra4_e3600_r224_in1k") == "mobilenetv1_100"
    assert architecture_name("vgg16") == "vgg16"


@pytest.mark.parametrize(("name", "kwargs", "size"), [
    ("resnet50", {"stride_one_taps": (3, 4)}, 64),
    ("vgg16", {"num_taps": 5}, 64),
    ("inception_v3", {"stride_one_taps": (3,), "num_taps": 4}, 224),
])
def test_tagged_trunk_equals_bare_trunk(name: str, kwargs: dict, size: int):
    bare = build_trunk(name, **kwargs)
    tagged = build_trunk(f"{name}.tv_in1k", **kwargs)
    assert tagged.reductions == bare.reductions
    assert tap_shapes(tagged, size) == tap_shapes(bare, size)
    assert {k: v.shape for k, v in tagged.state_dict().items()} == {k: v.shape for k, v in bare.state_dict().items()}
    if name == "inception_v3":  # the SPG/BAS widening applied: Mixed_6e at 28x28
        assert tap_shapes(tagged, 224)[3][1:] == (28, 28)
    if name == "resnet50":  # layer3/layer4 at stride 1
        assert tagged.reductions[3:] == [8, 8]
    tagged.load_state_dict(bare.state_dict())
    x = torch.randn(1, 3, size, size)
    bare.eval(), tagged.eval()
    with torch.no_grad():
        assert torch.equal(tagged(x)[-1], bare(x)[-1])


@pytest.mark.parametrize("arch", ["resnet50", "vgg16", "inception_v3", "mobilenetv1_100"])
def test_method_presets_key_on_the_architecture(arch: str):
    tagged = f"{arch}.tv_in1k"
    assert bas_preset(tagged) == bas_preset(arch)
    assert bcam_preset(tagged) == bcam_preset(arch)
    assert cam_preset(tagged) == cam_preset(arch)
    assert official_loss_weights(tagged) == official_loss_weights(arch)
    assert default_clip_value("ijcv", tagged) == default_clip_value("ijcv", arch)
    if arch != "mobilenetv1_100":
        assert low_level_tap(tagged) == low_level_tap(arch)
