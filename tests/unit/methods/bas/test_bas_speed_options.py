"""BAS's speed and memory options change time and memory, never the losses, gradients or BN statistics."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from wsol_lightning.methods import BAS
from wsol_lightning.methods.recompute import leaf_blocks, recompute_segments, run_recomputed

LABELS = torch.tensor([0, 1, 2, 1])


def _step(model: BAS, images: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Loss terms and parameter gradients of one training step."""
    model.train()
    losses = model.training_losses({"image": images, "label": LABELS})
    losses["loss"].backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    return {k: v.detach() for k, v in losses.items()}, grads


def _pair(**option) -> tuple[BAS, BAS]:
    """The paper-default model (``generator_gt_only`` off: the official full map) and one with ``option``."""
    torch.manual_seed(0)
    kwargs = {"backbone": "resnet10t", "num_classes": 3, "head_channels": 16}
    reference = BAS(generator_gt_only=False, **kwargs).double()
    other = BAS(**{"generator_gt_only": False, **kwargs, **option}).double()
    other.load_state_dict(reference.state_dict())
    return reference, other


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


@pytest.mark.parametrize("option", [{"generator_gt_only": True}, {"checkpoint_extractor": True},
                                    {"channels_last": True}, {"checkpoint_blocks": 10},
                                    {"generator_gt_only": True, "checkpoint_extractor": True,
                                     "checkpoint_background": True, "channels_last": True}])
def test_option_gives_the_same_losses_gradients_and_statistics(option, images):
    reference, other = _pair(**option)
    losses_ref, grads_ref = _step(reference, images)
    losses, grads = _step(other, images)
    assert float(losses_ref["loss_bas"]) > 0  # the background branch really contributes
    for name, value in losses_ref.items():
        torch.testing.assert_close(losses[name], value, rtol=1e-12, atol=0, msg=name)
    for name, grad in grads_ref.items():
        assert (grad is None) == (grads[name] is None), name
        if grad is not None:
            torch.testing.assert_close(grads[name], grad, rtol=1e-10, atol=1e-14, msg=name)
    buffers = dict(other.named_buffers())
    for name, buffer in reference.named_buffers():  # BN statistics updated once, as without the option
        torch.testing.assert_close(buffers[name], buffer, rtol=1e-10, atol=1e-14, equal_nan=True, msg=name)


def test_gt_only_generator_trains_only_the_gt_filters(images):
    _, model = _pair(generator_gt_only=True)
    _step(model, images)
    grad = model.net.generator.weight.grad
    assert grad[0].abs().sum() > 0 and grad[1].abs().sum() > 0 and grad[2].abs().sum() > 0
    model.zero_grad()
    losses = model.training_losses({"image": images, "label": torch.tensor([1, 1, 1, 1])})
    losses["loss"].backward()
    grad = model.net.generator.weight.grad
    assert grad[0].abs().sum() == 0 and grad[2].abs().sum() == 0 and grad[1].abs().sum() > 0


def test_checkpointed_extractor_is_recomputed_exactly_once_per_backward(images):
    _, model = _pair(checkpoint_extractor=True)
    calls = []
    last_block = leaf_blocks(model.net.extractor)[-1]  # a residual block: its activations are not stored
    last_block.register_forward_pre_hook(lambda *_: calls.append(1))  # recomputation may stop early
    _step(model, images)
    assert len(calls) == 2  # forward + one recomputation in backward


def test_leading_blocks_are_recomputed_once_and_the_rest_not(images):
    _, model = _pair(checkpoint_blocks=10)  # resnet10t: deep stem + max-pool
    blocks = leaf_blocks(model.net.extractor)
    calls = {9: [], 10: []}
    for index, log in calls.items():
        blocks[index].register_forward_pre_hook(lambda *_, log=log: log.append(1))
    _step(model, images)
    assert (len(calls[9]), len(calls[10])) == (2, 1)  # last recomputed layer: forward + backward; next: once


