"""Activation checkpointing of the background branch changes memory, not the numbers."""

import pytest
import torch

from wsol_lightning.methods import BAS


@pytest.mark.parametrize("background_bn", ["batch", "running"])
def test_checkpointed_background_gives_identical_losses_and_gradients(background_bn):
    torch.manual_seed(0)
    plain = BAS(backbone="resnet10t", num_classes=4, head_channels=32, background_bn=background_bn)
    checkpointed = BAS(backbone="resnet10t", num_classes=4, head_channels=32, background_bn=background_bn,
                       checkpoint_background=True)
    checkpointed.load_state_dict(plain.state_dict())
    batch = {"image": torch.randn(4, 3, 64, 64), "label": torch.tensor([0, 1, 2, 3])}
    losses_plain, losses_ckpt = plain.training_losses(batch), checkpointed.training_losses(batch)
    for name in ("loss_cls", "loss_frg", "loss_bas", "loss_ac", "loss"):
        assert torch.equal(losses_plain[name].detach(), losses_ckpt[name].detach()), name
    assert float(losses_plain["loss_bas"]) > 0  # the branch really contributes
    losses_plain["loss"].backward()
    losses_ckpt["loss"].backward()
    for (name, a), b in zip(plain.named_parameters(), checkpointed.parameters()):
        assert (a.grad is None) == (b.grad is None), name
        if a.grad is not None:
            assert torch.equal(a.grad, b.grad), name
    running = dict(plain.named_buffers())
    for name, buffer in checkpointed.named_buffers():
        assert torch.equal(buffer, running[name]) or buffer.isnan().all(), name  # BN statistics untouched
