"""WSOLModule(warmup_epochs=N): only the classification terms are optimised during the first N epochs."""

from __future__ import annotations

import pytest
import torch

from wsol_lightning.methods import BAS, BCAM


def batch(num_classes: int = 3) -> dict:
    generator = torch.Generator().manual_seed(0)
    return {"image": torch.randn(4, 3, 32, 32, generator=generator),
            "label": torch.arange(4) % num_classes}


def bas(**kwargs) -> BAS:
    torch.manual_seed(0)
    kwargs.setdefault("background_bn", "batch")  # no running statistics: repeated forwards are identical
    return BAS(backbone="resnet10t", num_classes=3, head_channels=16, **kwargs)


def grads(module: torch.nn.Module, loss: torch.Tensor) -> dict[str, torch.Tensor]:
    module.zero_grad()
    loss.backward()
    return {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}


def test_warmup_keeps_only_the_classification_term_then_all():
    module = bas(warmup_epochs=2)
    losses = module.training_losses(batch())
    extra = ("loss_frg", "loss_bas", "loss_ac")
    assert all(losses[k].requires_grad and float(losses[k].detach()) != 0.0 for k in extra)
    for epoch in (0, 1):
        warm = module.warmup_objective(losses, epoch)
        assert torch.equal(warm["loss"], losses["loss_cls"])
        assert all(not warm[k].requires_grad and torch.equal(warm[k], losses[k]) for k in extra)  # logged only
    after = module.warmup_objective(losses, 2)
    assert after is losses
    assert torch.allclose(after["loss"], sum(losses[k] for k in ("loss_cls", *extra)))


def test_warmup_gradients_are_the_classification_gradients(monkeypatch: pytest.MonkeyPatch):
    module = bas(warmup_epochs=1)
    monkeypatch.setattr(module, "log", lambda *a, **k: None)
    monkeypatch.setattr(module, "log_dict", lambda *a, **k: None)
    epoch = {"value": 0}
    monkeypatch.setattr(BAS, "current_epoch", property(lambda self: epoch["value"]))
    data = batch()
    step = grads(module, module.training_step(data, 0))
    cls_only = grads(module, module.training_losses(data)["loss_cls"])
    full = grads(module, module.training_losses(data)["loss"])
    assert set(step) == set(cls_only) and all(torch.allclose(step[n], cls_only[n]) for n in step)
    assert any(n not in cls_only or not torch.allclose(full[n], cls_only[n]) for n in full)  # extras matter
    epoch["value"] = 1
    step = grads(module, module.training_step(data, 0))
    assert set(step) == set(full) and all(torch.allclose(step[n], full[n], atol=1e-6) for n in step)


def test_bcam_warmup_keeps_the_object_classification_term():
    torch.manual_seed(0)
    module = BCAM(backbone="resnet10t", num_classes=3, num_heads=4, warmup_epochs=1)
    losses = module.training_losses(batch())
    warm = module.warmup_objective(losses, 0)
    assert torch.equal(warm["loss"], losses["loss_obj_cls"])
    assert not warm["loss_bg_on_bg"].requires_grad
    assert module.warmup_objective(losses, 1) is losses


def test_default_is_off_and_negative_is_rejected():
    module = bas()
    losses = module.training_losses(batch())
    assert module.warmup_objective(losses, 0) is losses
    with pytest.raises(ValueError, match="warmup_epochs"):
        bas(warmup_epochs=-1)


def test_paper_configs_keep_the_warmup_off():
    import inspect
    from pathlib import Path

    import yaml

    from wsol_lightning.methods.base import WSOLModule

    assert inspect.signature(WSOLModule.__init__).parameters["warmup_epochs"].default == 0
    configs = Path(__file__).resolve().parents[3] / "configs"
    paper = [p for p in configs.glob("*.yaml") if "synthetic" not in p.name]
    assert len(paper) > 10
    for path in paper:
        init_args = yaml.safe_load(path.read_text())["model"].get("init_args", {})
        assert init_args.get("warmup_epochs", 0) == 0, path.name