def test_checkpoint_blocks_is_checked():
    kwargs = {"backbone": "resnet10t", "num_classes": 3, "head_channels": 16}
    count = len(leaf_blocks(BAS(**kwargs).net.extractor))
    with pytest.raises(ValueError, match=rf"checkpoint_blocks must be in \[0, {count}\]"):
        BAS(**kwargs, checkpoint_blocks=count + 1)
    inplace = next(i for i, b in enumerate(leaf_blocks(BAS(**kwargs).net.extractor)) if getattr(b, "inplace", 0))
    with pytest.raises(ValueError, match="before an in-place layer"):
        BAS(**kwargs, checkpoint_blocks=inplace)
    with pytest.raises(ValueError, match="compile and checkpoint"):
        BAS(**kwargs, checkpoint_blocks=4, compile="aot_eager")


def test_run_recomputed_restores_batchnorm_buffers_and_matches_sequential():
    torch.manual_seed(0)
    blocks = [nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU()), nn.Conv2d(4, 1, 1)]
    twin = [nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU()), nn.Conv2d(4, 1, 1)]
    for a, b in zip(twin, blocks):
        a.load_state_dict(b.state_dict())
    x = torch.randn(3, 2, 6, 6)
    run_recomputed(blocks, x).sum().backward()
    nn.Sequential(*twin)(x).sum().backward()
    norm, norm_twin = blocks[0][1], twin[0][1]
    assert int(norm.num_batches_tracked) == 1
    torch.testing.assert_close(norm.running_mean, norm_twin.running_mean, rtol=0, atol=0)
    torch.testing.assert_close(norm.running_var, norm_twin.running_var, rtol=0, atol=0)
    for a, b in zip(nn.Sequential(*blocks).parameters(), nn.Sequential(*twin).parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-6, atol=1e-7)


def test_leaf_blocks_flattens_nested_sequentials():
    inner = nn.Sequential(nn.ReLU(), nn.Sequential(nn.Identity(), nn.Tanh()))
    assert [type(m) for m in leaf_blocks(nn.Sequential(nn.Conv2d(1, 1, 1), inner))] == [
        nn.Conv2d, nn.ReLU, nn.Identity, nn.Tanh]


def test_recompute_segments_never_start_with_an_in_place_layer():
    stem = nn.Sequential(nn.Conv2d(1, 1, 1), nn.BatchNorm2d(1), nn.ReLU(inplace=True))
    segments = recompute_segments(nn.Sequential(stem, nn.MaxPool2d(2), nn.ReLU()))
    assert [type(s) for s in segments] == [nn.Conv2d, nn.Sequential, nn.MaxPool2d, nn.ReLU]
    assert [type(m) for m in segments[1]] == [nn.BatchNorm2d, nn.ReLU]


def test_compiled_extractor_gives_the_same_step(images):
    """``compile`` (F1 through torch.compile) keeps the losses and gradients.

    The ``aot_eager`` backend runs dynamo and AOTAutograd without code generation (seconds, not minutes);
    ``compile=True`` (inductor) passed the same test outside the suite (143 s on 2 loaded cores).
    """
    reference, compiled = _pair(compile="aot_eager")
    assert list(compiled.state_dict()) == list(reference.state_dict())  # keys unchanged
    losses_ref, grads_ref = _step(reference, images)
    losses, grads = _step(compiled, images)
    for name, value in losses_ref.items():
        torch.testing.assert_close(losses[name], value, rtol=1e-9, atol=1e-12, msg=name)
    for name, grad in grads_ref.items():
        if grad is not None:
            torch.testing.assert_close(grads[name], grad, rtol=1e-7, atol=1e-10, msg=name)


def test_compile_and_extractor_recomputation_are_exclusive():
    with pytest.raises(ValueError, match="compile and checkpoint_extractor"):
        BAS(backbone="resnet10t", num_classes=3, head_channels=16, compile=True, checkpoint_extractor=True)
