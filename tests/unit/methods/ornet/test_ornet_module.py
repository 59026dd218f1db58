"""ORNet's phases: frozen/trainable sets, eval-mode freezing, losses per phase, checkpoint hand-off."""

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from wsol_lightning.methods import ORNet
from wsol_lightning.methods.ornet import PhaseCheckpointError

SMALL = dict(backbone="test_resnet", num_classes=5, decoder_channels=(8, 16, 32), decoder_up_channels=(16, 12))


def save(module: ORNet, path: Path) -> str:
    """A checkpoint laid out like Lightning's (state_dict + hyper_parameters)."""
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return str(path)


@pytest.fixture
def chain(tmp_path: Path) -> dict[str, str]:
    torch.manual_seed(0)
    evaluator = ORNet(phase="evaluator", backbone="test_resnet", num_classes=5)
    coarse = ORNet(phase="coarse", **SMALL)
    return {"evaluator": save(evaluator, tmp_path / "evaluator.ckpt"),
            "coarse": save(coarse, tmp_path / "coarse.ckpt"), "dir": str(tmp_path)}


def refine_model(chain: dict[str, str], **kwargs) -> ORNet:
    model = ORNet(phase="refine", evaluator_backbone="test_resnet", init_from=chain["coarse"],
                  evaluator_from=chain["evaluator"], **SMALL, **kwargs)
    model.load_previous_phases()
    return model


def batch(n: int = 4) -> dict:
    return {"image": torch.randn(n, 3, 64, 64), "label": torch.arange(n) % 5}


def trainable_names(model: ORNet) -> set[str]:
    return {n.split(".")[0] + "." + n.split(".")[1] for n, p in model.named_parameters() if p.requires_grad}


def test_trainable_sets_per_phase(chain):
    evaluator = ORNet(phase="evaluator", backbone="test_resnet", num_classes=5)
    assert all(p.requires_grad for p in evaluator.parameters()) and evaluator.net is None
    coarse = ORNet(phase="coarse", **SMALL)
    assert all(p.requires_grad for p in coarse.parameters()) and coarse.eval_classifier is None
    refine = refine_model(chain)
    trainable = {n for n, p in refine.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("net.decoder.up2.", "net.decoder.up3.", "net.map_head.")) for n in trainable)
    assert {n.rsplit(".", 1)[0] for n in trainable} >= {"net.map_head.conv", "net.map_head.bn"}
    assert any(n.startswith("net.decoder.up2.") for n in trainable)
    frozen = {n for n, p in refine.named_parameters() if not p.requires_grad}
    for prefix in ("net.trunk.", "net.decoder.down1.", "net.decoder.down3.", "net.decoder.up1.", "eval_classifier."):
        assert any(n.startswith(prefix) for n in frozen), prefix
    groups = refine.parameter_groups()
    assert sum(len(g["params"]) for g in groups) == len(trainable)
    only_head = refine_model(chain, trainable_decoder_blocks=0)
    assert {n for n, p in only_head.named_parameters() if p.requires_grad} == {
        "net.map_head.conv.weight", "net.map_head.bn.weight", "net.map_head.bn.bias"}


def test_refine_loss_gradient_reaches_only_trainable_parameters_and_terms_are_named(chain):
    model = refine_model(chain, erase_seed=0)
    losses = model.training_losses(batch())
    assert set(losses) == {"loss_cls", "loss_area", "loss_entropy", "loss"}
    assert torch.allclose(losses["loss"], losses["loss_cls"] + losses["loss_area"] + losses["loss_entropy"])
    losses["loss"].backward()
    for name, param in model.named_parameters():
        if param.requires_grad:
            assert param.grad is not None, name
        else:
            assert param.grad is None, name
    assert model.net.map_head.conv.weight.grad.abs().sum() > 0


