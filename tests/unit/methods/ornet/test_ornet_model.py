"""ORNet's networks: low-level taps and shapes per backbone at 224x224, map range, gradient paths."""

import pytest
import torch

from wsol_lightning.backbones import build_trunk
from wsol_lightning.methods.ornet.model import (
    CoarseNet,
    EvaluatorNet,
    LowLevelTap,
    RefineNet,
    UNetDecoder,
    low_level_tap,
)

# backbone -> (channels of f^c, side of f^c at 224, main-path feature channels)
SHAPES_224 = {
    "resnet50": (64, 56, 2048),        # the released tap: stem after max-pool, 64x56x56
    "vgg16": (128, 56, 512),           # pool2, 128x56x56
    "mobilenetv1_100": (128, 56, 1024),  # generic rule: the first stride-4 stage
}


@pytest.mark.parametrize("backbone", sorted(SHAPES_224))
def test_coarse_shapes_at_224(backbone):
    channels, side, features = SHAPES_224[backbone]
    net = CoarseNet(backbone, num_classes=7).eval()
    assert (net.low_channels, net.low_stride) == (channels, 4)
    assert net.classifier.in_features == features
    with torch.no_grad():
        low = net.low_level(torch.zeros(1, 3, 224, 224))
        out = net(torch.randn(1, 3, 224, 224))
    assert low.shape == (1, channels, side, side)
    assert out["logits"].shape == out["aux_logits"].shape == (1, 7)
    assert out["class_maps"].shape == (1, 7, side, side)
    assert out["map"].shape == (1, 1, side, side)
    # a sigmoid; with the released He init of the map head and untrained BN it may saturate in float32
    assert 0 <= float(out["map"].min()) and float(out["map"].max()) <= 1
    assert out["map"].std() > 0


def test_declared_taps_and_generic_fallback():
    assert low_level_tap("resnet50") == LowLevelTap(stage=1, children=1)
    assert low_level_tap("vgg16") == LowLevelTap(stage=2, children=1)
    assert low_level_tap("test_resnet") == LowLevelTap(stage=1, children=1)
    assert low_level_tap("mobilenetv1_100", build_trunk("mobilenetv1_100")) == LowLevelTap(stage=1)
    with pytest.raises(ValueError, match="no low-level tap declared"):
        low_level_tap("mobilenetv1_100")


def test_decoder_resolutions_and_odd_sizes():
    decoder = UNetDecoder(16, 5, channels=(8, 16, 32), up_channels=(16, 12)).eval()
    for side in (16, 15, 7):
        with torch.no_grad():
            assert decoder(torch.randn(2, 16, side, side)).shape == (2, 5, side, side)


def test_main_path_gradient_reaches_the_generator_and_aux_head_does_not_reach_main_trunk():
    net = CoarseNet("test_resnet", num_classes=3)
    out = net(torch.randn(2, 3, 64, 64))
    out["logits"].sum().backward(retain_graph=True)
    # the gated main path trains the map: decoder and map head get gradient, the aux head none
    assert net.map_head.conv.weight.grad.abs().sum() > 0
    assert net.decoder.up3.conv[0].weight.grad.abs().sum() > 0
    assert net.aux_head.weight.grad is None
    net.zero_grad(set_to_none=True)
    out["aux_logits"].sum().backward()
    assert net.aux_head.weight.grad.abs().sum() > 0
    assert net.classifier.weight.grad is None and net.map_head.conv.weight.grad is None
    assert net.trunk.stages[4].layer4[0].conv1.weight.grad is None  # layer4 is after the tap
    assert net.trunk.stages[0].bn1.weight.grad.abs().sum() > 0       # the stem is before it


def test_refine_net_is_the_coarse_generator_by_name():
    coarse = CoarseNet("test_resnet", num_classes=3)
    refine = RefineNet("test_resnet", num_classes=3)
    coarse_keys = set(coarse.state_dict())
    refine_keys = set(refine.state_dict())
    assert refine_keys < coarse_keys
    assert not any(k.startswith(("classifier", "aux_head", "trunk.stages.2", "trunk.stages.1.layer1"))
                   for k in refine_keys)
    refine.load_state_dict({k: v for k, v in coarse.state_dict().items() if k in refine_keys})
    images = torch.randn(2, 3, 64, 64)
    coarse.eval()
    refine.eval()
    with torch.no_grad():
        assert torch.allclose(coarse(images)["map"], refine(images)["map"])


def test_refine_trainable_modules():
    refine = RefineNet("test_resnet", num_classes=3)
    names = [m for m in refine.trainable_modules(2)]
    assert names == [refine.decoder.up2, refine.decoder.up3, refine.map_head]
    assert refine.trainable_modules(0) == [refine.map_head]


def test_reinit_last_stages_changes_only_those_stages():
    torch.manual_seed(0)
    net = CoarseNet("test_resnet", num_classes=3)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net.reinit_stages(1)
    after = net.state_dict()
    changed = {k for k in before if k.endswith("weight") and not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("trunk.stages.4.") for k in changed)


def test_evaluator_net_is_a_timm_classifier_with_dropout():
    net = EvaluatorNet("test_resnet", num_classes=6, drop_rate=0.5)
    assert net(torch.randn(2, 3, 64, 64)).shape == (2, 6)
    assert net.head() is net.model.fc
    assert net.model.drop_rate == 0.5


def test_new_layers_are_initialised_as_released():
    """He-normal fan_out (ReLU gain) on every generator / head conv, as ``CoarseModel``; PyTorch's Linear
    default on the evaluator's new last layer, as ``Evaluator``'s ``nn.Linear(4096, num_classes)``."""
    torch.manual_seed(0)
    classes = 200
    net = CoarseNet("resnet18", num_classes=classes)
    expected = {  # std sqrt(2 / (C_out k k)); PyTorch's default would be 1 / sqrt(3 C_in k k)
        "map_head.conv": ((2 / 9) ** 0.5, net.map_head.conv.weight),                     # K -> 1, 3x3
        "aux_head": ((2 / classes) ** 0.5, net.aux_head.weight),                         # K -> K, 1x1
        "decoder.up3.conv.3": ((2 / (classes * 9)) ** 0.5, net.decoder.up3.conv[3].weight),
        "decoder.down1.0": ((2 / (128 * 9)) ** 0.5, net.decoder.down1[0].weight),
    }
    for name, (std, weight) in expected.items():
        assert float(weight.std()) == pytest.approx(std, rel=0.06), name
        assert abs(float(weight.mean())) < 0.1 * std, name
    head = EvaluatorNet("vgg16", num_classes=classes).head()
    bound = 1 / 4096**0.5
    assert float(head.weight.abs().max()) <= bound and float(head.weight.std()) == pytest.approx(
        bound / 3**0.5, rel=0.02)
    assert float(head.bias.abs().max()) <= bound and float(head.bias.abs().min()) > 0  # not timm's zeros
