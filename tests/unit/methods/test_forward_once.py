"""An evaluation step on multi-label data runs one forward pass for the GT-class maps and the seed maps."""

from __future__ import annotations

import torch
from torch import Tensor

from wsol_lightning.methods.base import WSOLModule
from wsol_lightning.methods.evaluation import forward_once


class _Counting(WSOLModule):
    """Per-class maps from the image's channels; counts forward calls."""

    def __init__(self) -> None:
        super().__init__(backbone="none", num_classes=3, cam_curve_interval=0.01, async_metrics=False)
        self.calls = 0

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        self.calls += 1
        return {"logits": images.mean(dim=(2, 3)), "maps": images}

    def localization_maps(self, outputs: dict[str, Tensor], classes: Tensor) -> Tensor:
        return outputs["maps"][torch.arange(len(classes)), classes]


def _seed_batch() -> dict:
    g = torch.Generator().manual_seed(0)
    semantic = torch.randint(0, 4, (2, 8, 8), generator=g).to(torch.uint8)
    return {"image": torch.rand(2, 3, 8, 8, generator=g), "label": torch.tensor([0, 2]),
            "boxes": [torch.tensor([[1, 1, 5, 5]])] * 2, "semantic": semantic,
            "multi_hot": torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]])}


def test_seed_maps_reuse_the_step_forward_and_equal_a_separate_pass():
    batch = _seed_batch()
    model = _Counting().eval()
    model.validation_step(batch, 0)
    assert model.calls == 1  # was 2: evaluation_maps and seed_maps each ran the network
    reference = _Counting().eval()
    reference.seed_miou.update(reference.seed_maps(batch), batch["semantic"])
    assert reference.calls == 1
    for name in reference.seed_miou._defaults:
        assert torch.equal(getattr(model.seed_miou, name), getattr(reference.seed_miou, name)), name
    assert int(model.seed_miou._update_count) == 1


def test_forward_once_only_for_that_tensor_and_only_inside_the_block():
    model = _Counting()
    images, other = torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4)
    with forward_once(model, images):
        first = model(images)
        assert model(images) is first and model.calls == 1
        model(other)
        assert model.calls == 2
    assert "forward" not in model.__dict__
    model(images)
    assert model.calls == 3


def test_an_instance_level_forward_is_put_back():
    """Lightning's DDP forward redirection leaves the bound forward on the instance during a step."""
    model = _Counting()
    bound = model.forward
    model.forward = bound
    images = torch.rand(1, 3, 4, 4)
    with forward_once(model, images):
        model(images), model(images)
    assert model.__dict__["forward"] is bound and model.calls == 1
