"""B-CAM's head and network: zero-init = GAP, stop-gradient routing, plain and gradient maps."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from wsol_lightning.methods.bcam.loss import stagger_loss
from wsol_lightning.methods.bcam.model import BCAMHead, BCAMNet, attention_pool

TERMS = ("loss_obj_cls", "loss_bg_on_obj", "loss_bg_on_bg", "loss_obj_on_bg")
LOGITS = ("logits", "logits_bg_on_obj", "logits_bg_on_bg", "logits_obj_on_bg")


def losses(out: dict[str, torch.Tensor], labels: list[int]) -> dict[str, torch.Tensor]:
    return stagger_loss(*(out[k] for k in LOGITS), torch.tensor(labels))


def test_attention_pool_with_zero_logits_is_gap():
    features = torch.randn(2, 5, 3, 4)
    pooled, attention = attention_pool(features, torch.zeros(2, 7, 3, 4))
    torch.testing.assert_close(pooled, features.mean(dim=(2, 3)))
    torch.testing.assert_close(attention, torch.full((2, 3, 4), 1 / 12))


def test_attention_pool_averages_heads():
    features = torch.arange(4.0).reshape(1, 1, 2, 2)  # pixel values 0, 1, 2, 3
    logits = torch.full((1, 2, 2, 2), -1e4)
    logits[0, 0, 0, 0] = 0.0  # head 0 looks at pixel (0, 0) = 0
    logits[0, 1, 1, 1] = 0.0  # head 1 looks at pixel (1, 1) = 3
    pooled, attention = attention_pool(features, logits)
    assert pooled.item() == pytest.approx(1.5)
    torch.testing.assert_close(attention, torch.tensor([[[0.5, 0.0], [0.0, 0.5]]]))


def test_zero_initialised_head_starts_as_gap():
    torch.manual_seed(0)
    head = BCAMHead(6, 6, num_classes=3, num_heads=4)
    assert head.aggregator_obj.weight.abs().sum() == 0 and head.aggregator_bg.weight.abs().sum() == 0
    features = torch.randn(2, 6, 5, 5)
    out = head(features, features)
    gap = features.mean(dim=(2, 3))
    expected_obj = gap @ head.classifier_obj.weight[:, :, 0, 0].T + head.classifier_obj.bias
    expected_bg = gap @ head.classifier_bg.weight[:, :, 0, 0].T + head.classifier_bg.bias
    torch.testing.assert_close(out["logits"], expected_obj)
    torch.testing.assert_close(out["logits_obj_on_bg"], expected_obj)
    torch.testing.assert_close(out["logits_bg_on_obj"], expected_bg)
    torch.testing.assert_close(out["logits_bg_on_bg"], expected_bg)


def head_grads(term: str, detach: bool = True, random_aggregators: bool = True) -> dict[str, float]:
    """Gradient magnitude of each head parameter and of the pixel features under one loss term."""
    torch.manual_seed(1)
    head = BCAMHead(6, 6, num_classes=3, num_heads=4)
    if random_aggregators:
        for agg in (head.aggregator_obj, head.aggregator_bg):
            nn.init.normal_(agg.weight)
    features = torch.randn(2, 6, 4, 4, requires_grad=True)
    out = head(features, features, detach_obj_for_bg=detach, detach_bg_for_bg=detach)
    terms = losses(out, [0, 2])
    terms[term].backward()
    grads = {n: 0.0 if p.grad is None else float(p.grad.abs().sum()) for n, p in head.named_parameters()}
    grads["features"] = 0.0 if features.grad is None else float(features.grad.abs().sum())
    return grads


# (term) -> parameter groups that must / must not receive gradient
ROUTING = {
    "loss_obj_cls": ({"classifier_obj", "aggregator_obj"}, {"classifier_bg", "aggregator_bg"}),
    "loss_bg_on_obj": ({"classifier_bg", "aggregator_obj"}, {"classifier_obj", "aggregator_bg"}),
    "loss_bg_on_bg": ({"classifier_bg", "aggregator_bg"}, {"classifier_obj", "aggregator_obj"}),
    "loss_obj_on_bg": ({"classifier_obj", "aggregator_bg"}, {"classifier_bg", "aggregator_obj"}),
}


@pytest.mark.parametrize("term", TERMS)
def test_which_parameters_each_term_trains(term):
    grads = head_grads(term)
    receives, untouched = ROUTING[term]
    for name, value in grads.items():
        module = name.split(".")[0]
        if module in receives:
            assert value > 0, (term, name)
        elif module in untouched:
            assert value == 0, (term, name)
    assert grads["features"] > 0  # through the classifier (full terms) or the attention (stop-grad terms)


@pytest.mark.parametrize("term", ["loss_bg_on_obj", "loss_bg_on_bg"])
def test_stop_gradient_terms_reach_features_only_through_attention(term):
    # zero aggregators: attention does not depend on F, so a stop-grad term gives F no gradient at all
    assert head_grads(term, detach=True, random_aggregators=False)["features"] == 0
    # without the stop-gradient the same term trains F through W_b
    assert head_grads(term, detach=False, random_aggregators=False)["features"] > 0
    # with attention that depends on F, the stop-grad term trains F through the attention
    assert head_grads(term, detach=True, random_aggregators=True)["features"] > 0


@pytest.mark.parametrize("term", ["loss_obj_cls", "loss_obj_on_bg"])
def test_full_terms_reach_features_at_zero_init(term):
    assert head_grads(term, detach=True, random_aggregators=False)["features"] > 0


@pytest.fixture(scope="module")
def small_net() -> BCAMNet:
    torch.manual_seed(0)
    net = BCAMNet("resnet10t", num_classes=3, num_heads=5).eval()
    return net


def test_net_outputs_and_trunk_gradient_routing(small_net: BCAMNet):
    images = torch.randn(2, 3, 32, 32)
    out = small_net(images)
    assert out["features"].shape == (2, 512, 4, 4)  # resnet preset: layer3 and layer4 at stride 1
    for key in ("logits", "logits_bg_on_obj", "logits_bg_on_bg", "logits_obj_on_bg"):
        assert out[key].shape == (2, 3)
    terms = losses(out, [0, 1])
    small_net.zero_grad()
    (terms["loss_bg_on_obj"] + terms["loss_bg_on_bg"]).backward()
    stem = next(small_net.trunk.parameters())
    assert stem.grad is None or stem.grad.abs().sum() == 0  # zero-init attention: no path to the trunk
    small_net.zero_grad()
    out = small_net(images)
    terms = losses(out, [0, 1])
    terms["loss_obj_cls"].backward()
    assert stem.grad.abs().sum() > 0
    small_net.zero_grad()


def test_plain_maps_pool_to_the_logits(small_net: BCAMNet):
    out = small_net(torch.randn(2, 3, 32, 32))
    classes = torch.tensor([2, 0])
    obj, bg = small_net.plain_maps(out, classes)
    assert obj.shape == bg.shape == (2, 4, 4)
    # f_o is the attention-weighted mean of pixels, so z_oo[y] is the attention-weighted mean of W_o F + b
    pooled_obj = (obj * out["attention_obj"]).sum(dim=(1, 2))
    torch.testing.assert_close(pooled_obj, out["logits"].gather(1, classes[:, None])[:, 0],
                               rtol=1e-4, atol=1e-5)
    pooled_bg = (bg * out["attention_bg"]).sum(dim=(1, 2))
    torch.testing.assert_close(pooled_bg, out["logits_bg_on_bg"].gather(1, classes[:, None])[:, 0],
                               rtol=1e-4, atol=1e-5)


def test_gradient_maps_by_hand_at_zero_init(small_net: BCAMNet):
    # Zero aggregators: uniform attention, independent of F. Then dz_oo[y]/dF_p = w_o,y / hw and the
    # stop-grad z_bo has no gradient, so G_o is the constant w_o,y / hw and the cub map is
    # |w_o,y|^2 / (hw)^2 everywhere; the background score z_bb - z_ob has G_b = -w_o,y / hw.
    classes = torch.tensor([1, 2])
    with torch.inference_mode():
        out = small_net(torch.randn(2, 3, 32, 32))
        obj, bg = small_net.gradient_maps(out, classes, "cub")
    w = small_net.head.classifier_obj.weight[classes, :, 0, 0].detach()
    hw = 16
    expected = (w.pow(2).sum(1) / hw**2)[:, None, None].expand(2, 4, 4)
    torch.testing.assert_close(obj, expected)
    torch.testing.assert_close(bg, expected)  # (-w)*(-w): same value
    # openimages: sum_c w_c A_c with w = w_o,y / hw  ->  (W_o F)_y / hw
    with torch.inference_mode():
        obj_oi, _ = small_net.gradient_maps(out, classes, "openimages")
        plain, _ = small_net.plain_maps(out, classes)
        plain = plain.clone()
    bias = small_net.head.classifier_obj.bias[classes].detach()[:, None, None]
    torch.testing.assert_close(obj_oi, (plain - bias) / hw, rtol=1e-4, atol=1e-6)
    # ilsvrc clamps negative channel weights: maps differ from cub unless all weights are positive
    with torch.inference_mode():
        obj_il, _ = small_net.gradient_maps(out, classes, "ilsvrc")
    expected_il = ((w.clamp(min=0) * w).sum(1) / hw**2)[:, None, None].expand(2, 4, 4)
    torch.testing.assert_close(obj_il, expected_il)
    with pytest.raises(ValueError, match="variant"):
        small_net.gradient_maps(out, classes, "voc")  # type: ignore[arg-type]


def test_gradient_maps_follow_a_trained_attention(small_net: BCAMNet):
    # With a non-trivial object attention, the cub map varies over pixels (the aggregator localises).
    net = BCAMNet("resnet10t", num_classes=3, num_heads=5).eval()
    nn.init.normal_(net.head.aggregator_obj.weight, std=0.5)
    with torch.no_grad():
        out = net(torch.randn(1, 3, 32, 32))
    obj, _ = net.gradient_maps(out, torch.tensor([0]), "cub")
    assert obj.std() > 0