def test_refine_loss_weights_are_arguments(chain):
    base = refine_model(chain, erase_seed=0)
    scaled = refine_model(chain, erase_seed=0, area_weight=0.04, entropy_weight=3.0, ce_weight=2.0)
    scaled.load_state_dict(base.state_dict())
    torch.manual_seed(1)
    images = batch()
    a = base.training_losses(images)
    b = scaled.training_losses(images)
    assert float(b["loss_area"]) == pytest.approx(2 * float(a["loss_area"]), rel=1e-5)
    assert float(b["loss_entropy"]) == pytest.approx(2 * float(a["loss_entropy"]), rel=1e-5)
    assert float(b["loss_cls"]) == pytest.approx(2 * float(a["loss_cls"]), rel=1e-5)  # same erasing seed


def test_coarse_and_evaluator_losses():
    coarse = ORNet(phase="coarse", aux_weight=0.5, **SMALL)
    losses = coarse.training_losses(batch())
    assert set(losses) == {"loss_cls", "loss_aux", "loss"}
    out = coarse(batch()["image"])
    assert set(out) >= {"logits", "aux_logits", "map", "class_maps"}
    evaluator = ORNet(phase="evaluator", backbone="test_resnet", num_classes=5)
    assert set(evaluator.training_losses(batch())) == {"loss_cls", "loss"}
    with pytest.raises(RuntimeError, match="no localisation map"):
        evaluator.localization_maps(evaluator(batch()["image"]), torch.zeros(4, dtype=torch.long))


def test_frozen_parts_stay_in_eval_mode_and_batchnorm_statistics_do_not_drift(chain):
    model = refine_model(chain, erase_seed=0)
    # Lightning never calls train() at fit start: a fresh model must already have its frozen parts in eval
    assert model.training and not model.net.trunk.training and not model.eval_classifier.training
    model.eval()
    model.train()
    assert not model.net.trunk.training and not model.eval_classifier.training
    assert not model.net.decoder.down1.training and not model.net.decoder.up1.training
    assert model.net.decoder.up3.training and model.net.map_head.training
    frozen_bn = [m for m in model.net.trunk.modules() if isinstance(m, nn.BatchNorm2d)][0]
    trained_bn = model.net.map_head.bn
    before, before_trained = frozen_bn.running_mean.clone(), trained_bn.running_mean.clone()
    model.training_losses(batch())
    assert torch.equal(frozen_bn.running_mean, before)
    assert not torch.equal(trained_bn.running_mean, before_trained)
    model.eval()
    assert not model.net.decoder.up3.training


def test_frozen_train_mode_reproduces_released_behaviour(chain):
    model = refine_model(chain, erase_seed=0, frozen_train_mode=True)
    model.train()
    assert model.net.trunk.training and model.eval_classifier.training
    frozen_bn = [m for m in model.net.trunk.modules() if isinstance(m, nn.BatchNorm2d)][0]
    before = frozen_bn.running_mean.clone()
    model.training_losses(batch())
    assert not torch.equal(frozen_bn.running_mean, before)  # released quirk: frozen BN statistics drift


def test_refine_loads_both_checkpoints(chain):
    coarse_state = torch.load(chain["coarse"], weights_only=False)["state_dict"]
    evaluator_state = torch.load(chain["evaluator"], weights_only=False)["state_dict"]
    model = refine_model(chain)
    own = model.state_dict()
    for key in ("net.decoder.up3.conv.0.weight", "net.map_head.conv.weight", "net.trunk.stages.0.bn1.weight"):
        assert torch.equal(own[key], coarse_state[key])
    for key in ("eval_classifier.model.fc.weight", "eval_classifier.model.bn1.weight"):
        assert torch.equal(own[key], evaluator_state[key])
    assert bool(model.previous_phase_loaded)


def test_coarse_initialises_its_trunk_from_the_evaluator(chain):
    evaluator_state = torch.load(chain["evaluator"], weights_only=False)["state_dict"]
    coarse = ORNet(phase="coarse", init_from=chain["evaluator"], **SMALL)
    assert not bool(coarse.previous_phase_loaded)
    coarse.load_previous_phases()
    own = coarse.state_dict()
    assert torch.equal(own["net.trunk.stages.0.bn1.weight"], evaluator_state["eval_classifier.model.bn1.weight"])
    assert torch.equal(own["net.trunk.stages.4.layer4.0.conv1.weight"],
                       evaluator_state["eval_classifier.model.layer4.0.conv1.weight"])
    assert torch.equal(own["net.classifier.weight"], evaluator_state["eval_classifier.model.fc.weight"])


