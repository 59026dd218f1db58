"""``on_test_start`` chooses on val only the thresholds that are missing and applicable (issues 12 and 16).

The rule is in :mod:`wsol_lightning.methods.thresholds`; ``opened`` counts how often the val loader was read.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from wsol_lightning.methods.base import WSOLModule
from wsol_lightning.methods.thresholds import seed_threshold_after_test


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


class _Loader:
    """A val loader that counts how many times it was opened."""

    def __init__(self, batches: list[dict]) -> None:
        self.batches, self.opened = batches, 0

    def __iter__(self):
        self.opened += 1
        return iter(self.batches)


def _attach(model: WSOLModule, seeds: bool, batches: int = 3) -> _Loader:
    loader = _Loader([_batch(seeds) for _ in range(batches)])
    model.trainer = SimpleNamespace(datamodule=SimpleNamespace(val_dataloader=lambda: loader))
    return loader


def _test_epoch(model: WSOLModule, seeds: bool) -> None:
    """The test epoch's seed-metric updates, then the end-of-epoch threshold step (no logging)."""
    batch = _batch(seeds)
    if seeds:
        model.seed_miou.update(model.seed_maps(batch), batch["semantic"])
    seed_threshold_after_test(model, tried=model._seed_val_pass)


def test_threshold_given_and_box_data_never_opens_the_val_loader():
    model = _Counting(operating_threshold=0.3)
    loader = _attach(model, seeds=False)
    model.on_test_start()
    _test_epoch(model, seeds=False)
    assert (model.calls, loader.opened) == (0, 0)  # the seed threshold is NaN but not applicable
    assert float(model.operating_threshold) == 0.3
    assert math.isnan(float(model.seed_bg_threshold))


def test_threshold_held_from_a_checkpoint_is_reused_without_val():
    model = _Counting()
    model.load_state_dict({**model.state_dict(), "operating_threshold": torch.tensor(0.42, dtype=torch.float64)})
    loader = _attach(model, seeds=False)
    model.on_test_start()
    assert (model.calls, loader.opened) == (0, 0)
    assert float(model.operating_threshold) == 0.42


def test_missing_box_threshold_is_chosen_on_val():
    model = _Counting()
    loader = _attach(model, seeds=False)
    model.on_test_start()
    assert (model.calls, loader.opened) == (3, 1)  # one forward per val batch, no seed maps
    assert 0.0 <= float(model.operating_threshold) < 1.0
    _test_epoch(model, seeds=False)
    assert loader.opened == 1  # nothing more at the end of the test epoch


def test_only_the_missing_seed_threshold_is_chosen_once_the_test_shows_seed_data():
    model = _Counting(operating_threshold=0.3)
    loader = _attach(model, seeds=True)
    model.on_test_start()
    assert (model.calls, loader.opened) == (0, 0)  # not known yet whether seeds apply
    _test_epoch(model, seeds=True)
    assert (model.calls, loader.opened) == (1 + 3, 1)  # the test batch, then seed maps only on val
    assert float(model.operating_threshold) == 0.3
    assert not math.isnan(float(model.seed_bg_threshold))
    model.calls = 0
    model.on_test_start()  # both set now: nothing to choose
    _test_epoch(model, seeds=True)
    assert (model.calls, loader.opened) == (1, 1)


def test_both_missing_are_chosen_in_one_val_pass():
    model = _Counting()
    loader = _attach(model, seeds=True)
    model.on_test_start()
    assert loader.opened == 1
    assert not math.isnan(float(model.operating_threshold))
    assert not math.isnan(float(model.seed_bg_threshold))
    _test_epoch(model, seeds=True)
    assert loader.opened == 1


class _Reads(torch.utils.data.Dataset):
    """Pre-built batches (``batch_size=None``) that count how many were read."""

    def __init__(self, count: int) -> None:
        self.items, self.reads = [_batch(seeds=False) for _ in range(count)], 0

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        self.reads += 1
        return self.items[index]


class _Data(L.LightningDataModule):
    def __init__(self) -> None:
        super().__init__()
        self.val, self.test = _Reads(3), _Reads(2)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val, batch_size=None)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.test, batch_size=None)


def _trainer(tmp_path) -> L.Trainer:
    return L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, default_root_dir=tmp_path)


@pytest.mark.parametrize("validated", [True, False])
def test_wsol_test_on_a_checkpoint_reads_val_only_without_a_stored_threshold(tmp_path, validated: bool):
    """``trainer.test(ckpt_path=...)`` (what ``wsol test --ckpt_path`` runs): the checkpoint's threshold is
    restored before ``on_test_start``, so no val batch is read; without one, exactly one val pass."""
    data, trainer = _Data(), _trainer(tmp_path)
    source = _Counting()
    if validated:
        trainer.validate(source, datamodule=data, verbose=False)  # chooses and holds the threshold
    else:
        trainer.strategy.connect(source)  # a never-validated model (NaN threshold)
    stored = float(source.operating_threshold)
    assert math.isnan(stored) != validated
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    data = _Data()
    tested = _Counting()
    _trainer(tmp_path).test(tested, datamodule=data, ckpt_path=tmp_path / "model.ckpt", verbose=False)
    assert data.test.reads == 2
    assert data.val.reads == (0 if validated else 3)
    if validated:
        assert float(tested.operating_threshold) == stored
    else:
        assert not math.isnan(float(tested.operating_threshold))  # chosen by the one val pass
