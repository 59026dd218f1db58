"""The BAS LightningModule: logged terms, their weights, variants, top-k maps, optimiser groups."""

import math

import pytest
import torch

from wsol_lightning.methods import BAS
from wsol_lightning.methods.bas.loss import area_loss, gather_class
from wsol_lightning.methods.bas.module import default_clip_value


def small_bas(**kwargs) -> BAS:
    torch.manual_seed(0)
    args = {"backbone": "resnet10t", "num_classes": 4, "head_channels": 16} | kwargs
    return BAS(**args)


def batch(b: int = 4, size: int = 48) -> dict:
    g = torch.Generator().manual_seed(3)
    return {"image": torch.randn(b, 3, size, size, generator=g), "label": torch.arange(b) % 4}


def test_paper_defaults_and_clip_constant_per_variant():
    model = small_bas()
    hp = model.hparams
    assert (hp.lr, hp.momentum, hp.nesterov, hp.weight_decay) == (1e-3, 0.9, True, 5e-4)
    assert (hp.backbone_bias_lr_mult, hp.head_lr_mult, hp.head_bias_lr_mult) == (2.0, 10.0, 20.0)
    assert (hp.alpha, hp.beta, hp.variant) == (0.5, 1.2, "cvpr") and model.clip_value == 0.0
    assert default_clip_value("ijcv", "resnet50") == 1.0
    assert default_clip_value("ijcv", "vgg16") == 0.0
    assert small_bas(variant="ijcv", clip_value=0.5).clip_value == 0.5
    with pytest.raises(ValueError, match="variant"):
        small_bas(variant="eccv")


def test_training_losses_are_named_weighted_and_summed():
    model = small_bas(alpha=0.0, beta=2.0)
    losses = model.training_losses(batch())
    assert set(losses) == {"loss_cls", "loss_frg", "loss_bas", "loss_ac", "loss"}
    assert losses["loss_frg"].item() == 0.0  # alpha = 0 switches L_frg off (VGG16 on CUB)
    parts = sum(v for k, v in losses.items() if k != "loss")
    assert losses["loss"].item() == pytest.approx(parts.item())
    with torch.no_grad():
        out = model(batch()["image"])
    expected_ac = 2.0 * area_loss(gather_class(out["fpm"], batch()["label"]))
    assert losses["loss_ac"].item() == pytest.approx(expected_ac.item(), rel=1e-5)
    assert losses["loss_cls"].item() == pytest.approx(math.log(4), abs=0.5)


def test_multilabel_uses_multi_hot_for_the_class_term():
    model = small_bas(multilabel=True)
    data = batch()
    data["multi_hot"] = torch.zeros(4, 4)
    data["multi_hot"][torch.arange(4), data["label"]] = 1.0
    single = model.training_losses(data)["loss_cls"]
    with torch.no_grad():
        ce = torch.nn.functional.cross_entropy(model(data["image"])["logits"], data["label"])
    assert single.item() == pytest.approx(ce.item(), rel=1e-4)  # one positive: equals softmax CE
    data["multi_hot"][:, 0] = 1.0  # class 0 becomes positive everywhere: the loss changes
    assert model.training_losses(data)["loss_cls"].item() != pytest.approx(single.item(), rel=1e-4)


def test_top1_map_is_the_requested_class_and_topk_the_mean_of_predictions():
    fpm = torch.rand(2, 4, 5, 5)
    logits = torch.tensor([[0.1, 0.9, 0.5, 0.0], [3.0, 2.0, 1.0, 0.0]])
    outputs = {"fpm": fpm, "logits": logits}
    classes = torch.tensor([3, 2])
    top1 = small_bas(top_k=1).localization_maps(outputs, classes)
    assert torch.equal(top1, torch.stack([fpm[0, 3], fpm[1, 2]]))
    top2 = small_bas(top_k=2).localization_maps(outputs, classes)
    assert torch.allclose(top2, torch.stack([(fpm[0, 1] + fpm[0, 2]) / 2, (fpm[1, 0] + fpm[1, 1]) / 2]))
    every = small_bas(top_k=200).localization_maps(outputs, classes)  # k > C: class-agnostic mean
    assert torch.allclose(every, fpm.mean(dim=1))


def test_test_forward_needs_no_label_and_skips_the_background_branch(monkeypatch):
    model = small_bas().eval()
    called = []
    monkeypatch.setattr(model.net, "background_logits", lambda *a, **k: called.append(1))
    with torch.no_grad():
        out = model(batch()["image"])
    assert set(out) == {"mid", "fpm", "cams", "logits"} and not called


def test_parameter_groups_have_the_paper_multipliers():
    model = small_bas()
    groups = {g["name"]: g for g in model.parameter_groups()}
    assert {n: g["lr"] for n, g in groups.items()} == pytest.approx(
        {"backbone_weights": 1e-3, "backbone_biases": 2e-3, "head_weights": 1e-2, "head_biases": 2e-2})
    head = {id(p) for p in (*model.net.generator.parameters(), *model.net.tail.classifier.parameters())}
    assert {id(p) for p in groups["head_weights"]["params"] + groups["head_biases"]["params"]} == head
    assert id(model.net.generator.bias) in {id(p) for p in groups["head_biases"]["params"]}


def test_training_step_updates_generator_and_trunk():
    model = small_bas(variant="ijcv", lr=0.05)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    loss = model.training_losses(batch())["loss"]
    loss.backward()
    optimizer.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(before[n], p)}
    assert any(n.startswith("net.generator") for n in changed)
    assert any(n.startswith("net.extractor") for n in changed)
    assert any(n.startswith("net.tail.classifier") for n in changed)
