"""``on_test_start`` chooses on val only the thresholds that are missing and applicable (issue 12, item 12)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import torch
from torch import Tensor

from wsol_lightning.methods.base import WSOLModule


class _Counting(WSOLModule):
    """A map that is the image's first channel; counts forward calls."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(backbone="none", num_classes=2, cam_curve_interval=0.01, **kwargs)
        self.calls = 0

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        self.calls += 1
        return {"logits": torch.zeros(images.shape[0], 2), "maps": images[:, 0]}

    def localization_maps(self, outputs: dict[str, Tensor], classes: Tensor) -> Tensor:
        return outputs["maps"]


def _batch(seeds: bool) -> dict:
    image = torch.zeros(2, 3, 8, 8)
    image[:, 0, 2:6, 2:6] = 1.0
    batch = {"image": image, "label": torch.tensor([0, 1]), "boxes": [torch.tensor([[2, 2, 5, 5]])] * 2}
    if seeds:
        batch["multi_hot"] = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        batch["semantic"] = torch.zeros(2, 8, 8, dtype=torch.uint8)
    return batch


def _attach(model: WSOLModule, seeds: bool, batches: int = 3) -> None:
    loader = [_batch(seeds) for _ in range(batches)]
    model.trainer = SimpleNamespace(datamodule=SimpleNamespace(val_dataloader=lambda: loader))


def test_threshold_given_and_box_data_runs_no_forward():
    model = _Counting(operating_threshold=0.3)
    _attach(model, seeds=False)
    model.on_test_start()
    assert model.calls == 0  # the seed threshold is NaN but not applicable: nothing re-run on val
    assert float(model.operating_threshold) == 0.3
    assert math.isnan(float(model.seed_bg_threshold))


def test_missing_box_threshold_is_chosen_on_val():
    model = _Counting()
    _attach(model, seeds=False)
    model.on_test_start()
    assert model.calls == 3  # one forward per val batch, no seed maps
    assert 0.0 <= float(model.operating_threshold) < 1.0


def test_only_the_missing_seed_threshold_is_chosen():
    model = _Counting(operating_threshold=0.3)
    _attach(model, seeds=True)
    model.on_test_start()
    assert model.calls == 3  # seed maps only (one forward each), no box evaluation pass
    assert float(model.operating_threshold) == 0.3
    assert not math.isnan(float(model.seed_bg_threshold))
    model.calls = 0
    model.on_test_start()  # both set now: nothing to choose
    assert model.calls == 0
