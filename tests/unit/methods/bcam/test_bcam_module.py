"""The BCAM LightningModule: loss wiring, optimiser groups, test maps and the threshold-free mask."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from wsol_lightning.methods.bcam import BCAM


@pytest.fixture(scope="module")
def model() -> BCAM:
    torch.manual_seed(0)
    return BCAM(backbone="resnet10t", num_classes=3, num_heads=4, lr=0.1, head_lr_mult=10.0,
                head_bias_lr_mult=10.0, backbone_bias_lr_mult=2.0)


def batch(n: int = 2, size: int = 32) -> dict[str, torch.Tensor]:
    return {"image": torch.randn(n, 3, size, size), "label": torch.tensor([0, 2][:n])}


def test_training_losses_are_the_four_named_terms(model: BCAM):
    losses = model.training_losses(batch())
    assert set(losses) == {"loss_obj_cls", "loss_bg_on_obj", "loss_bg_on_bg", "loss_obj_on_bg", "loss"}
    total = sum(v for k, v in losses.items() if k != "loss")
    torch.testing.assert_close(losses["loss"], total)
    assert model.loss_weights == (1.0, 1.0, 1.0, 1.0)  # official ResNet weights


def test_vgg_gets_the_official_vgg_weights_and_explicit_weights_win():
    assert BCAM(backbone="vgg11", num_classes=2, num_heads=2).loss_weights == (1.0, 0.4, 0.4, 0.2)
    custom = BCAM(backbone="resnet10t", num_classes=3, num_heads=2, loss_weights=[1.0, 0.0, 0.5, 0.0])
    losses = custom.training_losses(batch())
    assert losses["loss_bg_on_obj"].item() == 0.0 and losses["loss_obj_on_bg"].item() == 0.0
    with pytest.raises(ValueError, match="four"):
        BCAM(backbone="resnet10t", num_classes=2, loss_weights=[1.0])


def test_multi_label_variant_reads_multi_hot():
    model = BCAM(backbone="resnet10t", num_classes=3, num_heads=2, multi_label=True)
    with pytest.raises(KeyError, match="multi_hot"):
        model.training_losses(batch())
    data = batch() | {"multi_hot": torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])}
    out = model(data["image"])
    expected = F.multilabel_soft_margin_loss(out["logits"], data["multi_hot"])
    assert model.training_losses(data)["loss_obj_cls"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_resnet_layer4_trains_at_head_lr(model: BCAM):
    groups = {g["name"]: g for g in model.parameter_groups()}
    head_ids = {id(p) for p in groups["head_weights"]["params"]}
    layer4 = model.net.trunk.stages[4]
    assert all(id(p) in head_ids for p in layer4.parameters() if p.ndim > 1)
    assert all(id(p) in head_ids for p in model.net.head.parameters() if p.ndim > 1)
    assert not any(id(p) in head_ids for p in model.net.trunk.stages[3].parameters())
    assert groups["head_weights"]["lr"] == pytest.approx(1.0)
    assert groups["backbone_weights"]["lr"] == pytest.approx(0.1)
    assert groups["backbone_biases"]["lr"] == pytest.approx(0.2)
    n_params = sum(len(g["params"]) for g in groups.values())
    assert n_params == len([p for p in model.parameters() if p.requires_grad])
    no_layer4 = BCAM(backbone="resnet10t", num_classes=3, num_heads=2, head_lr_taps=[])
    head = {id(p) for m in no_layer4.head_modules() for p in m.parameters()}
    assert not any(id(p) in head for p in no_layer4.net.trunk.stages[4].parameters())


def test_official_optimisation_nesterov_sgd_step_decay():
    model = BCAM(backbone="resnet10t", num_classes=3, num_heads=2, lr=1.7e-4, weight_decay=1e-4,
                 lr_scheduler="step", lr_step_size=15, lr_gamma=0.1)
    model.trainer = L.Trainer(max_epochs=20, logger=False, accelerator="cpu", enable_progress_bar=False)
    config = model.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    assert isinstance(optimizer, torch.optim.SGD)
    assert all(g["nesterov"] and g["momentum"] == 0.9 for g in optimizer.param_groups)
    lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
    assert lrs["backbone_weights"] == pytest.approx(1.7e-4) and lrs["head_weights"] == pytest.approx(1.7e-3)
    for _ in range(15):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * optimizer.param_groups[0]["initial_lr"])


def test_swept_map_choices(model: BCAM):
    model.eval()
    data = batch()
    with torch.no_grad():
        out = model(data["image"])
        obj, bg = model.score_maps(out, data["label"])
        torch.testing.assert_close(model.localization_maps(out, data["label"]), obj)
        model.hparams.swept_map = "difference"
        torch.testing.assert_close(model.localization_maps(out, data["label"]), obj - bg)
        model.hparams.swept_map = "object"
        model.hparams.localization_map = "plain"
        plain_obj, plain_bg = model.net.plain_maps(out, data["label"])
        torch.testing.assert_close(model.score_maps(out, data["label"])[0], plain_obj)
        model.hparams.localization_map = "gradient"
    with pytest.raises(ValueError, match="localization_map"):
        BCAM(backbone="resnet10t", num_classes=2, localization_map="cam")  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["bicubic", "bilinear"])
def test_threshold_free_mask_compares_the_maps_upsampled_with_map_interpolation(model: BCAM, mode: str):
    torch.manual_seed(3)
    obj, bg = torch.randn(2, 4, 4), torch.randn(2, 4, 4)
    model.map_interpolation = mode
    mask = model.threshold_free_masks(obj, bg, (32, 32))
    up = [F.interpolate(m[:, None].double(), size=(32, 32), mode=mode, align_corners=False)[:, 0]
          for m in (obj, bg)]
    assert mask.shape == (2, 32, 32) and mask.dtype == torch.bool
    assert torch.equal(mask, up[0] > up[1])
    assert 0 < mask.float().mean() < 1
    other = "bilinear" if mode == "bicubic" else "bicubic"
    model.map_interpolation = other
    assert not torch.equal(model.threshold_free_masks(obj, bg, (32, 32)), mask)  # the flag is what decides
    model.map_interpolation = "bicubic"


def test_evaluation_step_feeds_the_mask_metric(model: BCAM):
    model.eval()
    data = batch() | {"boxes": [torch.tensor([[0, 0, 31, 31]]), torch.zeros(0, 4, dtype=torch.int64)],
                      "mask": torch.ones(2, 32, 32, dtype=torch.uint8)}
    with torch.no_grad():
        model._evaluation_step(data, "val")
    state = model.mask_metric
    assert state.count.item() == 1  # the image without a GT box is not counted
    assert state.union.item() == 2 * 32 * 32  # the GT mask covers everything
    results = state.compute()
    assert set(results) == {"mask_gt_known_loc", "mask_piou"}
    model._reset_eval_metrics()
    assert state.count.item() == 0 and state.union.item() == 0