def test_missing_checkpoint_names_the_file_and_argument(chain):
    model = ORNet(phase="refine", evaluator_backbone="test_resnet", init_from=chain["dir"] + "/nope.ckpt",
                  evaluator_from=chain["evaluator"], **SMALL)
    with pytest.raises(PhaseCheckpointError, match=r"init_from: checkpoint file not found: .*nope\.ckpt"):
        model.load_previous_phases()


def test_wrong_phase_and_wrong_backbone_are_refused(chain):
    model = ORNet(phase="refine", evaluator_backbone="test_resnet", init_from=chain["evaluator"],
                  evaluator_from=chain["evaluator"], **SMALL)
    with pytest.raises(PhaseCheckpointError, match="'evaluator' phase; expected one of"):
        model.load_previous_phases()
    model = ORNet(phase="refine", evaluator_backbone="resnet10t", init_from=chain["coarse"],
                  evaluator_from=chain["evaluator"], **SMALL)
    with pytest.raises(PhaseCheckpointError, match="backbone 'test_resnet'.*'resnet10t'"):
        model.load_previous_phases()


def test_mismatched_keys_are_named(chain, tmp_path):
    other = ORNet(phase="coarse", backbone="test_resnet", num_classes=5, decoder_channels=(8, 16, 24),
                  decoder_up_channels=(16, 12))
    path = save(other, tmp_path / "other.ckpt")
    model = ORNet(phase="refine", evaluator_backbone="test_resnet", init_from=path,
                  evaluator_from=chain["evaluator"], **SMALL)
    with pytest.raises(PhaseCheckpointError, match=r"other\.ckpt does not match.*net\.decoder\.down3"):
        model.load_previous_phases()
    state = torch.load(chain["coarse"], weights_only=False)
    del state["state_dict"]["net.map_head.bn.weight"]
    torch.save(state, tmp_path / "partial.ckpt")
    model = ORNet(phase="refine", evaluator_backbone="test_resnet", init_from=str(tmp_path / "partial.ckpt"),
                  evaluator_from=chain["evaluator"], **SMALL)
    with pytest.raises(PhaseCheckpointError, match=r"1 missing.*Missing: net\.map_head\.bn\.weight"):
        model.load_previous_phases()


def test_refine_needs_its_checkpoints_and_phase_is_checked():
    with pytest.raises(ValueError, match="needs init_from"):
        ORNet(phase="refine", **SMALL)
    with pytest.raises(ValueError, match="phase must be one of"):
        ORNet(phase="fine", **SMALL)


@pytest.mark.parametrize("per_step", [True, False])
def test_cosine_is_annealed_per_iteration_as_released(per_step):
    """``CosineAnnealingLR(T_max=iterations x epochs)`` stepped every iteration (``train_2nd_step.py``)."""
    from types import SimpleNamespace

    module = ORNet(phase="evaluator", backbone="resnet18", num_classes=5, optimizer="adam", lr=1e-4,
                   weight_decay=0.0, head_lr_mult=1.0, head_bias_lr_mult=1.0, lr_scheduler="cosine",
                   cosine_per_step=per_step)
    module._trainer = SimpleNamespace(max_epochs=3, estimated_stepping_batches=30)
    config = module.configure_optimizers()
    scheduler, optimizer = config["lr_scheduler"]["scheduler"], config["optimizer"]
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.defaults["weight_decay"] == 0
    assert config["lr_scheduler"]["interval"] == ("step" if per_step else "epoch")
    assert scheduler.T_max == (30 if per_step else 3)
    for _ in range(15 if per_step else 1):
        optimizer.step()
        scheduler.step()
    expected = 0.5e-4 if per_step else 1e-4 * 0.5 * (1 + math.cos(math.pi / 3))
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([expected] * 4, rel=1e-9)
