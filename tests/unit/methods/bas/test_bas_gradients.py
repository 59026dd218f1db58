"""Which parameters each BAS term trains, and the background branch's frozen-F2 semantics."""

import pytest
import torch
from torch import nn

from wsol_lightning.methods.bas.loss import (
    area_loss,
    background_activation_loss,
    classification_loss,
    foreground_guidance_loss,
    gather_class,
)
from wsol_lightning.methods.bas.model import BASNet

LABELS = torch.tensor([0, 1, 2, 1])


@pytest.fixture(scope="module")
def net() -> BASNet:
    torch.manual_seed(0)
    return BASNet("resnet10t", num_classes=3, head_channels=16, final_relu=False).train()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(4, 3, 48, 48, generator=torch.Generator().manual_seed(1))


def _grad_norms(net: BASNet) -> dict[str, float]:
    parts = {"extractor": net.extractor, "generator": net.generator, "features": net.tail.features,
             "classifier": net.tail.classifier}
    norms = {}
    for name, module in parts.items():
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        norms[name] = float(sum(g.abs().sum() for g in grads)) if grads else 0.0
    return norms


def _term(net: BASNet, images: torch.Tensor, name: str) -> torch.Tensor:
    out = net(images)
    foreground = gather_class(out["fpm"], LABELS)
    if name == "cls":
        return classification_loss(out["logits"], LABELS)
    if name == "frg":
        return foreground_guidance_loss(out["cams"], foreground, LABELS)
    if name == "ac":
        return area_loss(foreground)
    background = gather_class(net.background_logits(out["mid"], foreground), LABELS)
    if name == "bg_score":  # the raw background score: never clipped, so gradients are certain
        return background.sum()
    # L_bas with a foreground score large enough that no sample is clipped
    return background_activation_loss(background, background.detach().abs() + 10.0, clip_value=0.0)


@pytest.mark.parametrize(
    ("term", "trained", "untouched"),
    [
        ("bas", {"extractor", "generator"}, {"features", "classifier"}),
        ("bg_score", {"extractor", "generator"}, {"features", "classifier"}),
        ("cls", {"extractor", "features", "classifier"}, {"generator"}),
        ("frg", {"extractor", "generator", "features", "classifier"}, set()),
        ("ac", {"extractor", "generator"}, {"features", "classifier"}),
    ],
)
def test_each_term_trains_exactly_its_parameters(net, images, term, trained, untouched):
    net.zero_grad(set_to_none=True)
    _term(net, images, term).backward()
    norms = _grad_norms(net)
    for name in trained:
        assert norms[name] > 0, f"{term} should train {name}"
    for name in untouched:
        assert norms[name] == 0, f"{term} must not train {name}"


def test_bas_gradient_into_f1_flows_only_through_the_generator(net, images):
    """X is a stop-gradient in X_b: with the generator frozen, L_bas reaches no trunk weight."""
    net.zero_grad(set_to_none=True)
    out = net(images)
    foreground = gather_class(out["fpm"], LABELS).detach().requires_grad_(True)
    background = gather_class(net.background_logits(out["mid"], foreground), LABELS)
    background.sum().backward()
    assert foreground.grad is not None and foreground.grad.abs().sum() > 0
    assert all(v == 0 for v in _grad_norms(net).values())


def test_background_branch_uses_current_weights_and_batch_statistics(net, images):
    out = net(images)
    foreground = gather_class(out["fpm"], LABELS).detach()
    running = [b.clone() for b in net.tail.buffers()]
    background = net.background_logits(out["mid"], foreground, bn_mode="batch")
    assert all(torch.equal(a, b) for a, b in zip(running, net.tail.buffers())), "running stats changed"
    with torch.no_grad():
        live = net.tail(out["mid"] * (1 - foreground[:, None])).mean(dim=(2, 3))  # train mode: batch stats
    assert torch.allclose(background, live, atol=1e-5)
    assert not all(torch.equal(a, b) for a, b in zip(running, net.tail.buffers())), "sanity check"
    # new weights are seen at once (no stale copy)
    with torch.no_grad():
        net.tail.classifier[-1].bias.add_(1.0)
    shifted = net.background_logits(out["mid"], foreground)
    assert torch.allclose(shifted, background + 1.0, atol=1e-5)
    with torch.no_grad():
        net.tail.classifier[-1].bias.sub_(1.0)


def test_background_branch_running_statistics_mode(net, images):
    out = net(images)
    foreground = gather_class(out["fpm"], LABELS).detach()
    running_mode = net.background_logits(out["mid"], foreground, bn_mode="running")
    batch_mode = net.background_logits(out["mid"], foreground, bn_mode="batch")
    net.tail.eval()
    with torch.no_grad():
        expected = net.tail(out["mid"] * (1 - foreground[:, None])).mean(dim=(2, 3))
    net.tail.train()
    assert torch.allclose(running_mode, expected, atol=1e-5)
    assert not torch.allclose(running_mode, batch_mode, atol=1e-3)
    assert all(m.training for m in net.tail.modules() if isinstance(m, nn.BatchNorm2d))
    with pytest.raises(ValueError, match="bn_mode"):
        net.background_logits(out["mid"], foreground, bn_mode="frozen")  # type: ignore[arg-type]


def test_cvpr_head_has_non_negative_logits_ijcv_head_not():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    cvpr = BASNet("resnet10t", 4, head_channels=8, final_relu=True)
    ijcv = BASNet("resnet10t", 4, head_channels=8, final_relu=False)
    assert isinstance(cvpr.tail.classifier[-1], nn.ReLU) and (cvpr(x)["cams"] >= 0).all()
    assert isinstance(ijcv.tail.classifier[-1], nn.Conv2d) and (ijcv(x)["cams"] < 0).any()


def test_generic_backbone_with_declared_taps():
    net = BASNet("test_resnet", 5, mid_tap=2, high_tap=3, stride_one_taps=(), pool_between="none",
                 head_channels=8, head_convs=1)
    out = net(torch.randn(1, 3, 64, 64))
    assert out["fpm"].shape == (1, 5, 8, 8)  # layer2 at stride 8
    assert out["cams"].shape == (1, 5, 4, 4)  # layer3 at stride 16
    assert [type(m).__name__ for m in net.tail.classifier] == ["Conv2d", "ReLU", "Conv2d", "ReLU"]
    with pytest.raises(ValueError, match="mid_tap"):
        BASNet("test_resnet", 5, mid_tap=3, high_tap=3)
