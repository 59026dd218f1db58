"""The official B-CAM recipe around the network: lr decay epochs, new-layer initialisation, the VOC trunk."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml

from wsol_lightning.methods.bcam import BCAM
from wsol_lightning.methods.optim import build_scheduler

CONFIGS = Path(__file__).resolve().parents[4] / "configs"


def official_lr(base: float, epoch: int, frequency: int) -> float:
    """main.py: before 0-indexed epoch e, adjust_learning_rate(e + 1) multiplies by 0.1 when (e + 1) % freq == 0."""
    lr = base
    for e in range(epoch + 1):
        if (e + 1) != 0 and (e + 1) % frequency == 0:
            lr *= 0.1
    return lr


@pytest.mark.parametrize(("config", "frequency"), [
    ("bcam_cub.yaml", 15), ("bcam_cub_vgg16.yaml", 15), ("bcam_cub_inception_v3.yaml", 15),
    ("bcam_imagenet.yaml", 3), ("bcam_openimages.yaml", 3),
])
def test_lr_per_epoch_equals_the_official_decay(config: str, frequency: int):
    raw = yaml.safe_load((CONFIGS / config).read_text())
    args, epochs = raw["model"]["init_args"], raw["trainer"]["max_epochs"]
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=args["lr"])
    scheduler = build_scheduler(optimizer, args["lr_scheduler"], milestones=args.get("lr_milestones", ()),
                                step_size=args.get("lr_step_size", 30), gamma=args["lr_gamma"], max_epochs=epochs)
    got = []
    for _ in range(epochs):  # Lightning steps an epoch-interval scheduler after each epoch
        got.append(optimizer.param_groups[0]["lr"])
        scheduler.step()
    expected = [official_lr(args["lr"], e, frequency) for e in range(epochs)]
    assert got == pytest.approx(expected, rel=1e-12)
    assert got[frequency - 1] == pytest.approx(args["lr"] * 0.1)  # the decay lands on epoch 15 (1-indexed)


def test_new_layers_get_the_official_he_normal_fan_out_init():
    torch.manual_seed(0)
    model = BCAM(backbone="resnet10t", num_classes=200, num_heads=8)
    weight = model.net.head.classifier_obj.weight.detach().flatten()
    # kaiming_normal_(fan_out, relu): std sqrt(2 / (200 * 1 * 1)) = 0.1 (PyTorch's default gives 0.0255 here)
    assert weight.std().item() == pytest.approx(0.1, rel=0.02)
    assert abs(weight.mean().item()) < 0.003
    inside = (weight.abs() < 0.1).float().mean().item()  # a normal puts 68.3% within one std, a uniform 57.7%
    assert inside == pytest.approx(0.6827, abs=0.01)
    assert float(model.net.head.classifier_bg.bias.abs().max()) == 0.0
    for aggregator in (model.net.head.aggregator_obj, model.net.head.aggregator_bg):
        assert float(aggregator.weight.abs().max()) == 0.0  # uniform attention: starts as GAP


def test_vgg_conv6_init_and_the_pre_relu_gradient_tap():
    torch.manual_seed(0)
    model = BCAM(backbone="vgg11", num_classes=5, num_heads=2)
    conv6 = model.net.extra_pre[0][0]
    assert isinstance(conv6, torch.nn.Conv2d) and len(model.net.extra_pre[0]) == 1  # no ReLU before the tap
    assert conv6.weight.std().item() == pytest.approx(math.sqrt(2 / (1024 * 9)), rel=0.01)
    assert isinstance(model.net.extra_post[0], torch.nn.ReLU)
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
    assert (out["target"] < 0).any()  # the tap is the conv output before its ReLU
    torch.testing.assert_close(out["features"], out["target"].clamp(min=0))


def test_xavier_init_option():
    torch.manual_seed(0)
    model = BCAM(backbone="resnet10t", num_classes=20, num_heads=4, head_init="xavier", aggregator_init="xavier")
    weight = model.net.head.classifier_obj.weight
    bound = math.sqrt(6 / (512 + 20))
    assert float(weight.abs().max()) <= bound and float(weight.abs().max()) > 0.95 * bound
    assert float(model.net.head.aggregator_bg.weight.abs().max()) > 0


def test_voc_trunk_frozen_bn_frozen_stem_detached_layer2():
    torch.manual_seed(0)
    model = BCAM(backbone="resnet18", num_classes=4, num_heads=2, multi_label=True, frozen_taps=[0],
                 detach_taps=[2], frozen_bn=True, detach_obj_for_bg=False, detach_bg_for_bg=False)
    model.train()
    bns = [m for m in model.net.trunk.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(bn.training for bn in bns) and model.net.head.training
    before = [bn.running_mean.clone() for bn in bns]
    images = torch.randn(2, 3, 64, 64)
    multi_hot = torch.tensor([[1.0, 0, 0, 1], [0, 1, 0, 0]])
    losses = model.training_losses({"image": images, "label": multi_hot.argmax(1), "multi_hot": multi_hot})
    losses["loss"].backward()
    assert all(torch.equal(a, bn.running_mean) for a, bn in zip(before, bns, strict=True))  # never updated
    stages = model.net.trunk.stages
    assert not any(p.requires_grad for p in stages[0].parameters())
    assert all(p.grad is None for s in (stages[1], stages[2]) for p in s.parameters())  # before the detach
    assert all(p.grad is not None for p in stages[3].parameters())
    bn_weight = [m for m in stages[3].modules() if isinstance(m, torch.nn.BatchNorm2d)][-1].weight
    assert bn_weight.grad is not None and bn_weight.grad.abs().sum() > 0  # affine parameters still train
    with pytest.raises(ValueError, match="out of range"):
        BCAM(backbone="resnet18", num_classes=2, detach_taps=[7])


def test_voc_seeds_need_the_max_normalisation_and_plain_maps():
    with pytest.raises(ValueError, match="seed_normalization='max'"):
        BCAM(backbone="resnet10t", num_classes=2, seed_scales=[1.0, 0.5])
    with pytest.raises(ValueError, match="localization_map='plain'"):
        BCAM(backbone="resnet10t", num_classes=2, seed_normalization="max")
    model = BCAM(backbone="resnet10t", num_classes=3, num_heads=2, localization_map="plain",
                 seed_scales=[1.0, 0.5], seed_flip=True, seed_normalization="max").eval()
    multi_hot = torch.tensor([[1.0, 0, 1]])
    seeds = model.seed_maps({"image": torch.randn(1, 3, 40, 56), "multi_hot": multi_hot})
    assert seeds.shape == (1, 3, 40, 56) and float(seeds[0, 1].abs().max()) == 0
    assert 0.99 < float(seeds[0, 0].max()) < 1.0  # divided by max + 1e-5
